/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KVM backend: vCPU creation and spk_vcpu_run(), which turns every
 * KVM_EXIT_* into the architecture-neutral exit model and handles what the
 * library can (devices on the bus, its own hypercalls) without returning.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "kvm/kvm.h"

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
	(void)sig; /* only there to make KVM_RUN return -EINTR */
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
	/* no SA_RESTART: KVM_RUN must return -EINTR */
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

static int map_run(struct spk_vcpu *vcpu)
{
	void *p = mmap(NULL, vcpu->vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);

	if (p == MAP_FAILED)
		return spk_fail(errno, "kvm: mmap of vCPU %u run area: %s", vcpu->id,
				strerror(errno));
	vcpu->run = p;
	if (vcpu->vm->sync_regs)
		vcpu->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
	return 0;
}

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
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (vcpu->fd < 0) {
		rc = spk_fail(errno, "kvm: KVM_CREATE_VCPU %u: %s", id, strerror(errno));
		goto err_free;
	}
	if ((rc = map_run(vcpu)) < 0 || (rc = spk_kvm_set_vcpu_cpuid(vcpu)) < 0)
		goto err_close;
	vcpu->state = SPK_VCPU_CREATED;
	vcpu->magic = SPK_VCPU_MAGIC;
	__atomic_store_n(&vm->vcpus[id], vcpu, __ATOMIC_RELEASE);
	*out = vcpu;
	pthread_mutex_unlock(&vm->lock);
	return 0;

err_close:
	if (vcpu->run)
		munmap(vcpu->run, vm->run_size);
	close(vcpu->fd);
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
	/* immediate_exit covers the window just before KVM_RUN; the signal
	 * the time inside it; the futex the HALT wait. */
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
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

bool spk_vcpu_pending_irq(struct spk_vcpu *vcpu)
{
	for (int i = 0; i < 4; i++)
		if (atomic_load(&vcpu->pending[i]))
			return true;
	return false;
}

/* Highest queued vector (x86 priority), removed from the queue; -1 if none. */
static int take_irq(struct spk_vcpu *vcpu)
{
	for (int i = 3; i >= 0; i--) {
		uint64_t v = atomic_load(&vcpu->pending[i]);

		while (v) {
			int bit = 63 - __builtin_clzll(v);

			if (atomic_compare_exchange_weak(&vcpu->pending[i], &v,
							 v & ~(1ull << bit)))
				return i * 64 + bit;
		}
	}
	return -1;
}

static void requeue_irq(struct spk_vcpu *vcpu, int vector)
{
	atomic_fetch_or(&vcpu->pending[vector / 64], 1ull << (vector % 64));
}

int spk_vcpu_interrupt(struct spk_vcpu *vcpu, uint8_t vector)
{
	if (!spk_vcpu_ok(vcpu, "queue an interrupt"))
		return -EINVAL;
	if (vcpu->vm->irqchip == SPK_IRQCHIP_KERNEL) {
		/* a fixed, edge-triggered MSI to the vCPU's LAPIC (APIC id = vCPU id) */
		struct kvm_msi msi = {
			.address_lo = 0xfee00000u | ((vcpu->id & 0xff) << 12),
			.data = vector,
		};
		int rc = spk_kvm_ioctl(vcpu->vm->vm_fd, KVM_SIGNAL_MSI, &msi);

		if (rc < 0)
			return spk_fail(-rc, "kvm: KVM_SIGNAL_MSI vector %u to vCPU %u: %s",
					vector, vcpu->id, strerror(-rc));
		return 0;
	}
	requeue_irq(vcpu, vector);
	spk_vcpu_wake(vcpu);
	return 0;
}

void spk_vcpu_wait_event(struct spk_vcpu *vcpu)
{
	/* bounded sleeps: a lost wakeup costs at most 100 ms, never a hang */
	const struct timespec tmo = {.tv_nsec = 100L * 1000 * 1000};

	for (;;) {
		unsigned seq = atomic_load(&vcpu->wake_seq);

		if (spk_vcpu_pending_irq(vcpu) || atomic_load(&vcpu->cancel) ||
		    atomic_load(&vcpu->vm->stop_kind))
			return;
		syscall(SYS_futex, &vcpu->wake_seq, FUTEX_WAIT_PRIVATE, seq, &tmo, NULL, 0);
	}
}

/*
 * Without an in-kernel irqchip the library injects queued vectors: when
 * the guest can take one now, KVM_INTERRUPT; otherwise ask KVM to exit when
 * the interrupt window opens.
 */
static int inject_pending(struct spk_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	if (vcpu->vm->irqchip == SPK_IRQCHIP_KERNEL || !spk_vcpu_pending_irq(vcpu)) {
		run->request_interrupt_window = 0;
		return 0;
	}
	if (run->ready_for_interrupt_injection && run->if_flag) {
		int vector = take_irq(vcpu);

		if (vector >= 0) {
			struct kvm_interrupt irq = {.irq = (uint32_t)vector};
			int rc = spk_kvm_ioctl(vcpu->fd, KVM_INTERRUPT, &irq);

			if (rc < 0) {
				requeue_irq(vcpu, vector);
				return spk_fail(-rc, "kvm: KVM_INTERRUPT %d on vCPU %u: %s",
						vector, vcpu->id, strerror(-rc));
			}
		}
	}
	run->request_interrupt_window = spk_vcpu_pending_irq(vcpu);
	return 0;
}

/* ---- exit construction helpers --------------------------------------- */

static void set_internal(struct spk_exit *exit, uint32_t code, uint64_t raw, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void set_internal(struct spk_exit *exit, uint32_t code, uint64_t raw, const char *fmt, ...)
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

static struct kvm_regs *sync_regs(struct spk_vcpu *vcpu)
{
	return &vcpu->run->s.regs.regs;
}

/* Registers at this exit: from the shared run area, or by ioctl. */
static int exit_regs(struct spk_vcpu *vcpu, struct kvm_regs *regs)
{
	if (vcpu->vm->sync_regs) {
		*regs = *sync_regs(vcpu);
		return 0;
	}
	return spk_kvm_ioctl(vcpu->fd, KVM_GET_REGS, regs);
}

static int set_guest_rax(struct spk_vcpu *vcpu, uint64_t value)
{
	if (vcpu->vm->sync_regs) {
		sync_regs(vcpu)->rax = value;
		vcpu->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
		return 0;
	}
	struct kvm_regs regs;
	int rc = spk_kvm_ioctl(vcpu->fd, KVM_GET_REGS, &regs);

	if (rc == 0) {
		regs.rax = value;
		rc = spk_kvm_ioctl(vcpu->fd, KVM_SET_REGS, &regs);
	}
	return rc;
}

static bool valid_width(unsigned w, unsigned max)
{
	return w <= max && w && (w & (w - 1)) == 0;
}

/* ---- PIO -------------------------------------------------------------- */

static void miss_fatal(struct spk_exit *exit, const char *space, uint64_t addr, unsigned width,
		       bool is_write)
{
	set_internal(exit, SPK_INTERNAL_STRICT_MISS, addr, "%s %s of %u bytes at 0x%llx hits no device",
		     space, is_write ? "write" : "read", width, (unsigned long long)addr);
}

/* Route every element of a (rep) port access; false if the first missed. */
static bool pio_to_bus(struct spk_vcpu *vcpu, uint16_t port, unsigned width, bool is_write,
		       uint32_t count, uint8_t *data)
{
	struct spk_bus_access who = {.vcpu = vcpu->id, .addr = port};

	for (uint32_t i = 0; i < count; i++) {
		uint8_t *p = data + (size_t)i * width;
		uint64_t v = 0;
		int rc;

		if (is_write)
			rc = spk_bus_write(vcpu->vm->bus, SPK_BUS_PIO, port, width, spk_get_le(p, width),
					   &who);
		else
			rc = spk_bus_read(vcpu->vm->bus, SPK_BUS_PIO, port, width, &v, &who);
		if (rc < 0) {
			if (i == 0)
				return false;
			v = ~0ull; /* a later element missing reads as an empty port */
		}
		if (!is_write)
			spk_put_le(p, v, width);
	}
	return true;
}

static bool handle_hypercall(struct spk_vcpu *vcpu, struct spk_exit *exit);

/* Returns true when handled (the guest just runs on). */
static bool handle_io(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct kvm_run *run = vcpu->run;
	unsigned width = run->io.size;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	uint32_t count = run->io.count;
	uint64_t end;

	/* The data lives in the run area: check KVM's offsets anyway. */
	if (!valid_width(width, 4) || count == 0 || count > 4096 ||
	    !spk_add_ok(run->io.data_offset, (uint64_t)width * count, &end) ||
	    end > (uint64_t)vcpu->vm->run_size) {
		set_internal(exit, SPK_INTERNAL_BAD_EXIT, KVM_EXIT_IO,
			     "KVM_EXIT_IO with width %u count %u offset 0x%llx", width, count,
			     (unsigned long long)run->io.data_offset);
		return false;
	}
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	if (run->io.port == SPK_HC_PORT && is_write && width == 4 && count == 1)
		return handle_hypercall(vcpu, exit);
	if (pio_to_bus(vcpu, run->io.port, width, is_write, count, data))
		return true;

	switch (spk_bus_miss_policy(vcpu->vm->bus, SPK_BUS_PIO)) {
	case SPK_MISS_IGNORE:
		if (!is_write)
			memset(data, 0xff, (size_t)width * count);
		return true;
	case SPK_MISS_FATAL:
		miss_fatal(exit, "PIO", run->io.port, width, is_write);
		return false;
	default:
		break;
	}
	exit->kind = SPK_EXIT_PIO;
	exit->pio.port = run->io.port;
	exit->pio.width = (uint8_t)width;
	exit->pio.is_write = is_write;
	exit->pio.count = count;
	exit->pio.data = data;
	if (!is_write) {
		memset(data, 0xff, (size_t)width * count); /* if nobody completes it */
		exit->priv.flags = SPK_COMPLETE_PIO;
	}
	return false;
}

/* ---- hypercalls -------------------------------------------------------- */

/* The registers in, rax out; what each number does is core/hypercall.c's. */
static bool handle_hypercall(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct kvm_regs r;
	uint64_t rax = 0;

	if (exit_regs(vcpu, &r) < 0) {
		set_internal(exit, SPK_INTERNAL_HYPERCALL, 0, "cannot read registers for a hypercall");
		return false;
	}
	const uint64_t args[6] = {r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9};
	const struct spk_hc_ctx c = {.vcpu = vcpu,
				     .vcpu_id = vcpu->id,
				     .mem = vcpu->vm->mem,
				     .console_fd = vcpu->vm->console_fd,
				     .table = vcpu->vm->hc};

	if (!spk_hypercall_dispatch(&c, r.rax, args, exit, &rax))
		return false;
	set_guest_rax(vcpu, rax);
	return true;
}

/* ---- MMIO --------------------------------------------------------------- */

static bool mmio_to_bus(struct spk_vcpu *vcpu, uint64_t addr, unsigned len, bool is_write,
			uint8_t *data)
{
	struct spk_bus_access who = {.vcpu = vcpu->id, .addr = addr};
	uint64_t v = 0;

	if (valid_width(len, 8)) {
		if (is_write)
			return spk_bus_write(vcpu->vm->bus, SPK_BUS_MMIO, addr, len,
					     spk_get_le(data, len), &who) == 0;
		if (spk_bus_read(vcpu->vm->bus, SPK_BUS_MMIO, addr, len, &v, &who) < 0)
			return false;
		spk_put_le(data, v, len);
		return true;
	}
	/* KVM splits page-crossing accesses into odd sizes: go byte by byte */
	if (!spk_bus_owner(vcpu->vm->bus, SPK_BUS_MMIO, addr))
		return false;
	for (unsigned i = 0; i < len; i++) {
		who.addr = addr + i;
		if (is_write)
			spk_bus_write(vcpu->vm->bus, SPK_BUS_MMIO, addr + i, 1, data[i], &who);
		else if (spk_bus_read(vcpu->vm->bus, SPK_BUS_MMIO, addr + i, 1, &v, &who) == 0)
			data[i] = (uint8_t)v;
		else
			data[i] = 0xff;
	}
	return true;
}

static void make_npf(struct spk_exit *exit, uint64_t addr, unsigned len, bool is_write,
		     const uint8_t *data, bool readonly)
{
	exit->kind = SPK_EXIT_NESTED_PAGE_FAULT;
	exit->npf.addr = addr;
	exit->npf.access = is_write ? SPK_ACCESS_WRITE : SPK_ACCESS_READ;
	exit->npf.width = (uint8_t)len;
	exit->npf.readonly = readonly;
	if (is_write) {
		memcpy(exit->npf.data, data, len);
	} else {
		memset(exit->npf.data, 0xff, sizeof(exit->npf.data));
		exit->priv.flags = SPK_COMPLETE_NPF;
	}
}

static bool handle_mmio(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct kvm_run *run = vcpu->run;
	uint64_t addr = run->mmio.phys_addr;
	unsigned len = run->mmio.len;
	bool is_write = run->mmio.is_write;

	if (len == 0 || len > 8) {
		set_internal(exit, SPK_INTERNAL_BAD_EXIT, KVM_EXIT_MMIO,
			     "KVM_EXIT_MMIO of %u bytes at 0x%llx", len, (unsigned long long)addr);
		return false;
	}
	const struct spk_mem_region *r = spk_mem_find(vcpu->vm->mem, addr);
	if (r) {
		/* memory, yet KVM exited: a write to ROM or an unpopulated region */
		make_npf(exit, addr, len, is_write, run->mmio.data, r->type == SPK_MEM_READONLY);
		return false;
	}
	if (mmio_to_bus(vcpu, addr, len, is_write, run->mmio.data))
		return true;

	switch (spk_bus_miss_policy(vcpu->vm->bus, SPK_BUS_MMIO)) {
	case SPK_MISS_IGNORE:
		if (!is_write)
			memset(run->mmio.data, 0xff, len);
		return true;
	case SPK_MISS_FATAL:
		miss_fatal(exit, "MMIO", addr, len, is_write);
		return false;
	case SPK_MISS_FAULT:
		make_npf(exit, addr, len, is_write, run->mmio.data, false);
		return false;
	case SPK_MISS_EXIT:
	default:
		break;
	}
	exit->kind = SPK_EXIT_MMIO;
	exit->mmio.addr = addr;
	exit->mmio.width = (uint8_t)len;
	exit->mmio.is_write = is_write;
	exit->mmio.reg = -1;
	exit->mmio.reg_width = 0;
	exit->mmio.sign_ext = false;
	if (is_write) {
		memcpy(exit->mmio.data, run->mmio.data, len);
	} else {
		memset(exit->mmio.data, 0xff, sizeof(exit->mmio.data));
		exit->priv.flags = SPK_COMPLETE_MMIO;
	}
	return false;
}

/* ---- MSRs ---------------------------------------------------------------- */

static bool handle_msr(struct spk_vcpu *vcpu, struct spk_exit *exit, bool is_write)
{
	struct kvm_run *run = vcpu->run;
	struct spk_bus_access who = {.vcpu = vcpu->id, .addr = run->msr.index};
	uint64_t v = 0;
	int rc;

	run->msr.error = 0;
	if (is_write)
		rc = spk_bus_write(vcpu->vm->bus, SPK_BUS_SYSREG, run->msr.index, 8, run->msr.data,
				   &who);
	else
		rc = spk_bus_read(vcpu->vm->bus, SPK_BUS_SYSREG, run->msr.index, 8, &v, &who);
	if (rc == 0) {
		if (!is_write)
			run->msr.data = v;
		return true;
	}
	switch (spk_bus_miss_policy(vcpu->vm->bus, SPK_BUS_SYSREG)) {
	case SPK_MISS_IGNORE:
		if (!is_write)
			run->msr.data = ~0ull;
		return true;
	case SPK_MISS_FATAL:
		miss_fatal(exit, "SYSREG", run->msr.index, 8, is_write);
		return false;
	default:
		break;
	}
	exit->kind = SPK_EXIT_SYSREG;
	exit->sysreg.id = run->msr.index;
	exit->sysreg.is_write = is_write;
	exit->sysreg.fault = false;
	exit->sysreg.reg = -1;
	exit->sysreg.value = is_write ? run->msr.data : 0;
	exit->priv.flags = SPK_COMPLETE_SYSREG;
	return false;
}

/* ---- everything else ------------------------------------------------------ */

static const char *internal_suberror_name(uint32_t sub)
{
	switch (sub) {
	case KVM_INTERNAL_ERROR_EMULATION:
		return "emulation failure";
	case KVM_INTERNAL_ERROR_SIMUL_EX:
		return "exception while delivering an exception";
	case KVM_INTERNAL_ERROR_DELIVERY_EV:
		return "exception during event delivery";
	case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
		return "unexpected hardware exit reason";
	default:
		return "unknown suberror";
	}
}

/* true when an instruction assist (assist.c) completed it: run on. */
static bool translate_internal_error(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct kvm_run *run = vcpu->run;
	uint32_t sub = run->internal.suberror;
	uint32_t ndata = run->internal.ndata;

	set_internal(exit, sub, KVM_EXIT_INTERNAL_ERROR, "KVM internal error: %s",
		     internal_suberror_name(sub));
	/* emulation failures carry the instruction: flags, size, bytes */
	if (sub == KVM_INTERNAL_ERROR_EMULATION && ndata >= 3 &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		unsigned n = run->emulation_failure.insn_size;

		if (n > sizeof(run->emulation_failure.insn_bytes))
			n = sizeof(run->emulation_failure.insn_bytes);
		memcpy(exit->internal.insn, run->emulation_failure.insn_bytes, n);
		exit->internal.insn_len = (uint8_t)n;
		if (spk_kvm_assist(vcpu, exit->internal.insn, n, exit->internal.message,
				   sizeof(exit->internal.message))) {
			exit->kind = SPK_EXIT_NONE;
			return true;
		}
	}
	return false;
}

static void translate_system_event(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	switch (vcpu->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		exit->kind = SPK_EXIT_SYSTEM_DOWN;
		exit->system_down.source = SPK_SOURCE_SYSTEM_EVENT;
		break;
	case KVM_SYSTEM_EVENT_RESET:
		exit->kind = SPK_EXIT_RESET;
		exit->reset.source = SPK_SOURCE_SYSTEM_EVENT;
		break;
	default:
		set_internal(exit, SPK_INTERNAL_UNKNOWN_EXIT, vcpu->run->system_event.type,
			     "KVM system event %u (crash or unknown)", vcpu->run->system_event.type);
		break;
	}
}

static bool translate_kvm_hypercall(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct kvm_run *run = vcpu->run;

	exit->kind = SPK_EXIT_HYPERCALL;
	exit->hypercall.nr = run->hypercall.nr;
	memcpy(exit->hypercall.args, run->hypercall.args, sizeof(exit->hypercall.args));
	exit->hypercall.ret = SPK_HC_ENOSYS;
	exit->priv.flags = SPK_COMPLETE_HC;
	vcpu->last_from_kvm_hypercall = true;
	return false;
}

/*
 * Turn the KVM exit in the run area into *exit. Returns true when the
 * library handled it. *stat_kind receives the kind to count it under.
 */
static bool translate(struct spk_vcpu *vcpu, struct spk_exit *exit, enum spk_exit_kind *stat_kind)
{
	struct kvm_run *run = vcpu->run;
	bool handled = false;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handled = handle_io(vcpu, exit);
		if (handled && run->io.port != SPK_HC_PORT)
			exit->kind = SPK_EXIT_PIO;
		break;
	case KVM_EXIT_MMIO:
		handled = handle_mmio(vcpu, exit);
		if (handled)
			exit->kind = SPK_EXIT_MMIO;
		break;
	case KVM_EXIT_X86_RDMSR:
	case KVM_EXIT_X86_WRMSR:
		handled = handle_msr(vcpu, exit, run->exit_reason == KVM_EXIT_X86_WRMSR);
		if (handled)
			exit->kind = SPK_EXIT_SYSREG;
		break;
	case KVM_EXIT_HLT:
		exit->kind = SPK_EXIT_HALT;
		exit->halt.cause = SPK_HALT_HLT;
		break;
	case KVM_EXIT_SHUTDOWN:
		exit->kind = SPK_EXIT_RESET;
		exit->reset.source = SPK_SOURCE_TRIPLE_FAULT;
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		translate_system_event(vcpu, exit);
		break;
	case KVM_EXIT_DEBUG:
		exit->kind = SPK_EXIT_DEBUG;
		exit->debug.pc = run->debug.arch.pc;
		exit->debug.exception = run->debug.arch.exception;
		exit->debug.dr6 = run->debug.arch.dr6;
		exit->debug.dr7 = run->debug.arch.dr7;
		break;
	case KVM_EXIT_FAIL_ENTRY:
		exit->kind = SPK_EXIT_FAIL_ENTRY;
		exit->fail_entry.hardware_entry_failure_reason =
			run->fail_entry.hardware_entry_failure_reason;
		exit->fail_entry.cpu = run->fail_entry.cpu;
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		handled = translate_internal_error(vcpu, exit);
		break;
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		exit->kind = SPK_EXIT_NONE; /* inject_pending() does the work */
		handled = true;
		break;
	case KVM_EXIT_HYPERCALL:
		handled = translate_kvm_hypercall(vcpu, exit);
		break;
	default:
		set_internal(exit, SPK_INTERNAL_UNKNOWN_EXIT, run->exit_reason,
			     "unknown KVM exit reason %u", run->exit_reason);
		break;
	}
	*stat_kind = exit->kind;
	return handled;
}

/* ---- completion of the previous exit -------------------------------------- */

void spk_kvm_complete_last(struct spk_vcpu *vcpu)
{
	struct spk_exit *e = vcpu->last_exit;
	struct kvm_run *run = vcpu->run;

	vcpu->last_exit = NULL;
	if (!e)
		return;
	switch (e->priv.flags) {
	case SPK_COMPLETE_MMIO:
		memcpy(run->mmio.data, e->mmio.data, sizeof(run->mmio.data));
		break;
	case SPK_COMPLETE_NPF:
		memcpy(run->mmio.data, e->npf.data, sizeof(run->mmio.data));
		break;
	case SPK_COMPLETE_SYSREG:
		run->msr.error = e->sysreg.fault ? 1 : 0;
		if (!e->sysreg.is_write)
			run->msr.data = e->sysreg.value;
		break;
	case SPK_COMPLETE_HC:
		if (vcpu->last_from_kvm_hypercall)
			run->hypercall.ret = e->hypercall.ret;
		else
			set_guest_rax(vcpu, e->hypercall.ret);
		break;
	case SPK_COMPLETE_HC_PRIV:
		set_guest_rax(vcpu, e->priv.hc_ret);
		break;
	default: /* PIO data is already in place */
		break;
	}
	vcpu->last_from_kvm_hypercall = false;
}

/* ---- the run loop ------------------------------------------------------------ */

static void begin_exit(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	exit->kind = SPK_EXIT_NONE;
	exit->vcpu = vcpu->id;
	exit->pc = vcpu->vm->sync_regs ? sync_regs(vcpu)->rip : 0;
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
		return true;
	}
	if (atomic_exchange(&vcpu->cancel, false)) {
		exit->kind = SPK_EXIT_CANCELLED;
		return true;
	}
	return false;
}

static void count(struct spk_vcpu *vcpu, enum spk_exit_kind kind, uint64_t t0, uint64_t t1,
		  bool handled)
{
	if ((unsigned)kind >= SPK_EXIT__COUNT)
		kind = SPK_EXIT_INTERNAL_ERROR;
	vcpu->stats.count[kind]++;
	vcpu->stats.run_ns[kind] += t1 - t0;
	vcpu->stats.handle_ns[kind] += now_ns() - t1;
	vcpu->stats.handled += handled;
}

/* KVM_RUN until an exit that needs the caller; 0 or -errno. */
static void run_loop(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct kvm_run *run = vcpu->run;

	for (;;) {
		begin_exit(vcpu, exit);
		if (take_stop_or_cancel(vcpu, exit))
			return;
		if (inject_pending(vcpu) < 0) {
			set_internal(exit, SPK_INTERNAL_RUN_FAILED, 0, "%s", spk_last_error());
			return;
		}
		uint64_t t0 = now_ns();
		int rc = ioctl(vcpu->fd, KVM_RUN, 0);
		int err = errno;

		/* KVM clears the kvm_dirty_regs bits it applied itself */
		if (rc < 0) {
			__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
			if (err == EINTR || err == EAGAIN)
				continue; /* a kick, a wakeup or a stray signal */
			begin_exit(vcpu, exit);
			set_internal(exit, SPK_INTERNAL_RUN_FAILED, (uint64_t)err, "KVM_RUN: %s",
				     strerror(err));
			return;
		}
		uint64_t t1 = now_ns();
		begin_exit(vcpu, exit);
		enum spk_exit_kind stat_kind;
		bool handled = translate(vcpu, exit, &stat_kind);

		count(vcpu, stat_kind, t0, t1, handled);
		if (!handled)
			return;
		if (vcpu->flags & SPK_VCPU_RETURN_HANDLED) {
			exit->kind = SPK_EXIT_NONE;
			return;
		}
	}
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
	spk_kvm_complete_last(vcpu);
	run_loop(vcpu, exit);
	vcpu->last_exit = exit;
	set_state(vcpu, SPK_VCPU_READY, "end run");
	return 0;
}

int spk_vcpu_set_debug(struct spk_vcpu *vcpu, const struct spk_vcpu_debug *dbg)
{
	struct kvm_guest_debug g = {0};

	if (!dbg)
		return spk_fail(EINVAL, "vcpu: set_debug needs settings");
	if (!spk_vcpu_ok(vcpu, "set debug controls"))
		return -EINVAL;
	if (spk_vcpu_state(vcpu) == SPK_VCPU_RUNNING)
		return spk_fail(EBUSY, "vcpu: cannot set debug: state is RUNNING, needs READY");
	if (dbg->enable) {
		g.control = KVM_GUESTDBG_ENABLE;
		if (dbg->single_step)
			g.control |= KVM_GUESTDBG_SINGLESTEP;
		if (dbg->sw_breakpoints)
			g.control |= KVM_GUESTDBG_USE_SW_BP;
		if (dbg->hw_breakpoints) {
			g.control |= KVM_GUESTDBG_USE_HW_BP;
			for (int i = 0; i < 4; i++)
				g.arch.debugreg[i] = dbg->addr[i];
			g.arch.debugreg[7] = dbg->dr7;
		}
	}
	int rc = spk_kvm_ioctl(vcpu->fd, KVM_SET_GUEST_DEBUG, &g);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_SET_GUEST_DEBUG on vCPU %u: %s", vcpu->id,
				strerror(-rc));
	return 0;
}
