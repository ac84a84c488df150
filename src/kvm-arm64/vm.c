/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KVM/arm64 backend: the VM (/dev/kvm, KVM_CREATE_VM with the preferred
 * vCPU target and PSCI 0.2, the SMCCC filter, the in-kernel GICv3),
 * memory slots, SPI lines, ioeventfds and irqfds, and the host facts of
 * vm.h. The core owns the VM object and the memory itself (core/vm.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sparkler/assist.h>

#include "core/internal.h"
#include "kvm-arm64/arm64.h"

/* What Debian 12's linux-libc-dev (6.1) lacks: the SMCCC filter (6.4). */
#ifndef KVM_ARM_VM_SMCCC_CTRL
#define KVM_ARM_VM_SMCCC_CTRL        0
#define KVM_ARM_VM_SMCCC_FILTER      0
#define KVM_SMCCC_FILTER_FWD_TO_USER 2
struct kvm_smccc_filter {
	__u32 base;
	__u32 nr_functions;
	__u8 action;
	__u8 pad[15];
};
#endif

int spk_a64_ioctl(int fd, unsigned long req, void *arg)
{
	int rc;

	do
		rc = ioctl(fd, req, arg);
	while (rc < 0 && errno == EINTR);
	return rc < 0 ? -errno : rc;
}

/* ---- host facts (vm.h) ---------------------------------------------------- */

const char *spk_host_kvm_kind(void)
{
	return access("/dev/kvm", F_OK) == 0 ? "arm64" : "none";
}

bool spk_kvm_usable(char *why, size_t why_size)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int version = fd >= 0 ? ioctl(fd, KVM_GET_API_VERSION, 0) : -1;

	if (fd >= 0)
		close(fd);
	if (version == KVM_API_VERSION)
		return true;
	if (why && why_size)
		snprintf(why, why_size, "kvm: /dev/kvm %s",
		         fd < 0 ? "cannot be opened" : "has another API version");
	return false;
}

/* assist.h: instruction assists are x86-64's; none on arm64. */
void spk_vcpu_get_assist_stats(const struct spk_vcpu *vcpu, struct spk_assist_stats *out)
{
	(void)vcpu;
	if (out)
		memset(out, 0, sizeof(*out));
}

/* The instructions x86-64's assists complete; never counted on arm64. */
const char *spk_assist_name(unsigned insn)
{
	(void)insn;
	return "(x86-64 only)";
}

/* ---- the VM ----------------------------------------------------------------- */

static int set_attr(int fd, uint32_t group, uint64_t attr, const void *addr, const char *what)
{
	struct kvm_device_attr a = {
	    .group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)addr};
	int rc = spk_a64_ioctl(fd, KVM_SET_DEVICE_ATTR, &a);

	if (rc < 0)
		return spk_fail(-rc, "kvm-arm64: %s: %s", what, strerror(-rc));
	return 0;
}

/* Forward [base, base+n) to userspace. */
static int smccc_forward(struct spk_a64_vm *a, uint32_t base, uint32_t n)
{
	struct kvm_smccc_filter f = {
	    .base = base, .nr_functions = n, .action = KVM_SMCCC_FILTER_FWD_TO_USER};

	return set_attr(a->vm_fd, KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER, &f,
	                "KVM_ARM_VM_SMCCC_FILTER");
}

static int setup_smccc_filter(struct spk_a64_vm *a)
{
	struct kvm_device_attr probe = {.group = KVM_ARM_VM_SMCCC_CTRL,
	                                .attr = KVM_ARM_VM_SMCCC_FILTER};
	int rc;

	if (spk_a64_ioctl(a->vm_fd, KVM_HAS_DEVICE_ATTR, &probe) < 0)
		return spk_fail(ENOTSUP,
		                "kvm-arm64: the host's KVM has no SMCCC filter "
		                "(KVM_ARM_VM_SMCCC_FILTER, Linux 6.4+): hypercalls and PSCI "
		                "CPU_ON/CPU_OFF could not reach the monitor");
	if ((rc = smccc_forward(a, SPK_A64_HC_BASE, SPK_HC_MAX + 1)) < 0 ||
	    (rc = smccc_forward(a, SPK_PSCI_CPU_OFF, 2)) < 0 || /* CPU_OFF, CPU_ON (32) */
	    (rc = smccc_forward(a, SPK_PSCI_CPU_ON_64, 1)) < 0)
		return rc;
	return 0;
}

static int setup_gic(struct spk_a64_vm *a)
{
	struct kvm_create_device cd = {.type = KVM_DEV_TYPE_ARM_VGIC_V3};
	uint64_t dist = SPK_A64_GICD_BASE, redist = SPK_A64_GICR_BASE;
	uint32_t nr_irqs = 32 + SPK_A64_GIC_NR_SPIS;
	int rc;

	if ((rc = spk_a64_ioctl(a->vm_fd, KVM_CREATE_DEVICE, &cd)) < 0)
		return spk_fail(-rc, "kvm-arm64: KVM_CREATE_DEVICE (GICv3): %s", strerror(-rc));
	a->gic_fd = (int)cd.fd;
	if ((rc = set_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &dist,
	                   "GICv3 distributor address")) < 0 ||
	    (rc = set_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST,
	                   &redist, "GICv3 redistributor address")) < 0 ||
	    (rc = set_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs,
	                   "GICv3 interrupt count")) < 0)
		return rc;
	return 0;
}

/* The x86-64 fields of the config have no meaning here: refused, not
 * ignored, so a caller learns it. */
static int check_config(const struct spk_vm_config *cfg, uint32_t max_vcpus)
{
	if (cfg->cpuid_policy)
		return spk_fail(ENOTSUP, "kvm-arm64: vm: cpuid_policy is x86-64's (not on arm64)");
	if (cfg->n_msr_exits || cfg->msr_exits)
		return spk_fail(ENOTSUP, "kvm-arm64: vm: msr_exits are x86-64's (not on arm64)");
	if (max_vcpus > SPK_A64_MAX_VCPUS)
		return spk_fail(EINVAL, "kvm-arm64: vm: %" PRIu32 " vCPUs requested, at most %d",
		                max_vcpus, SPK_A64_MAX_VCPUS);
	return 0;
}

static void free_a64_vm(struct spk_a64_vm *a)
{
	for (int i = 0; i < SPK_A64_MAX_VCPUS; i++) {
		if (a->vcpu_run[i])
			munmap(a->vcpu_run[i], (size_t)a->run_size);
		if (a->vcpu_fd[i] >= 0)
			close(a->vcpu_fd[i]);
	}
	if (a->gic_fd >= 0)
		close(a->gic_fd);
	if (a->vm_fd >= 0)
		close(a->vm_fd);
	if (a->kvm_fd >= 0)
		close(a->kvm_fd);
	free(a);
}

static int open_vm(struct spk_vm *vm, struct spk_a64_vm *a)
{
	int rc, max;

	if ((a->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0)
		return spk_fail(ENODEV, "kvm-arm64: cannot open /dev/kvm: %s", strerror(errno));
	if ((rc = spk_a64_ioctl(a->kvm_fd, KVM_GET_API_VERSION, NULL)) != KVM_API_VERSION)
		return spk_fail(ENODEV, "kvm-arm64: /dev/kvm has API version %d, need %d", rc,
		                KVM_API_VERSION);
	max = spk_a64_ioctl(a->kvm_fd, KVM_CHECK_EXTENSION, (void *)(uintptr_t)KVM_CAP_MAX_VCPUS);
	if (max > 0 && vm->max_vcpus > (uint32_t)max)
		return spk_fail(EINVAL, "kvm-arm64: vm: %" PRIu32 " vCPUs, KVM allows at most %d",
		                vm->max_vcpus, max);
	if ((rc = spk_a64_ioctl(a->kvm_fd, KVM_CREATE_VM, NULL)) < 0)
		return spk_fail(-rc, "kvm-arm64: KVM_CREATE_VM: %s", strerror(-rc));
	a->vm_fd = rc;
	if ((a->run_size = spk_a64_ioctl(a->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL)) <
	    (int)sizeof(struct kvm_run))
		return spk_fail(ENODEV, "kvm-arm64: bad vCPU mmap size %d", a->run_size);
	if ((rc = spk_a64_ioctl(a->vm_fd, KVM_ARM_PREFERRED_TARGET, &a->init)) < 0)
		return spk_fail(-rc, "kvm-arm64: KVM_ARM_PREFERRED_TARGET: %s", strerror(-rc));
	if (spk_a64_ioctl(a->kvm_fd, KVM_CHECK_EXTENSION,
	                  (void *)(uintptr_t)KVM_CAP_ARM_PSCI_0_2) <= 0)
		return spk_fail(ENOTSUP, "kvm-arm64: the host's KVM has no PSCI 0.2");
	a->init.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2;
	/* MMIO without a syndrome as an exit of its own, not a failing KVM_RUN */
	if (spk_a64_ioctl(a->kvm_fd, KVM_CHECK_EXTENSION,
	                  (void *)(uintptr_t)KVM_CAP_ARM_NISV_TO_USER) > 0) {
		struct kvm_enable_cap cap = {.cap = KVM_CAP_ARM_NISV_TO_USER};

		if ((rc = spk_a64_ioctl(a->vm_fd, KVM_ENABLE_CAP, &cap)) < 0)
			return spk_fail(-rc, "kvm-arm64: KVM_CAP_ARM_NISV_TO_USER: %s",
			                strerror(-rc));
	}
	if ((rc = setup_smccc_filter(a)) < 0)
		return rc;
	if (vm->irqchip == SPK_IRQCHIP_KERNEL && (rc = setup_gic(a)) < 0)
		return rc;
	return 0;
}

int spk_a64_vm_create(struct spk_vm *vm, const struct spk_vm_config *cfg)
{
	struct spk_a64_vm *a;
	int rc;

	if ((rc = check_config(cfg, vm->max_vcpus)) < 0)
		return rc;
	if (!(a = calloc(1, sizeof(*a))))
		return spk_fail(ENOMEM, "kvm-arm64: vm: out of memory");
	a->kvm_fd = a->vm_fd = a->gic_fd = -1;
	for (int i = 0; i < SPK_A64_MAX_VCPUS; i++)
		a->vcpu_fd[i] = -1;
	if ((rc = open_vm(vm, a)) < 0) {
		free_a64_vm(a);
		return rc;
	}
	vm->be = a;
	return 0;
}

void spk_a64_vm_destroy(struct spk_vm *vm)
{
	if (vm->be)
		free_a64_vm(spk_a64_vm(vm));
	vm->be = NULL;
}

int spk_a64_vcpu_init(struct spk_vm *vm, uint32_t id, int fd, bool powered_off)
{
	struct kvm_vcpu_init init = spk_a64_vm(vm)->init;
	int rc;

	if (powered_off)
		init.features[0] |= 1u << KVM_ARM_VCPU_POWER_OFF;
	if ((rc = spk_a64_ioctl(fd, KVM_ARM_VCPU_INIT, &init)) < 0)
		return spk_fail(-rc, "kvm-arm64: KVM_ARM_VCPU_INIT of vCPU %" PRIu32 ": %s", id,
		                strerror(-rc));
	return 0;
}

int spk_a64_kvm_vcpu_open(struct spk_vm *vm, uint32_t id)
{
	struct spk_a64_vm *a = spk_a64_vm(vm);
	void *run;
	int fd, rc;

	if (id >= SPK_A64_MAX_VCPUS)
		return spk_fail(EINVAL, "kvm-arm64: vCPU %" PRIu32 ": at most %d", id,
		                SPK_A64_MAX_VCPUS);
	if (a->vcpu_fd[id] >= 0)
		return 0;
	if (a->gic_ready)
		return spk_fail(EBUSY, "kvm-arm64: vCPU %" PRIu32 " after the GIC's init", id);
	if ((fd = spk_a64_ioctl(a->vm_fd, KVM_CREATE_VCPU, (void *)(uintptr_t)id)) < 0)
		return spk_fail(-fd, "kvm-arm64: KVM_CREATE_VCPU %" PRIu32 ": %s", id,
		                strerror(-fd));
	run = mmap(NULL, (size_t)a->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (run == MAP_FAILED) {
		rc = spk_fail(errno, "kvm-arm64: mmap of vCPU %" PRIu32 "'s run area: %s", id,
		              strerror(errno));
		close(fd);
		return rc;
	}
	/* vCPU 0 boots; the others wait for PSCI CPU_ON (arm64.h) */
	if ((rc = spk_a64_vcpu_init(vm, id, fd, id > 0)) < 0) {
		munmap(run, (size_t)a->run_size);
		close(fd);
		return rc;
	}
	a->vcpu_fd[id] = fd;
	a->vcpu_run[id] = run;
	return 0;
}

/* Before the first entry (vm->lock held): every vCPU the VM may have,
 * then the GIC's init, which needs them all. */
int spk_a64_vm_prepare(struct spk_vm *vm)
{
	struct spk_a64_vm *a = spk_a64_vm(vm);
	int rc;

	if (a->gic_fd < 0 || a->gic_ready)
		return 0;
	for (uint32_t id = 0; id < vm->max_vcpus; id++)
		if ((rc = spk_a64_kvm_vcpu_open(vm, id)) < 0)
			return rc;
	if ((rc = set_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL,
	                   "GICv3 init")) < 0)
		return rc;
	__atomic_store_n(&a->gic_ready, true, __ATOMIC_RELEASE);
	return 0;
}

/* KVM takes SPIs (lines, irqfds) only from an initialised GIC: the first
 * one before the VM ran sets it up now, as vm_prepare would. */
static int gic_ready(struct spk_vm *vm)
{
	struct spk_a64_vm *a = spk_a64_vm(vm);
	int rc;

	if (a->gic_fd < 0 || __atomic_load_n(&a->gic_ready, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&vm->lock);
	rc = spk_a64_vm_prepare(vm);
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

/* ---- memory -------------------------------------------------------------------- */

int spk_a64_mem_slot_add(struct spk_vm *vm, struct spk_mem_slot *slot)
{
	struct kvm_userspace_memory_region r = {
	    .slot = slot->id,
	    .flags = slot->readonly ? KVM_MEM_READONLY : 0,
	    .guest_phys_addr = slot->gpa,
	    .memory_size = slot->size,
	    .userspace_addr = (uint64_t)(uintptr_t)slot->host,
	};
	int rc = spk_a64_ioctl(spk_a64_vm(vm)->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);

	if (rc < 0)
		return spk_fail(
		    -rc, "kvm-arm64: memory slot %" PRIu32 " at 0x%" PRIx64 "+0x%" PRIx64 ": %s",
		    slot->id, slot->gpa, slot->size, strerror(-rc));
	return 0;
}

void spk_a64_mem_slot_del(struct spk_vm *vm, struct spk_mem_slot *slot)
{
	struct kvm_userspace_memory_region r = {.slot = slot->id};

	(void)spk_a64_ioctl(spk_a64_vm(vm)->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
}

/* ---- interrupts and doorbells ----------------------------------------------------- */

int spk_a64_irq_line(struct spk_vm *vm, uint32_t gsi, bool level)
{
	struct kvm_irq_level l = {.level = level};
	int rc;

	if (gsi >= SPK_A64_GIC_NR_SPIS)
		return spk_fail(EINVAL, "kvm-arm64: irq line %" PRIu32 ": the GIC has SPIs 0..%d",
		                gsi, SPK_A64_GIC_NR_SPIS - 1);
	l.irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | (32 + gsi);
	if ((rc = gic_ready(vm)) < 0)
		return rc;
	if ((rc = spk_a64_ioctl(spk_a64_vm(vm)->vm_fd, KVM_IRQ_LINE, &l)) < 0)
		return spk_fail(-rc, "kvm-arm64: KVM_IRQ_LINE SPI %" PRIu32 ": %s", gsi,
		                strerror(-rc));
	return 0;
}

int spk_a64_ioeventfd(struct spk_vm *vm, const struct spk_ioeventfd *io, bool assign)
{
	struct kvm_ioeventfd k = {0};
	int rc;

	if (!io)
		return spk_fail(EINVAL, "kvm-arm64: ioeventfd without a description");
	if (io->space != SPK_BUS_MMIO)
		return spk_fail(ENOTSUP,
		                "kvm-arm64: ioeventfd in %s: only MMIO (no ports on arm64)",
		                spk_bus_space_name(io->space));
	if (io->fd < 0)
		return spk_fail(EBADF, "kvm-arm64: ioeventfd at 0x%" PRIx64 " without an eventfd",
		                io->addr);
	if (!(io->len == 0 && !io->match) && io->len != 1 && io->len != 2 && io->len != 4 &&
	    io->len != 8)
		return spk_fail(EINVAL, "kvm-arm64: ioeventfd at 0x%" PRIx64 ": bad length %u",
		                io->addr, io->len);
	if (io->match && io->len < 8 && io->value >> (8 * io->len))
		return spk_fail(EINVAL,
		                "kvm-arm64: ioeventfd at 0x%" PRIx64 ": match value 0x%" PRIx64
		                " is wider than %u bytes",
		                io->addr, io->value, io->len);
	k.addr = io->addr;
	k.len = io->len;
	k.fd = io->fd;
	k.datamatch = io->value;
	if (io->match)
		k.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
	if (!assign)
		k.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	if ((rc = spk_a64_ioctl(spk_a64_vm(vm)->vm_fd, KVM_IOEVENTFD, &k)) < 0)
		return spk_fail(-rc, "kvm-arm64: KVM_IOEVENTFD %s 0x%" PRIx64 "+%u: %s",
		                assign ? "add" : "remove", io->addr, io->len, strerror(-rc));
	return 0;
}

int spk_a64_irqfd(struct spk_vm *vm, uint32_t gsi, int fd, bool assign)
{
	struct kvm_irqfd k = {.fd = (uint32_t)fd, .gsi = gsi};
	int rc;

	if (spk_a64_vm(vm)->gic_fd < 0)
		return spk_fail(EINVAL, "kvm-arm64: an irqfd needs the in-kernel GIC");
	if (fd < 0)
		return spk_fail(EBADF, "kvm-arm64: irqfd for SPI %" PRIu32 " without an eventfd",
		                gsi);
	if (gsi >= SPK_A64_GIC_NR_SPIS)
		return spk_fail(EINVAL, "kvm-arm64: irqfd for SPI %" PRIu32 ": the GIC has 0..%d",
		                gsi, SPK_A64_GIC_NR_SPIS - 1);
	if (!assign)
		k.flags = KVM_IRQFD_FLAG_DEASSIGN;
	if ((rc = gic_ready(vm)) < 0)
		return rc;
	if ((rc = spk_a64_ioctl(spk_a64_vm(vm)->vm_fd, KVM_IRQFD, &k)) < 0)
		return spk_fail(-rc, "kvm-arm64: KVM_IRQFD SPI %" PRIu32 ": %s", gsi,
		                strerror(-rc));
	return 0;
}
