/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Function sandboxes: call a function inside a microVM from C as if it
 * were a library call (after Hyperlight: host and guest function tables,
 * typed values, a reset between calls).
 *
 * The guest is an ELF built with the guest SDK's function runtime
 * (guest/include/guest_fn.h; with musl if it wants a C library). It boots,
 * initialises, says it is ready and waits; spk_fn_open() runs it that far
 * and keeps that state. spk_fn_call() runs one exported function by name:
 * arguments and result travel through the guest's call buffer, checked at
 * both ends (fn_abi.h); the guest's only way out is the function-call
 * hypercall (return, host call, fault report) and console output: every
 * other exit ends the call with an error naming it.
 *
 * Reset. By default every call starts from the state right after the
 * guest's initialisation: before a call that follows another, the pages
 * written since that state are copied back from a saved copy of guest
 * RAM, and the vCPU's registers and special registers are reloaded; the
 * guest SDK reloads its FPU/SSE state from an image in (reset) guest
 * memory as the call starts. So one call cannot see another's data. The
 * written pages come from KVM's dirty log (spk_vm_dirty_log_*, started
 * at READY; the sandbox marks its own writes of arguments and host-call
 * results); where KVM refuses the log, spk_fn_open warns and resets
 * compare every page with the copy instead (slower, same result).
 * What is not reloaded: MSRs, debug registers and the LAPIC. Calls run
 * at CPL3, where none of them can be written; a guest that writes over
 * its own kernel-mode code (the SDK's pages are its to write) can reach
 * them and carry a value from one call to the next. The library's full
 * in-place reset (spk_snap_reset_*, snapshot.h) reloads them too, but
 * costs about 15x this one on PVM: not used here yet.
 * SPK_FN_KEEP_STATE skips the reset: the guest's memory and registers
 * carry over (its FPU/SSE registers do not); a call that fails resets
 * anyway, so the next starts from the initialised state.
 *
 * Limits. Per call: a time budget (-ETIMEDOUT) and an exit budget
 * (-EDQUOT), counting every exit the call takes (console writes and host
 * calls included). Guest RAM is the memory cap: the guest's heap ends at
 * its top. spk_fn_cancel() from any thread ends a call with -ECANCELED,
 * also while it is inside a host function (which sees
 * spk_fn_host_cancelled() and should return).
 *
 * Errors of spk_fn_call (each with a message in spk_last_error()):
 *   -EINVAL    NULLs, a sandbox that is not open, wrong argument count or types
 *   -ENOENT    no exported function of that name
 *   -E2BIG     the arguments do not fit the guest's call buffer
 *   -EBUSY     another thread is calling this sandbox
 *   -ESHUTDOWN the sandbox is being closed
 *   -ECANCELED spk_fn_cancel()
 *   -ETIMEDOUT the time budget ran out
 *   -EDQUOT    the exit budget ran out
 *   -EFAULT    the guest crashed: an exception (vector, rip, cr2), a triple
 *              fault or an instruction KVM could not run
 *   -EPROTO    the guest broke the protocol: a result of the wrong type or
 *              outside the call buffer, a bad frame, an unregistered host
 *              function, a malformed host call, exit(), or any other exit
 *   -EREMOTEIO the guest function returned an error code (in the message
 *              and in result->i64)
 *   -EIO       resetting the sandbox failed (it is then unusable: close it)
 * After any error but -EINVAL, -ENOENT, -E2BIG, -EBUSY and -ESHUTDOWN, the
 * next call starts from the initialised state (with or without KEEP_STATE).
 *
 * Threads. A sandbox runs its vCPU on the thread that calls spk_fn_call
 * (it uses the library's kick signal there, see vcpu.h). One call at a time
 * per sandbox (a second thread gets -EBUSY); different sandboxes are
 * independent. spk_fn_cancel() and spk_fn_stats() are thread-safe;
 * spk_fn_close() of a sandbox another thread is calling cancels that call,
 * waits for it to return, then frees. Closing twice returns -EINVAL
 * (detected, as a diagnosis: a closed handle is dead). None is
 * signal-safe.
 */
#ifndef SPARKLER_FN_H
#define SPARKLER_FN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sparkler/fn_abi.h>

#ifdef __cplusplus
extern "C" {
#endif

struct spk_fn;

enum spk_fn_type {
	SPK_FN_I64 = SPK_FN_T_I64,
	SPK_FN_F64 = SPK_FN_T_F64,
	SPK_FN_BYTES = SPK_FN_T_BYTES,
	SPK_FN_STR = SPK_FN_T_STR,
	SPK_FN_VOID = SPK_FN_T_VOID,
};

/*
 * A typed value. Arguments: bytes/str point at the caller's memory (str:
 * len bytes, no NUL needed; a NULL ptr with len 0 is the empty value).
 * Results: ptr points into the sandbox's own copy (str: NUL-terminated),
 * valid until the next call or close.
 */
struct spk_fn_value {
	enum spk_fn_type type;
	int64_t i64;
	double f64;
	const void *ptr;
	size_t len;
};

/* Keep state across calls instead of resetting (see above). */
#define SPK_FN_KEEP_STATE (1u << 0)

struct spk_fn_config {
	uint64_t
	    mem_size;   /* guest RAM and memory cap: 0 is 8 MiB; 4 MiB to 1 GiB, 2 MiB multiples */
	uint32_t vcpus; /* 0 or 1 (the function runtime runs on one vCPU) */
	uint64_t time_budget_ns; /* per call and for the initialisation; 0: none */
	uint64_t exit_budget;    /* exits per call and for the initialisation; 0: none */
	unsigned flags;          /* SPK_FN_KEEP_STATE */
	int console_fd;          /* the guest's stdout/stderr: 0 stdout, -1 discarded */
	int kick_signal;         /* as spk_vm_config.kick_signal (0: SIGRTMIN) */
};

/*
 * Create a VM, load the guest ELF at path (checked as spk_elf_load_file
 * does, loaded from 1 MiB up) and run it until it is ready (within the
 * budgets). cfg NULL: defaults. 0 and *out, or: -EINVAL (NULLs, bad
 * config), -ENODEV (no usable KVM), -ENOEXEC (not a loadable guest), the
 * errors of spk_fn_call for an initialisation that fails (-EPROTO also for
 * a ready message that does not check: buffers outside RAM or below 1 MiB,
 * too many exports, bad names or signatures). Nothing is left behind on
 * failure. Thread-safe.
 */
int spk_fn_open(const char *path, const struct spk_fn_config *cfg, struct spk_fn **out);

/* Close (NULL: 0). See "Threads" above. -EINVAL for a sandbox not open. */
int spk_fn_close(struct spk_fn *fn);

/* The exported functions: count, and the name and signature of number i
 * (NULL past the end or for a NULL sandbox). Thread-safe. */
size_t spk_fn_exports(const struct spk_fn *fn);
const char *spk_fn_export_name(const struct spk_fn *fn, size_t i, const char **sig);

/*
 * Call exported function name with nargs arguments (types must match its
 * signature); *result (may be NULL) receives the result. 0 or an error
 * above.
 */
int spk_fn_call(struct spk_fn *fn, const char *name, const struct spk_fn_value *args,
                unsigned nargs, struct spk_fn_value *result);

/* Cancel the call running on fn: 0, or -ESRCH when none runs (nothing
 * happens), -EINVAL for a sandbox not open. Thread-safe. */
int spk_fn_cancel(struct spk_fn *fn);

/* A host function's view of the call it runs in. */
struct spk_fn_host_call;
/* The call was cancelled or ran out of time: return (any value) soon. */
bool spk_fn_host_cancelled(const struct spk_fn_host_call *hc);
/* The sandbox the call runs in. */
struct spk_fn *spk_fn_host_sandbox(const struct spk_fn_host_call *hc);

/* A host function: args are checked against its signature; set *ret
 * (its type is the signature's result type, already filled in; bytes/str
 * may point at the function's memory, copied before it returns) and
 * return 0, or return a negative errno the guest's call gets. */
typedef int (*spk_fn_host_fn)(struct spk_fn_host_call *hc, const struct spk_fn_value *args,
                              unsigned nargs, struct spk_fn_value *ret, void *opaque);

/*
 * Let the guest call fn under name with signature sig (guest_fn.h's
 * form, e.g. "s:i"). 0; -EINVAL (NULLs, name too long, bad signature),
 * -EEXIST (name taken), -ENOSPC (64 already), -EBUSY (during a call).
 * opaque stays the caller's. Thread-safe.
 */
int spk_fn_register_host(struct spk_fn *fn, const char *name, const char *sig, spk_fn_host_fn cb,
                         void *opaque);

struct spk_fn_stats {
	uint64_t calls;            /* spk_fn_call that ran the guest */
	uint64_t failed;           /* of them, ended with an error */
	uint64_t resets;           /* memory and register resets */
	uint64_t last_exits;       /* exits the last call took */
	uint64_t last_reset_pages; /* pages copied back by the last reset */
	uint64_t last_reset_ns;    /* how long the last reset took */
	uint64_t mem_size;         /* guest RAM */
};
/* A copy of the counters as the last call left them (a running call
 * publishes its own when it returns). -EINVAL for a sandbox not open or a
 * NULL out. Thread-safe. */
int spk_fn_stats(struct spk_fn *fn, struct spk_fn_stats *out);

#ifdef __cplusplus
}
#endif
#endif
