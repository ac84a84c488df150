/* SPDX-License-Identifier: Apache-2.0 */
/*
 * arm64 specifics: registers of a vCPU under the KVM/arm64 backend
 * (src/kvm-arm64), and what a guest finds when it starts.
 *
 * A vCPU starts as KVM_ARM_VCPU_INIT leaves it (the host's preferred
 * target, PSCI 0.2): EL1h, MMU and caches off, every register 0. The
 * embedder puts the boot vCPU at its entry point with
 * spk_vcpu_set_arm64_regs() (pc, pstate = SPK_ARM64_PSTATE_EL1H_MASKED,
 * x[0] = an argument, e.g. a device tree's address for Linux). vCPU 0
 * starts powered on in KVM's PSCI view; the others start powered off and
 * wait for a PSCI CPU_ON, which comes to the monitor as CPU_UP (exit.h):
 * spk_vm_run()'s default start resets the target (KVM_ARM_VCPU_INIT) and
 * puts it at the entry point with x0 = the context id. Setting a vCPU's
 * registers with spk_vcpu_set_arm64_regs() also powers it on in KVM (the
 * embedder is starting it itself).
 *
 * The guest-physical layout (abi.h): the in-kernel GICv3's distributor at
 * SPK_A64_GICD_BASE and one redistributor per vCPU from SPK_A64_GICR_BASE
 * (with SPK_IRQCHIP_KERNEL); KVM answers those addresses itself, so
 * memory or bus devices placed there are never reached. The architected
 * timer's interrupts are PPIs 27 (virtual) and 30 (physical).
 *
 * Interrupts: spk_vm_irq_line(vm, gsi, level) drives SPI gsi (GIC INTID
 * 32 + gsi, gsi below SPK_A64_GIC_NR_SPIS; the device tree's
 * `interrupts = <0 gsi flags>` names the same line), as KVM's irqfd
 * default routing does (spk_vm_irqfd_add takes the same gsi). There is
 * no spk_vcpu_interrupt() on arm64 (-ENOTSUP): a vCPU's own interrupts
 * are the GIC's SGIs and PPIs, which the guest and KVM drive.
 *
 * What arm64 does not have: port I/O (PIO ioeventfds, the PIO bus space
 * are never reached), the x86 register sets and CPUID (spk_vcpu_get_regs,
 * spk_vcpu_get_sregs and friends return -ENOTSUP with a message), MSIs
 * and MSI routes (no ITS yet: -ENOTSUP), snapshots (snapshot.h: -ENOTSUP).
 */
#ifndef SPARKLER_ARM64_H
#define SPARKLER_ARM64_H

#include <stdint.h>
#include <sparkler/vcpu.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The core registers (KVM's struct kvm_regs, without the FP/SIMD part). */
struct spk_arm64_regs {
	uint64_t x[31];  /* x0..x30 (x30 = the link register) */
	uint64_t sp;     /* SP_EL1: the stack pointer of EL1h, where guests start */
	uint64_t sp_el0; /* SP_EL0 */
	uint64_t pc;
	uint64_t pstate; /* SPSR layout: mode in bits 3:0, DAIF in bits 9:6 */
};

/* EL1h with D, A, I and F masked: where a guest starts. */
#define SPK_ARM64_PSTATE_EL1H_MASKED 0x3c5ull

/*
 * All core registers of a vCPU, or all of them set at once. Allowed in
 * every state but RUNNING (-EBUSY) and INVALID (-EINVAL); NULL vcpu or
 * regs: -EINVAL. -ENOTSUP on another architecture's backend (x86-64),
 * with a message. Setting them powers a vCPU on in KVM's PSCI view (see
 * above). Not thread-safe against other calls on the same vCPU.
 */
int spk_vcpu_get_arm64_regs(struct spk_vcpu *vcpu, struct spk_arm64_regs *regs);
int spk_vcpu_set_arm64_regs(struct spk_vcpu *vcpu, const struct spk_arm64_regs *regs);

/*
 * Any 64-bit register KVM exposes (KVM_GET_ONE_REG / KVM_SET_ONE_REG),
 * by KVM's id (linux/kvm.h: KVM_REG_ARM64 | KVM_REG_SIZE_U64 | ..., e.g.
 * ARM64_SYS_REG(3, 0, 1, 0, 0) for SCTLR_EL1 with KVM_REG_ARM64_SYSREG).
 * Only 64-bit ids (KVM_REG_SIZE_U64): others -EINVAL. KVM's refusal
 * (an id it does not know: -ENOENT) comes back with a message. Same
 * states and errors as above.
 */
int spk_vcpu_get_arm64_reg(struct spk_vcpu *vcpu, uint64_t id, uint64_t *value);
int spk_vcpu_set_arm64_reg(struct spk_vcpu *vcpu, uint64_t id, uint64_t value);

#ifdef __cplusplus
}
#endif
#endif
