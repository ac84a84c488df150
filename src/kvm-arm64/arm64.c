/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KVM/arm64 backend (what it produces and why: arm64.h). Every guest
 * value that reaches this file (MMIO widths, the instruction at the PC,
 * PSCI arguments, hypercall registers) is checked before use; what does
 * not make sense becomes an INTERNAL_ERROR exit, never a crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sparkler/abi.h>

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
#ifndef KVM_HYPERCALL_EXIT_SMC
#define KVM_HYPERCALL_EXIT_SMC (1u << 0)
#endif

#define CORE_REG(field)                                                                            \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |                                     \
	 (offsetof(struct kvm_regs, field) / sizeof(__u32)))
#define SCTLR_EL1 ARM64_SYS_REG(3, 0, 1, 0, 0)
#define MPIDR_EL1 ARM64_SYS_REG(3, 0, 0, 0, 5)

/* EL1h, D, A, I and F masked */
#define PSTATE_EL1H_MASKED 0x3c5ull

#define KICK_SIGNAL (SIGRTMIN)

static int xioctl(int fd, unsigned long req, void *arg)
{
	int rc;

	do
		rc = ioctl(fd, req, arg);
	while (rc < 0 && errno == EINTR);
	return rc < 0 ? -errno : rc;
}

static void kick_handler(int sig)
{
	(void)sig;
}

static int install_kick_handler(void)
{
	struct sigaction sa = {.sa_handler = kick_handler};

	sigemptyset(&sa.sa_mask);
	if (sigaction(KICK_SIGNAL, &sa, NULL) < 0)
		return spk_fail(errno, "arm64: cannot install the kick signal's handler: %s",
		                strerror(errno));
	return 0;
}

static int set_vm_attr(int fd, uint32_t group, uint64_t attr, const void *addr, const char *what)
{
	struct kvm_device_attr a = {
	    .group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)addr};
	int rc = xioctl(fd, KVM_SET_DEVICE_ATTR, &a);

	if (rc < 0)
		return spk_fail(-rc, "arm64: %s: %s", what, strerror(-rc));
	return 0;
}

/* Forward [base, base+n) to userspace. */
static int smccc_forward(struct spk_a64_vm *vm, uint32_t base, uint32_t n)
{
	struct kvm_smccc_filter f = {
	    .base = base, .nr_functions = n, .action = KVM_SMCCC_FILTER_FWD_TO_USER};

	return set_vm_attr(vm->vm_fd, KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER, &f,
	                   "KVM_ARM_VM_SMCCC_FILTER");
}

static int setup_smccc_filter(struct spk_a64_vm *vm)
{
	struct kvm_device_attr probe = {.group = KVM_ARM_VM_SMCCC_CTRL,
	                                .attr = KVM_ARM_VM_SMCCC_FILTER};
	int rc;

	if (xioctl(vm->vm_fd, KVM_HAS_DEVICE_ATTR, &probe) < 0)
		return 0; /* Linux before 6.4: HVC stays with KVM (has_smccc_filter false) */
	if ((rc = smccc_forward(vm, SPK_A64_HC_BASE, SPK_HC_MAX + 1)) < 0 ||
	    (rc = smccc_forward(vm, SPK_PSCI_CPU_OFF, 2)) < 0 || /* CPU_OFF, CPU_ON (32) */
	    (rc = smccc_forward(vm, SPK_PSCI_CPU_ON_64, 1)) < 0)
		return rc;
	vm->smccc_filter = true;
	return 0;
}

static int setup_gic(struct spk_a64_vm *vm)
{
	struct kvm_create_device cd = {.type = KVM_DEV_TYPE_ARM_VGIC_V3};
	uint64_t dist = SPK_A64_GICD_BASE, redist = SPK_A64_GICR_BASE;
	uint32_t nr_irqs = SPK_A64_GIC_NR_IRQS;
	int rc;

	if ((rc = xioctl(vm->vm_fd, KVM_CREATE_DEVICE, &cd)) < 0)
		return spk_fail(-rc, "arm64: KVM_CREATE_DEVICE (GICv3): %s", strerror(-rc));
	vm->gic_fd = (int)cd.fd;
	if ((rc = set_vm_attr(vm->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST,
	                      &dist, "GICv3 distributor address")) < 0 ||
	    (rc = set_vm_attr(vm->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST,
	                      &redist, "GICv3 redistributor address")) < 0 ||
	    (rc = set_vm_attr(vm->gic_fd, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs,
	                      "GICv3 interrupt count")) < 0)
		return rc;
	return 0;
}

int spk_a64_vm_open(struct spk_a64_vm *vm, uint32_t max_vcpus, const struct spk_mem *mem)
{
	int rc;

	if (!vm)
		return spk_fail(EINVAL, "arm64: vm_open without a VM");
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->gic_fd = -1;
	vm->mem = mem;
	if (max_vcpus == 0 || max_vcpus > SPK_A64_MAX_VCPUS)
		return spk_fail(EINVAL, "arm64: %" PRIu32 " vCPUs (1..%u)", max_vcpus,
		                SPK_A64_MAX_VCPUS);
	vm->max_vcpus = max_vcpus;
	if ((vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0) {
		rc = spk_fail(errno, "arm64: /dev/kvm: %s", strerror(errno));
		goto fail;
	}
	if ((rc = xioctl(vm->kvm_fd, KVM_CREATE_VM, 0)) < 0) {
		rc = spk_fail(-rc, "arm64: KVM_CREATE_VM: %s", strerror(-rc));
		goto fail;
	}
	vm->vm_fd = rc;
	if ((vm->run_size = xioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL)) <= 0) {
		rc = spk_fail(EIO, "arm64: KVM_GET_VCPU_MMAP_SIZE failed");
		goto fail;
	}
	if ((rc = xioctl(vm->vm_fd, KVM_ARM_PREFERRED_TARGET, &vm->init)) < 0) {
		rc = spk_fail(-rc, "arm64: KVM_ARM_PREFERRED_TARGET: %s", strerror(-rc));
		goto fail;
	}
	if (xioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, (void *)(uintptr_t)KVM_CAP_ARM_PSCI_0_2) <= 0) {
		rc = spk_fail(ENOTSUP, "arm64: the host's KVM has no PSCI 0.2");
		goto fail;
	}
	vm->init.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2;
	/* MMIO without a syndrome as an exit of its own, not a failing KVM_RUN */
	if (xioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, (void *)(uintptr_t)KVM_CAP_ARM_NISV_TO_USER) >
	    0) {
		struct kvm_enable_cap cap = {.cap = KVM_CAP_ARM_NISV_TO_USER};

		if ((rc = xioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap)) < 0) {
			rc = spk_fail(-rc, "arm64: KVM_CAP_ARM_NISV_TO_USER: %s", strerror(-rc));
			goto fail;
		}
	}
	if ((rc = setup_smccc_filter(vm)) < 0 || (rc = setup_gic(vm)) < 0)
		goto fail;
	if ((rc = install_kick_handler()) < 0)
		goto fail;
	return 0;
fail:
	spk_a64_vm_close(vm);
	return rc;
}

void spk_a64_vm_close(struct spk_a64_vm *vm)
{
	if (!vm)
		return;
	if (vm->gic_fd >= 0)
		close(vm->gic_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->gic_fd = vm->vm_fd = vm->kvm_fd = -1;
}

int spk_a64_vm_map(struct spk_a64_vm *vm, uint64_t gpa, uint64_t size, void *host, bool readonly)
{
	struct kvm_userspace_memory_region r = {
	    .slot = vm ? vm->next_slot : 0,
	    .flags = readonly ? KVM_MEM_READONLY : 0,
	    .guest_phys_addr = gpa,
	    .memory_size = size,
	    .userspace_addr = (uint64_t)(uintptr_t)host,
	};
	uint64_t end;
	int rc;

	if (!vm || vm->vm_fd < 0 || !host)
		return spk_fail(EINVAL, "arm64: map without a VM or host memory");
	if (size == 0 || (gpa | size) & 0xfff || !spk_add_ok(gpa, size, &end))
		return spk_fail(EINVAL, "arm64: bad memory range 0x%" PRIx64 "+0x%" PRIx64, gpa,
		                size);
	if ((rc = xioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r)) < 0)
		return spk_fail(-rc, "arm64: KVM_SET_USER_MEMORY_REGION 0x%" PRIx64 ": %s", gpa,
		                strerror(-rc));
	vm->next_slot++;
	return 0;
}

static int vcpu_init(struct spk_a64_vcpu *vcpu, bool powered_off)
{
	struct kvm_vcpu_init init = vcpu->vm->init;
	int rc;

	if (powered_off)
		init.features[0] |= 1u << KVM_ARM_VCPU_POWER_OFF;
	if ((rc = xioctl(vcpu->fd, KVM_ARM_VCPU_INIT, &init)) < 0)
		return spk_fail(-rc, "arm64: KVM_ARM_VCPU_INIT of vcpu %" PRIu32 ": %s", vcpu->id,
		                strerror(-rc));
	return 0;
}

int spk_a64_vcpu_open(struct spk_a64_vm *vm, uint32_t id, bool powered_off,
                      struct spk_a64_vcpu *vcpu)
{
	void *run;
	int rc;

	if (!vm || !vcpu || vm->vm_fd < 0)
		return spk_fail(EINVAL, "arm64: vcpu_open without a VM or vCPU");
	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->fd = -1;
	if (id != vm->n_vcpus || id >= vm->max_vcpus)
		return spk_fail(EINVAL,
		                "arm64: vcpu %" PRIu32 " out of order (next %" PRIu32
		                ", at most %" PRIu32 ")",
		                id, vm->n_vcpus, vm->max_vcpus);
	if (vm->gic_ready)
		return spk_fail(EBUSY, "arm64: vcpu %" PRIu32 " after the GIC was initialised", id);
	vcpu->vm = vm;
	vcpu->id = id;
	if ((rc = xioctl(vm->vm_fd, KVM_CREATE_VCPU, (void *)(uintptr_t)id)) < 0)
		return spk_fail(-rc, "arm64: KVM_CREATE_VCPU %" PRIu32 ": %s", id, strerror(-rc));
	vcpu->fd = rc;
	run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (run == MAP_FAILED) {
		rc = spk_fail(errno, "arm64: mmap of vcpu %" PRIu32 "'s kvm_run: %s", id,
		              strerror(errno));
		goto fail;
	}
	vcpu->run = run;
	if ((rc = vcpu_init(vcpu, powered_off)) < 0)
		goto fail;
	vm->n_vcpus++;
	return 0;
fail:
	spk_a64_vcpu_close(vcpu);
	return rc;
}

void spk_a64_vcpu_close(struct spk_a64_vcpu *vcpu)
{
	if (!vcpu)
		return;
	if (vcpu->run)
		munmap(vcpu->run, (size_t)vcpu->vm->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

int spk_a64_vm_finalize(struct spk_a64_vm *vm)
{
	int rc;

	if (!vm || vm->gic_fd < 0)
		return spk_fail(EINVAL, "arm64: finalize without a VM");
	if (vm->gic_ready)
		return 0;
	if ((rc = set_vm_attr(vm->gic_fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT,
	                      NULL, "GICv3 init")) < 0)
		return rc;
	vm->gic_ready = true;
	return 0;
}

static uint64_t reg_id(unsigned n)
{
	if (n <= 30)
		return CORE_REG(regs.regs[n]);
	switch (n) {
	case 31:
		return CORE_REG(sp_el1);
	case 32:
		return CORE_REG(regs.pc);
	case 33:
		return CORE_REG(regs.pstate);
	}
	return 0;
}

static int one_reg(struct spk_a64_vcpu *vcpu, uint64_t id, uint64_t *value, bool set)
{
	struct kvm_one_reg r = {.id = id, .addr = (uint64_t)(uintptr_t)value};
	int rc = xioctl(vcpu->fd, set ? KVM_SET_ONE_REG : KVM_GET_ONE_REG, &r);

	if (rc < 0)
		return spk_fail(-rc, "arm64: %s register 0x%" PRIx64 " of vcpu %" PRIu32 ": %s",
		                set ? "KVM_SET_ONE_REG" : "KVM_GET_ONE_REG", id, vcpu->id,
		                strerror(-rc));
	return 0;
}

int spk_a64_vcpu_get_reg(struct spk_a64_vcpu *vcpu, unsigned n, uint64_t *value)
{
	if (!vcpu || vcpu->fd < 0 || !value || !reg_id(n))
		return spk_fail(EINVAL, "arm64: get_reg %u: bad arguments", n);
	return one_reg(vcpu, reg_id(n), value, false);
}

int spk_a64_vcpu_set_reg(struct spk_a64_vcpu *vcpu, unsigned n, uint64_t value)
{
	if (!vcpu || vcpu->fd < 0 || !reg_id(n))
		return spk_fail(EINVAL, "arm64: set_reg %u: bad arguments", n);
	return one_reg(vcpu, reg_id(n), &value, true);
}

int spk_a64_vcpu_set_entry(struct spk_a64_vcpu *vcpu, uint64_t pc, uint64_t arg)
{
	int rc;

	if ((rc = spk_a64_vcpu_set_reg(vcpu, 33, PSTATE_EL1H_MASKED)) < 0 ||
	    (rc = spk_a64_vcpu_set_reg(vcpu, 32, pc)) < 0 ||
	    (rc = spk_a64_vcpu_set_reg(vcpu, 0, arg)) < 0)
		return rc;
	return 0;
}

int spk_a64_vcpu_power_on(struct spk_a64_vcpu *vcpu, uint64_t pc, uint64_t arg)
{
	int rc;

	if (!vcpu || vcpu->fd < 0)
		return spk_fail(EINVAL, "arm64: power_on without a vCPU");
	/* PSCI CPU_ON: the target starts from its reset state */
	if ((rc = vcpu_init(vcpu, false)) < 0)
		return rc;
	return spk_a64_vcpu_set_entry(vcpu, pc, arg);
}

int spk_a64_vcpu_set_debug(struct spk_a64_vcpu *vcpu, bool single_step, const uint64_t *bp,
                           unsigned n)
{
	struct kvm_guest_debug dbg = {0};
	int rc;

	if (!vcpu || vcpu->fd < 0 || n > KVM_ARM_MAX_DBG_REGS || (n && !bp))
		return spk_fail(EINVAL, "arm64: set_debug: bad arguments (%u breakpoints)", n);
	if (single_step || n)
		dbg.control = KVM_GUESTDBG_ENABLE;
	if (single_step)
		dbg.control |= KVM_GUESTDBG_SINGLESTEP;
	if (n)
		dbg.control |= KVM_GUESTDBG_USE_HW;
	for (unsigned i = 0; i < n; i++) {
		if (bp[i] & 3)
			return spk_fail(
			    EINVAL, "arm64: breakpoint 0x%" PRIx64 " not 4-byte aligned", bp[i]);
		dbg.arch.dbg_bvr[i] = bp[i];
		/* enabled, EL1 and EL0, all four bytes of the instruction */
		dbg.arch.dbg_bcr[i] = (0xfull << 5) | (3ull << 1) | 1;
	}
	if ((rc = xioctl(vcpu->fd, KVM_SET_GUEST_DEBUG, &dbg)) < 0)
		return spk_fail(-rc, "arm64: KVM_SET_GUEST_DEBUG: %s", strerror(-rc));
	return 0;
}

void spk_a64_vcpu_kick(struct spk_a64_vcpu *vcpu)
{
	if (!vcpu || !vcpu->run)
		return;
	atomic_store(&vcpu->cancel, true);
	vcpu->run->immediate_exit = 1;
	if (atomic_load(&vcpu->has_thread))
		pthread_kill(vcpu->thread, KICK_SIGNAL);
}

int spk_a64_irq_line(struct spk_a64_vm *vm, uint32_t spi, bool level)
{
	struct kvm_irq_level l = {.level = level};
	int rc;

	if (!vm || vm->vm_fd < 0)
		return spk_fail(EINVAL, "arm64: irq_line without a VM");
	if (spi < 32 || spi >= SPK_A64_GIC_NR_IRQS)
		return spk_fail(EINVAL, "arm64: SPI %" PRIu32 " out of range (32..%u)", spi,
		                SPK_A64_GIC_NR_IRQS - 1);
	l.irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | spi;
	if ((rc = xioctl(vm->vm_fd, KVM_IRQ_LINE, &l)) < 0)
		return spk_fail(-rc, "arm64: KVM_IRQ_LINE %" PRIu32 ": %s", spi, strerror(-rc));
	return 0;
}

/* ---- exit translation --------------------------------------------------------------- */

bool spk_a64_decode_ldst(uint32_t insn, unsigned width, int8_t *reg, uint8_t *reg_width,
                         bool *sign_ext)
{
	unsigned size = insn >> 30, opc = (insn >> 22) & 3;
	bool form;

	/* bits 29..27 = 111, bit 26 (SIMD&FP) = 0 */
	if (((insn >> 26) & 0xf) != 0xe)
		return false;
	switch ((insn >> 24) & 3) {
	case 1: /* unsigned immediate offset */
		form = true;
		break;
	case 0: /* unscaled/unprivileged/pre/post immediate, or register offset */
		form = !(insn & (1u << 21)) || ((insn >> 10) & 3) == 2;
		break;
	default:
		form = false;
	}
	if (!form || (1u << size) != width)
		return false;
	switch (opc) {
	case 0: /* store */
		*reg_width = size == 3 ? 64 : 32;
		*sign_ext = false;
		break;
	case 1: /* load, zero-extending */
		*reg_width = size == 3 ? 64 : 32;
		*sign_ext = false;
		break;
	case 2: /* ldrs* into an X register (size 3: prfm) */
		if (size == 3)
			return false;
		*reg_width = 64;
		*sign_ext = true;
		break;
	default: /* ldrs* into a W register */
		if (size >= 2)
			return false;
		*reg_width = 32;
		*sign_ext = true;
	}
	*reg = (int8_t)(insn & 0x1f);
	return true;
}

static void internal(struct spk_exit *exit, uint32_t code, uint64_t raw, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void internal(struct spk_exit *exit, uint32_t code, uint64_t raw, const char *fmt, ...)
{
	va_list ap;

	exit->kind = SPK_EXIT_INTERNAL_ERROR;
	exit->internal.code = code;
	exit->internal.raw = raw;
	va_start(ap, fmt);
	vsnprintf(exit->internal.message, sizeof(exit->internal.message), fmt, ap);
	va_end(ap);
}

/* The instruction at the PC, when the MMU is off (PC = guest-physical). */
static bool insn_at_pc(struct spk_a64_vcpu *vcpu, uint64_t pc, uint32_t *insn)
{
	uint64_t sctlr;
	uint8_t b[4];

	if (!vcpu->vm->mem || one_reg(vcpu, SCTLR_EL1, &sctlr, false) < 0 || (sctlr & 1))
		return false;
	if (spk_mem_read(vcpu->vm->mem, pc, b, sizeof(b)) < 0)
		return false;
	*insn = (uint32_t)spk_get_le(b, 4);
	return true;
}

static void translate_mmio(struct spk_a64_vcpu *vcpu, struct spk_exit *exit)
{
	struct kvm_run *run = vcpu->run;
	unsigned len = run->mmio.len;
	uint32_t insn;

	if (len != 1 && len != 2 && len != 4 && len != 8) {
		internal(exit, SPK_INTERNAL_BAD_EXIT, len, "MMIO exit with width %u", len);
		return;
	}
	exit->kind = SPK_EXIT_MMIO;
	exit->mmio.addr = run->mmio.phys_addr;
	exit->mmio.width = (uint8_t)len;
	exit->mmio.is_write = run->mmio.is_write;
	memcpy(exit->mmio.data, run->mmio.data, len);
	exit->mmio.reg = -1;
	if (insn_at_pc(vcpu, exit->pc, &insn) &&
	    !spk_a64_decode_ldst(insn, len, &exit->mmio.reg, &exit->mmio.reg_width,
	                         &exit->mmio.sign_ext))
		exit->mmio.reg = -1;
	if (!exit->mmio.is_write)
		exit->priv.flags = SPK_COMPLETE_MMIO;
}

static int get_args(struct spk_a64_vcpu *vcpu, uint64_t *args, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (one_reg(vcpu, reg_id(i + 1), &args[i], false) < 0)
			return -1;
	return 0;
}

static void translate_hypercall(struct spk_a64_vcpu *vcpu, struct spk_exit *exit)
{
	uint64_t fn = vcpu->run->hypercall.nr, args[6];

	if (get_args(vcpu, args, 6) < 0) {
		internal(exit, SPK_INTERNAL_HYPERCALL, fn, "hypercall 0x%" PRIx64 ": registers",
		         fn);
		return;
	}
	exit->priv.flags = SPK_COMPLETE_HC_PRIV;
	exit->priv.hc_ret = SPK_PSCI_SUCCESS;
	switch (fn) {
	case SPK_PSCI_CPU_ON_32:
	case SPK_PSCI_CPU_ON_64:
		exit->kind = SPK_EXIT_CPU_UP;
		exit->cpu_up.target_cpu = fn == SPK_PSCI_CPU_ON_32 ? (uint32_t)args[0] : args[0];
		exit->cpu_up.entry_point = fn == SPK_PSCI_CPU_ON_32 ? (uint32_t)args[1] : args[1];
		exit->cpu_up.arg = fn == SPK_PSCI_CPU_ON_32 ? (uint32_t)args[2] : args[2];
		return;
	case SPK_PSCI_CPU_OFF:
		exit->kind = SPK_EXIT_CPU_DOWN;
		exit->cpu_down.state = 0;
		exit->priv.hc_ret = SPK_PSCI_INTERNAL_FAILURE; /* CPU_OFF returns only on failure */
		return;
	}
	if (fn < SPK_A64_HC_BASE || fn - SPK_A64_HC_BASE > SPK_HC_MAX) {
		/* the filter forwards nothing else: KVM changed under us */
		internal(exit, SPK_INTERNAL_HYPERCALL, fn, "forwarded SMCCC call 0x%" PRIx64, fn);
		exit->priv.flags = SPK_COMPLETE_NONE;
		return;
	}
	exit->kind = SPK_EXIT_HYPERCALL;
	exit->hypercall.nr = fn - SPK_A64_HC_BASE;
	memcpy(exit->hypercall.args, args, sizeof(args));
	exit->hypercall.ret = SPK_HC_ENOSYS;
	exit->priv.flags = SPK_COMPLETE_HC;
}

static void translate_system_event(struct spk_a64_vcpu *vcpu, struct spk_exit *exit)
{
	uint32_t type = vcpu->run->system_event.type;

	switch (type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		exit->kind = SPK_EXIT_SYSTEM_DOWN;
		exit->system_down.source = SPK_SOURCE_SYSTEM_EVENT;
		return;
	case KVM_SYSTEM_EVENT_RESET:
		exit->kind = SPK_EXIT_RESET;
		exit->reset.source = SPK_SOURCE_SYSTEM_EVENT;
		return;
	}
	internal(exit, SPK_INTERNAL_UNKNOWN_EXIT, type, "KVM_EXIT_SYSTEM_EVENT type %" PRIu32,
	         type);
}

static void translate_debug(struct spk_a64_vcpu *vcpu, struct spk_exit *exit)
{
	uint64_t esr = vcpu->run->debug.arch.hsr;

	exit->kind = SPK_EXIT_DEBUG;
	exit->debug.pc = exit->pc;
	exit->debug.exception = (uint32_t)(esr >> 26) & 0x3f;
	exit->debug.dr6 = esr;
	exit->debug.dr7 = vcpu->run->debug.arch.far;
}

static void translate(struct spk_a64_vcpu *vcpu, struct spk_exit *exit)
{
	struct kvm_run *run = vcpu->run;

	switch (run->exit_reason) {
	case KVM_EXIT_MMIO:
		translate_mmio(vcpu, exit);
		return;
	case KVM_EXIT_HYPERCALL:
		translate_hypercall(vcpu, exit);
		return;
	case KVM_EXIT_SYSTEM_EVENT:
		translate_system_event(vcpu, exit);
		return;
	case KVM_EXIT_DEBUG:
		translate_debug(vcpu, exit);
		return;
	case KVM_EXIT_FAIL_ENTRY:
		exit->kind = SPK_EXIT_FAIL_ENTRY;
		exit->fail_entry.hardware_entry_failure_reason =
		    run->fail_entry.hardware_entry_failure_reason;
		exit->fail_entry.cpu = run->fail_entry.cpu;
		return;
	case KVM_EXIT_INTERNAL_ERROR:
		internal(exit, run->internal.suberror, run->exit_reason,
		         "KVM_EXIT_INTERNAL_ERROR suberror %" PRIu32, run->internal.suberror);
		return;
	case KVM_EXIT_ARM_NISV:
		internal(exit, SPK_INTERNAL_NO_SYNDROME, run->arm_nisv.fault_ipa,
		         "MMIO at 0x%llx without a syndrome (esr_iss 0x%llx)",
		         (unsigned long long)run->arm_nisv.fault_ipa,
		         (unsigned long long)run->arm_nisv.esr_iss);
		return;
	}
	internal(exit, SPK_INTERNAL_UNKNOWN_EXIT, run->exit_reason, "KVM exit reason %" PRIu32,
	         run->exit_reason);
}

/* Hand the completed values of the previous exit to KVM. */
static int complete_last(struct spk_a64_vcpu *vcpu)
{
	struct spk_exit *e = vcpu->last_exit;

	vcpu->last_exit = NULL;
	if (!e)
		return 0;
	switch (e->priv.flags) {
	case SPK_COMPLETE_MMIO:
		memcpy(vcpu->run->mmio.data, e->mmio.data, e->mmio.width);
		return 0;
	case SPK_COMPLETE_HC:
		return spk_a64_vcpu_set_reg(vcpu, 0, e->hypercall.ret);
	case SPK_COMPLETE_HC_PRIV:
		return spk_a64_vcpu_set_reg(vcpu, 0, e->priv.hc_ret);
	}
	return 0;
}

int spk_a64_vcpu_step(struct spk_a64_vcpu *vcpu, struct spk_exit *exit)
{
	int rc;

	if (!vcpu || vcpu->fd < 0 || !exit)
		return spk_fail(EINVAL, "arm64: step without a vCPU or an exit");
	if (!vcpu->vm->gic_ready)
		return spk_fail(EBUSY, "arm64: vcpu %" PRIu32 " runs before spk_a64_vm_finalize",
		                vcpu->id);
	if (!atomic_load(&vcpu->has_thread)) {
		vcpu->thread = pthread_self();
		atomic_store(&vcpu->has_thread, true);
	}
	/* the caller may hand the same exit back: complete before clearing it */
	if ((rc = complete_last(vcpu)) < 0)
		return rc;
	memset(exit, 0, sizeof(*exit));
	exit->vcpu = vcpu->id;
	rc = ioctl(vcpu->fd, KVM_RUN, 0);
	if (rc < 0) {
		int err = errno;

		if ((err == EINTR || err == EAGAIN) && atomic_exchange(&vcpu->cancel, false)) {
			vcpu->run->immediate_exit = 0;
			exit->kind = SPK_EXIT_CANCELLED;
			return 0;
		}
		if (err == EINTR) {
			exit->kind = SPK_EXIT_NONE; /* a signal that was not ours */
			return 0;
		}
		internal(exit, SPK_INTERNAL_RUN_FAILED, (uint64_t)err, "KVM_RUN: %s",
		         strerror(err));
		return 0;
	}
	(void)spk_a64_vcpu_get_reg(vcpu, 32, &exit->pc);
	translate(vcpu, exit);
	exit->priv.vcpu = NULL;
	vcpu->last_exit = exit;
	return 0;
}
