/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The backend interface (not installed): what a hypervisor backend
 * implements, and the core objects it works on.
 *
 * The core (src/core/) owns the VM and the vCPU objects below, the vCPU
 * state machine, guest memory (it maps the host memory, keeps the region
 * map and the slot table), the bus, hypercall dispatch, the runner, kicks
 * and the statistics. A backend (src/kvm/: KVM on x86-64, src/kvm-arm64/:
 * KVM on arm64; one folder per architecture) implements struct
 * spk_backend_ops and hangs its own data on vm->be and vcpu->be. The core
 * reaches the backend only through that table, which it gets from
 * spk_backend(): the one function the backend linked into the library
 * defines. Nothing in src/core/ includes a backend's header
 * (tests/unit/test_backend.c links the core with a fake backend and no
 * KVM to prove it).
 *
 * One spk_vcpu_run(), start to finish:
 *   core     READY -> RUNNING; before the VM's first entry, the bus and the
 *            hypercall table are frozen and ops->vm_prepare() runs
 *   backend  ops->vcpu_complete(last exit): the value the caller completed
 *            (spk_exit_complete_read) goes back to the guest
 *   loop:
 *   core     a stop request (SYSTEM_DOWN/RESET) or a kick (CANCELLED)?
 *   backend  ops->vcpu_enter(): inject what is pending, run the guest
 *   backend  ops->vcpu_translate(): its exit into struct spk_exit, with
 *            exit->pc; the result says what happens next (enum spk_step)
 *   core     SPK_STEP_ROUTE: memory map (NESTED_PAGE_FAULT), bus, miss
 *            policy, hypercall table; what it handles it completes at
 *            once through ops->vcpu_complete()
 *   core     statistics; return the exit, or loop for a handled one
 *   core     RUNNING -> READY
 *
 * Threads: vcpu_* ops run on the vCPU's thread (the one inside
 * spk_vcpu_run(), or the caller of a setup function while the vCPU is not
 * RUNNING), except vcpu_kick (any thread, signal handlers included) and
 * vcpu_interrupt (any thread). VM ops may run on any thread; the core
 * holds vm->lock around vm_prepare, mem_slot_* and vcpu_create.
 *
 * Errors: an op that fails returns -errno and leaves its message with
 * spk_fail() (core/internal.h), as every public function does.
 *
 * Required: vm_create, vm_destroy, mem_slot_add, mem_slot_del,
 * vcpu_create, vcpu_destroy, vcpu_enter, vcpu_translate, vcpu_complete,
 * vcpu_kick. Every other op may be NULL: the core then refuses what needs
 * it with -ENOTSUP and a message naming the backend (or, for vm_prepare,
 * vcpu_pc and vcpu_halt_wakeable, does without).
 */
#ifndef SPK_CORE_BACKEND_H
#define SPK_CORE_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sparkler/sparkler.h>

#include "core/internal.h"

/* One guest memory slot: the host mapping behind a RAM or ROM region. */
struct spk_mem_slot {
	uint64_t gpa;
	uint64_t size;
	void *host;  /* NULL while the region is SPK_MEM_UNPOPULATED */
	uint32_t id; /* unique in the VM, never reused (KVM's slot number) */
	bool readonly;
	bool has_slot; /* the backend holds it (mem_slot_add succeeded) */
};

/* What ops->vcpu_translate() made of the exit. */
enum spk_step {
	/* *exit is for the caller (HALT, DEBUG, RESET, INTERNAL_ERROR, ...) */
	SPK_STEP_EXIT = 0,
	/* the backend handled it (an interrupt window, an instruction it
	 * emulated): exit->kind says what to count it as; the guest runs on */
	SPK_STEP_HANDLED,
	/*
	 * An access for the core to route: exit->kind is
	 * - MMIO: addr, width (1..8; odd sizes go byte by byte), is_write,
	 *   data (the written bytes), reg/reg_width/sign_ext as the backend
	 *   knows them (-1/0/false when it does not);
	 * - PIO: port, width (1, 2, 4), is_write, count, data pointing to
	 *   count * width bytes the backend owns until the next entry (the
	 *   core writes read values there: no completion is needed);
	 * - SYSREG: id, is_write, value (the written value), reg;
	 * - HYPERCALL: nr and args, read from the guest's registers by the
	 *   architecture's ABI (x86-64: SPK_HC_PORT, abi.h).
	 * exit->priv.flags must be SPK_COMPLETE_NONE: the core sets it.
	 */
	SPK_STEP_ROUTE,
};

/* Register sets for ops->vcpu_get_regs / vcpu_set_regs. */
enum spk_regset {
	SPK_REGS_X86 = 1,   /* struct spk_x86_regs (x86.h) */
	SPK_REGS_X86_SYS,   /* struct spk_x86_sregs */
	SPK_REGS_ARM64,     /* struct spk_arm64_regs (arm64.h) */
	SPK_REGS_ARM64_ONE, /* struct spk_arm64_one_reg: one register by KVM's id */
};

/* SPK_REGS_ARM64_ONE's buffer: get fills value, set writes it. */
struct spk_arm64_one_reg {
	uint64_t id;
	uint64_t value;
};

struct spk_vm;
struct spk_vcpu;
struct spk_snap_writer; /* snapshot.h */
struct spk_snap_reader;

struct spk_backend_ops {
	const char *name; /* for messages: "kvm-x86_64" */
	/* The port hypercalls arrive on (abi.h), kept off the bus; -1: none. */
	int hypercall_port;
	/* Without an in-kernel irqchip, vcpu_enter cannot inject the vectors
	 * the core queues (arm64: there is no interrupt to inject without
	 * the GIC): spk_vcpu_interrupt() is then refused, not queued. */
	bool no_injection;

	/* ---- the VM --------------------------------------------------------- */
	/*
	 * Create the backend's VM; set vm->be. The core fields are filled
	 * (max_vcpus, irqchip, console_fd, kick_signal); cfg is the caller's
	 * config (never NULL) for the fields that are the backend's (x86:
	 * cpuid_policy, msr_exits, no_assists): it checks them first and
	 * keeps a copy, not the pointers. On failure nothing is left behind.
	 */
	int (*vm_create)(struct spk_vm *vm, const struct spk_vm_config *cfg);
	/* Free vm->be (NULL after a failed vm_create: then a no-op), after
	 * every vCPU's vcpu_destroy and before the core unmaps memory. */
	void (*vm_destroy)(struct spk_vm *vm);
	/* Once, before the first entry of any vCPU, with the bus frozen and
	 * vm->lock held (x86: the MSR filter from msr_exits and SYSREG
	 * devices). NULL: nothing to do. */
	int (*vm_prepare)(struct spk_vm *vm);

	/* ---- memory (vm->lock held) ------------------------------------------ */
	/* Give the guest slot->host at slot->gpa (read-only: writes exit as
	 * MMIO writes, which the core turns into NESTED_PAGE_FAULT). */
	int (*mem_slot_add)(struct spk_vm *vm, struct spk_mem_slot *slot);
	/* Take the slot away again (rollback); cannot fail. */
	void (*mem_slot_del)(struct spk_vm *vm, struct spk_mem_slot *slot);
	/*
	 * Dirty page log, for snapshots (core/dirty.c). mem_dirty_log: start
	 * (on) or stop recording the guest's writes to a RAM slot (the core
	 * sets vm->dirty_log first: a slot added while it is on is logged
	 * from the start). mem_dirty_get: OR one bit per 4 KiB page the guest
	 * wrote since the last call into bits (slot->size / 4096 bits,
	 * rounded up to 64) and reset those pages' log. Never asked for
	 * read-only slots. NULL in a backend that cannot: the core refuses
	 * with -ENOTSUP.
	 */
	int (*mem_dirty_log)(struct spk_vm *vm, struct spk_mem_slot *slot, bool on);
	int (*mem_dirty_get)(struct spk_vm *vm, struct spk_mem_slot *slot, uint64_t *bits);

	/* ---- interrupts at the VM --------------------------------------------- */
	/* In-kernel irqchip only (the core checks it, and msi non-NULL):
	 * set a GSI's level; send one MSI now (the backend checks the
	 * address against its architecture's MSI window). */
	int (*irq_line)(struct spk_vm *vm, uint32_t gsi, bool level);
	int (*signal_msi)(struct spk_vm *vm, const struct spk_msi *msi);
	/*
	 * The doorbell and interrupt plumbing of vm.h, called with a live VM
	 * (the core checked it) and everything else unchecked: the backend
	 * refuses bad arguments, and what its irqchip mode cannot do, with
	 * its own messages. ioeventfd: assign or remove a doorbell; irqfd:
	 * bind or unbind an eventfd to a GSI; msi_route_*: the GSI routing
	 * table's MSI entries (spk_vm_msi_route_add and friends).
	 */
	int (*ioeventfd)(struct spk_vm *vm, const struct spk_ioeventfd *io, bool assign);
	int (*irqfd)(struct spk_vm *vm, uint32_t gsi, int fd, bool assign);
	int (*msi_route_add)(struct spk_vm *vm, const struct spk_msi *msi, uint32_t *gsi);
	int (*msi_route_set)(struct spk_vm *vm, uint32_t gsi, const struct spk_msi *msi);
	int (*msi_route_del)(struct spk_vm *vm, uint32_t gsi);

	/* ---- vCPUs ----------------------------------------------------------------- */
	/* Create the backend's vCPU for vcpu (vm and id set): set vcpu->be.
	 * vm->lock held. On failure nothing is left behind. */
	int (*vcpu_create)(struct spk_vcpu *vcpu);
	/* Free vcpu->be (spk_vm_destroy, nothing runs any more). */
	void (*vcpu_destroy)(struct spk_vcpu *vcpu);
	/*
	 * Enter the guest once: inject what is pending (spk_vcpu_irq_take()
	 * below, without an in-kernel irqchip), run it until it exits.
	 * 0: it exited, translate it next. -EINTR: a kick, a wakeup or a
	 * stray signal ended it early; the backend has cleared whatever made
	 * it so (KVM: immediate_exit) and the core looks at its flags and
	 * enters again. Any other -errno: it could not run; *exit is then an
	 * INTERNAL_ERROR for the caller (SPK_INTERNAL_RUN_FAILED).
	 */
	int (*vcpu_enter)(struct spk_vcpu *vcpu, struct spk_exit *exit);
	/* The exit into *exit (begun by the core: kind NONE, vcpu, priv);
	 * sets exit->pc (0 where unknown). See enum spk_step. */
	enum spk_step (*vcpu_translate)(struct spk_vcpu *vcpu, struct spk_exit *exit);
	/*
	 * Hand the completed value of *exit to the guest before its next
	 * entry, by exit->priv.flags (SPK_COMPLETE_*, internal.h): MMIO/NPF
	 * data, SYSREG value/fault, HC hypercall.ret, HC_PRIV priv.hc_ret
	 * (both into the hypercall's result register); PIO is in place.
	 * Called for the exit the caller got (next spk_vcpu_run) and at once
	 * for accesses the core routed and handled.
	 */
	void (*vcpu_complete)(struct spk_vcpu *vcpu, const struct spk_exit *exit);
	/* Make a vcpu_enter in progress or about to start return -EINTR
	 * soon (KVM: immediate_exit; the core sends the kick signal after).
	 * Async-signal-safe, any thread. */
	void (*vcpu_kick)(struct spk_vcpu *vcpu);
	/* The guest's pc as last known (for exits the core makes: CANCELLED,
	 * stop requests); NULL or 0: unknown. */
	uint64_t (*vcpu_pc)(struct spk_vcpu *vcpu);
	/* In-kernel irqchip (the core checks): deliver vector to the vCPU's
	 * interrupt controller. Any thread. Without one the core queues the
	 * vector and vcpu_enter injects it. */
	int (*vcpu_interrupt)(struct spk_vcpu *vcpu, uint8_t vector);
	/* After a HALT exit: 1 when an interrupt can wake the vCPU (x86:
	 * IF set), 0 when it halted for good, -errno when it cannot tell
	 * (the core then waits, as for 1). */
	int (*vcpu_halt_wakeable)(struct spk_vcpu *vcpu);
	/* The default CPU_UP start (spk_run_ops.start_vcpu NULL): set the
	 * vCPU (CREATED or STOPPED) up at entry with arg the architecture's
	 * way, and make it READY (spk_vcpu_ready). */
	int (*vcpu_start)(struct spk_vcpu *vcpu, uint64_t entry, uint64_t arg);
	/* Debug controls (single step, breakpoints); not RUNNING (checked). */
	int (*vcpu_set_debug)(struct spk_vcpu *vcpu, const struct spk_vcpu_debug *dbg);
	/* A register set (enum spk_regset) into or from buf of size bytes;
	 * not RUNNING or INVALID (checked). -ENOTSUP for a set of another
	 * architecture. */
	int (*vcpu_get_regs)(struct spk_vcpu *vcpu, enum spk_regset set, void *buf, size_t size);
	int (*vcpu_set_regs)(struct spk_vcpu *vcpu, enum spk_regset set, const void *buf,
	                     size_t size);

	/*
	 * ---- state save and load (snapshots, src/snapshot/vm.c) ---------------
	 * The fields of a VCPU section and of the VM section (the in-kernel
	 * irqchip, its timers, the clock) into a snapshot writer, and back
	 * from a reader: load reads and checks every field as hostile input
	 * first (check_only: only that), then applies; a refusal before
	 * applying changes nothing. Not RUNNING (the caller checks); save
	 * first completes the last exit (spk_vcpu_complete_last). NULL in a
	 * backend without snapshots.
	 */
	int (*vcpu_state_save)(struct spk_vcpu *vcpu, struct spk_snap_writer *w);
	int (*vcpu_state_load)(struct spk_vcpu *vcpu, struct spk_snap_reader *r, bool check_only);
	int (*vm_state_save)(struct spk_vm *vm, struct spk_snap_writer *w);
	int (*vm_state_load)(struct spk_vm *vm, struct spk_snap_reader *r, bool check_only);
	/*
	 * Finish the exit the vCPU last stopped on without running the guest:
	 * the caller's completion (spk_vcpu_complete_last) and what the
	 * hypervisor still owes the instruction (KVM completes a port or MMIO
	 * read at the next KVM_RUN: rax or memory, and rip), so that registers
	 * and memory set afterwards are not undone by it. Not RUNNING. NULL:
	 * nothing is ever pending.
	 */
	int (*vcpu_flush_exit)(struct spk_vcpu *vcpu);
};

/* The backend linked into the library (src/kvm/backend.c for x86-64,
 * src/kvm-arm64/backend.c for arm64). */
const struct spk_backend_ops *spk_backend(void);

/* Written into live VMs and vCPUs, cleared on destroy: a cheap check that
 * catches most uses of a destroyed handle (still undefined behaviour). */
#define SPK_VM_MAGIC   0x73706b76u /* "spkv" */
#define SPK_VCPU_MAGIC 0x73706b63u /* "spkc" */

struct spk_vm {
	uint32_t magic;
	const struct spk_backend_ops *ops;
	void *be; /* the backend's VM */

	uint32_t max_vcpus;
	enum spk_irqchip irqchip;
	int console_fd;
	int kick_signal;

	struct spk_mem *mem;
	struct spk_bus *bus;
	struct spk_hypercall_table *hc;

	struct spk_mem_slot slots[SPK_MEM_MAX_REGIONS];
	uint32_t n_slots;
	uint32_t next_slot;

	pthread_mutex_t lock;    /* vCPU creation, memory, first-run setup */
	struct spk_vcpu **vcpus; /* max_vcpus entries */
	bool prepared;           /* first-run setup done (bus frozen, vm_prepare) */
	/* the dirty log is on (dirty.c); a backend adding a RAM slot logs it */
	bool dirty_log;

	/* 0, or SPK_EXIT_SYSTEM_DOWN / SPK_EXIT_RESET from spk_vm_request_stop */
	atomic_int stop_kind;
	/* spk_vm_destroy() has begun: no new run may start */
	atomic_bool dying;
	struct spk_vm *next_live; /* the process's list of live VMs */

	/* guest memory served by a userfaultfd handler the VM owns
	 * (src/snapshot/uffd.c), under lock; freed first by destroy */
	void *mem_backend;
	void (*mem_backend_free)(void *mem_backend);

	struct runner *runner; /* of the spk_vm_run() in progress, under lock */
	uint32_t runner_users; /* references from spk_vm_runner_get() */
	pthread_cond_t runner_cond;
};

struct spk_vcpu {
	uint32_t magic;
	struct spk_vm *vm;
	uint32_t id;
	void *be; /* the backend's vCPU */
	enum spk_vcpu_state state;
	unsigned flags;

	/* kicks and interrupts, from any thread */
	atomic_bool cancel;
	atomic_bool has_thread;
	pthread_t thread;
	atomic_uint_least64_t pending[4]; /* vectors 0..255 queued for injection */
	atomic_uint wake_seq;             /* futex for spk_vcpu_wait_event() */

	/* the exit handed to the caller last time, completed at the next run */
	struct spk_exit *last_exit;

	struct spk_vcpu_stats stats;
};

/* ---- what a backend may call (src/core/vm.c, vcpu.c) -------------------- */

/* true for a live VM / vCPU handle; false (with a message naming what)
 * for NULL or a destroyed one. */
bool spk_vm_ok(const struct spk_vm *vm, const char *what);
bool spk_vcpu_ok(const struct spk_vcpu *vcpu, const char *what);
/* The value the caller completed the last exit with goes to the guest
 * (the backend's vcpu_complete) now instead of at the next run; then
 * there is none. Not RUNNING: for state saves (the snapshot). */
void spk_vcpu_complete_last(struct spk_vcpu *vcpu);
/* A failed setup step leaves the vCPU INVALID (DESIGN.md 1). */
int spk_vcpu_invalidate(struct spk_vcpu *vcpu);
/* Checks before touching registers: a live vCPU, arg non-NULL, not
 * RUNNING (-EBUSY) or INVALID; what names the operation. */
int spk_vcpu_regs_allowed(struct spk_vcpu *vcpu, const void *arg, const char *what);
/* The vectors queued with spk_vcpu_interrupt() without an in-kernel
 * irqchip: any pending? take the highest (x86 priority; -1: none); put
 * one back (the injection failed). Any thread. */
bool spk_vcpu_irq_pending(struct spk_vcpu *vcpu);
int spk_vcpu_irq_take(struct spk_vcpu *vcpu);
void spk_vcpu_irq_requeue(struct spk_vcpu *vcpu, int vector);

/* core/route.c: route an SPK_STEP_ROUTE exit (see enum spk_step); true
 * when handled (and completed), false when *exit is for the caller. */
bool spk_route_exit(struct spk_vcpu *vcpu, struct spk_exit *exit);

/* The backend's vcpu_flush_exit where it has one (else the caller's
 * completion only): for code that reloads a vCPU's registers and memory
 * after an exit (in-place reset, function sandboxes). Not RUNNING. */
int spk_vcpu_flush_exit(struct spk_vcpu *vcpu);

/* Fill *exit as an INTERNAL_ERROR with code, raw and a message. */
void spk_exit_set_internal(struct spk_exit *exit, uint32_t code, uint64_t raw, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
