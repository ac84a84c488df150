/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared inside the library; not installed. */
#ifndef SPK_CORE_INTERNAL_H
#define SPK_CORE_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sparkler/log.h>

/*
 * Record a failure on this thread (spk_last_error()), log it at DEBUG
 * level, and return -err. Every public function that fails goes through
 * this: `return spk_fail(EINVAL, "bus: zero-length range for %s", name);`
 */
int spk_fail_impl(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The macro tells the compiler the result is negative, so that
 * `if ((rc = f(&out)) < 0) return rc; use(out);` does not look like a use
 * of an uninitialized out. */
#define spk_fail(err, ...)                                                                         \
	({                                                                                         \
		int spk_rc_ = spk_fail_impl((err), __VA_ARGS__);                                   \
		if (spk_rc_ >= 0)                                                                  \
			__builtin_unreachable();                                                   \
		spk_rc_;                                                                           \
	})

/*
 * spk_fail() for async-signal-safe paths (spk_vcpu_kick, spk_vm_request_stop):
 * copies a constant message into spk_last_error() without formatting or
 * logging, and returns -err.
 */
int spk_fail_const(int err, const char *msg);

/* Clear this thread's last error (on success paths that want it). */
void spk_clear_error(void);

#define SPK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Little-endian bytes: the n low bytes of v into p; n bytes from p (n <= 8). */
static inline void spk_put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t spk_get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* a + b without wrapping; false when it would wrap. */
static inline int spk_add_ok(uint64_t a, uint64_t b, uint64_t *sum)
{
	return !__builtin_add_overflow(a, b, sum);
}

/*
 * The exit's private completion flags (struct spk_exit.priv.flags): which
 * field carries the value to hand back to the guest at the next run.
 */
enum {
	SPK_COMPLETE_NONE = 0,
	SPK_COMPLETE_MMIO,     /* mmio.data -> the guest's load (KVM: kvm_run mmio data) */
	SPK_COMPLETE_NPF,      /* npf.data -> the guest's load */
	SPK_COMPLETE_PIO,      /* pio.data (already in place) */
	SPK_COMPLETE_SYSREG,   /* sysreg.value / fault -> the guest's rdmsr/wrmsr */
	SPK_COMPLETE_HC,       /* hypercall.ret -> the result register (rax) */
	SPK_COMPLETE_HC_PRIV,  /* priv.hc_ret -> the result register (CPU_UP, ...) */
};

/*
 * vcpu.c, for the runner: block until an interrupt is queued for the vCPU,
 * it is kicked, or the VM is asked to stop (HALT without an in-kernel
 * irqchip).
 */
struct spk_vcpu;
void spk_vcpu_wait_event(struct spk_vcpu *vcpu);
/* vcpu.c, for the runner's HALT: can an interrupt wake this vCPU? (the
 * backend's vcpu_halt_wakeable; true when it cannot tell) */
bool spk_vcpu_halt_wakeable(struct spk_vcpu *vcpu);
/* vcpu.c: make the vCPU's thread look at its flags again (leave the
 * backend's run, leave spk_vcpu_wait_event) without cancelling.
 * Async-signal-safe. */
void spk_vcpu_wake(struct spk_vcpu *vcpu);
/* vm.c: before the first instruction: freeze the tables, backend setup. */
struct spk_vm;
int spk_vm_prepare(struct spk_vm *vm);
/* vcpu.c, for the runner's CPU_UP: the backend's default start. */
int spk_vcpu_start_default(struct spk_vcpu *vcpu, uint64_t entry, uint64_t arg);

struct spk_mem;

/*
 * The runner of the VM's current spk_vm_run() (vm.c keeps the pointer;
 * runner.c uses it for pause/resume). get returns it with a reference, or
 * NULL; put drops the reference; clear (at the end of the run) waits until
 * nobody holds one.
 */
struct spk_vm;
struct runner;
int spk_vm_set_runner(struct spk_vm *vm, struct runner *r); /* -EBUSY: one is set */
struct runner *spk_vm_runner_get(struct spk_vm *vm);
void spk_vm_runner_put(struct spk_vm *vm);
void spk_vm_runner_clear(struct spk_vm *vm);
/* runner.c: end the VM's spk_vm_run() in progress, if any (spk_vm_destroy):
 * every vCPU thread is kicked and told to leave, paused ones too. */
void spk_vm_runner_abort(struct spk_vm *vm, const char *why);
/* bus.c: make bus a VM's bus: MMIO registrations over mem's regions and
 * PIO ones over hc_port (-1: none) are refused as dead. */
struct spk_bus;
void spk_bus_attach_vm(struct spk_bus *bus, const struct spk_mem *mem, int hc_port);
/* runner.c: this thread is one of vm's spk_vm_run() vCPU threads. */
bool spk_vm_on_own_thread(const struct spk_vm *vm);
/* mem.c: take the region that starts at gpa out of the map (rollback of a
 * failed spk_vm_add_memory); 0 or -ENOENT. */
int spk_mem_remove(struct spk_mem *mem, uint64_t gpa);
/* mem.c, for the dirty log: start (with every region's bitmap of the
 * monitor's writes cleared) or stop recording writes; OR the bits of the
 * region starting at gpa (pages long) into bits and clear them: 0, or
 * -ENOENT when no region starts there with that many pages. */
void spk_mem_track(struct spk_mem *mem, bool on);
int spk_mem_written_take(struct spk_mem *mem, uint64_t gpa, uint64_t *bits, uint64_t pages);
/* A SYSTEM_DOWN or RESET request is pending (spk_vm_request_stop). */
bool spk_vm_stop_pending(struct spk_vm *vm);

/*
 * Hypercall dispatch without KVM (core/hypercall.c): the backend reads the
 * guest's registers, calls this, and writes *rax back when it returns
 * true (handled: the guest runs on); false means *exit is for the caller
 * (CPU_UP, SYSTEM_DOWN, a UCALL, an embedder number nobody registered).
 * Pure but for CONSOLE_WRITE, which writes to console_fd, and embedder
 * handlers, which get vcpu.
 */
struct spk_exit;
struct spk_mem;
struct spk_ucall;
struct spk_hypercall_table;
struct spk_hc_ctx {
	struct spk_vcpu *vcpu;
	uint32_t vcpu_id;
	const struct spk_mem *mem; /* CONSOLE_WRITE reads here */
	int console_fd;
	const struct spk_hypercall_table *table;
};
bool spk_hypercall_dispatch(const struct spk_hc_ctx *c, uint64_t nr, const uint64_t args[6],
                            struct spk_exit *exit, uint64_t *rax);
/* spk_ucall_decode() with the guest memory given (NULL: none). */
int spk_ucall_decode_mem(const struct spk_mem *mem, const struct spk_exit *exit,
                         struct spk_ucall *uc);

#endif
