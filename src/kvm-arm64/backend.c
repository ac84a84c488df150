/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KVM/arm64 backend's ops table (core/backend.h): the only way the
 * core reaches this folder. What it leaves NULL the core refuses with
 * -ENOTSUP and the backend's name: MSIs and MSI routes (no ITS yet),
 * queued vCPU interrupts (the GIC's SGIs and PPIs are the guest's and
 * KVM's), the dirty log and the state save/load of snapshots.
 */
#include "core/backend.h"
#include "kvm-arm64/arm64.h"

static const struct spk_backend_ops kvm_arm64 = {
    .name = "kvm-arm64",
    .hypercall_port = -1, /* hypercalls are hvc #0 (abi.h) */
    .no_injection = true, /* interrupts are the GIC's (SPK_IRQCHIP_KERNEL) */

    .vm_create = spk_a64_vm_create,
    .vm_destroy = spk_a64_vm_destroy,
    .vm_prepare = spk_a64_vm_prepare,

    .mem_slot_add = spk_a64_mem_slot_add,
    .mem_slot_del = spk_a64_mem_slot_del,

    .irq_line = spk_a64_irq_line,
    .ioeventfd = spk_a64_ioeventfd,
    .irqfd = spk_a64_irqfd,

    .vcpu_create = spk_a64_vcpu_create,
    .vcpu_destroy = spk_a64_vcpu_destroy,
    .vcpu_enter = spk_a64_vcpu_enter,
    .vcpu_translate = spk_a64_vcpu_translate,
    .vcpu_complete = spk_a64_vcpu_complete,
    .vcpu_kick = spk_a64_vcpu_kick,
    .vcpu_pc = spk_a64_vcpu_pc,
    .vcpu_start = spk_a64_vcpu_start,
    .vcpu_set_debug = spk_a64_vcpu_set_debug,
    .vcpu_get_regs = spk_a64_vcpu_get_regs,
    .vcpu_set_regs = spk_a64_vcpu_set_regs,
};

const struct spk_backend_ops *spk_backend(void)
{
	return &kvm_arm64;
}
