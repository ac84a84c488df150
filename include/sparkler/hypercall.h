/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hypercall dispatch table. The ABI (port, numbers, registers) is in
 * abi.h. Embedders register numbers from SPK_HC_EMBEDDER_BASE to
 * SPK_HC_MAX; a registered handler runs on the vCPU thread inside
 * spk_vcpu_run() and its result goes to the guest's rax without an exit.
 * Numbers nobody registered come to the caller as SPK_EXIT_HYPERCALL.
 */
#ifndef SPARKLER_HYPERCALL_H
#define SPARKLER_HYPERCALL_H

#include <stdint.h>
#include <sparkler/abi.h>

#ifdef __cplusplus
extern "C" {
#endif

struct spk_vcpu;
struct spk_hypercall_table;

/* Returns what the guest gets in rax (a negative errno for errors). Runs
 * on the calling vCPU's thread inside spk_vcpu_run() (the vCPU is
 * RUNNING: no register calls on it); several vCPUs may call at once. */
typedef uint64_t (*spk_hypercall_fn)(struct spk_vcpu *vcpu, uint64_t nr, const uint64_t args[6],
				     void *opaque);

/* A standalone table (a VM has its own: spk_vm_hypercalls()). -EINVAL,
 * -ENOMEM; free takes NULL. */
int spk_hypercall_table_new(struct spk_hypercall_table **out);
void spk_hypercall_table_free(struct spk_hypercall_table *t);

/*
 * Register nr. -ERANGE for a number outside [SPK_HC_EMBEDDER_BASE,
 * SPK_HC_MAX] (the library's own numbers are not for embedders), -EEXIST
 * for a number already taken (the message names its handler), -EBUSY once
 * the table is frozen (the VM has run), -EINVAL for a NULL table, fn or
 * name. The name is copied; opaque stays the caller's and must outlive the
 * table. Thread-safe.
 */
int spk_hypercall_register(struct spk_hypercall_table *t, uint64_t nr, const char *name,
			   spk_hypercall_fn fn, void *opaque);

/* Freeze the table: lookups are then lock-free. Idempotent; NULL: nothing. */
void spk_hypercall_freeze(struct spk_hypercall_table *t);

/* The handler of nr, or NULL (also for a NULL table); *opaque and *name
 * (each may be NULL) receive its opaque pointer and name. Thread-safe. */
spk_hypercall_fn spk_hypercall_lookup(const struct spk_hypercall_table *t, uint64_t nr,
				      void **opaque, const char **name);

/* The library's name of a number ("CPU_ON", ...), or NULL. */
const char *spk_hypercall_name(uint64_t nr);

/* A decoded ucall (see abi.h). */
struct spk_ucall {
	uint64_t type;    /* SPK_UCALL_* */
	uint64_t args[5]; /* the raw arguments after the type */
	char expr[SPK_UCALL_STR_MAX]; /* ASSERT: the expression; PRINT: the text */
	char file[SPK_UCALL_STR_MAX]; /* ASSERT: the file */
	uint64_t line;                /* ASSERT: the line */
};

/*
 * Decode a HYPERCALL exit with nr SPK_HC_UCALL, reading the strings it
 * points at through the checked accessor (unreadable or unterminated
 * strings become "<bad string at 0x...>"). -EINVAL if the exit is not a
 * ucall, or for a NULL exit or uc. Between two spk_vcpu_run() of vcpu.
 */
struct spk_exit;
int spk_ucall_decode(struct spk_vcpu *vcpu, const struct spk_exit *exit, struct spk_ucall *uc);

#ifdef __cplusplus
}
#endif
#endif
