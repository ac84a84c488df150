/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vCPUs: creation, the state machine's transitions, kicks and queued
 * interrupts, and spk_vcpu_run(): the loop around the backend's
 * enter/translate steps that routes what the library can handle (devices
 * on the bus, its own hypercalls: route.c) without returning, and counts
 * every exit (core/backend.h has the whole sequence).
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/internal.h"

/*
 * The kick signal (vcpu.h): spk_vm_config.kick_signal, SIGRTMIN by
 * default. The library installs its empty handler once per signal, and
 * only over the default disposition: a handler (or SIG_IGN) the embedder
 * installed is theirs, and vCPU creation is refused instead.
 */
static pthread_mutex_t kick_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t kick_installed[2]; /* bit per signal number 0..127, atomic */

static void kick_handler(int sig)
{
	(void)sig; /* only there to make the backend's run (KVM_RUN) return -EINTR */
}

static bool kick_is_installed(int sig)
{
	return __atomic_load_n(&kick_installed[sig / 64], __ATOMIC_ACQUIRE) & (1ull << (sig % 64));
}

static int install_kick_handler(int sig)
{
	struct sigaction old, sa = {.sa_handler = kick_handler};
	int rc = 0;

	if (kick_is_installed(sig))
		return 0; /* no syscall: CPU_UP creates vCPUs on filtered threads */
	pthread_mutex_lock(&kick_lock);
	if (kick_is_installed(sig))
		goto out_unlock;
	if (sigaction(sig, NULL, &old) < 0) {
		rc = spk_fail(errno, "vcpu: kick signal %d: %s", sig, strerror(errno));
		goto out_unlock;
	}
	if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) {
		rc = spk_fail(EBUSY,
		              "vcpu: the kick signal %d (SIGRTMIN+%d) already has a %s "
		              "installed by the program; the library does not replace it: choose "
		              "a free signal in spk_vm_config.kick_signal",
		              sig, sig - SIGRTMIN,
		              old.sa_handler == SIG_IGN ? "SIG_IGN disposition" : "handler");
		goto out_unlock;
	}
	sigemptyset(&sa.sa_mask);
	/* no SA_RESTART: the backend's run (KVM_RUN) must return -EINTR */
	if (sigaction(sig, &sa, NULL) < 0) {
		rc = spk_fail(errno, "vcpu: kick signal %d: %s", sig, strerror(errno));
		goto out_unlock;
	}
	__atomic_fetch_or(&kick_installed[sig / 64], 1ull << (sig % 64), __ATOMIC_RELEASE);
out_unlock:
	pthread_mutex_unlock(&kick_lock);
	return rc;
}

/* Is the kick signal's handler still ours? (sigaction is signal-safe) */
static bool kick_handler_intact(int sig)
{
	struct sigaction cur;

	if (sigaction(sig, NULL, &cur) < 0)
		return true; /* cannot tell: do not refuse */
	return !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == kick_handler;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- creation and simple accessors ---------------------------------- */

int spk_vcpu_create(struct spk_vm *vm, uint32_t id, struct spk_vcpu **out)
{
	struct spk_vcpu *vcpu;
	int rc;

	if (!out)
		return spk_fail(EINVAL, "vcpu: create needs an out pointer");
	if (!spk_vm_ok(vm, "create a vCPU"))
		return -EINVAL;
	if (atomic_load(&vm->dying))
		return spk_fail(ESHUTDOWN, "vcpu: create: the VM is being destroyed");
	if (id >= vm->max_vcpus)
		return spk_fail(EINVAL, "vcpu: id %u is not below max_vcpus %u", id, vm->max_vcpus);
	rc = install_kick_handler(vm->kick_signal);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&vm->lock);
	if (vm->vcpus[id]) {
		rc = spk_fail(EEXIST, "vcpu: vCPU %u exists", id);
		goto out_unlock;
	}
	vcpu = calloc(1, sizeof(*vcpu));
	if (!vcpu) {
		rc = spk_fail(ENOMEM, "vcpu: out of memory");
		goto out_unlock;
	}
	vcpu->vm = vm;
	vcpu->id = id;
	rc = vm->ops->vcpu_create(vcpu);
	if (rc < 0)
		goto err_free;
	vcpu->state = SPK_VCPU_CREATED;
	vcpu->magic = SPK_VCPU_MAGIC;
	__atomic_store_n(&vm->vcpus[id], vcpu, __ATOMIC_RELEASE);
	*out = vcpu;
	pthread_mutex_unlock(&vm->lock);
	return 0;

err_free:
	free(vcpu);
out_unlock:
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

bool spk_vcpu_ok(const struct spk_vcpu *vcpu, const char *what)
{
	if (!vcpu) {
		spk_fail(EINVAL, "vcpu: cannot %s: the vCPU is NULL", what);
		return false;
	}
	if (vcpu->magic != SPK_VCPU_MAGIC) {
		spk_fail(EINVAL, "vcpu: cannot %s: not a live vCPU (its VM was destroyed?)", what);
		return false;
	}
	return true;
}

struct spk_vcpu *spk_vm_vcpu(struct spk_vm *vm, uint32_t id)
{
	if (!spk_vm_ok(vm, "look up a vCPU"))
		return NULL;
	if (id >= vm->max_vcpus) {
		spk_fail(EINVAL, "vcpu: id %u is not below max_vcpus %u", id, vm->max_vcpus);
		return NULL;
	}
	return __atomic_load_n(&vm->vcpus[id], __ATOMIC_ACQUIRE);
}

uint32_t spk_vcpu_id(const struct spk_vcpu *vcpu)
{
	return spk_vcpu_ok(vcpu, "get the id") ? vcpu->id : UINT32_MAX;
}

struct spk_vm *spk_vcpu_vm(const struct spk_vcpu *vcpu)
{
	return spk_vcpu_ok(vcpu, "get the VM") ? vcpu->vm : NULL;
}

enum spk_vcpu_state spk_vcpu_state(const struct spk_vcpu *vcpu)
{
	if (!spk_vcpu_ok(vcpu, "get the state"))
		return SPK_VCPU_INVALID;
	return __atomic_load_n(&vcpu->state, __ATOMIC_ACQUIRE);
}

/*
 * One atomic step of the state machine: two threads racing (two
 * spk_vcpu_run(), a run and a stop) cannot both leave the same state.
 */
static int set_state(struct spk_vcpu *vcpu, enum spk_vcpu_state to, const char *what)
{
	enum spk_vcpu_state from = __atomic_load_n(&vcpu->state, __ATOMIC_ACQUIRE);

	for (;;) {
		enum spk_vcpu_state s = from;
		int rc = spk_vcpu_transition(&s, to, what);

		if (rc < 0)
			return rc;
		if (__atomic_compare_exchange_n(&vcpu->state, &from, s, false, __ATOMIC_ACQ_REL,
		                                __ATOMIC_ACQUIRE))
			return 0;
	}
}

int spk_vcpu_ready(struct spk_vcpu *vcpu)
{
	enum spk_vcpu_state from;

	if (!spk_vcpu_ok(vcpu, "make ready"))
		return -EINVAL;
	/* RUNNING -> READY belongs to spk_vcpu_run() alone */
	from = __atomic_load_n(&vcpu->state, __ATOMIC_ACQUIRE);
	do {
		if (from == SPK_VCPU_RUNNING)
			return spk_fail(EBUSY,
			                "vcpu %u: cannot make ready: state is RUNNING; "
			                "spk_vcpu_run() makes it READY when it returns (kick it)",
			                vcpu->id);
		enum spk_vcpu_state s = from;
		int rc = spk_vcpu_transition(&s, SPK_VCPU_READY, "make ready");

		if (rc < 0)
			return rc;
		if (__atomic_compare_exchange_n(&vcpu->state, &from, s, false, __ATOMIC_ACQ_REL,
		                                __ATOMIC_ACQUIRE))
			return 0;
	} while (true);
}

int spk_vcpu_stop(struct spk_vcpu *vcpu)
{
	if (!spk_vcpu_ok(vcpu, "stop"))
		return -EINVAL;
	return set_state(vcpu, SPK_VCPU_STOPPED, "stop");
}

int spk_vcpu_invalidate(struct spk_vcpu *vcpu)
{
	return set_state(vcpu, SPK_VCPU_INVALID, "invalidate");
}

void spk_vcpu_set_flags(struct spk_vcpu *vcpu, unsigned flags)
{
	if (spk_vcpu_ok(vcpu, "set flags"))
		__atomic_store_n(&vcpu->flags, flags, __ATOMIC_RELAXED);
}

void spk_vcpu_get_stats(const struct spk_vcpu *vcpu, struct spk_vcpu_stats *out)
{
	if (!out) {
		spk_fail(EINVAL, "vcpu: get_stats needs an output");
		return;
	}
	if (!spk_vcpu_ok(vcpu, "get stats")) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = vcpu->stats;
}

/* ---- kicks, wakeups and interrupts ---------------------------------- */

void spk_vcpu_wake(struct spk_vcpu *vcpu)
{
	/* the backend's flag covers the window just before it enters the
	 * guest; the signal the time inside; the futex the HALT wait. */
	vcpu->vm->ops->vcpu_kick(vcpu);
	atomic_fetch_add(&vcpu->wake_seq, 1);
	syscall(SYS_futex, &vcpu->wake_seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
	if (atomic_load(&vcpu->has_thread))
		pthread_kill(vcpu->thread, vcpu->vm->kick_signal);
}

int spk_vcpu_kick(struct spk_vcpu *vcpu)
{
	/* async-signal-safe: spk_fail_const, not spk_fail */
	if (!vcpu)
		return spk_fail_const(EINVAL, "vcpu: cannot kick: the vCPU is NULL");
	if (vcpu->magic != SPK_VCPU_MAGIC)
		return spk_fail_const(EINVAL, "vcpu: cannot kick: not a live vCPU");
	atomic_store(&vcpu->cancel, true);
	spk_vcpu_wake(vcpu);
	/* the next run is stopped either way; one in KVM_RUN only by the signal */
	if (!kick_handler_intact(vcpu->vm->kick_signal))
		return spk_fail_const(EBUSY, "vcpu: kick: the program replaced the kick signal's "
		                             "handler; a vCPU inside KVM_RUN does not stop");
	return 0;
}

bool spk_vcpu_irq_pending(struct spk_vcpu *vcpu)
{
	for (int i = 0; i < 4; i++)
		if (atomic_load(&vcpu->pending[i]))
			return true;
	return false;
}

int spk_vcpu_irq_take(struct spk_vcpu *vcpu)
{
	for (int i = 3; i >= 0; i--) {
		uint64_t v = atomic_load(&vcpu->pending[i]);

		while (v) {
			int bit = 63 - __builtin_clzll(v);

			if (atomic_compare_exchange_weak(&vcpu->pending[i], &v, v & ~(1ull << bit)))
				return i * 64 + bit;
		}
	}
	return -1;
}

void spk_vcpu_irq_requeue(struct spk_vcpu *vcpu, int vector)
{
	atomic_fetch_or(&vcpu->pending[vector / 64], 1ull << (vector % 64));
}

int spk_vcpu_interrupt(struct spk_vcpu *vcpu, uint8_t vector)
{
	if (!spk_vcpu_ok(vcpu, "queue an interrupt"))
		return -EINVAL;
	if (vcpu->vm->irqchip == SPK_IRQCHIP_KERNEL) {
		if (!vcpu->vm->ops->vcpu_interrupt)
			return spk_fail(ENOTSUP,
			                "vcpu %u: the %s backend cannot deliver to its irqchip",
			                vcpu->id, vcpu->vm->ops->name);
		return vcpu->vm->ops->vcpu_interrupt(vcpu, vector);
	}
	if (vcpu->vm->ops->no_injection)
		return spk_fail(ENOTSUP,
		                "vcpu %u: the %s backend cannot inject interrupts without an "
		                "in-kernel irqchip",
		                vcpu->id, vcpu->vm->ops->name);
	spk_vcpu_irq_requeue(vcpu, vector);
	spk_vcpu_wake(vcpu);
	return 0;
}

void spk_vcpu_wait_event(struct spk_vcpu *vcpu)
{
	/* bounded sleeps: a lost wakeup costs at most 100 ms, never a hang */
	const struct timespec tmo = {.tv_nsec = 100L * 1000 * 1000};

	for (;;) {
		unsigned seq = atomic_load(&vcpu->wake_seq);

		if (spk_vcpu_irq_pending(vcpu) || atomic_load(&vcpu->cancel) ||
		    atomic_load(&vcpu->vm->stop_kind))
			return;
		syscall(SYS_futex, &vcpu->wake_seq, FUTEX_WAIT_PRIVATE, seq, &tmo, NULL, 0);
	}
}

bool spk_vcpu_halt_wakeable(struct spk_vcpu *vcpu)
{
	const struct spk_backend_ops *ops = vcpu->vm->ops;

	return !ops->vcpu_halt_wakeable || ops->vcpu_halt_wakeable(vcpu) != 0;
}

int spk_vcpu_start_default(struct spk_vcpu *vcpu, uint64_t entry, uint64_t arg)
{
	if (!spk_vcpu_ok(vcpu, "start a secondary vCPU"))
		return -EINVAL;
	if (!vcpu->vm->ops->vcpu_start)
		return spk_fail(ENOTSUP,
		                "vcpu %u: the %s backend has no default start for CPU_UP "
		                "(give spk_run_ops.start_vcpu)",
		                vcpu->id, vcpu->vm->ops->name);
	return vcpu->vm->ops->vcpu_start(vcpu, entry, arg);
}

/* ---- the run loop ------------------------------------------------------------ */

void spk_exit_set_internal(struct spk_exit *exit, uint32_t code, uint64_t raw, const char *fmt, ...)
{
	va_list ap;

	exit->kind = SPK_EXIT_INTERNAL_ERROR;
	exit->internal.code = code;
	exit->internal.raw = raw;
	exit->internal.insn_len = 0;
	va_start(ap, fmt);
	vsnprintf(exit->internal.message, sizeof(exit->internal.message), fmt, ap);
	va_end(ap);
}

static void begin_exit(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	exit->kind = SPK_EXIT_NONE;
	exit->vcpu = vcpu->id;
	exit->pc = 0;
	exit->priv.vcpu = vcpu;
	exit->priv.flags = SPK_COMPLETE_NONE;
	exit->priv.hc_ret = 0;
}

/* A stop request or a kick, checked every time the loop wakes. */
static bool take_stop_or_cancel(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	int stop = atomic_load(&vcpu->vm->stop_kind);

	if (stop) {
		exit->kind = (enum spk_exit_kind)stop;
		exit->system_down.source = SPK_SOURCE_DEVICE; /* same layout as reset */
		atomic_store(&vcpu->cancel, false);
	} else if (atomic_exchange(&vcpu->cancel, false)) {
		exit->kind = SPK_EXIT_CANCELLED;
	} else {
		return false;
	}
	if (vcpu->vm->ops->vcpu_pc)
		exit->pc = vcpu->vm->ops->vcpu_pc(vcpu);
	return true;
}

/* Count an exit; returns the time now (the next KVM_RUN's start, which
 * saves a clock read per exit: two, not three). */
static uint64_t count(struct spk_vcpu *vcpu, enum spk_exit_kind kind, uint64_t t0, uint64_t t1,
                      bool handled)
{
	uint64_t t2 = now_ns();

	if ((unsigned)kind >= SPK_EXIT__COUNT)
		kind = SPK_EXIT_INTERNAL_ERROR;
	vcpu->stats.count[kind]++;
	vcpu->stats.run_ns[kind] += t1 - t0;
	vcpu->stats.handle_ns[kind] += t2 - t1;
	vcpu->stats.handled += handled;
	return t2;
}

/* Enter the guest until an exit that needs the caller. */
static void run_loop(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	const struct spk_backend_ops *ops = vcpu->vm->ops;
	uint64_t t0 = now_ns();

	for (;;) {
		begin_exit(vcpu, exit);
		if (take_stop_or_cancel(vcpu, exit))
			return;
		int rc = ops->vcpu_enter(vcpu, exit);

		if (rc == -EINTR)
			continue; /* a kick, a wakeup or a stray signal */
		if (rc < 0)
			return; /* *exit is the INTERNAL_ERROR */
		uint64_t t1 = now_ns();
		bool handled;

		begin_exit(vcpu, exit);
		switch (ops->vcpu_translate(vcpu, exit)) {
		case SPK_STEP_ROUTE:
			handled = spk_route_exit(vcpu, exit);
			break;
		case SPK_STEP_HANDLED:
			handled = true;
			break;
		case SPK_STEP_EXIT:
		default:
			handled = false;
			break;
		}
		t0 = count(vcpu, exit->kind, t0, t1, handled);
		if (!handled)
			return;
		if (vcpu->flags & SPK_VCPU_RETURN_HANDLED) {
			exit->kind = SPK_EXIT_NONE;
			return;
		}
	}
}

void spk_vcpu_complete_last(struct spk_vcpu *vcpu)
{
	struct spk_exit *e = vcpu->last_exit;

	vcpu->last_exit = NULL;
	if (e)
		vcpu->vm->ops->vcpu_complete(vcpu, e);
}

int spk_vcpu_flush_exit(struct spk_vcpu *vcpu)
{
	if (!spk_vcpu_ok(vcpu, "finish its last exit"))
		return -EINVAL;
	if (spk_vcpu_state(vcpu) == SPK_VCPU_RUNNING)
		return spk_fail(EBUSY, "vcpu %u: cannot finish its last exit while it runs",
		                vcpu->id);
	if (!vcpu->vm->ops->vcpu_flush_exit) {
		spk_vcpu_complete_last(vcpu);
		return 0;
	}
	return vcpu->vm->ops->vcpu_flush_exit(vcpu);
}

int spk_vcpu_run(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	int rc;

	if (!exit)
		return spk_fail(EINVAL, "vcpu: run needs an exit");
	if (!spk_vcpu_ok(vcpu, "run"))
		return -EINVAL;
	if (!kick_handler_intact(vcpu->vm->kick_signal))
		return spk_fail(EBUSY,
		                "vcpu %u: cannot run: the program changed the disposition "
		                "of the kick signal %d after the library installed its handler, so "
		                "kicks could not stop the vCPU (see spk_vm_config.kick_signal)",
		                vcpu->id, vcpu->vm->kick_signal);
	rc = set_state(vcpu, SPK_VCPU_RUNNING, "run");
	if (rc < 0)
		return rc;
	/* after RUNNING is visible: spk_vm_destroy() sets dying, then waits
	 * for RUNNING vCPUs, so one of the two sees the other */
	if (atomic_load(&vcpu->vm->dying)) {
		set_state(vcpu, SPK_VCPU_READY, "end run");
		return spk_fail(ESHUTDOWN, "vcpu %u: cannot run: the VM is being destroyed",
		                vcpu->id);
	}
	rc = spk_vm_prepare(vcpu->vm);
	if (rc < 0) {
		set_state(vcpu, SPK_VCPU_READY, "end run");
		return rc;
	}
	if (!atomic_load(&vcpu->has_thread) || !pthread_equal(vcpu->thread, pthread_self())) {
		sigset_t kick;

		/* a new thread runs this vCPU: kicks must reach it */
		sigemptyset(&kick);
		sigaddset(&kick, vcpu->vm->kick_signal);
		pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
		atomic_store(&vcpu->has_thread, false);
		vcpu->thread = pthread_self();
		atomic_store(&vcpu->has_thread, true);
	}
	spk_vcpu_complete_last(vcpu);
	run_loop(vcpu, exit);
	vcpu->last_exit = exit;
	set_state(vcpu, SPK_VCPU_READY, "end run");
	return 0;
}

int spk_vcpu_set_debug(struct spk_vcpu *vcpu, const struct spk_vcpu_debug *dbg)
{
	if (!dbg)
		return spk_fail(EINVAL, "vcpu: set_debug needs settings");
	if (!spk_vcpu_ok(vcpu, "set debug controls"))
		return -EINVAL;
	if (spk_vcpu_state(vcpu) == SPK_VCPU_RUNNING)
		return spk_fail(EBUSY, "vcpu: cannot set debug: state is RUNNING, needs READY");
	if (!vcpu->vm->ops->vcpu_set_debug)
		return spk_fail(ENOTSUP, "vcpu %u: the %s backend has no debug controls", vcpu->id,
		                vcpu->vm->ops->name);
	return vcpu->vm->ops->vcpu_set_debug(vcpu, dbg);
}

/* ---- registers (the x86 functions of x86.h, through the backend) ---------- */

int spk_vcpu_regs_allowed(struct spk_vcpu *vcpu, const void *arg, const char *what)
{
	if (!spk_vcpu_ok(vcpu, what))
		return -EINVAL;
	if (!arg)
		return spk_fail(EINVAL, "vcpu %u: cannot %s: NULL argument", vcpu->id, what);
	enum spk_vcpu_state s = spk_vcpu_state(vcpu);

	if (s == SPK_VCPU_RUNNING)
		return spk_fail(EBUSY, "vcpu %u: cannot %s: state is RUNNING, needs READY",
		                vcpu->id, what);
	if (s == SPK_VCPU_INVALID)
		return spk_fail(EINVAL, "vcpu %u: cannot %s: state is INVALID", vcpu->id, what);
	return 0;
}

static int get_regs(struct spk_vcpu *vcpu, enum spk_regset set, void *buf, size_t size,
                    const char *what)
{
	int rc = spk_vcpu_regs_allowed(vcpu, buf, what);

	if (rc < 0)
		return rc;
	if (!vcpu->vm->ops->vcpu_get_regs)
		return spk_fail(ENOTSUP, "vcpu %u: cannot %s: the %s backend has no registers",
		                vcpu->id, what, vcpu->vm->ops->name);
	return vcpu->vm->ops->vcpu_get_regs(vcpu, set, buf, size);
}

static int set_regs(struct spk_vcpu *vcpu, enum spk_regset set, const void *buf, size_t size,
                    const char *what)
{
	int rc = spk_vcpu_regs_allowed(vcpu, buf, what);

	if (rc < 0)
		return rc;
	if (!vcpu->vm->ops->vcpu_set_regs)
		return spk_fail(ENOTSUP, "vcpu %u: cannot %s: the %s backend has no registers",
		                vcpu->id, what, vcpu->vm->ops->name);
	return vcpu->vm->ops->vcpu_set_regs(vcpu, set, buf, size);
}

int spk_vcpu_get_regs(struct spk_vcpu *vcpu, struct spk_x86_regs *regs)
{
	return get_regs(vcpu, SPK_REGS_X86, regs, sizeof(*regs), "get registers");
}

int spk_vcpu_set_regs(struct spk_vcpu *vcpu, const struct spk_x86_regs *regs)
{
	return set_regs(vcpu, SPK_REGS_X86, regs, sizeof(*regs), "set registers");
}

int spk_vcpu_get_sregs(struct spk_vcpu *vcpu, struct spk_x86_sregs *sregs)
{
	return get_regs(vcpu, SPK_REGS_X86_SYS, sregs, sizeof(*sregs), "get system registers");
}

int spk_vcpu_set_sregs(struct spk_vcpu *vcpu, const struct spk_x86_sregs *sregs)
{
	return set_regs(vcpu, SPK_REGS_X86_SYS, sregs, sizeof(*sregs), "set system registers");
}

/* ---- registers (arm64.h's functions, through the backend) ----------------- */

int spk_vcpu_get_arm64_regs(struct spk_vcpu *vcpu, struct spk_arm64_regs *regs)
{
	return get_regs(vcpu, SPK_REGS_ARM64, regs, sizeof(*regs), "get arm64 registers");
}

int spk_vcpu_set_arm64_regs(struct spk_vcpu *vcpu, const struct spk_arm64_regs *regs)
{
	return set_regs(vcpu, SPK_REGS_ARM64, regs, sizeof(*regs), "set arm64 registers");
}

int spk_vcpu_get_arm64_reg(struct spk_vcpu *vcpu, uint64_t id, uint64_t *value)
{
	struct spk_arm64_one_reg r = {.id = id};
	int rc;

	if (!value)
		return spk_fail(EINVAL, "vcpu: get an arm64 register without a value pointer");
	rc = get_regs(vcpu, SPK_REGS_ARM64_ONE, &r, sizeof(r), "get an arm64 register");
	if (rc == 0)
		*value = r.value;
	return rc;
}

int spk_vcpu_set_arm64_reg(struct spk_vcpu *vcpu, uint64_t id, uint64_t value)
{
	struct spk_arm64_one_reg r = {.id = id, .value = value};

	return set_regs(vcpu, SPK_REGS_ARM64_ONE, &r, sizeof(r), "set an arm64 register");
}
