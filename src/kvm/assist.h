/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The instruction assists' decoder and executor (src/kvm/assist.c), apart
 * from KVM so that the fuzz target can drive it with any bytes and any
 * register state. Not installed.
 */
#ifndef SPK_KVM_ASSIST_H
#define SPK_KVM_ASSIST_H

#include <stdbool.h>
#include <stdint.h>

#include <sparkler/assist.h>
#include <sparkler/mem.h>

/* The longest instruction x86 allows. */
#define SPK_ASSIST_INSN_MAX 15

/* The vCPU state the executor reads and changes. */
struct spk_assist_cpu {
	uint64_t gpr[16]; /* in encoding order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15 */
	uint64_t rip, rflags;
	uint64_t cr0, cr4, efer;
	uint64_t fs_base, gs_base;
	unsigned cpl;
	bool long64; /* EFER.LMA and CS.L: 64-bit mode */
};

/* One page translation. */
struct spk_assist_xlate {
	uint64_t gpa;
	bool valid; /* false: not present, #PF */
};

struct spk_assist_env {
	const struct spk_mem *mem; /* every guest access goes through it */
	/* Translate the linear address gva. 0, or -errno when translation
	 * itself failed (the assist is then given up, not a guest fault). */
	int (*translate)(void *opaque, uint64_t gva, struct spk_assist_xlate *out);
	int (*get_mxcsr)(void *opaque, uint32_t *mxcsr);
	int (*set_mxcsr)(void *opaque, uint32_t mxcsr);
	void *opaque;
};

enum spk_assist_result {
	SPK_ASSIST_NOT_LISTED, /* not an assisted instruction (or mode): report it */
	SPK_ASSIST_DONE,       /* cpu updated (RIP past it) */
	SPK_ASSIST_EXCEPTION,  /* inject out.vector (cpu.rip already right for it) */
	SPK_ASSIST_REFETCH,    /* memory at RIP differs from the bytes: run it again */
	SPK_ASSIST_FAILED,     /* a callback failed: report it */
};

struct spk_assist_outcome {
	enum spk_assist_insn insn; /* valid unless NOT_LISTED */
	unsigned len;              /* the instruction's length */
	uint8_t vector;            /* EXCEPTION: 1..31 */
	bool has_error;
	uint32_t error;
	bool set_cr2; /* #PF: cr2 = the faulting address */
	uint64_t cr2;
	bool fault; /* the instruction raised a fault (not int3's trap) */
};

/* Decode only: is bytes[0..n) the start of a listed instruction? */
bool spk_assist_decode(const uint8_t *bytes, unsigned n, enum spk_assist_insn *insn, unsigned *len);

/*
 * Complete the instruction whose bytes KVM reported (bytes[0..n), n <= 15)
 * at cpu->rip: decode strictly, fetch the bytes again at RIP through env,
 * compare, execute. Never touches guest memory except through env->mem.
 */
enum spk_assist_result spk_assist_exec(const uint8_t *bytes, unsigned n, struct spk_assist_cpu *cpu,
                                       const struct spk_assist_env *env,
                                       struct spk_assist_outcome *out);

#endif
