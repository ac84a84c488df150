/* SPDX-License-Identifier: Apache-2.0 */
/* x86-64 specifics: registers, CPUID entries, starting a vCPU in long mode. */
#ifndef SPARKLER_X86_H
#define SPARKLER_X86_H

#include <stdint.h>
#include <sparkler/mem.h>
#include <sparkler/vcpu.h>

#ifdef __cplusplus
extern "C" {
#endif

struct spk_x86_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
};

struct spk_x86_segment {
	uint64_t base;
	uint32_t limit;
	uint16_t selector;
	uint8_t type, present, dpl, db, s, l, g, avl, unusable;
};

struct spk_x86_dtable {
	uint64_t base;
	uint16_t limit;
};

struct spk_x86_sregs {
	struct spk_x86_segment cs, ds, es, fs, gs, ss, tr, ldt;
	struct spk_x86_dtable gdt, idt;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
};

/* Registers: allowed in every state but RUNNING (-EBUSY) and INVALID
 * (-EINVAL); NULL vcpu or struct: -EINVAL. Not thread-safe against other
 * calls on the same vCPU. */
int spk_vcpu_get_regs(struct spk_vcpu *vcpu, struct spk_x86_regs *regs);
int spk_vcpu_set_regs(struct spk_vcpu *vcpu, const struct spk_x86_regs *regs);
int spk_vcpu_get_sregs(struct spk_vcpu *vcpu, struct spk_x86_sregs *sregs);
int spk_vcpu_set_sregs(struct spk_vcpu *vcpu, const struct spk_x86_sregs *sregs);

/* One CPUID leaf, as KVM_GET_SUPPORTED_CPUID gives it. */
struct spk_cpuid_entry {
	uint32_t function, index, flags;
	uint32_t eax, ebx, ecx, edx;
};
#define SPK_CPUID_FLAG_SIGNIFICANT_INDEX 1u

/* The entry for (function, index), or NULL (also for NULL entries). Pure. */
struct spk_cpuid_entry *spk_cpuid_find(struct spk_cpuid_entry *entries, uint32_t n,
				       uint32_t function, uint32_t index);

/*
 * Long mode without firmware: identity page tables for [0, map_size)
 * with 2 MiB pages (present, writable, user), a GDT and a TSS, built in
 * guest memory at gpa (4 KiB aligned, spk_x86_long_mode_size() bytes).
 *
 * The CPL3 boundary: the pages holding the tables, GDT and TSS are
 * supervisor-only (the 2 MiB pages around them are split into 4 KiB
 * pages), and the TSS's I/O bitmap denies every port to CPL3 code until
 * spk_x86_long_mode_allow_ports() opens some. CPL3 code touching the
 * tables takes a #PF, and an in/out on a closed port (the hypercall port
 * included) a #GP, in the guest. Keep spk_x86_entry.iopl 0 for that:
 * IOPL 3 lets CPL3 code use every port on VT-x/AMD-V hosts (PVM hosts drop
 * IOPL on iretq, so there the bitmap always decides).
 */
/* GDT order as Linux's, so that STAR works for syscall/sysret: kernel
 * code, kernel data, user data, user code, TSS. */
#define SPK_X86_SEL_CODE0 0x08
#define SPK_X86_SEL_DATA0 0x10
#define SPK_X86_SEL_DATA3 0x1b /* 0x18 | RPL 3 */
#define SPK_X86_SEL_CODE3 0x23 /* 0x20 | RPL 3 */
#define SPK_X86_SEL_TSS   0x28
#define SPK_X86_MAP_MAX   (64ull << 30)

struct spk_x86_long_mode {
	uint64_t cr3;
	uint64_t gdt_base;
	uint16_t gdt_limit;
	uint64_t tss_base;
	uint64_t map_size;
};

/* Bytes spk_x86_build_long_mode() uses for map_size. Pure. */
uint64_t spk_x86_long_mode_size(uint64_t map_size);
/*
 * Build the tables at gpa for [0, map_size) (a non-zero multiple of 2 MiB
 * up to SPK_X86_MAP_MAX) and fill *lm. 0; -EINVAL (NULL, alignment,
 * size), -EFAULT (gpa's range is not RAM). Writes guest memory only; call
 * before the vCPUs run. The tables are in guest memory: the guest owns
 * them from its first instruction (its CPL0 code may change them).
 */
int spk_x86_build_long_mode(struct spk_mem *mem, uint64_t gpa, uint64_t map_size,
			    struct spk_x86_long_mode *lm);
/*
 * Open ports [first, first + count) to CPL3 code in the TSS I/O bitmap
 * of lm (clears their bits in guest memory; the guest's CPL0 code may
 * change them later). 0; -EINVAL (NULL, empty, beyond 0xffff, lm not
 * built), -EFAULT (the TSS is not in RAM). An access of n bytes needs
 * all n ports open (the hypercall's 4-byte out: SPK_HC_PORT..+3); opening
 * them lets CPL3 code make every hypercall.
 */
int spk_x86_long_mode_allow_ports(struct spk_mem *mem, const struct spk_x86_long_mode *lm,
                                  uint32_t first, uint32_t count);

struct spk_x86_entry {
	uint64_t rip;
	uint64_t rsp;
	uint64_t rdi, rsi; /* the first two arguments of a C entry point */
	unsigned cpl;      /* 0 or 3 */
	/* 0..3. CPL3 code may use in/out on the ports the TSS bitmap opens
	 * (spk_x86_long_mode_allow_ports); IOPL 3 opens every port on
	 * VT-x/AMD-V (not on PVM, which drops it): not a boundary. */
	unsigned iopl;
};

/*
 * Load the long-mode state (CR0/CR3/CR4/EFER, segments for cpl, GDT, TR)
 * and the entry registers, and make the vCPU READY. The VM remembers lm so
 * that the runner can start further vCPUs (CPU_UP) at CPL0 the same way.
 * States CREATED, READY or STOPPED (-EBUSY while RUNNING). -EINVAL for
 * NULLs, cpl other than 0/3, iopl above 3, a context that
 * spk_x86_build_long_mode() did not fill (all zero), a non-canonical rip
 * or rsp: all refused before anything changes. A KVM refusal of the
 * state leaves the vCPU INVALID. Not thread-safe against other calls on
 * the same vCPU.
 */
int spk_x86_vcpu_enter_long_mode(struct spk_vcpu *vcpu, const struct spk_x86_long_mode *lm,
				 const struct spk_x86_entry *entry);

#ifdef __cplusplus
}
#endif
#endif
