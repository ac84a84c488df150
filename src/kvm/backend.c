/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KVM x86-64 backend's ops table (core/backend.h): the only way the
 * core reaches this folder.
 */
#include "core/backend.h"
#include "kvm/kvm.h"
#include "kvm/state.h"

static const struct spk_backend_ops kvm_x86_64 = {
    .name = "kvm-x86_64",
    .hypercall_port = SPK_HC_PORT,

    .vm_create = spk_kvm_vm_create,
    .vm_destroy = spk_kvm_vm_destroy,
    .vm_prepare = spk_kvm_vm_prepare,

    .mem_slot_add = spk_kvm_mem_slot_add,
    .mem_slot_del = spk_kvm_mem_slot_del,
    .mem_dirty_log = spk_kvm_mem_dirty_log,
    .mem_dirty_get = spk_kvm_mem_dirty_get,

    .irq_line = spk_kvm_irq_line,
    .signal_msi = spk_kvm_signal_msi,
    .ioeventfd = spk_kvm_ioeventfd,
    .irqfd = spk_kvm_irqfd,
    .msi_route_add = spk_kvm_msi_route_add,
    .msi_route_set = spk_kvm_msi_route_set,
    .msi_route_del = spk_kvm_msi_route_del,

    .vcpu_create = spk_kvm_vcpu_create,
    .vcpu_destroy = spk_kvm_vcpu_destroy,
    .vcpu_enter = spk_kvm_vcpu_enter,
    .vcpu_translate = spk_kvm_vcpu_translate,
    .vcpu_complete = spk_kvm_vcpu_complete,
    .vcpu_kick = spk_kvm_vcpu_kick,
    .vcpu_pc = spk_kvm_vcpu_pc,
    .vcpu_interrupt = spk_kvm_vcpu_interrupt,
    .vcpu_halt_wakeable = spk_kvm_vcpu_halt_wakeable,
    .vcpu_start = spk_x86_start_secondary,
    .vcpu_set_debug = spk_kvm_vcpu_set_debug,
    .vcpu_get_regs = spk_kvm_vcpu_get_regs,
    .vcpu_set_regs = spk_kvm_vcpu_set_regs,

    /* Snapshots: state.c */
    .vcpu_state_save = spk_kvm_vcpu_state_save,
    .vcpu_state_load = spk_kvm_vcpu_state_load,
    .vcpu_flush_exit = spk_kvm_vcpu_flush_exit,
    .vm_state_save = spk_kvm_vm_state_save,
    .vm_state_load = spk_kvm_vm_state_load,
};

const struct spk_backend_ops *spk_backend(void)
{
	return &kvm_x86_64;
}
