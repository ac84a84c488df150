/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KVM backend: the vCPU ops (core/backend.h). vCPU creation, one KVM_RUN
 * with the interrupts the core queued, every KVM_EXIT_* turned into the
 * architecture-neutral exit model (accesses and hypercalls handed to the
 * core to route), and completions written back into the run area.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/internal.h"
#include "kvm-common/kvm_exit.h"
#include "kvm/kvm.h"

/* ---- creation ------------------------------------------------------------ */

static int map_run(struct spk_vcpu *vcpu, struct spk_kvm_vcpu *kv)
{
	struct spk_kvm_vm *k = spk_kvm_vm(vcpu->vm);
	void *p = mmap(NULL, k->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, kv->fd, 0);

	if (p == MAP_FAILED)
		return spk_fail(errno, "kvm: mmap of vCPU %u run area: %s", vcpu->id,
		                strerror(errno));
	kv->run = p;
	if (k->sync_regs)
		kv->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
	return 0;
}

int spk_kvm_vcpu_create(struct spk_vcpu *vcpu)
{
	struct spk_kvm_vm *k = spk_kvm_vm(vcpu->vm);
	struct spk_kvm_vcpu *kv = calloc(1, sizeof(*kv));
	int rc;

	if (!kv)
		return spk_fail(ENOMEM, "vcpu: out of memory");
	kv->fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, (unsigned long)vcpu->id);
	if (kv->fd < 0) {
		rc = spk_fail(errno, "kvm: KVM_CREATE_VCPU %u: %s", vcpu->id, strerror(errno));
		goto err_free;
	}
	vcpu->be = kv;
	if ((rc = map_run(vcpu, kv)) < 0 || (rc = spk_kvm_set_vcpu_cpuid(vcpu)) < 0)
		goto err_close;
	return 0;

err_close:
	vcpu->be = NULL;
	if (kv->run)
		munmap(kv->run, k->run_size);
	close(kv->fd);
err_free:
	free(kv);
	return rc;
}

void spk_kvm_vcpu_destroy(struct spk_vcpu *vcpu)
{
	struct spk_kvm_vcpu *kv = spk_kvm_vcpu(vcpu);

	if (!kv)
		return;
	if (kv->run)
		munmap(kv->run, spk_kvm_vm(vcpu->vm)->run_size);
	if (kv->fd >= 0)
		close(kv->fd);
	free(kv);
	vcpu->be = NULL;
}

/* ---- kicks and interrupts ------------------------------------------------- */

void spk_kvm_vcpu_kick(struct spk_vcpu *vcpu)
{
	/* covers the window just before KVM_RUN; the core's signal the time
	 * inside it. Async-signal-safe. */
	__atomic_store_n(&spk_kvm_vcpu(vcpu)->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

int spk_kvm_vcpu_interrupt(struct spk_vcpu *vcpu, uint8_t vector)
{
	/* a fixed, edge-triggered MSI to the vCPU's LAPIC (APIC id = vCPU id) */
	struct kvm_msi msi = {
	    .address_lo = 0xfee00000u | ((vcpu->id & 0xff) << 12),
	    .data = vector,
	};
	int rc = spk_kvm_ioctl(spk_kvm_vm(vcpu->vm)->vm_fd, KVM_SIGNAL_MSI, &msi);

	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_SIGNAL_MSI vector %u to vCPU %u: %s", vector,
		                vcpu->id, strerror(-rc));
	return 0;
}

/*
 * Without an in-kernel irqchip the library injects the vectors the core
 * queued: when the guest can take one now, KVM_INTERRUPT; otherwise ask
 * KVM to exit when the interrupt window opens.
 */
static int inject_pending(struct spk_vcpu *vcpu, struct kvm_run *run)
{
	if (vcpu->vm->irqchip == SPK_IRQCHIP_KERNEL || !spk_vcpu_irq_pending(vcpu)) {
		run->request_interrupt_window = 0;
		return 0;
	}
	if (run->ready_for_interrupt_injection && run->if_flag) {
		int vector = spk_vcpu_irq_take(vcpu);

		if (vector >= 0) {
			struct kvm_interrupt irq = {.irq = (uint32_t)vector};
			int rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_INTERRUPT, &irq);

			if (rc < 0) {
				spk_vcpu_irq_requeue(vcpu, vector);
				return spk_fail(-rc, "kvm: KVM_INTERRUPT %d on vCPU %u: %s", vector,
				                vcpu->id, strerror(-rc));
			}
		}
	}
	run->request_interrupt_window = spk_vcpu_irq_pending(vcpu);
	return 0;
}

/* ---- registers at an exit ---------------------------------------------------- */

static struct kvm_regs *sync_regs(struct spk_kvm_vcpu *kv)
{
	return &kv->run->s.regs.regs;
}

uint64_t spk_kvm_vcpu_pc(struct spk_vcpu *vcpu)
{
	return spk_kvm_vm(vcpu->vm)->sync_regs ? sync_regs(spk_kvm_vcpu(vcpu))->rip : 0;
}

/* Registers at this exit: from the shared run area, or by ioctl. */
static int exit_regs(struct spk_vcpu *vcpu, struct kvm_regs *regs)
{
	struct spk_kvm_vcpu *kv = spk_kvm_vcpu(vcpu);

	if (spk_kvm_vm(vcpu->vm)->sync_regs) {
		*regs = *sync_regs(kv);
		return 0;
	}
	return spk_kvm_ioctl(kv->fd, KVM_GET_REGS, regs);
}

int spk_kvm_set_guest_rax(struct spk_vcpu *vcpu, uint64_t value)
{
	struct spk_kvm_vcpu *kv = spk_kvm_vcpu(vcpu);

	if (spk_kvm_vm(vcpu->vm)->sync_regs) {
		sync_regs(kv)->rax = value;
		kv->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
		return 0;
	}
	struct kvm_regs regs;
	int rc = spk_kvm_ioctl(kv->fd, KVM_GET_REGS, &regs);

	if (rc == 0) {
		regs.rax = value;
		rc = spk_kvm_ioctl(kv->fd, KVM_SET_REGS, &regs);
	}
	return rc;
}

static bool valid_width(unsigned w, unsigned max)
{
	return w <= max && w && (w & (w - 1)) == 0;
}

/* ---- accesses, handed to the core to route ---------------------------------- */

/* The library's hypercall ABI (abi.h): number in rax, arguments in rdi,
 * rsi, rdx, r10, r8, r9; core/route.c dispatches it. */
static enum spk_step translate_hypercall(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct kvm_regs r;

	if (exit_regs(vcpu, &r) < 0) {
		spk_exit_set_internal(exit, SPK_INTERNAL_HYPERCALL, 0,
		                      "cannot read registers for a hypercall");
		return SPK_STEP_EXIT;
	}
	exit->kind = SPK_EXIT_HYPERCALL;
	exit->hypercall.nr = r.rax;
	exit->hypercall.args[0] = r.rdi;
	exit->hypercall.args[1] = r.rsi;
	exit->hypercall.args[2] = r.rdx;
	exit->hypercall.args[3] = r.r10;
	exit->hypercall.args[4] = r.r8;
	exit->hypercall.args[5] = r.r9;
	return SPK_STEP_ROUTE;
}

static enum spk_step translate_io(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct kvm_run *run = spk_kvm_vcpu(vcpu)->run;
	unsigned width = run->io.size;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	uint32_t count = run->io.count;
	uint64_t end;

	/* The data lives in the run area: check KVM's offsets anyway. */
	if (!valid_width(width, 4) || count == 0 || count > 4096 ||
	    !spk_add_ok(run->io.data_offset, (uint64_t)width * count, &end) ||
	    end > (uint64_t)spk_kvm_vm(vcpu->vm)->run_size) {
		spk_exit_set_internal(exit, SPK_INTERNAL_BAD_EXIT, KVM_EXIT_IO,
		                      "KVM_EXIT_IO with width %u count %u offset 0x%llx", width,
		                      count, (unsigned long long)run->io.data_offset);
		return SPK_STEP_EXIT;
	}
	if (run->io.port == SPK_HC_PORT && is_write && width == 4 && count == 1)
		return translate_hypercall(vcpu, exit);
	exit->kind = SPK_EXIT_PIO;
	exit->pio.port = run->io.port;
	exit->pio.width = (uint8_t)width;
	exit->pio.is_write = is_write;
	exit->pio.count = count;
	exit->pio.data = (uint8_t *)run + run->io.data_offset;
	return SPK_STEP_ROUTE;
}

static enum spk_step translate_mmio(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct kvm_run *run = spk_kvm_vcpu(vcpu)->run;
	unsigned len = run->mmio.len;

	if (len == 0 || len > 8) {
		spk_exit_set_internal(exit, SPK_INTERNAL_BAD_EXIT, KVM_EXIT_MMIO,
		                      "KVM_EXIT_MMIO of %u bytes at 0x%llx", len,
		                      (unsigned long long)run->mmio.phys_addr);
		return SPK_STEP_EXIT;
	}
	exit->kind = SPK_EXIT_MMIO;
	exit->mmio.addr = run->mmio.phys_addr;
	exit->mmio.width = (uint8_t)len;
	exit->mmio.is_write = run->mmio.is_write;
	exit->mmio.reg = -1; /* KVM decodes the instruction itself */
	exit->mmio.reg_width = 0;
	exit->mmio.sign_ext = false;
	memcpy(exit->mmio.data, run->mmio.data, sizeof(exit->mmio.data));
	return SPK_STEP_ROUTE;
}

static enum spk_step translate_msr(struct spk_vcpu *vcpu, struct spk_exit *exit, bool is_write)
{
	struct kvm_run *run = spk_kvm_vcpu(vcpu)->run;

	run->msr.error = 0;
	exit->kind = SPK_EXIT_SYSREG;
	exit->sysreg.id = run->msr.index;
	exit->sysreg.is_write = is_write;
	exit->sysreg.fault = false;
	exit->sysreg.reg = -1;
	exit->sysreg.value = is_write ? run->msr.data : 0;
	return SPK_STEP_ROUTE;
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

/* HANDLED when an instruction assist (assist.c) completed it: run on. */
static enum spk_step translate_internal_error(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct kvm_run *run = spk_kvm_vcpu(vcpu)->run;
	uint32_t sub = run->internal.suberror;
	uint32_t ndata = run->internal.ndata;

	spk_exit_set_internal(exit, sub, KVM_EXIT_INTERNAL_ERROR, "KVM internal error: %s",
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
			return SPK_STEP_HANDLED;
		}
	}
	return SPK_STEP_EXIT;
}

/* KVM_EXIT_HYPERCALL goes to the caller as it is; its result to run. */
static void translate_kvm_hypercall(struct spk_kvm_vcpu *kv, struct spk_exit *exit)
{
	struct kvm_run *run = kv->run;

	exit->kind = SPK_EXIT_HYPERCALL;
	exit->hypercall.nr = run->hypercall.nr;
	memcpy(exit->hypercall.args, run->hypercall.args, sizeof(exit->hypercall.args));
	exit->hypercall.ret = SPK_HC_ENOSYS;
	exit->priv.flags = SPK_COMPLETE_HC;
	kv->last_from_kvm_hypercall = true;
}

enum spk_step spk_kvm_vcpu_translate(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct spk_kvm_vcpu *kv = spk_kvm_vcpu(vcpu);
	struct kvm_run *run = kv->run;

	exit->pc = spk_kvm_vm(vcpu->vm)->sync_regs ? sync_regs(kv)->rip : 0;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return translate_io(vcpu, exit);
	case KVM_EXIT_MMIO:
		return translate_mmio(vcpu, exit);
	case KVM_EXIT_X86_RDMSR:
	case KVM_EXIT_X86_WRMSR:
		return translate_msr(vcpu, exit, run->exit_reason == KVM_EXIT_X86_WRMSR);
	case KVM_EXIT_HLT:
		exit->kind = SPK_EXIT_HALT;
		exit->halt.cause = SPK_HALT_HLT;
		return SPK_STEP_EXIT;
	case KVM_EXIT_SHUTDOWN:
		exit->kind = SPK_EXIT_RESET;
		exit->reset.source = SPK_SOURCE_TRIPLE_FAULT;
		return SPK_STEP_EXIT;
	case KVM_EXIT_SYSTEM_EVENT:
		spk_kvm_system_event(run, exit);
		return SPK_STEP_EXIT;
	case KVM_EXIT_DEBUG:
		exit->kind = SPK_EXIT_DEBUG;
		exit->debug.pc = run->debug.arch.pc;
		exit->debug.exception = run->debug.arch.exception;
		exit->debug.dr6 = run->debug.arch.dr6;
		exit->debug.dr7 = run->debug.arch.dr7;
		return SPK_STEP_EXIT;
	case KVM_EXIT_FAIL_ENTRY:
		spk_kvm_fail_entry(run, exit);
		return SPK_STEP_EXIT;
	case KVM_EXIT_INTERNAL_ERROR:
		return translate_internal_error(vcpu, exit);
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		exit->kind = SPK_EXIT_NONE; /* inject_pending() does the work */
		return SPK_STEP_HANDLED;
	case KVM_EXIT_HYPERCALL:
		translate_kvm_hypercall(kv, exit);
		return SPK_STEP_EXIT;
	default:
		spk_exit_set_internal(exit, SPK_INTERNAL_UNKNOWN_EXIT, run->exit_reason,
		                      "unknown KVM exit reason %u", run->exit_reason);
		return SPK_STEP_EXIT;
	}
}

/* ---- completion ---------------------------------------------------------------- */

void spk_kvm_vcpu_complete(struct spk_vcpu *vcpu, const struct spk_exit *e)
{
	struct spk_kvm_vcpu *kv = spk_kvm_vcpu(vcpu);
	struct kvm_run *run = kv->run;

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
		if (kv->last_from_kvm_hypercall)
			run->hypercall.ret = e->hypercall.ret;
		else
			spk_kvm_set_guest_rax(vcpu, e->hypercall.ret);
		break;
	case SPK_COMPLETE_HC_PRIV:
		spk_kvm_set_guest_rax(vcpu, e->priv.hc_ret);
		break;
	default: /* PIO data is already in place */
		break;
	}
	kv->last_from_kvm_hypercall = false;
}

/* ---- entering the guest ---------------------------------------------------------- */

int spk_kvm_vcpu_enter(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct spk_kvm_vcpu *kv = spk_kvm_vcpu(vcpu);
	struct kvm_run *run = kv->run;

	if (inject_pending(vcpu, run) < 0) {
		spk_exit_set_internal(exit, SPK_INTERNAL_RUN_FAILED, 0, "%s", spk_last_error());
		exit->pc = spk_kvm_vcpu_pc(vcpu);
		return -EIO;
	}
	/* KVM clears the kvm_dirty_regs bits it applied itself */
	int rc = spk_kvm_run_once(kv->fd, run, exit);

	if (rc < 0 && rc != -EINTR)
		exit->pc = spk_kvm_vcpu_pc(vcpu);
	return rc;
}

int spk_kvm_vcpu_set_debug(struct spk_vcpu *vcpu, const struct spk_vcpu_debug *dbg)
{
	struct kvm_guest_debug g = {0};

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
	int rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_SET_GUEST_DEBUG, &g);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_SET_GUEST_DEBUG on vCPU %u: %s", vcpu->id,
		                strerror(-rc));
	return 0;
}
