/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KVM/arm64 backend (not installed): what it keeps beside the core's
 * VM and vCPU objects (core/backend.h), and what its files share. The
 * core reaches it only through the ops table of backend.c.
 *
 * Exits (what KVM/arm64 gives, and what this makes of it):
 * - KVM_EXIT_MMIO (a data abort with a valid syndrome, ISV=1, on a GPA
 *   with no memory slot or a write to a read-only one): an MMIO access the
 *   core routes (memory map: NESTED_PAGE_FAULT; bus; miss policy) with
 *   addr, width, is_write, data. KVM does not pass the syndrome on, so
 *   reg, reg_width and sign_ext come from the load/store instruction at
 *   the PC, decoded here, when the guest runs with its MMU off (the PC is
 *   then a guest-physical address) and the instruction agrees with KVM's
 *   width; else reg is -1. A read completes through mmio.data, and KVM
 *   writes the register (sign-extending as the syndrome says) at the next
 *   run.
 * - KVM_EXIT_ARM_NISV (an access KVM cannot emulate: no syndrome, e.g.
 *   ldp or a post-indexed load to MMIO): INTERNAL_ERROR, code
 *   SPK_INTERNAL_NO_SYNDROME, raw = the fault IPA.
 * - KVM_EXIT_HYPERCALL through the SMCCC filter (KVM_ARM_VM_SMCCC_FILTER,
 *   Linux 6.4+; vm_create refuses a host without it), HVC only (an SMC is
 *   an INTERNAL_ERROR): the library's hypercalls (function IDs
 *   SPK_A64_HC_BASE + nr, abi.h) as HYPERCALL for the core's dispatch,
 *   nr and x1..x6; PSCI CPU_ON (32 and 64-bit) as CPU_UP (target_cpu =
 *   the vCPU id the MPIDR names, UINT64_MAX for one no vCPU can have;
 *   entry, context id), PSCI CPU_OFF as CPU_DOWN (the vCPU is powered off
 *   in KVM's view). CPU_UP's completed value is 0 or -errno as on x86
 *   and goes to x0 as PSCI's code. Every other PSCI function (VERSION,
 *   FEATURES, AFFINITY_INFO, SYSTEM_OFF, SYSTEM_RESET, ...) stays with KVM.
 * - KVM_EXIT_SYSTEM_EVENT: SHUTDOWN as SYSTEM_DOWN, RESET as RESET (source
 *   SYSTEM_EVENT: PSCI SYSTEM_OFF / SYSTEM_RESET; KVM has then powered
 *   every vCPU off: the runner kicks the others); other types
 *   INTERNAL_ERROR.
 * - KVM_EXIT_DEBUG (spk_vcpu_set_debug: single-step, hardware breakpoints,
 *   brk): DEBUG, exception = the ESR's exception class (0x32 software
 *   step, 0x30 hardware breakpoint, 0x34 watchpoint, 0x3c brk),
 *   dr6 = the whole ESR, dr7 = FAR, pc = the PC.
 * - KVM_EXIT_FAIL_ENTRY, KVM_EXIT_INTERNAL_ERROR, any other exit, a failing
 *   KVM_RUN: FAIL_ENTRY / INTERNAL_ERROR as on x86.
 * - KVM_RUN ending with EINTR after a kick: CANCELLED (the core's).
 * Never: PIO (arm64 has no ports), SYSREG (KVM handles or injects UNDEF for
 * every trapped system register; no exit to userspace), HALT (WFI/WFE
 * block inside KVM_RUN until an interrupt), EXTERNAL_INTERRUPT,
 * SEND_IPI (the guest's GICv3 SGIs are the in-kernel GIC's).
 */
#ifndef SPK_KVM_ARM64_H
#define SPK_KVM_ARM64_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include <sparkler/abi.h>

#include "core/backend.h"

/* PSCI function IDs KVM forwards to us (the rest it answers itself). */
#define SPK_PSCI_CPU_OFF   0x84000002u
#define SPK_PSCI_CPU_ON_32 0x84000003u
#define SPK_PSCI_CPU_ON_64 0xc4000003u
/* PSCI return codes (in x0) */
#define SPK_PSCI_SUCCESS          0
#define SPK_PSCI_INVALID_PARAMS   ((uint64_t)-2)
#define SPK_PSCI_ALREADY_ON       ((uint64_t)-4)
#define SPK_PSCI_INTERNAL_FAILURE ((uint64_t)-6)

/* The backend's VM (spk_vm.be). */
struct spk_a64_vm {
	int kvm_fd;
	int vm_fd;
	int gic_fd; /* -1: no in-kernel GIC (SPK_IRQCHIP_NONE) */
	int run_size;
	struct kvm_vcpu_init init; /* the preferred target, PSCI 0.2 */
	/* KVM_DEV_ARM_VGIC_CTRL_INIT done (vm_prepare, or the first SPI
	 * line or irqfd before the VM ran); atomic */
	bool gic_ready;
	/*
	 * The KVM vCPUs, by id. With the GIC every vCPU must exist before its
	 * init, so vm_prepare creates those the core has not asked for yet;
	 * vcpu_create then takes the one waiting. Owned here, closed by
	 * vm_destroy. Under the core VM's lock.
	 */
	int vcpu_fd[SPK_A64_MAX_VCPUS];
	struct kvm_run *vcpu_run[SPK_A64_MAX_VCPUS];
};

/* What the last exit came from: how its completion reaches x0. */
enum spk_a64_last {
	SPK_A64_LAST_OTHER = 0,
	SPK_A64_LAST_PSCI_ON,  /* -errno -> PSCI code */
	SPK_A64_LAST_PSCI_OFF, /* returns only on failure: x0 stays */
};

/* The backend's vCPU (spk_vcpu.be). */
struct spk_a64_vcpu {
	int fd;
	struct kvm_run *run;
	bool powered_off; /* in KVM's PSCI view (KVM_MP_STATE_STOPPED) */
	enum spk_a64_last last;
};

static inline struct spk_a64_vm *spk_a64_vm(const struct spk_vm *vm)
{
	return (struct spk_a64_vm *)vm->be;
}

static inline struct spk_a64_vcpu *spk_a64_vcpu(const struct spk_vcpu *vcpu)
{
	return (struct spk_a64_vcpu *)vcpu->be;
}

/* vm.c: the VM, memory and interrupt ops */
int spk_a64_vm_create(struct spk_vm *vm, const struct spk_vm_config *cfg);
void spk_a64_vm_destroy(struct spk_vm *vm);
int spk_a64_vm_prepare(struct spk_vm *vm);
int spk_a64_mem_slot_add(struct spk_vm *vm, struct spk_mem_slot *slot);
void spk_a64_mem_slot_del(struct spk_vm *vm, struct spk_mem_slot *slot);
int spk_a64_irq_line(struct spk_vm *vm, uint32_t gsi, bool level);
int spk_a64_ioeventfd(struct spk_vm *vm, const struct spk_ioeventfd *io, bool assign);
int spk_a64_irqfd(struct spk_vm *vm, uint32_t gsi, int fd, bool assign);
/* vm.c: KVM_CREATE_VCPU + mmap + KVM_ARM_VCPU_INIT of id, kept in the VM
 * (vm->lock held). */
int spk_a64_kvm_vcpu_open(struct spk_vm *vm, uint32_t id);
/* vm.c: KVM_ARM_VCPU_INIT (a reset to the architecture's reset state) */
int spk_a64_vcpu_init(struct spk_vm *vm, uint32_t id, int fd, bool powered_off);

/* vcpu.c: the vCPU ops */
int spk_a64_vcpu_create(struct spk_vcpu *vcpu);
void spk_a64_vcpu_destroy(struct spk_vcpu *vcpu);
int spk_a64_vcpu_enter(struct spk_vcpu *vcpu, struct spk_exit *exit);
enum spk_step spk_a64_vcpu_translate(struct spk_vcpu *vcpu, struct spk_exit *exit);
void spk_a64_vcpu_complete(struct spk_vcpu *vcpu, const struct spk_exit *exit);
void spk_a64_vcpu_kick(struct spk_vcpu *vcpu);
uint64_t spk_a64_vcpu_pc(struct spk_vcpu *vcpu);
int spk_a64_vcpu_start(struct spk_vcpu *vcpu, uint64_t entry, uint64_t arg);
int spk_a64_vcpu_set_debug(struct spk_vcpu *vcpu, const struct spk_vcpu_debug *dbg);
int spk_a64_vcpu_get_regs(struct spk_vcpu *vcpu, enum spk_regset set, void *buf, size_t size);
int spk_a64_vcpu_set_regs(struct spk_vcpu *vcpu, enum spk_regset set, const void *buf, size_t size);

/* ioctl that retries on EINTR (not for KVM_RUN). */
int spk_a64_ioctl(int fd, unsigned long req, void *arg);

/*
 * Decode the AArch64 load/store at insn for an MMIO exit of width bytes:
 * the register (0..30; 31 is the zero register for a store), its width in
 * bits and whether a load sign-extends. false when insn is not a
 * single-register load/store of that width. Pure (decode.c; tests/unit
 * checks it on any host).
 */
bool spk_a64_decode_ldst(uint32_t insn, unsigned width, int8_t *reg, uint8_t *reg_width,
                         bool *sign_ext);

/* The vCPU id KVM's default MPIDR names (Aff0 = id & 15, Aff1 = id >> 4),
 * or UINT64_MAX when no vCPU has that MPIDR. Pure (decode.c). */
uint64_t spk_a64_mpidr_to_id(uint64_t mpidr);

#endif
