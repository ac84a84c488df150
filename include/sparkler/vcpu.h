/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Virtual CPUs: the state machine and spk_vcpu_run(). The library's core
 * runs both for every backend (the hypervisor behind the library: KVM on
 * x86-64 today); where a function says KVM, that is the KVM backend.
 *
 *   CREATED --ready--> READY --run--> RUNNING --return--> READY
 *   CREATED/READY --stop--> STOPPED --ready--> READY (started again)
 *   any --failed setup--> INVALID (only spk_vm_destroy() remains)
 *
 * RUNNING is entered and left only by spk_vcpu_run() itself; each change
 * of state is one atomic step, so two threads racing (two runs, a run and
 * a stop) cannot both win. A call in the wrong state returns -EBUSY
 * (RUNNING) or -EINVAL and its message (spk_last_error()) names both the
 * state and the one it needs.
 *
 * The library's rules for every public function (all headers):
 * - NULL handles and NULL pointer arguments are refused with -EINVAL and a
 *   message in spk_last_error(); functions that return a value instead of
 *   an error code return a stated neutral value (NULL, 0, UINT32_MAX,
 *   SPK_VCPU_INVALID) and set the message; free functions take NULL. The
 *   exceptions, where a check would sit on every guest access: the device
 *   models' per-access functions (virtqueue pop/push/read/write, PCI
 *   config accessors, device callbacks) take non-NULL devices as a
 *   precondition (their constructors do check); spk_exit_format() and
 *   spk_mem_regions() measure with a NULL buffer. tests/unit/test_nulls.c
 *   and tests/guest/contract.c walk every other function through NULLs.
 * - A handle of a destroyed VM (its vCPUs, memory map, bus, hypercall
 *   table) is dead: using it is undefined. The library detects most such
 *   uses of VM and vCPU handles (-EINVAL, "not a live ...") as a diagnosis,
 *   not a guarantee.
 * - Failures leave no half-done change behind (the call rolls back).
 * - "Thread-safe" means any thread, concurrently with the other calls of
 *   the same object; "signal-safe" means callable from a signal handler.
 *   Only spk_vcpu_kick() and spk_vm_request_stop() are signal-safe.
 *
 * The kick signal: spk_vcpu_kick() stops a vCPU inside KVM_RUN by sending
 * its thread a signal (spk_vm_config.kick_signal, default SIGRTMIN). The
 * first spk_vcpu_create() of the process installs an empty handler for it
 * (without SA_RESTART) if the signal has the default disposition; if the
 * embedder has installed a handler or SIG_IGN for it, vCPU creation fails
 * with -EBUSY and a message naming the signal (choose another signal with
 * kick_signal). The handler stays installed for the life of the process.
 * Each spk_vcpu_run() checks that the disposition is still the library's
 * and fails with -EBUSY (the run does not start) if the embedder changed
 * it later, since kicks would silently stop working. spk_vcpu_run()
 * unblocks the signal on the calling thread.
 */
#ifndef SPARKLER_VCPU_H
#define SPARKLER_VCPU_H

#include <stdbool.h>
#include <stdint.h>
#include <sparkler/exit.h>

#ifdef __cplusplus
extern "C" {
#endif

struct spk_vm;
struct spk_vcpu;

enum spk_vcpu_state {
	SPK_VCPU_INVALID = 0,
	SPK_VCPU_CREATED,
	SPK_VCPU_READY,
	SPK_VCPU_RUNNING,
	SPK_VCPU_STOPPED,
};

const char *spk_vcpu_state_name(enum spk_vcpu_state state);

/*
 * The state machine's table as a pure function (no vCPU involved): move
 * *state to `to` if the table allows it; `what` names the operation for
 * the error message. 0, or -EBUSY/-EINVAL leaving *state as it was
 * (-EINVAL for a NULL state or a value outside the enum). Backends call
 * this; embedders see it through the functions below. Thread-safe (no
 * shared state).
 */
int spk_vcpu_transition(enum spk_vcpu_state *state, enum spk_vcpu_state to, const char *what);

/*
 * Create vCPU id (below spk_vm_config.max_vcpus) in state CREATED, with
 * the VM's CPUID policy applied; *out receives it (owned by the VM, freed
 * by spk_vm_destroy()). -EINVAL (NULL, id too big), -EEXIST if it exists,
 * -EBUSY if the kick signal belongs to the embedder (see above),
 * -ESHUTDOWN while the VM is being destroyed, or KVM's error. Thread-safe.
 */
int spk_vcpu_create(struct spk_vm *vm, uint32_t id, struct spk_vcpu **out);

/* The vCPU with this id, or NULL (none yet; or NULL vm / id too big, with
 * a message). Thread-safe. */
struct spk_vcpu *spk_vm_vcpu(struct spk_vm *vm, uint32_t id);

/* Getters, in any state, thread-safe. NULL or dead vCPU: UINT32_MAX,
 * NULL and SPK_VCPU_INVALID, with a message. */
uint32_t spk_vcpu_id(const struct spk_vcpu *vcpu);
struct spk_vm *spk_vcpu_vm(const struct spk_vcpu *vcpu);
enum spk_vcpu_state spk_vcpu_state(const struct spk_vcpu *vcpu);

/*
 * Mark a vCPU whose registers the caller has set as READY: from CREATED,
 * STOPPED or READY (then a no-op). -EBUSY while RUNNING (only
 * spk_vcpu_run() leaves RUNNING), -EINVAL from INVALID. Thread-safe.
 */
int spk_vcpu_ready(struct spk_vcpu *vcpu);

/* READY, CREATED or STOPPED -> STOPPED. -EBUSY while it runs (kick it
 * first), -EINVAL from INVALID. Thread-safe. */
int spk_vcpu_stop(struct spk_vcpu *vcpu);

/* spk_vcpu_run() flags (spk_vcpu_set_flags). */
enum {
	/* Return SPK_EXIT_NONE after every exit the library handled. */
	SPK_VCPU_RETURN_HANDLED = 1u << 0,
};
/* Any state; takes effect at the next exit. NULL: ignored (message). */
void spk_vcpu_set_flags(struct spk_vcpu *vcpu, unsigned flags);

/*
 * Run until something needs the monitor; fill *exit and return 0. Exits
 * the library can handle (devices on the bus, registered hypercalls,
 * console writes, interrupt windows, ignored port accesses) do not come
 * back unless SPK_VCPU_RETURN_HANDLED is set. Complete reads with
 * spk_exit_complete_read() before the next call, and pass the same exit
 * struct to it (the library keeps a pointer to it until then: the caller
 * owns it and keeps it alive). Needs READY; the vCPU is RUNNING meanwhile
 * and READY again after. Without a deadline: bound a run with a timer
 * that calls spk_vcpu_kick() (signal-safe), e.g. timer_create() with
 * SIGEV_THREAD or a watchdog thread; the run then returns CANCELLED.
 * Errors (nothing ran): -EINVAL (NULL, dead, wrong state), -EBUSY
 * (RUNNING on another thread; the kick signal's disposition was changed),
 * -ESHUTDOWN (the VM is being destroyed), or the first-run setup's error.
 * A KVM failure during the run is an INTERNAL_ERROR exit, not an error.
 * One thread at a time per vCPU (a second is refused with -EBUSY); vCPUs
 * of one VM run in parallel on their own threads. Not signal-safe.
 */
int spk_vcpu_run(struct spk_vcpu *vcpu, struct spk_exit *exit);

/*
 * From any thread: make a running (or the next) spk_vcpu_run() return
 * SPK_EXIT_CANCELLED promptly, by setting immediate_exit and signalling
 * the vCPU thread (the kick signal, above). 0; -EINVAL for NULL or a dead
 * vCPU (with a constant message). Any state. Thread-safe and safe to call
 * from a signal handler (the one exception to the NULL message rule's
 * formatting: the message is a fixed string).
 */
int spk_vcpu_kick(struct spk_vcpu *vcpu);

/*
 * From any thread: queue an external interrupt vector for the vCPU. With
 * the in-kernel irqchip it goes to the vCPU's LAPIC as a fixed MSI; without
 * it the library injects it (KVM_INTERRUPT) when the guest can take it.
 * Any state but INVALID matters (queued until the next run). 0 or -errno.
 * arm64: -ENOTSUP in both modes (arm64.h: interrupts are the GIC's SPIs,
 * spk_vm_irq_line). Thread-safe, not signal-safe.
 */
int spk_vcpu_interrupt(struct spk_vcpu *vcpu, uint8_t vector);

/* Debug controls (KVM_SET_GUEST_DEBUG). */
struct spk_vcpu_debug {
	bool enable;
	bool single_step;
	bool sw_breakpoints;   /* int3 exits as DEBUG instead of going to the guest */
	bool hw_breakpoints;   /* use addr[] and dr7 */
	uint64_t addr[4];      /* DR0-DR3 */
	uint64_t dr7;
};
/* Not while RUNNING (-EBUSY). 0 or -errno. */
int spk_vcpu_set_debug(struct spk_vcpu *vcpu, const struct spk_vcpu_debug *dbg);

/* Per-vCPU counters: every exit, handled by the library or not. */
struct spk_vcpu_stats {
	uint64_t count[SPK_EXIT__COUNT];
	/* Nanoseconds inside KVM_RUN up to each exit: the guest's own time
	 * since the previous exit plus the kernel's entry and exit. */
	uint64_t run_ns[SPK_EXIT__COUNT];
	/* Nanoseconds the library spent on each exit after KVM_RUN returned:
	 * translation, and for exits it handled, the device or handler. */
	uint64_t handle_ns[SPK_EXIT__COUNT];
	uint64_t handled; /* of all exits, how many the library took itself */
};
/* A copy of the counters (any state; while RUNNING the copy may be torn
 * between two exits). NULL vcpu: *out zeroed, message. */
void spk_vcpu_get_stats(const struct spk_vcpu *vcpu, struct spk_vcpu_stats *out);

#ifdef __cplusplus
}
#endif
#endif
