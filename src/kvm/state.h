/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The x86-64 KVM backend's snapshot state (state.c). Not installed. The
 * whole-VM calls (src/snapshot/vm.c) open the sections and call these.
 */
#ifndef SPK_KVM_STATE_H
#define SPK_KVM_STATE_H

#include <stdbool.h>
#include <stddef.h>

struct spk_vm;
struct spk_vcpu;
struct spk_snap_writer;
struct spk_snap_reader;
struct spk_snap_header;
struct spk_snap_cpuid;

/*
 * The fields of a VCPU section (after the caller's "id"). The vCPU is not
 * RUNNING; save first finishes its last exit (no guest instruction runs).
 * load reads and checks every field, then applies them (check_only: only
 * reads and checks); a refusal before applying leaves the vCPU as it was,
 * one by KVM leaves it INVALID. Both name the field in spk_last_error().
 */
/* Enter the vCPU once with immediate_exit: its last exit completed
 * (the caller's value, KVM's pending I/O completion), no guest instruction
 * run (backend op vcpu_flush_exit). */
int spk_kvm_vcpu_flush_exit(struct spk_vcpu *vcpu);
int spk_kvm_vcpu_state_save(struct spk_vcpu *vcpu, struct spk_snap_writer *w);
int spk_kvm_vcpu_state_load(struct spk_vcpu *vcpu, struct spk_snap_reader *r, bool check_only);
/* The VM section: the VM clock and, with the in-kernel irqchip, both PICs,
 * the IOAPIC and the PIT. load checks all, then applies. */
int spk_kvm_vm_state_save(struct spk_vm *vm, struct spk_snap_writer *w);
int spk_kvm_vm_state_load(struct spk_vm *vm, struct spk_snap_reader *r, bool check_only);
/* The header's cpuid (what vcpu's guest sees) and kvm_caps. */
int spk_kvm_header_fill(struct spk_vcpu *vcpu, struct spk_snap_header *h);
/* The CPUID vcpu's guest sees (KVM_GET_CPUID2: on PVM the host's own
 * bits too), at most max leaves into out, *n of them. */
int spk_kvm_vcpu_cpuid(struct spk_vcpu *vcpu, struct spk_snap_cpuid *out, size_t max, size_t *n);

#endif
