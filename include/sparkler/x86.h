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

/* Registers: allowed in every state but RUNNING and INVALID. */
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

/* The entry for (function, index), or NULL. */
struct spk_cpuid_entry *spk_cpuid_find(struct spk_cpuid_entry *entries, uint32_t n,
				       uint32_t function, uint32_t index);

/*
 * Long mode without firmware: identity page tables for [0, map_size)
 * with 2 MiB pages (present, writable, user), a GDT and a TSS, built in
 * guest memory at gpa (4 KiB aligned, spk_x86_long_mode_size() bytes).
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

uint64_t spk_x86_long_mode_size(uint64_t map_size);
int spk_x86_build_long_mode(struct spk_mem *mem, uint64_t gpa, uint64_t map_size,
			    struct spk_x86_long_mode *lm);

struct spk_x86_entry {
	uint64_t rip;
	uint64_t rsp;
	uint64_t rdi, rsi; /* the first two arguments of a C entry point */
	unsigned cpl;      /* 0 or 3 */
	unsigned iopl;     /* 0..3: 3 lets CPL3 code use in/out */
};

/*
 * Load the long-mode state (CR0/CR3/CR4/EFER, segments for cpl, GDT, TR)
 * and the entry registers, and make the vCPU READY. The VM remembers lm so
 * that the runner can start further vCPUs (CPU_UP) at CPL0 the same way.
 */
int spk_x86_vcpu_enter_long_mode(struct spk_vcpu *vcpu, const struct spk_x86_long_mode *lm,
				 const struct spk_x86_entry *entry);

#ifdef __cplusplus
}
#endif
#endif
