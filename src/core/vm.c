/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VM object: creation and destruction, guest memory (host mappings and
 * the backend's slots), stop requests and the runner's bookkeeping. What
 * the hypervisor does is the backend's (core/backend.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/internal.h"

/*
 * The process's live VMs: spk_vm_destroy() of a VM that is not in the
 * list (destroyed already, or never created) is refused without touching
 * it, so a double destroy is safe.
 */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct spk_vm *live_vms;

static void live_add(struct spk_vm *vm)
{
	pthread_mutex_lock(&live_lock);
	vm->next_live = live_vms;
	live_vms = vm;
	pthread_mutex_unlock(&live_lock);
}

/* Take vm out of the list; false if it was not there. */
static bool live_remove(const struct spk_vm *vm)
{
	bool found = false;

	pthread_mutex_lock(&live_lock);
	for (struct spk_vm **p = &live_vms; *p; p = &(*p)->next_live) {
		if (*p == vm) {
			*p = vm->next_live;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&live_lock);
	return found;
}

bool spk_vm_ok(const struct spk_vm *vm, const char *what)
{
	if (!vm) {
		spk_fail(EINVAL, "vm: cannot %s: the VM is NULL", what);
		return false;
	}
	if (vm->magic != SPK_VM_MAGIC) {
		spk_fail(EINVAL, "vm: cannot %s: not a live VM (destroyed?)", what);
		return false;
	}
	return true;
}

/* The core's part of the config; the backend checks and copies its own. */
static int copy_config(struct spk_vm *vm, const struct spk_vm_config *cfg)
{
	vm->max_vcpus = cfg->max_vcpus ? cfg->max_vcpus : 1;
	vm->irqchip = cfg->irqchip;
	vm->console_fd = cfg->console_fd > 0 ? cfg->console_fd : STDOUT_FILENO;
	vm->kick_signal = cfg->kick_signal ? cfg->kick_signal : SIGRTMIN;
	if (vm->kick_signal < 1 || vm->kick_signal > SIGRTMAX || vm->kick_signal == SIGKILL ||
	    vm->kick_signal == SIGSTOP)
		return spk_fail(EINVAL,
		                "vm: kick_signal %d is not a signal that can be caught "
		                "(1..SIGRTMAX, not SIGKILL or SIGSTOP)",
		                cfg->kick_signal);
	if (cfg->irqchip != SPK_IRQCHIP_NONE && cfg->irqchip != SPK_IRQCHIP_KERNEL)
		return spk_fail(EINVAL, "vm: unknown irqchip mode %d", (int)cfg->irqchip);
	return 0;
}

static void free_vm(struct spk_vm *vm);

int spk_vm_create(const struct spk_vm_config *cfg, struct spk_vm **out)
{
	static const struct spk_vm_config defaults = {0};
	struct spk_vm *vm;
	int rc;

	if (!out)
		return spk_fail(EINVAL, "vm: NULL out pointer");
	*out = NULL;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return spk_fail(ENOMEM, "vm: out of memory");
	vm->ops = spk_backend();
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->runner_cond, NULL);
	rc = copy_config(vm, cfg ? cfg : &defaults);
	if (rc < 0)
		goto err_free;
	rc = vm->ops->vm_create(vm, cfg ? cfg : &defaults);
	if (rc < 0)
		goto err_free;
	vm->vcpus = calloc(vm->max_vcpus,
	                   sizeof(*vm->vcpus)); // NOLINT(bugprone-sizeof-expression): pointers
	if (!vm->vcpus) {
		rc = spk_fail(ENOMEM, "vm: out of memory");
		goto err_free;
	}
	if ((rc = spk_mem_new(&vm->mem)) < 0 || (rc = spk_bus_new(&vm->bus)) < 0 ||
	    (rc = spk_hypercall_table_new(&vm->hc)) < 0)
		goto err_free;
	spk_bus_attach_vm(vm->bus, vm->mem, vm->ops->hypercall_port);
	vm->magic = SPK_VM_MAGIC;
	live_add(vm);
	*out = vm;
	return 0;

err_free:
	free_vm(vm);
	return rc;
}

static void free_vm(struct spk_vm *vm)
{
	vm->magic = 0;
	if (vm->mem_backend_free) /* its thread touches guest memory: stopped first */
		vm->mem_backend_free(vm->mem_backend);
	for (uint32_t i = 0; vm->vcpus && i < vm->max_vcpus; i++) {
		struct spk_vcpu *vcpu = vm->vcpus[i];

		if (!vcpu)
			continue;
		vcpu->magic = 0;
		vm->ops->vcpu_destroy(vcpu);
		free(vcpu);
	}
	free(vm->vcpus);
	vm->ops->vm_destroy(vm);
	for (uint32_t i = 0; i < vm->n_slots; i++)
		if (vm->slots[i].host)
			munmap(vm->slots[i].host, vm->slots[i].size);
	spk_hypercall_table_free(vm->hc);
	spk_bus_free(vm->bus);
	spk_mem_free(vm->mem);
	pthread_cond_destroy(&vm->runner_cond);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

/* A vCPU of vm is inside spk_vcpu_run(), or spk_vm_run() is in progress. */
static bool vm_busy(struct spk_vm *vm)
{
	bool busy;

	for (uint32_t i = 0; i < vm->max_vcpus; i++) {
		struct spk_vcpu *v = __atomic_load_n(&vm->vcpus[i], __ATOMIC_ACQUIRE);

		if (v && __atomic_load_n(&v->state, __ATOMIC_ACQUIRE) == SPK_VCPU_RUNNING)
			return true;
	}
	pthread_mutex_lock(&vm->lock);
	busy = vm->runner || vm->runner_users;
	pthread_mutex_unlock(&vm->lock);
	return busy;
}

/* Kick every vCPU that exists (they check vm->dying when they come out). */
static void kick_all(struct spk_vm *vm)
{
	for (uint32_t i = 0; i < vm->max_vcpus; i++) {
		struct spk_vcpu *v = __atomic_load_n(&vm->vcpus[i], __ATOMIC_ACQUIRE);

		if (v)
			spk_vcpu_kick(v);
	}
}

int spk_vm_destroy(struct spk_vm *vm)
{
	const struct timespec tick = {.tv_nsec = 1000 * 1000};

	if (!vm)
		return 0; /* like free(NULL) */
	if (spk_vm_on_own_thread(vm))
		return spk_fail(EDEADLK,
		                "vm: destroy from one of the VM's own vCPU threads "
		                "(an on_exit handler): return SPK_ACT_STOP_VM and destroy after "
		                "spk_vm_run() returns");
	/* not in the list: destroyed already (or never created) */
	pthread_mutex_lock(&live_lock);
	bool live = false;
	for (struct spk_vm *p = live_vms; p; p = p->next_live)
		live |= p == vm;
	if (live && atomic_exchange(&vm->dying, true))
		live = false; /* another thread is destroying it */
	pthread_mutex_unlock(&live_lock);
	if (!live)
		return spk_fail(EINVAL, "vm: destroy of a VM that is not alive (destroyed twice?)");
	/*
	 * Stop whatever still runs: end spk_vm_run() (its threads leave and it
	 * returns), kick every vCPU (spk_vcpu_run() returns CANCELLED and
	 * refuses to start again), and wait until all have come out.
	 */
	spk_vm_runner_abort(vm, "the VM is being destroyed");
	while (vm_busy(vm)) {
		kick_all(vm);
		nanosleep(&tick, NULL);
	}
	live_remove(vm);
	free_vm(vm);
	return 0;
}

struct spk_mem *spk_vm_mem(struct spk_vm *vm)
{
	return spk_vm_ok(vm, "get the memory map") ? vm->mem : NULL;
}

struct spk_bus *spk_vm_bus(struct spk_vm *vm)
{
	return spk_vm_ok(vm, "get the bus") ? vm->bus : NULL;
}

struct spk_hypercall_table *spk_vm_hypercalls(struct spk_vm *vm)
{
	return spk_vm_ok(vm, "get the hypercall table") ? vm->hc : NULL;
}

uint32_t spk_vm_max_vcpus(const struct spk_vm *vm)
{
	return spk_vm_ok(vm, "get max_vcpus") ? vm->max_vcpus : 0;
}

struct mmio_overlap {
	uint64_t gpa, last;
	const char *name;
	int rc;
};

static void find_mmio_overlap(uint64_t base, uint64_t len, const char *dev, void *ctx)
{
	struct mmio_overlap *o = ctx;

	if (o->rc == 0 && base <= o->last && base + (len - 1) >= o->gpa)
		o->rc = spk_fail(EINVAL,
		                 "vm: memory \"%s\" at 0x%llx-0x%llx overlaps MMIO device "
		                 "\"%s\" at 0x%llx+0x%llx: the guest would reach the memory, "
		                 "never the device",
		                 o->name, (unsigned long long)o->gpa, (unsigned long long)o->last,
		                 dev, (unsigned long long)base, (unsigned long long)len);
}

/* RAM over a registered MMIO device would make the device dead. */
static int spk_vm_check_ram_vs_mmio(struct spk_vm *vm, uint64_t gpa, uint64_t size,
                                    const char *name)
{
	struct mmio_overlap o = {.gpa = gpa, .last = gpa + (size - 1), .name = name};

	spk_bus_for_each(vm->bus, SPK_BUS_MMIO, find_mmio_overlap, &o);
	return o.rc;
}

static void *map_anonymous(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int spk_vm_add_memory(struct spk_vm *vm, uint64_t gpa, uint64_t size, enum spk_mem_type type,
                      const char *name, void **host)
{
	struct spk_mem_slot *slot;
	uint64_t end;
	int rc;

	if (!spk_vm_ok(vm, "add memory"))
		return -EINVAL;
	if (!name)
		return spk_fail(EINVAL, "vm: add_memory needs a name");
	if ((gpa | size) & 0xfff || size == 0 || !spk_add_ok(gpa, size - 1, &end))
		return spk_fail(EINVAL,
		                "vm: memory \"%s\" at 0x%llx+0x%llx is not page-aligned, "
		                "empty or wraps",
		                name, (unsigned long long)gpa, (unsigned long long)size);
	if (type != SPK_MEM_RAM && type != SPK_MEM_READONLY && type != SPK_MEM_UNPOPULATED)
		return spk_fail(EINVAL, "vm: memory \"%s\": unknown type %d", name, (int)type);
	pthread_mutex_lock(&vm->lock);
	if (vm->n_slots == SPK_MEM_MAX_REGIONS) {
		rc = spk_fail(ENOSPC, "vm: memory \"%s\": already %d regions", name,
		              SPK_MEM_MAX_REGIONS);
		goto out_unlock;
	}
	slot = &vm->slots[vm->n_slots];
	*slot = (struct spk_mem_slot){
	    .gpa = gpa, .size = size, .id = vm->next_slot, .readonly = type == SPK_MEM_READONLY};
	if (type != SPK_MEM_UNPOPULATED) {
		slot->host = map_anonymous(size);
		if (!slot->host) {
			rc = spk_fail(ENOMEM, "vm: memory \"%s\": cannot map %llu bytes", name,
			              (unsigned long long)size);
			goto out_unlock;
		}
	}
	rc = spk_vm_check_ram_vs_mmio(vm, gpa, size, name);
	if (rc < 0)
		goto err_unmap;
	rc = spk_mem_add(vm->mem, gpa, size, type, slot->host, name);
	if (rc < 0)
		goto err_unmap;
	if (type != SPK_MEM_UNPOPULATED) {
		rc = vm->ops->mem_slot_add(vm, slot);
		if (rc < 0)
			goto err_remove;
		slot->has_slot = true;
		vm->next_slot++;
	}
	vm->n_slots++;
	if (host)
		*host = slot->host;
	pthread_mutex_unlock(&vm->lock);
	return 0;

err_remove:
	/* the backend refused the slot: the region must not stay in the map,
	 * or an accessor would reach the unmapped host memory */
	spk_mem_remove(vm->mem, gpa);
err_unmap:
	if (slot->host)
		munmap(slot->host, size);
	slot->host = NULL;
out_unlock:
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

int spk_vm_populate_memory(struct spk_vm *vm, uint64_t gpa)
{
	int rc = -ENOENT;

	if (!spk_vm_ok(vm, "populate memory"))
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	for (uint32_t i = 0; i < vm->n_slots; i++) {
		struct spk_mem_slot *slot = &vm->slots[i];

		if (slot->gpa != gpa || slot->host)
			continue;
		slot->host = map_anonymous(slot->size);
		if (!slot->host) {
			rc =
			    spk_fail(ENOMEM, "vm: cannot populate 0x%llx", (unsigned long long)gpa);
			break;
		}
		slot->id = vm->next_slot;
		rc = vm->ops->mem_slot_add(vm, slot);
		if (rc == 0) {
			slot->has_slot = true;
			rc = spk_mem_populate(vm->mem, gpa, slot->host);
		}
		if (rc < 0) {
			if (slot->has_slot)
				vm->ops->mem_slot_del(vm, slot);
			slot->has_slot = false;
			munmap(slot->host, slot->size);
			slot->host = NULL;
			break;
		}
		vm->next_slot++;
		break;
	}
	pthread_mutex_unlock(&vm->lock);
	if (rc == -ENOENT)
		return spk_fail(ENOENT, "vm: no unpopulated region starts at 0x%llx",
		                (unsigned long long)gpa);
	return rc;
}

/* Before the first instruction: freeze the tables, then the backend's setup. */
int spk_vm_prepare(struct spk_vm *vm)
{
	int rc = 0;

	pthread_mutex_lock(&vm->lock);
	if (!vm->prepared) {
		spk_bus_freeze(vm->bus);
		spk_hypercall_freeze(vm->hc);
		if (vm->ops->vm_prepare)
			rc = vm->ops->vm_prepare(vm);
		if (rc == 0)
			vm->prepared = true;
	}
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

int spk_vm_request_stop(struct spk_vm *vm, enum spk_exit_kind kind)
{
	int expected = 0;

	/* async-signal-safe: constant messages only */
	if (!vm)
		return spk_fail_const(EINVAL, "vm: cannot request a stop: the VM is NULL");
	if (vm->magic != SPK_VM_MAGIC)
		return spk_fail_const(EINVAL, "vm: cannot request a stop: not a live VM");
	if (kind != SPK_EXIT_SYSTEM_DOWN && kind != SPK_EXIT_RESET)
		return spk_fail_const(EINVAL, "vm: a stop request must be SYSTEM_DOWN or RESET");
	if (!atomic_compare_exchange_strong(&vm->stop_kind, &expected, (int)kind))
		return 0; /* the first request wins */
	for (uint32_t i = 0; i < vm->max_vcpus; i++) {
		struct spk_vcpu *vcpu = vm->vcpus[i];

		if (!vcpu)
			continue;
		/* the run loop checks stop_kind every time it wakes */
		spk_vcpu_wake(vcpu);
	}
	return 0;
}

int spk_vm_irq_line(struct spk_vm *vm, uint32_t gsi, bool level)
{
	if (!spk_vm_ok(vm, "set an irq line"))
		return -EINVAL;
	if (vm->irqchip != SPK_IRQCHIP_KERNEL)
		return spk_fail(EINVAL, "vm: irq_line needs the in-kernel irqchip");
	if (!vm->ops->irq_line)
		return spk_fail(ENOTSUP, "vm: the %s backend has no irq lines", vm->ops->name);
	return vm->ops->irq_line(vm, gsi, level);
}

/* An op the backend left NULL: refused with its name. */
static int unsupported(const struct spk_vm *vm, const char *what)
{
	return spk_fail(ENOTSUP, "vm: the %s backend cannot %s", vm->ops->name, what);
}

int spk_vm_signal_msi(struct spk_vm *vm, const struct spk_msi *msi)
{
	if (!spk_vm_ok(vm, "signal an MSI"))
		return -EINVAL;
	if (vm->irqchip != SPK_IRQCHIP_KERNEL)
		return spk_fail(EINVAL,
		                "vm: an MSI needs the in-kernel irqchip (SPK_IRQCHIP_KERNEL)");
	if (!msi)
		return spk_fail(EINVAL, "vm: signal an MSI without a message");
	if (!vm->ops->signal_msi)
		return unsupported(vm, "signal an MSI");
	return vm->ops->signal_msi(vm, msi);
}

static int ioeventfd(struct spk_vm *vm, const struct spk_ioeventfd *io, bool assign)
{
	const char *what = assign ? "add an ioeventfd" : "remove an ioeventfd";

	if (!spk_vm_ok(vm, what))
		return -EINVAL;
	if (!vm->ops->ioeventfd)
		return unsupported(vm, what);
	return vm->ops->ioeventfd(vm, io, assign);
}

int spk_vm_ioeventfd_add(struct spk_vm *vm, const struct spk_ioeventfd *io)
{
	return ioeventfd(vm, io, true);
}

int spk_vm_ioeventfd_del(struct spk_vm *vm, const struct spk_ioeventfd *io)
{
	return ioeventfd(vm, io, false);
}

static int irqfd(struct spk_vm *vm, uint32_t gsi, int fd, bool assign)
{
	const char *what = assign ? "add an irqfd" : "remove an irqfd";

	if (!spk_vm_ok(vm, what))
		return -EINVAL;
	if (!vm->ops->irqfd)
		return unsupported(vm, what);
	return vm->ops->irqfd(vm, gsi, fd, assign);
}

int spk_vm_irqfd_add(struct spk_vm *vm, uint32_t gsi, int fd)
{
	return irqfd(vm, gsi, fd, true);
}

int spk_vm_irqfd_del(struct spk_vm *vm, uint32_t gsi, int fd)
{
	return irqfd(vm, gsi, fd, false);
}

int spk_vm_msi_route_add(struct spk_vm *vm, const struct spk_msi *msi, uint32_t *gsi)
{
	if (!spk_vm_ok(vm, "add an MSI route"))
		return -EINVAL;
	if (!vm->ops->msi_route_add)
		return unsupported(vm, "add an MSI route");
	return vm->ops->msi_route_add(vm, msi, gsi);
}

int spk_vm_msi_route_set(struct spk_vm *vm, uint32_t gsi, const struct spk_msi *msi)
{
	if (!spk_vm_ok(vm, "change an MSI route"))
		return -EINVAL;
	if (!vm->ops->msi_route_set)
		return unsupported(vm, "change an MSI route");
	return vm->ops->msi_route_set(vm, gsi, msi);
}

int spk_vm_msi_route_del(struct spk_vm *vm, uint32_t gsi)
{
	if (!spk_vm_ok(vm, "remove an MSI route"))
		return -EINVAL;
	if (!vm->ops->msi_route_del)
		return unsupported(vm, "remove an MSI route");
	return vm->ops->msi_route_del(vm, gsi);
}

int spk_vm_set_runner(struct spk_vm *vm, struct runner *r)
{
	int rc = 0;

	pthread_mutex_lock(&vm->lock);
	if (atomic_load(&vm->dying))
		rc = spk_fail(ESHUTDOWN, "runner: the VM is being destroyed");
	else if (vm->runner)
		rc = spk_fail(EBUSY, "runner: spk_vm_run() is already running this VM");
	else
		vm->runner = r;
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

struct runner *spk_vm_runner_get(struct spk_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	struct runner *r = vm->runner;
	if (r)
		vm->runner_users++;
	pthread_mutex_unlock(&vm->lock);
	return r;
}

void spk_vm_runner_put(struct spk_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (--vm->runner_users == 0)
		pthread_cond_broadcast(&vm->runner_cond);
	pthread_mutex_unlock(&vm->lock);
}

void spk_vm_runner_clear(struct spk_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->runner = NULL;
	while (vm->runner_users)
		pthread_cond_wait(&vm->runner_cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
}

bool spk_vm_stop_pending(struct spk_vm *vm)
{
	return atomic_load(&vm->stop_kind) != 0;
}
