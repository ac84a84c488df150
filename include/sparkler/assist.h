/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Instruction assists (KVM x86-64 backend, src/kvm/assist.c).
 *
 * On PVM hosts guest code at CPL0 is run by KVM's instruction emulator,
 * which refuses some instructions a stock Linux kernel executes: the vCPU
 * stops with KVM_EXIT_INTERNAL_ERROR (emulation failure) and the bytes of
 * the instruction. The library completes the few instructions listed here
 * itself and runs the vCPU on; everything else stays an INTERNAL_ERROR
 * exit. The bytes are read again from guest memory at RIP (translated
 * with KVM_TRANSLATE, through the checked accessor) and must match what
 * KVM reported; a memory operand that does not translate or is not guest
 * RAM gets the fault a CPU would raise (#PF or #GP), never a host access.
 *
 * Assists are on unless spk_vm_config.no_assists is set. On VMX/SVM hosts
 * KVM runs these instructions itself and the counters stay 0.
 */
#ifndef SPARKLER_ASSIST_H
#define SPARKLER_ASSIST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct spk_vcpu;

/* The instructions completed in userspace (the order of the counters). */
enum spk_assist_insn {
	SPK_ASSIST_INT3,    /* cc at CPL0: #BP injected with RIP past it */
	SPK_ASSIST_POPCNT,  /* f3 [REX] 0f b8 /r, register operands */
	SPK_ASSIST_CLAC,    /* 0f 01 ca */
	SPK_ASSIST_STAC,    /* 0f 01 cb */
	SPK_ASSIST_FWAIT,   /* 9b */
	SPK_ASSIST_LDMXCSR, /* [seg] [REX] 0f ae /2, memory operand */
	SPK_ASSIST_STMXCSR, /* [seg] [REX] 0f ae /3, memory operand */
	SPK_ASSIST__COUNT
};

/* Its mnemonic ("popcnt"), or "?" for a value out of range. */
const char *spk_assist_name(unsigned insn);

struct spk_assist_stats {
	uint64_t count[SPK_ASSIST__COUNT]; /* completed (a fault injected counts too) */
	uint64_t faults;                   /* of those, how many ended in #PF/#GP/#UD/#NM */
	uint64_t refetch_mismatch;         /* memory at RIP no longer held the bytes: ran again */
};

/* The vCPU's counters since it was created (zeros when vcpu is NULL). */
void spk_vcpu_get_assist_stats(const struct spk_vcpu *vcpu, struct spk_assist_stats *out);

#ifdef __cplusplus
}
#endif
#endif
