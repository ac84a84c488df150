/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest start code (arm64). The monitor enters _start at EL1h, MMU off,
 * interrupts masked; secondary vCPUs enter guest_secondary_entry through
 * PSCI CPU_ON with their id in x0. Stacks, the vector table and FP access
 * are ours.
 */
#define STACK_SIZE 16384
#define FRAME_SIZE (36 * 8)

	.section .text.entry, "ax"
	.globl _start
_start:
	mov	x19, #0
	b	1f

	.globl guest_secondary_entry
guest_secondary_entry:
	mov	x19, x0
1:	adrp	x1, guest_stacks
	add	x1, x1, :lo12:guest_stacks
	add	x2, x19, #1
	lsl	x2, x2, #14		/* STACK_SIZE */
	add	x1, x1, x2
	mov	sp, x1
	adrp	x1, guest_vectors
	add	x1, x1, :lo12:guest_vectors
	msr	vbar_el1, x1
	mov	x1, #(3 << 20)		/* CPACR_EL1.FPEN: no FP/SIMD traps */
	msr	cpacr_el1, x1
	isb
	mov	x0, x19
	cbnz	x19, 2f
	bl	guest_boot_main		/* never returns */
	b	.
2:	bl	guest_secondary_main	/* never returns */
	b	.

/* 16 vectors of 0x80 bytes: save x0/x1, the slot number in x0, then the
 * common path saves the rest and calls guest_exception(kind, frame). */
	.macro	vent kind
	.balign	0x80
	sub	sp, sp, #FRAME_SIZE
	stp	x0, x1, [sp, #0]
	mov	x0, #\kind
	b	exc_common
	.endm

	.text
	.balign	2048
	.globl	guest_vectors
guest_vectors:
	vent 0
	vent 1
	vent 2
	vent 3
	vent 4
	vent 5
	vent 6
	vent 7
	vent 8
	vent 9
	vent 10
	vent 11
	vent 12
	vent 13
	vent 14
	vent 15

exc_common:
	stp	x2, x3, [sp, #16]
	stp	x4, x5, [sp, #32]
	stp	x6, x7, [sp, #48]
	stp	x8, x9, [sp, #64]
	stp	x10, x11, [sp, #80]
	stp	x12, x13, [sp, #96]
	stp	x14, x15, [sp, #112]
	stp	x16, x17, [sp, #128]
	stp	x18, x19, [sp, #144]
	stp	x20, x21, [sp, #160]
	stp	x22, x23, [sp, #176]
	stp	x24, x25, [sp, #192]
	stp	x26, x27, [sp, #208]
	stp	x28, x29, [sp, #224]
	mrs	x2, elr_el1
	stp	x30, x2, [sp, #240]
	mrs	x2, spsr_el1
	mrs	x3, esr_el1
	stp	x2, x3, [sp, #256]
	mrs	x2, far_el1
	str	x2, [sp, #272]
	mov	x1, sp
	bl	guest_exception
	ldp	x30, x2, [sp, #240]
	msr	elr_el1, x2
	ldr	x2, [sp, #256]
	msr	spsr_el1, x2
	ldp	x0, x1, [sp, #0]
	ldp	x2, x3, [sp, #16]
	ldp	x4, x5, [sp, #32]
	ldp	x6, x7, [sp, #48]
	ldp	x8, x9, [sp, #64]
	ldp	x10, x11, [sp, #80]
	ldp	x12, x13, [sp, #96]
	ldp	x14, x15, [sp, #112]
	ldp	x16, x17, [sp, #128]
	ldp	x18, x19, [sp, #144]
	ldp	x20, x21, [sp, #160]
	ldp	x22, x23, [sp, #176]
	ldp	x24, x25, [sp, #192]
	ldp	x26, x27, [sp, #208]
	ldp	x28, x29, [sp, #224]
	add	sp, sp, #FRAME_SIZE
	eret

	.section .note.GNU-stack, "", %progbits
