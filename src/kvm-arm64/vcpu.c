/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KVM/arm64 backend: the vCPU ops (core/backend.h). One KVM_RUN, its exit
 * into the exit model (arm64.h says which and why; MMIO and the library's
 * hypercalls go to the core to route), completions into the run area or
 * x0, registers, debug controls and the CPU_UP start. Every guest value
 * that reaches this file (MMIO widths, the instruction at the PC, PSCI
 * arguments, hypercall registers) is checked before use; what does not
 * make sense becomes an INTERNAL_ERROR exit, never a crash.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <sparkler/arm64.h>

#include "core/internal.h"
#include "kvm-arm64/arm64.h"
#include "kvm-common/kvm_exit.h"

#ifndef KVM_HYPERCALL_EXIT_SMC
#define KVM_HYPERCALL_EXIT_SMC (1u << 0)
#endif

#define CORE_REG(field)                                                                            \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |                                     \
	 (offsetof(struct kvm_regs, field) / sizeof(__u32)))
#define SCTLR_EL1 ARM64_SYS_REG(3, 0, 1, 0, 0)

/* ---- registers ------------------------------------------------------------------ */

static int one_reg(struct spk_vcpu *vcpu, uint64_t id, uint64_t *value, bool set)
{
	struct kvm_one_reg r = {.id = id, .addr = (uint64_t)(uintptr_t)value};
	int rc = spk_a64_ioctl(spk_a64_vcpu(vcpu)->fd, set ? KVM_SET_ONE_REG : KVM_GET_ONE_REG, &r);

	if (rc < 0)
		return spk_fail(-rc, "kvm-arm64: %s 0x%" PRIx64 " of vCPU %" PRIu32 ": %s",
		                set ? "KVM_SET_ONE_REG" : "KVM_GET_ONE_REG", id, vcpu->id,
		                strerror(-rc));
	return 0;
}

static int get_x(struct spk_vcpu *vcpu, unsigned n, uint64_t *v)
{
	return one_reg(vcpu, CORE_REG(regs.regs[n]), v, false);
}

static int set_x(struct spk_vcpu *vcpu, unsigned n, uint64_t v)
{
	return one_reg(vcpu, CORE_REG(regs.regs[n]), &v, true);
}

/* The core registers in the order of struct spk_arm64_regs. */
static uint64_t core_id(unsigned i)
{
	if (i < 31)
		return CORE_REG(regs.regs[i]);
	switch (i) {
	case 31:
		return CORE_REG(sp_el1);
	case 32:
		return CORE_REG(regs.sp);
	case 33:
		return CORE_REG(regs.pc);
	default:
		return CORE_REG(regs.pstate);
	}
}

#define N_CORE (sizeof(struct spk_arm64_regs) / sizeof(uint64_t))

/* KVM's PSCI view: a vCPU the embedder starts by hand is on. */
static int power_on(struct spk_vcpu *vcpu)
{
	struct spk_a64_vcpu *v = spk_a64_vcpu(vcpu);
	struct kvm_mp_state mp = {.mp_state = KVM_MP_STATE_RUNNABLE};
	int rc;

	if (!v->powered_off)
		return 0;
	if ((rc = spk_a64_ioctl(v->fd, KVM_SET_MP_STATE, &mp)) < 0)
		return spk_fail(-rc, "kvm-arm64: KVM_SET_MP_STATE (on) of vCPU %" PRIu32 ": %s",
		                vcpu->id, strerror(-rc));
	v->powered_off = false;
	return 0;
}

static int check_set(struct spk_vcpu *vcpu, enum spk_regset set, size_t size)
{
	size_t want = set == SPK_REGS_ARM64       ? sizeof(struct spk_arm64_regs)
	              : set == SPK_REGS_ARM64_ONE ? sizeof(struct spk_arm64_one_reg)
	                                          : 0;

	if (!want)
		return spk_fail(ENOTSUP,
		                "kvm-arm64: vCPU %" PRIu32 ": register set %d is x86-64's "
		                "(not on arm64: use arm64.h's spk_vcpu_get_arm64_regs)",
		                vcpu->id, (int)set);
	if (size != want)
		return spk_fail(EINVAL, "kvm-arm64: vCPU %" PRIu32 ": register set %d is %zu bytes",
		                vcpu->id, (int)set, want);
	return 0;
}

static int check_one(struct spk_vcpu *vcpu, uint64_t id)
{
	if ((id & KVM_REG_ARCH_MASK) != KVM_REG_ARM64 ||
	    (id & KVM_REG_SIZE_MASK) != KVM_REG_SIZE_U64)
		return spk_fail(EINVAL,
		                "kvm-arm64: vCPU %" PRIu32 ": register id 0x%" PRIx64
		                " is not a 64-bit arm64 register",
		                vcpu->id, id);
	return 0;
}

int spk_a64_vcpu_get_regs(struct spk_vcpu *vcpu, enum spk_regset set, void *buf, size_t size)
{
	int rc = check_set(vcpu, set, size);

	if (rc < 0)
		return rc;
	if (set == SPK_REGS_ARM64_ONE) {
		struct spk_arm64_one_reg *r = buf;

		if ((rc = check_one(vcpu, r->id)) < 0)
			return rc;
		return one_reg(vcpu, r->id, &r->value, false);
	}
	uint64_t v[N_CORE] = {0};

	for (unsigned i = 0; i < N_CORE; i++)
		if ((rc = one_reg(vcpu, core_id(i), &v[i], false)) < 0)
			return rc;
	memcpy(buf, v, sizeof(v));
	return 0;
}

int spk_a64_vcpu_set_regs(struct spk_vcpu *vcpu, enum spk_regset set, const void *buf, size_t size)
{
	int rc = check_set(vcpu, set, size);

	if (rc < 0)
		return rc;
	if (set == SPK_REGS_ARM64_ONE) {
		struct spk_arm64_one_reg r;

		memcpy(&r, buf, sizeof(r));
		if ((rc = check_one(vcpu, r.id)) < 0)
			return rc;
		return one_reg(vcpu, r.id, &r.value, true);
	}
	uint64_t v[N_CORE] = {0};

	memcpy(v, buf, sizeof(v));
	for (unsigned i = 0; i < N_CORE; i++)
		if ((rc = one_reg(vcpu, core_id(i), &v[i], true)) < 0)
			return rc;
	return power_on(vcpu);
}

uint64_t spk_a64_vcpu_pc(struct spk_vcpu *vcpu)
{
	uint64_t pc = 0;

	if (one_reg(vcpu, CORE_REG(regs.pc), &pc, false) < 0)
		return 0;
	return pc;
}

/* ---- creation -------------------------------------------------------------------------- */

int spk_a64_vcpu_create(struct spk_vcpu *vcpu)
{
	struct spk_a64_vm *a = spk_a64_vm(vcpu->vm);
	struct spk_a64_vcpu *v;
	int rc;

	/* a vCPU made before the first run, or waiting since vm_prepare */
	if ((rc = spk_a64_kvm_vcpu_open(vcpu->vm, vcpu->id)) < 0)
		return rc;
	if (!(v = calloc(1, sizeof(*v))))
		return spk_fail(ENOMEM, "kvm-arm64: vcpu: out of memory");
	v->fd = a->vcpu_fd[vcpu->id];
	v->run = a->vcpu_run[vcpu->id];
	v->powered_off = vcpu->id > 0;
	vcpu->be = v;
	return 0;
}

/* The KVM vCPU stays with the VM (vm_destroy closes it). */
void spk_a64_vcpu_destroy(struct spk_vcpu *vcpu)
{
	free(vcpu->be);
	vcpu->be = NULL;
}

int spk_a64_vcpu_start(struct spk_vcpu *vcpu, uint64_t entry, uint64_t arg)
{
	struct spk_a64_vcpu *v;
	int rc;

	if (!spk_vcpu_ok(vcpu, "start a secondary vCPU"))
		return -EINVAL;
	v = spk_a64_vcpu(vcpu);
	/* PSCI CPU_ON: the target starts from its reset state */
	if ((rc = spk_a64_vcpu_init(vcpu->vm, vcpu->id, v->fd, false)) < 0)
		return rc;
	v->powered_off = false;
	/* what a past life's last exit left to complete is moot now */
	vcpu->last_exit = NULL;
	v->last = SPK_A64_LAST_OTHER;
	uint64_t pstate = SPK_ARM64_PSTATE_EL1H_MASKED;
	if ((rc = one_reg(vcpu, CORE_REG(regs.pstate), &pstate, true)) < 0 ||
	    (rc = one_reg(vcpu, CORE_REG(regs.pc), &entry, true)) < 0 ||
	    (rc = set_x(vcpu, 0, arg)) < 0)
		return rc;
	return spk_vcpu_ready(vcpu);
}

/* ---- kicks ----------------------------------------------------------------------------- */

void spk_a64_vcpu_kick(struct spk_vcpu *vcpu)
{
	/* the window just before KVM_RUN; the core's signal the time inside */
	__atomic_store_n(&spk_a64_vcpu(vcpu)->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

/* ---- exit translation ----------------------------------------------------------------- */

/* The instruction at the PC, when the MMU is off (PC = guest-physical). */
static bool insn_at_pc(struct spk_vcpu *vcpu, uint64_t pc, uint32_t *insn)
{
	uint64_t sctlr;
	uint8_t b[4];

	if (one_reg(vcpu, SCTLR_EL1, &sctlr, false) < 0 || (sctlr & 1))
		return false;
	if (spk_mem_read(vcpu->vm->mem, pc, b, sizeof(b)) < 0)
		return false;
	*insn = (uint32_t)spk_get_le(b, 4);
	return true;
}

static enum spk_step translate_mmio(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct kvm_run *run = spk_a64_vcpu(vcpu)->run;
	unsigned len = run->mmio.len;
	uint32_t insn;

	if (len != 1 && len != 2 && len != 4 && len != 8) {
		spk_exit_set_internal(exit, SPK_INTERNAL_BAD_EXIT, len,
		                      "KVM_EXIT_MMIO of %u bytes at 0x%llx", len,
		                      (unsigned long long)run->mmio.phys_addr);
		return SPK_STEP_EXIT;
	}
	exit->kind = SPK_EXIT_MMIO;
	exit->mmio.addr = run->mmio.phys_addr;
	exit->mmio.width = (uint8_t)len;
	exit->mmio.is_write = run->mmio.is_write;
	memcpy(exit->mmio.data, run->mmio.data, sizeof(exit->mmio.data));
	exit->mmio.reg = -1;
	exit->mmio.reg_width = 0;
	exit->mmio.sign_ext = false;
	if (insn_at_pc(vcpu, exit->pc, &insn) &&
	    !spk_a64_decode_ldst(insn, len, &exit->mmio.reg, &exit->mmio.reg_width,
	                         &exit->mmio.sign_ext)) {
		exit->mmio.reg = -1;
		exit->mmio.reg_width = 0;
		exit->mmio.sign_ext = false;
	}
	return SPK_STEP_ROUTE;
}

static enum spk_step translate_hypercall(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct spk_a64_vcpu *v = spk_a64_vcpu(vcpu);
	uint64_t fn = v->run->hypercall.nr, args[6];

	/* flags (6.4+) shares its place with longmode in older headers */
	if (v->run->hypercall.longmode & KVM_HYPERCALL_EXIT_SMC) {
		spk_exit_set_internal(exit, SPK_INTERNAL_HYPERCALL, fn,
		                      "SMC 0x%" PRIx64 ": the library's calls use hvc #0", fn);
		return SPK_STEP_EXIT;
	}
	for (unsigned i = 0; i < 6; i++) {
		if (get_x(vcpu, i + 1, &args[i]) < 0) {
			spk_exit_set_internal(exit, SPK_INTERNAL_HYPERCALL, fn,
			                      "hypercall 0x%" PRIx64 ": cannot read x%u", fn,
			                      i + 1);
			return SPK_STEP_EXIT;
		}
	}
	switch (fn) {
	case SPK_PSCI_CPU_ON_32:
	case SPK_PSCI_CPU_ON_64: {
		bool w = fn == SPK_PSCI_CPU_ON_32;

		exit->kind = SPK_EXIT_CPU_UP;
		exit->cpu_up.target_cpu = spk_a64_mpidr_to_id(w ? (uint32_t)args[0] : args[0]);
		exit->cpu_up.entry_point = w ? (uint32_t)args[1] : args[1];
		exit->cpu_up.arg = w ? (uint32_t)args[2] : args[2];
		exit->priv.flags = SPK_COMPLETE_HC_PRIV;
		exit->priv.hc_ret = 0;
		v->last = SPK_A64_LAST_PSCI_ON;
		return SPK_STEP_EXIT;
	}
	case SPK_PSCI_CPU_OFF: {
		struct kvm_mp_state mp = {.mp_state = KVM_MP_STATE_STOPPED};

		exit->kind = SPK_EXIT_CPU_DOWN;
		exit->cpu_down.state = 0;
		exit->priv.flags = SPK_COMPLETE_HC_PRIV;
		exit->priv.hc_ret = 0;
		v->last = SPK_A64_LAST_PSCI_OFF;
		/* KVM's PSCI (AFFINITY_INFO) sees it off; KVM_RUN now waits */
		if (spk_a64_ioctl(v->fd, KVM_SET_MP_STATE, &mp) == 0)
			v->powered_off = true;
		return SPK_STEP_EXIT;
	}
	}
	v->last = SPK_A64_LAST_OTHER;
	if (fn < SPK_A64_HC_BASE || fn - SPK_A64_HC_BASE > SPK_HC_MAX) {
		/* the filter forwards nothing else: KVM changed under us */
		spk_exit_set_internal(exit, SPK_INTERNAL_HYPERCALL, fn,
		                      "forwarded SMCCC call 0x%" PRIx64, fn);
		return SPK_STEP_EXIT;
	}
	exit->kind = SPK_EXIT_HYPERCALL;
	exit->hypercall.nr = fn - SPK_A64_HC_BASE;
	memcpy(exit->hypercall.args, args, sizeof(args));
	return SPK_STEP_ROUTE;
}

enum spk_step spk_a64_vcpu_translate(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct kvm_run *run = spk_a64_vcpu(vcpu)->run;

	exit->pc = spk_a64_vcpu_pc(vcpu);
	switch (run->exit_reason) {
	case KVM_EXIT_MMIO:
		return translate_mmio(vcpu, exit);
	case KVM_EXIT_HYPERCALL:
		return translate_hypercall(vcpu, exit);
	case KVM_EXIT_SYSTEM_EVENT:
		spk_kvm_system_event(run, exit);
		return SPK_STEP_EXIT;
	case KVM_EXIT_DEBUG:
		exit->kind = SPK_EXIT_DEBUG;
		exit->debug.pc = exit->pc;
		exit->debug.exception = (uint32_t)(run->debug.arch.hsr >> 26) & 0x3f;
		exit->debug.dr6 = run->debug.arch.hsr;
		exit->debug.dr7 = run->debug.arch.far;
		return SPK_STEP_EXIT;
	case KVM_EXIT_FAIL_ENTRY:
		spk_kvm_fail_entry(run, exit);
		return SPK_STEP_EXIT;
	case KVM_EXIT_INTERNAL_ERROR:
		spk_exit_set_internal(exit, run->internal.suberror, KVM_EXIT_INTERNAL_ERROR,
		                      "KVM internal error, suberror %" PRIu32,
		                      run->internal.suberror);
		return SPK_STEP_EXIT;
	case KVM_EXIT_ARM_NISV:
		spk_exit_set_internal(exit, SPK_INTERNAL_NO_SYNDROME, run->arm_nisv.fault_ipa,
		                      "MMIO at 0x%llx without a syndrome (esr_iss 0x%llx): an "
		                      "access KVM cannot emulate (ldp, writeback, ...)",
		                      (unsigned long long)run->arm_nisv.fault_ipa,
		                      (unsigned long long)run->arm_nisv.esr_iss);
		return SPK_STEP_EXIT;
	default:
		spk_exit_set_internal(exit, SPK_INTERNAL_UNKNOWN_EXIT, run->exit_reason,
		                      "unknown KVM exit reason %" PRIu32, run->exit_reason);
		return SPK_STEP_EXIT;
	}
}

/* ---- completion ------------------------------------------------------------------------ */

/* CPU_UP's value (0 or -errno, as on x86) as PSCI CPU_ON's return code. */
static uint64_t psci_code(uint64_t value)
{
	switch ((int64_t)value) {
	case 0:
		return SPK_PSCI_SUCCESS;
	case -EBUSY:
	case -EALREADY:
		return SPK_PSCI_ALREADY_ON;
	case -EINVAL:
	case -ENODEV:
	case -ENOENT:
	case -ERANGE:
		return SPK_PSCI_INVALID_PARAMS;
	default:
		return SPK_PSCI_INTERNAL_FAILURE;
	}
}

static void set_result(struct spk_vcpu *vcpu, uint64_t value)
{
	if (set_x(vcpu, 0, value) < 0)
		spk_log(SPK_LOG_WARN, "%s", spk_last_error());
}

void spk_a64_vcpu_complete(struct spk_vcpu *vcpu, const struct spk_exit *e)
{
	struct spk_a64_vcpu *v = spk_a64_vcpu(vcpu);
	enum spk_a64_last last = v->last;

	v->last = SPK_A64_LAST_OTHER;
	switch (e->priv.flags) {
	case SPK_COMPLETE_MMIO:
		memcpy(v->run->mmio.data, e->mmio.data, sizeof(v->run->mmio.data));
		break;
	case SPK_COMPLETE_NPF:
		memcpy(v->run->mmio.data, e->npf.data, sizeof(v->run->mmio.data));
		break;
	case SPK_COMPLETE_HC:
		set_result(vcpu, e->hypercall.ret);
		break;
	case SPK_COMPLETE_HC_PRIV:
		if (last == SPK_A64_LAST_PSCI_ON && e->kind == SPK_EXIT_CPU_UP)
			set_result(vcpu, psci_code(e->priv.hc_ret));
		else if (last != SPK_A64_LAST_PSCI_OFF)
			set_result(vcpu, e->priv.hc_ret);
		break;
	default: /* no PIO or SYSREG on arm64 */
		break;
	}
}

/* ---- entering the guest ---------------------------------------------------------------- */

int spk_a64_vcpu_enter(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct spk_a64_vcpu *v = spk_a64_vcpu(vcpu);
	int rc = spk_kvm_run_once(v->fd, v->run, exit);

	if (rc < 0 && rc != -EINTR)
		exit->pc = spk_a64_vcpu_pc(vcpu);
	return rc;
}

/* ---- debug ------------------------------------------------------------------------------ */

/*
 * spk_vcpu_debug on arm64: single_step, sw_breakpoints (brk exits as
 * DEBUG instead of going to the guest), hw_breakpoints with addr[i]
 * enabled where dr7 has bit 2i or 2i+1 set (x86's L/G bits, so the same
 * settings work on both), 4-byte aligned.
 */
int spk_a64_vcpu_set_debug(struct spk_vcpu *vcpu, const struct spk_vcpu_debug *dbg)
{
	struct kvm_guest_debug g = {0};
	int rc;

	if (dbg->enable) {
		g.control = KVM_GUESTDBG_ENABLE;
		if (dbg->single_step)
			g.control |= KVM_GUESTDBG_SINGLESTEP;
		if (dbg->sw_breakpoints)
			g.control |= KVM_GUESTDBG_USE_SW_BP;
		if (dbg->hw_breakpoints) {
			g.control |= KVM_GUESTDBG_USE_HW;
			for (unsigned i = 0; i < 4; i++) {
				if (!((dbg->dr7 >> (2 * i)) & 3))
					continue;
				if (dbg->addr[i] & 3)
					return spk_fail(EINVAL,
					                "kvm-arm64: breakpoint %u at 0x%" PRIx64
					                " is not 4-byte aligned",
					                i, dbg->addr[i]);
				g.arch.dbg_bvr[i] = dbg->addr[i];
				/* enabled, EL1 and EL0, all four bytes */
				g.arch.dbg_bcr[i] = (0xfull << 5) | (3ull << 1) | 1;
			}
		}
	}
	if ((rc = spk_a64_ioctl(spk_a64_vcpu(vcpu)->fd, KVM_SET_GUEST_DEBUG, &g)) < 0)
		return spk_fail(-rc, "kvm-arm64: KVM_SET_GUEST_DEBUG on vCPU %" PRIu32 ": %s",
		                vcpu->id, strerror(-rc));
	return 0;
}
