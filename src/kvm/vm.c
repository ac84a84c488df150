/* SPDX-License-Identifier: Apache-2.0 */
/* KVM backend: VM creation, guest memory slots, MSR filter, irqchip. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "kvm/kvm.h"

/* Where KVM keeps its real-mode TSS (3 pages) on Intel: just below the
 * BIOS area at the top of the 32-bit space, as QEMU and Firecracker do. */
#define SPK_KVM_TSS_ADDR 0xfffbd000ull

int spk_kvm_ioctl(int fd, unsigned long req, void *arg)
{
	int rc;

	do {
		rc = ioctl(fd, req, arg);
	} while (rc < 0 && (errno == EINTR || errno == EAGAIN));
	return rc < 0 ? -errno : rc;
}

static int open_kvm(int *fd_out)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return spk_fail(ENODEV, "kvm: cannot open /dev/kvm: %s", strerror(errno));
	int version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		close(fd);
		return spk_fail(ENODEV, "kvm: /dev/kvm has API version %d, need %d", version,
				KVM_API_VERSION);
	}
	*fd_out = fd;
	return 0;
}

bool spk_kvm_usable(char *why, size_t why_size)
{
	int fd;

	if (open_kvm(&fd) < 0) {
		if (why && why_size)
			snprintf(why, why_size, "%s", spk_last_error());
		return false;
	}
	close(fd);
	return true;
}

/*
 * /dev/kvm and KVM_GET_SUPPORTED_CPUID are the same for every VM of the
 * process: open and ask once (creating many short-lived VMs spent a third
 * of its time here). A failure is remembered with its message.
 */
static struct {
	pthread_once_t once;
	int fd;
	int err;
	char msg[256];
	struct kvm_cpuid2 *cpuid;
} kvm_host = {.once = PTHREAD_ONCE_INIT, .fd = -1};

static void host_init(void)
{
	int rc = open_kvm(&kvm_host.fd);

	if (rc == 0)
		rc = spk_kvm_supported_cpuid(kvm_host.fd, &kvm_host.cpuid);
	if (rc < 0) {
		kvm_host.err = -rc;
		snprintf(kvm_host.msg, sizeof(kvm_host.msg), "%s", spk_last_error());
		if (kvm_host.fd >= 0)
			close(kvm_host.fd);
		kvm_host.fd = -1;
	}
}

static int host_kvm(struct spk_vm *vm)
{
	pthread_once(&kvm_host.once, host_init);
	if (kvm_host.fd < 0)
		return spk_fail(kvm_host.err, "%s", kvm_host.msg);
	vm->kvm_fd = kvm_host.fd;
	vm->supported_cpuid = kvm_host.cpuid;
	return 0;
}

static bool file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static bool cpuinfo_has_flag(const char *flag)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		for (char *tok = strtok(line, " \t\n"); tok; tok = strtok(NULL, " \t\n"))
			if (strcmp(tok, flag) == 0)
				found = true;
		break;
	}
	fclose(f);
	return found;
}

const char *spk_host_kvm_kind(void)
{
	if (!file_exists("/dev/kvm"))
		return "none";
	if (file_exists("/sys/module/kvm_pvm"))
		return "pvm";
	if (file_exists("/sys/module/kvm_intel") && cpuinfo_has_flag("vmx"))
		return "vmx";
	if (file_exists("/sys/module/kvm_amd") && cpuinfo_has_flag("svm"))
		return "svm";
	return "unknown";
}

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

static int create_irqchip(struct spk_vm *vm)
{
	/* KVM takes the address itself as the ioctl argument */
	int rc = spk_kvm_ioctl(vm->vm_fd, KVM_SET_TSS_ADDR,
			       (void *)(uintptr_t)SPK_KVM_TSS_ADDR); // NOLINT(performance-no-int-to-ptr)

	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_SET_TSS_ADDR: %s", strerror(-rc));
	rc = spk_kvm_ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, NULL);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_CREATE_IRQCHIP: %s", strerror(-rc));
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	rc = spk_kvm_ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_CREATE_PIT2: %s", strerror(-rc));
	return spk_kvm_routes_init(vm);
}

static int copy_config(struct spk_vm *vm, const struct spk_vm_config *cfg)
{
	vm->max_vcpus = cfg->max_vcpus ? cfg->max_vcpus : 1;
	vm->irqchip = cfg->irqchip;
	vm->cpuid_policy = cfg->cpuid_policy;
	vm->cpuid_opaque = cfg->cpuid_opaque;
	vm->console_fd = cfg->console_fd > 0 ? cfg->console_fd : STDOUT_FILENO;
	vm->kick_signal = cfg->kick_signal ? cfg->kick_signal : SIGRTMIN;
	if (vm->kick_signal < 1 || vm->kick_signal > SIGRTMAX || vm->kick_signal == SIGKILL ||
	    vm->kick_signal == SIGSTOP)
		return spk_fail(EINVAL,
		                "vm: kick_signal %d is not a signal that can be caught "
		                "(1..SIGRTMAX, not SIGKILL or SIGSTOP)",
		                cfg->kick_signal);
	vm->no_assists = cfg->no_assists;
	if (cfg->irqchip != SPK_IRQCHIP_NONE && cfg->irqchip != SPK_IRQCHIP_KERNEL)
		return spk_fail(EINVAL, "vm: unknown irqchip mode %d", (int)cfg->irqchip);
	if (cfg->n_msr_exits) {
		if (!cfg->msr_exits)
			return spk_fail(EINVAL, "vm: n_msr_exits is %u but msr_exits is NULL",
					cfg->n_msr_exits);
		if (cfg->n_msr_exits > 4096)
			return spk_fail(EINVAL, "vm: %u MSR exits requested, at most 4096",
					cfg->n_msr_exits);
		vm->msr_exits = calloc(cfg->n_msr_exits, sizeof(uint32_t));
		if (!vm->msr_exits)
			return spk_fail(ENOMEM, "vm: out of memory");
		memcpy(vm->msr_exits, cfg->msr_exits, cfg->n_msr_exits * sizeof(uint32_t));
		vm->n_msr_exits = cfg->n_msr_exits;
	}
	return 0;
}

static int check_vcpu_limit(struct spk_vm *vm)
{
	int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);

	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max <= 0)
		max = 4;
	if (vm->max_vcpus > (uint32_t)max)
		return spk_fail(EINVAL, "vm: %u vCPUs requested, KVM allows at most %d",
				vm->max_vcpus, max);
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
	vm->kvm_fd = vm->vm_fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->routes_lock, NULL);
	pthread_cond_init(&vm->runner_cond, NULL);
	rc = copy_config(vm, cfg ? cfg : &defaults);
	if (rc < 0)
		goto err_free;
	rc = host_kvm(vm);
	if (rc < 0)
		goto err_free;
	rc = check_vcpu_limit(vm);
	if (rc < 0)
		goto err_free;
	do {
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	} while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0) {
		rc = spk_fail(errno, "kvm: KVM_CREATE_VM: %s", strerror(errno));
		goto err_free;
	}
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size < (int)sizeof(struct kvm_run)) {
		rc = spk_fail(ENODEV, "kvm: bad vCPU mmap size %d", vm->run_size);
		goto err_free;
	}
	int sync = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
	vm->sync_regs = sync > 0 && (sync & KVM_SYNC_X86_REGS);
	vm->vcpus = calloc(vm->max_vcpus, sizeof(*vm->vcpus)); // NOLINT(bugprone-sizeof-expression): pointers
	if (!vm->vcpus) {
		rc = spk_fail(ENOMEM, "vm: out of memory");
		goto err_free;
	}
	if ((rc = spk_mem_new(&vm->mem)) < 0 || (rc = spk_bus_new(&vm->bus)) < 0 ||
	    (rc = spk_hypercall_table_new(&vm->hc)) < 0)
		goto err_free;
	spk_bus_attach_vm(vm->bus, vm->mem, SPK_HC_PORT);
	if (vm->irqchip == SPK_IRQCHIP_KERNEL) {
		rc = create_irqchip(vm);
		if (rc < 0)
			goto err_free;
	}
	vm->magic = SPK_VM_MAGIC;
	live_add(vm);
	*out = vm;
	return 0;

err_free:
	free_vm(vm);
	return rc;
}

static void destroy_vcpu(struct spk_vcpu *vcpu, int run_size)
{
	if (vcpu->run)
		munmap(vcpu->run, run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	free(vcpu);
}

static void free_vm(struct spk_vm *vm)
{
	vm->magic = 0;
	for (uint32_t i = 0; vm->vcpus && i < vm->max_vcpus; i++)
		if (vm->vcpus[i]) {
			vm->vcpus[i]->magic = 0;
			destroy_vcpu(vm->vcpus[i], vm->run_size);
		}
	free(vm->vcpus);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	for (uint32_t i = 0; i < vm->n_maps; i++)
		if (vm->maps[i].host)
			munmap(vm->maps[i].host, vm->maps[i].size);
	spk_hypercall_table_free(vm->hc);
	spk_bus_free(vm->bus);
	spk_mem_free(vm->mem);
	free(vm->msr_exits);
	spk_vm_routes_free(vm);
	pthread_mutex_destroy(&vm->routes_lock);
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

static int set_slot(struct spk_vm *vm, struct spk_kvm_map *map, bool readonly)
{
	struct kvm_userspace_memory_region r = {
		.slot = map->slot,
		.flags = spk_kvm_slot_flags(vm, readonly),
		.guest_phys_addr = map->gpa,
		.memory_size = map->size,
		.userspace_addr = (uintptr_t)map->host,
	};
	int rc = spk_kvm_ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);

	if (rc < 0)
		return spk_fail(-rc, "kvm: memory slot %u at 0x%llx+0x%llx: %s", map->slot,
				(unsigned long long)map->gpa, (unsigned long long)map->size,
				strerror(-rc));
	map->has_slot = true;
	return 0;
}

/* Undo set_slot(): KVM deletes a slot given size 0. */
static void delete_slot(struct spk_vm *vm, struct spk_kvm_map *map)
{
	struct kvm_userspace_memory_region r = {.slot = map->slot};

	if (map->has_slot && spk_kvm_ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) == 0)
		map->has_slot = false;
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
	struct spk_kvm_map *map;
	uint64_t end;
	int rc;

	if (!spk_vm_ok(vm, "add memory"))
		return -EINVAL;
	if (!name)
		return spk_fail(EINVAL, "vm: add_memory needs a name");
	if ((gpa | size) & 0xfff || size == 0 || !spk_add_ok(gpa, size - 1, &end))
		return spk_fail(EINVAL, "vm: memory \"%s\" at 0x%llx+0x%llx is not page-aligned, "
				"empty or wraps", name, (unsigned long long)gpa,
				(unsigned long long)size);
	if (type != SPK_MEM_RAM && type != SPK_MEM_READONLY && type != SPK_MEM_UNPOPULATED)
		return spk_fail(EINVAL, "vm: memory \"%s\": unknown type %d", name, (int)type);
	pthread_mutex_lock(&vm->lock);
	if (vm->n_maps == SPK_MEM_MAX_REGIONS) {
		rc = spk_fail(ENOSPC, "vm: memory \"%s\": already %d regions", name,
			      SPK_MEM_MAX_REGIONS);
		goto out_unlock;
	}
	map = &vm->maps[vm->n_maps];
	*map = (struct spk_kvm_map){.gpa = gpa, .size = size, .slot = vm->next_slot};
	if (type != SPK_MEM_UNPOPULATED) {
		map->host = map_anonymous(size);
		if (!map->host) {
			rc = spk_fail(ENOMEM, "vm: memory \"%s\": cannot map %llu bytes", name,
				      (unsigned long long)size);
			goto out_unlock;
		}
	}
	rc = spk_vm_check_ram_vs_mmio(vm, gpa, size, name);
	if (rc < 0)
		goto err_unmap;
	rc = spk_mem_add(vm->mem, gpa, size, type, map->host, name);
	if (rc < 0)
		goto err_unmap;
	if (type != SPK_MEM_UNPOPULATED) {
		rc = set_slot(vm, map, type == SPK_MEM_READONLY);
		if (rc < 0)
			goto err_remove;
		vm->next_slot++;
	}
	vm->n_maps++;
	if (host)
		*host = map->host;
	pthread_mutex_unlock(&vm->lock);
	return 0;

err_remove:
	/* KVM refused the slot: the region must not stay in the map, or an
	 * accessor would reach the unmapped host memory */
	spk_mem_remove(vm->mem, gpa);
err_unmap:
	if (map->host)
		munmap(map->host, size);
	map->host = NULL;
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
	for (uint32_t i = 0; i < vm->n_maps; i++) {
		struct spk_kvm_map *map = &vm->maps[i];

		if (map->gpa != gpa || map->host)
			continue;
		map->host = map_anonymous(map->size);
		if (!map->host) {
			rc = spk_fail(ENOMEM, "vm: cannot populate 0x%llx", (unsigned long long)gpa);
			break;
		}
		map->slot = vm->next_slot;
		rc = set_slot(vm, map, false);
		if (rc == 0)
			rc = spk_mem_populate(vm->mem, gpa, map->host);
		if (rc < 0) {
			delete_slot(vm, map);
			munmap(map->host, map->size);
			map->host = NULL;
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

struct msr_list {
	uint32_t *v;
	uint32_t n, cap;
};

static int msr_list_add(struct msr_list *l, uint32_t msr)
{
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 64;
		uint32_t *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = msr;
	return 0;
}

static void add_bus_msrs(uint64_t base, uint64_t len, const char *name, void *ctx)
{
	struct msr_list *l = ctx;

	/* MSR numbers are 32 bits; a range beyond that cannot be hit. */
	for (uint64_t m = base; m - base < len && m <= UINT32_MAX && l->n < 8192; m++)
		if (msr_list_add(l, (uint32_t)m) < 0)
			return;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Install the MSR filter: every listed MSR exits to userspace, everything
 * else stays with KVM. Consecutive MSRs share one filter range (KVM takes
 * at most KVM_MSR_FILTER_MAX_RANGES).
 */
static int set_msr_filter(struct spk_vm *vm, struct msr_list *l)
{
	static uint8_t zero_bitmap[KVM_MSR_FILTER_MAX_BITMAP_SIZE]; /* 0 = deny = exit */
	struct kvm_msr_filter f = {.flags = KVM_MSR_FILTER_DEFAULT_ALLOW};
	struct kvm_enable_cap cap = {.cap = KVM_CAP_X86_USER_SPACE_MSR,
				     .args = {KVM_MSR_EXIT_REASON_FILTER}};
	uint32_t nr = 0;
	int rc;

	qsort(l->v, l->n, sizeof(*l->v), cmp_u32);
	for (uint32_t i = 0; i < l->n;) {
		uint32_t j = i + 1;

		while (j < l->n && l->v[j] <= l->v[j - 1] + 1 &&
		       l->v[j] - l->v[i] < KVM_MSR_FILTER_MAX_BITMAP_SIZE * 8)
			j++;
		if (nr == KVM_MSR_FILTER_MAX_RANGES)
			return spk_fail(E2BIG, "vm: the MSRs to trap need more than %d ranges",
					KVM_MSR_FILTER_MAX_RANGES);
		f.ranges[nr++] = (struct kvm_msr_filter_range){
			.flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
			.nmsrs = l->v[j - 1] - l->v[i] + 1,
			.base = l->v[i],
			.bitmap = zero_bitmap,
		};
		i = j;
	}
	rc = spk_kvm_ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_CAP_X86_USER_SPACE_MSR: %s", strerror(-rc));
	rc = spk_kvm_ioctl(vm->vm_fd, KVM_X86_SET_MSR_FILTER, &f);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_X86_SET_MSR_FILTER: %s", strerror(-rc));
	return 0;
}

static int prepare_msrs(struct spk_vm *vm)
{
	struct msr_list l = {0};
	int rc = 0;

	for (uint32_t i = 0; i < vm->n_msr_exits && rc == 0; i++)
		rc = msr_list_add(&l, vm->msr_exits[i]);
	if (rc == 0)
		spk_bus_for_each(vm->bus, SPK_BUS_SYSREG, add_bus_msrs, &l);
	if (rc < 0)
		rc = spk_fail(ENOMEM, "vm: out of memory");
	else if (l.n)
		rc = set_msr_filter(vm, &l);
	free(l.v);
	return rc;
}

/* Before the first instruction: freeze the tables, program the MSR filter. */
int spk_vm_prepare(struct spk_vm *vm)
{
	int rc = 0;

	pthread_mutex_lock(&vm->lock);
	if (!vm->prepared) {
		spk_bus_freeze(vm->bus);
		spk_hypercall_freeze(vm->hc);
		rc = prepare_msrs(vm);
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
	struct kvm_irq_level irq = {.irq = gsi, .level = level};

	if (!spk_vm_ok(vm, "set an irq line"))
		return -EINVAL;
	if (vm->irqchip != SPK_IRQCHIP_KERNEL)
		return spk_fail(EINVAL, "vm: irq_line needs the in-kernel irqchip");
	int rc = spk_kvm_ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_IRQ_LINE %u: %s", gsi, strerror(-rc));
	return 0;
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
