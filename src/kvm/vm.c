/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KVM backend: the VM (/dev/kvm, KVM_CREATE_VM, the in-kernel irqchip),
 * guest memory slots and their dirty log, the MSR filter, irq lines. The
 * core owns the VM object and the memory itself (core/vm.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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

static int host_kvm(struct spk_kvm_vm *vm)
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

static int create_irqchip(struct spk_kvm_vm *vm)
{
	/* KVM takes the address itself as the ioctl argument */
	int rc =
	    spk_kvm_ioctl(vm->vm_fd, KVM_SET_TSS_ADDR,
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
	return 0;
}

/* The backend's part of the config (the core checked its own). */
static int copy_config(struct spk_kvm_vm *vm, const struct spk_vm_config *cfg)
{
	vm->cpuid_policy = cfg->cpuid_policy;
	vm->cpuid_opaque = cfg->cpuid_opaque;
	vm->no_assists = cfg->no_assists;
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

static int check_vcpu_limit(struct spk_kvm_vm *vm, uint32_t want)
{
	int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);

	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max <= 0)
		max = 4;
	if (want > (uint32_t)max)
		return spk_fail(EINVAL, "vm: %u vCPUs requested, KVM allows at most %d", want, max);
	return 0;
}

static void free_kvm_vm(struct spk_kvm_vm *k)
{
	if (k->vm_fd >= 0)
		close(k->vm_fd);
	free(k->msr_exits);
	free(k->routes);
	pthread_mutex_destroy(&k->routes_lock);
	free(k);
}

int spk_kvm_vm_create(struct spk_vm *vm, const struct spk_vm_config *cfg)
{
	struct spk_kvm_vm *k = calloc(1, sizeof(*k));
	int rc;

	if (!k)
		return spk_fail(ENOMEM, "vm: out of memory");
	k->kvm_fd = k->vm_fd = -1;
	pthread_mutex_init(&k->routes_lock, NULL);
	rc = copy_config(k, cfg);
	if (rc < 0)
		goto err_free;
	rc = host_kvm(k);
	if (rc < 0)
		goto err_free;
	rc = check_vcpu_limit(k, vm->max_vcpus);
	if (rc < 0)
		goto err_free;
	do {
		k->vm_fd = ioctl(k->kvm_fd, KVM_CREATE_VM, 0);
	} while (k->vm_fd < 0 && errno == EINTR);
	if (k->vm_fd < 0) {
		rc = spk_fail(errno, "kvm: KVM_CREATE_VM: %s", strerror(errno));
		goto err_free;
	}
	k->run_size = ioctl(k->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (k->run_size < (int)sizeof(struct kvm_run)) {
		rc = spk_fail(ENODEV, "kvm: bad vCPU mmap size %d", k->run_size);
		goto err_free;
	}
	int sync = ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
	k->sync_regs = sync > 0 && (sync & KVM_SYNC_X86_REGS);
	vm->be = k;
	if (vm->irqchip == SPK_IRQCHIP_KERNEL) {
		rc = create_irqchip(k);
		if (rc == 0)
			rc = spk_kvm_routes_init(vm);
		if (rc < 0) {
			vm->be = NULL;
			goto err_free;
		}
	}
	return 0;

err_free:
	free_kvm_vm(k);
	return rc;
}

void spk_kvm_vm_destroy(struct spk_vm *vm)
{
	if (vm->be)
		free_kvm_vm(spk_kvm_vm(vm));
	vm->be = NULL;
}

static int set_slot(struct spk_vm *vm, struct spk_mem_slot *slot, uint32_t flags)
{
	struct kvm_userspace_memory_region r = {
	    .slot = slot->id,
	    .flags = flags,
	    .guest_phys_addr = slot->gpa,
	    .memory_size = slot->size,
	    .userspace_addr = (uintptr_t)slot->host,
	};
	int rc = spk_kvm_ioctl(spk_kvm_vm(vm)->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);

	if (rc < 0)
		return spk_fail(-rc, "kvm: memory slot %u at 0x%llx+0x%llx: %s", slot->id,
		                (unsigned long long)slot->gpa, (unsigned long long)slot->size,
		                strerror(-rc));
	return 0;
}

int spk_kvm_mem_slot_add(struct spk_vm *vm, struct spk_mem_slot *slot)
{
	return set_slot(vm, slot, spk_kvm_slot_flags(vm, slot->readonly));
}

/* KVM deletes a slot given size 0. */
void spk_kvm_mem_slot_del(struct spk_vm *vm, struct spk_mem_slot *slot)
{
	struct kvm_userspace_memory_region r = {.slot = slot->id};

	spk_kvm_ioctl(spk_kvm_vm(vm)->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
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
static int set_msr_filter(struct spk_kvm_vm *vm, struct msr_list *l)
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
	struct spk_kvm_vm *k = spk_kvm_vm(vm);
	struct msr_list l = {0};
	int rc = 0;

	for (uint32_t i = 0; i < k->n_msr_exits && rc == 0; i++)
		rc = msr_list_add(&l, k->msr_exits[i]);
	if (rc == 0)
		spk_bus_for_each(vm->bus, SPK_BUS_SYSREG, add_bus_msrs, &l);
	if (rc < 0)
		rc = spk_fail(ENOMEM, "vm: out of memory");
	else if (l.n)
		rc = set_msr_filter(k, &l);
	free(l.v);
	return rc;
}

/* Before the first instruction (core: bus frozen, VM lock held): the
 * MSR filter. */
int spk_kvm_vm_prepare(struct spk_vm *vm)
{
	return prepare_msrs(vm);
}

int spk_kvm_irq_line(struct spk_vm *vm, uint32_t gsi, bool level)
{
	struct kvm_irq_level irq = {.irq = gsi, .level = level};
	int rc = spk_kvm_ioctl(spk_kvm_vm(vm)->vm_fd, KVM_IRQ_LINE, &irq);

	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_IRQ_LINE %u: %s", gsi, strerror(-rc));
	return 0;
}
