/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KVM x86-64 backend's internal structures (not installed): what it
 * keeps beside the core's VM and vCPU objects (core/backend.h).
 */
#ifndef SPK_KVM_KVM_H
#define SPK_KVM_KVM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sparkler/assist.h>
#include <sparkler/sparkler.h>

#include "core/backend.h"

/*
 * The backend's VM (spk_vm.be): the KVM descriptors and what KVM x86-64
 * needs beyond the core's VM (core/backend.h).
 */
struct spk_kvm_vm {
	int kvm_fd; /* the process-wide /dev/kvm descriptor: not ours to close */
	int vm_fd;
	int run_size; /* KVM_GET_VCPU_MMAP_SIZE */
	bool sync_regs;
	spk_cpuid_policy_fn cpuid_policy;
	void *cpuid_opaque;
	uint32_t *msr_exits;
	uint32_t n_msr_exits;
	bool no_assists; /* spk_vm_config.no_assists */

	const struct kvm_cpuid2 *supported_cpuid; /* process-wide, read-only */

	/* GSI routing (spk_vm_msi_route_*): NULL until the first MSI route;
	 * then KVM's default IOAPIC/PIC entries followed by the MSI ones. */
	pthread_mutex_t routes_lock;
	struct kvm_irq_routing_entry *routes;
	uint32_t n_routes, cap_routes;

	/* KVM_CLEAR_DIRTY_LOG in use (manual protect, dirty.c), under the
	 * core VM's lock. */
	bool dirty_manual;

	/* The long-mode context vCPUs were started with (for CPU_UP), under
	 * the core VM's lock. */
	struct spk_x86_long_mode lm;
	bool have_lm;
};

/* The backend's vCPU (spk_vcpu.be). */
struct spk_kvm_vcpu {
	int fd;
	struct kvm_run *run;
	/* the last exit was KVM_EXIT_HYPERCALL: its result goes to run */
	bool last_from_kvm_hypercall;
	struct spk_assist_stats assist; /* assist.c */
};

static inline struct spk_kvm_vm *spk_kvm_vm(const struct spk_vm *vm)
{
	return (struct spk_kvm_vm *)vm->be;
}

static inline struct spk_kvm_vcpu *spk_kvm_vcpu(const struct spk_vcpu *vcpu)
{
	return (struct spk_kvm_vcpu *)vcpu->be;
}

/* vm.c: the VM and memory ops of the backend table (backend.c) */
int spk_kvm_vm_create(struct spk_vm *vm, const struct spk_vm_config *cfg);
void spk_kvm_vm_destroy(struct spk_vm *vm);
int spk_kvm_vm_prepare(struct spk_vm *vm);
int spk_kvm_mem_slot_add(struct spk_vm *vm, struct spk_mem_slot *slot);
void spk_kvm_mem_slot_del(struct spk_vm *vm, struct spk_mem_slot *slot);
/* dirty.c: the dirty log ops, and the flags of a slot (RAM: with
 * KVM_MEM_LOG_DIRTY_PAGES while the core's vm->dirty_log is on) */
int spk_kvm_mem_dirty_log(struct spk_vm *vm, struct spk_mem_slot *slot, bool on);
int spk_kvm_mem_dirty_get(struct spk_vm *vm, struct spk_mem_slot *slot, uint64_t *bits);
uint32_t spk_kvm_slot_flags(const struct spk_vm *vm, bool readonly);
int spk_kvm_irq_line(struct spk_vm *vm, uint32_t gsi, bool level);
/* irqfd.c: the signal_msi, ioeventfd, irqfd and msi_route_* ops */
int spk_kvm_signal_msi(struct spk_vm *vm, const struct spk_msi *msi);
int spk_kvm_ioeventfd(struct spk_vm *vm, const struct spk_ioeventfd *io, bool assign);
int spk_kvm_irqfd(struct spk_vm *vm, uint32_t gsi, int fd, bool assign);
int spk_kvm_msi_route_add(struct spk_vm *vm, const struct spk_msi *msi, uint32_t *gsi);
int spk_kvm_msi_route_set(struct spk_vm *vm, uint32_t gsi, const struct spk_msi *msi);
int spk_kvm_msi_route_del(struct spk_vm *vm, uint32_t gsi);

/* vcpu.c: the vCPU ops */
int spk_kvm_vcpu_create(struct spk_vcpu *vcpu);
void spk_kvm_vcpu_destroy(struct spk_vcpu *vcpu);
int spk_kvm_vcpu_enter(struct spk_vcpu *vcpu, struct spk_exit *exit);
enum spk_step spk_kvm_vcpu_translate(struct spk_vcpu *vcpu, struct spk_exit *exit);
void spk_kvm_vcpu_complete(struct spk_vcpu *vcpu, const struct spk_exit *exit);
void spk_kvm_vcpu_kick(struct spk_vcpu *vcpu);
uint64_t spk_kvm_vcpu_pc(struct spk_vcpu *vcpu);
int spk_kvm_vcpu_interrupt(struct spk_vcpu *vcpu, uint8_t vector);
int spk_kvm_vcpu_set_debug(struct spk_vcpu *vcpu, const struct spk_vcpu_debug *dbg);
/* vcpu.c: set rax, through the synced registers when KVM has them */
int spk_kvm_set_guest_rax(struct spk_vcpu *vcpu, uint64_t value);

/* x86.c: registers, HALT, the CPU_UP start */
int spk_kvm_vcpu_get_regs(struct spk_vcpu *vcpu, enum spk_regset set, void *buf, size_t size);
int spk_kvm_vcpu_set_regs(struct spk_vcpu *vcpu, enum spk_regset set, const void *buf, size_t size);
int spk_kvm_vcpu_halt_wakeable(struct spk_vcpu *vcpu);
int spk_x86_start_secondary(struct spk_vcpu *vcpu, uint64_t entry, uint64_t arg);

/* irqfd.c: install the irqchip's default GSI routes, GSI 0 (the PIT) to
 * IOAPIC pin 2 (spk_vm_create, after KVM_CREATE_IRQCHIP). */
int spk_kvm_routes_init(struct spk_vm *vm);

/* assist.c: complete an instruction KVM could not emulate (bytes[0..n));
 * true when done and the vCPU may run on. false: report the exit (why
 * gets a reason when an assist was tried and failed). */
bool spk_kvm_assist(struct spk_vcpu *vcpu, const uint8_t *bytes, unsigned n, char *why,
                    size_t why_len);

/* cpuid.c */
int spk_kvm_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out);
int spk_kvm_set_vcpu_cpuid(struct spk_vcpu *vcpu);
#define SPK_CPUID_1_ECX_TSC_DEADLINE (1u << 24)
/* Set what KVM emulates but does not list (cpuid.c); tsc_deadline: the VM
 * has the in-kernel irqchip and KVM_CAP_TSC_DEADLINE_TIMER. */
void spk_kvm_cpuid_add_emulated(struct spk_cpuid_entry *e, uint32_t n, bool tsc_deadline);

/* ioctl that retries on EINTR (not for KVM_RUN). */
int spk_kvm_ioctl(int fd, unsigned long req, void *arg);

#endif
