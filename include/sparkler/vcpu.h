/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Virtual CPUs: the state machine and spk_vcpu_run().
 *
 *   CREATED --ready--> READY --run--> RUNNING --return--> READY
 *   CREATED/READY --stop--> STOPPED --ready--> READY (started again)
 *   any --failed setup--> INVALID (only spk_vm_destroy() remains)
 *
 * A call in the wrong state returns -EBUSY (RUNNING) or -EINVAL and its
 * message (spk_last_error()) names both the state and the one it needs.
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
 * Move *state to `to`, if the state machine allows it; `what` names the
 * operation for the error message. 0, or -EBUSY/-EINVAL leaving *state as
 * it was. Backends call this; embedders see it through the functions
 * below.
 */
int spk_vcpu_transition(enum spk_vcpu_state *state, enum spk_vcpu_state to, const char *what);

/*
 * Create vCPU id (below spk_vm_config.max_vcpus) in state CREATED, with
 * the VM's CPUID policy applied. -EEXIST if it exists.
 */
int spk_vcpu_create(struct spk_vm *vm, uint32_t id, struct spk_vcpu **out);

/* The vCPU with this id, or NULL. */
struct spk_vcpu *spk_vm_vcpu(struct spk_vm *vm, uint32_t id);

uint32_t spk_vcpu_id(const struct spk_vcpu *vcpu);
struct spk_vm *spk_vcpu_vm(const struct spk_vcpu *vcpu);
enum spk_vcpu_state spk_vcpu_state(const struct spk_vcpu *vcpu);

/* Mark a vCPU whose registers the caller has set as READY. */
int spk_vcpu_ready(struct spk_vcpu *vcpu);

/* READY or CREATED -> STOPPED. -EBUSY while it runs (kick it first). */
int spk_vcpu_stop(struct spk_vcpu *vcpu);

/* spk_vcpu_run() flags (spk_vcpu_set_flags). */
enum {
	/* Return SPK_EXIT_NONE after every exit the library handled. */
	SPK_VCPU_RETURN_HANDLED = 1u << 0,
};
void spk_vcpu_set_flags(struct spk_vcpu *vcpu, unsigned flags);

/*
 * Run until something needs the monitor; fill *exit and return 0. Exits
 * the library can handle (devices on the bus, registered hypercalls,
 * console writes, interrupt windows, ignored port accesses) do not come
 * back unless SPK_VCPU_RETURN_HANDLED is set. Complete reads with
 * spk_exit_complete_read() before the next call, and pass the same exit
 * struct to it. Returns -EBUSY/-EINVAL (wrong state) without running.
 * Needs READY; the vCPU is RUNNING meanwhile and READY again after.
 */
int spk_vcpu_run(struct spk_vcpu *vcpu, struct spk_exit *exit);

/*
 * From any thread: make a running (or the next) spk_vcpu_run() return
 * SPK_EXIT_CANCELLED promptly, by setting immediate_exit and signalling
 * the vCPU thread. Safe to call from a signal handler.
 */
int spk_vcpu_kick(struct spk_vcpu *vcpu);

/*
 * From any thread: queue an external interrupt vector for the vCPU. With
 * the in-kernel irqchip it goes to the vCPU's LAPIC as a fixed MSI; without
 * it the library injects it (KVM_INTERRUPT) when the guest can take it.
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
void spk_vcpu_get_stats(const struct spk_vcpu *vcpu, struct spk_vcpu_stats *out);

#ifdef __cplusplus
}
#endif
#endif
