/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest start code. The monitor enters _start in 64-bit long mode at CPL0
 * (page tables, GDT and TSS are its own, see sparkler/x86.h); everything
 * else (stacks, per-CPU data, IDT) is ours.
 */
#define GDT_CODE0 0x08
#define GDT_DATA3 0x1b
#define GDT_CODE3 0x23

	.section .text.entry, "ax"
	.globl _start
_start:
	lea	guest_kstacks + 16384(%rip), %rsp
	xor	%edi, %edi
	call	guest_cpu_init
	call	guest_boot_main		/* never returns */
1:	jmp	1b

/* Secondary vCPUs (CPU_ON): rdi = cpu id */
	.globl guest_secondary_entry
guest_secondary_entry:
	mov	%rdi, %rax
	inc	%rax
	shl	$14, %rax
	lea	guest_kstacks(%rip), %rsp
	add	%rax, %rsp
	push	%rdi
	call	guest_cpu_init
	pop	%rdi
	call	guest_secondary_main	/* never returns */
1:	jmp	1b

	.text
/*
 * uint64_t guest_user_enter(fn, arg, user_stack_top): run fn(arg) at
 * CPL3 with IOPL 0 (ports: the TSS bitmap's, guest_user_allow_ports) and
 * come back with its result through a #UD at user_exit (isr_common
 * recognises it). Not syscall: on PVM hosts the code syscall enters keeps
 * CPL3's page and port permissions; not `int $n`: PVM answers it with #UD.
 * A fault is delivered the same on every host: through the IDT, on the
 * TSS's rsp0 stack, at CPL0.
 */
	.globl guest_user_enter
guest_user_enter:
	push	%rbx
	push	%rbp
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	mov	%rsp, %gs:0		/* guest_cpu.kernel_rsp */
	push	$GDT_DATA3		/* ss */
	push	%rdx			/* rsp */
	push	$0x0002			/* rflags: IOPL 0, interrupts off */
	push	$GDT_CODE3		/* cs */
	lea	user_trampoline(%rip), %rax
	push	%rax			/* rip */
	iretq

user_trampoline:
	mov	%rdi, %rax
	mov	%rsi, %rdi
	call	*%rax
	mov	%rax, %rdi
user_exit:
	ud2				/* to isr_common, then guest_user_return */
1:	jmp	1b

/* guest_user_abort() points a faulting CPL3 frame here: user code that
 * ends its guest_run_user() with GUEST_USER_ABORTED (-1). */
	.globl guest_user_aborted
guest_user_aborted:
	mov	$-1, %rdi
	jmp	user_exit

/* At CPL0 on this CPU's trap stack (TSS rsp0): drop the frame, go back to
 * guest_user_enter's caller with rdi as the result. */
guest_user_return:
	mov	%gs:0, %rsp
	mov	%rdi, %rax
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbp
	pop	%rbx
	ret

/*
 * Interrupt stubs: 256 of them, 16 bytes apart. Each pushes an error code
 * (0 where the CPU pushes none) and its vector, then saves the scratch
 * registers and calls guest_interrupt(vector, error, frame).
 */
	.align 16
	.globl guest_isr_table
guest_isr_table:
	.set vec, 0
	.rept 256
	.align 16
	.if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	push	$0
	.endif
	push	$vec
	jmp	isr_common
	.set vec, vec + 1
	.endr

isr_common:
	/* #UD at user_exit from CPL3: user code is done (guest_user_enter) */
	cmpq	$6, (%rsp)		/* vector */
	jne	2f
	push	%rax
	lea	user_exit(%rip), %rax
	cmp	%rax, 24(%rsp)		/* the CPU's frame: rip */
	jne	1f
	testq	$3, 32(%rsp)		/* cs: from CPL3 only */
	jz	1f
	pop	%rax
	jmp	guest_user_return
1:	pop	%rax
2:	push	%rax
	push	%rcx
	push	%rdx
	push	%rsi
	push	%rdi
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	push	%rbp
	mov	80(%rsp), %rdi		/* vector */
	mov	88(%rsp), %rsi		/* error code */
	lea	96(%rsp), %rdx		/* the CPU's frame: rip, cs, rflags, rsp, ss */
	mov	%rsp, %rbp
	and	$-16, %rsp
	call	guest_interrupt
	mov	%rbp, %rsp
	pop	%rbp
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rdi
	pop	%rsi
	pop	%rdx
	pop	%rcx
	pop	%rax
	add	$16, %rsp
	iretq

	.section .note.GNU-stack, "", @progbits
