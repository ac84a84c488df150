/* SPDX-License-Identifier: Apache-2.0 */
/* The KVM x86-64 backend's internal structures. Not installed. */
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

/* One KVM memory slot and the host mapping behind it. */
struct spk_kvm_map {
	uint64_t gpa;
	uint64_t size;
	void *host;
	uint32_t slot;
	bool has_slot;
};

/* Written into live VMs and vCPUs, cleared on destroy: a cheap check that
 * catches most uses of a destroyed handle (still undefined behaviour). */
#define SPK_VM_MAGIC   0x73706b76u /* "spkv" */
#define SPK_VCPU_MAGIC 0x73706b63u /* "spkc" */

struct spk_vm {
	uint32_t magic;
	int kvm_fd; /* the process-wide /dev/kvm descriptor: not ours to close */
	int vm_fd;
	int run_size; /* KVM_GET_VCPU_MMAP_SIZE */
	bool sync_regs;
	uint32_t max_vcpus;
	enum spk_irqchip irqchip;
	spk_cpuid_policy_fn cpuid_policy;
	void *cpuid_opaque;
	uint32_t *msr_exits;
	uint32_t n_msr_exits;
	int console_fd;
	int kick_signal;
	bool no_assists; /* spk_vm_config.no_assists */

	struct spk_mem *mem;
	struct spk_bus *bus;
	struct spk_hypercall_table *hc;

	struct spk_kvm_map maps[SPK_MEM_MAX_REGIONS];
	uint32_t n_maps;
	uint32_t next_slot;

	const struct kvm_cpuid2 *supported_cpuid; /* process-wide, read-only */

	pthread_mutex_t lock; /* vCPU creation, memory, first-run setup */
	struct spk_vcpu **vcpus; /* max_vcpus entries */
	bool prepared; /* first-run setup done (bus frozen, MSR filter set) */

	/* 0, or SPK_EXIT_SYSTEM_DOWN / SPK_EXIT_RESET from spk_vm_request_stop */
	atomic_int stop_kind;
	/* spk_vm_destroy() has begun: no new run may start */
	atomic_bool dying;
	struct spk_vm *next_live; /* the process's list of live VMs */

	struct runner *runner; /* of the spk_vm_run() in progress, under lock */
	uint32_t runner_users;  /* references from spk_vm_runner_get() */
	pthread_cond_t runner_cond;

	/* GSI routing (spk_vm_msi_route_*): NULL until the first MSI route;
	 * then KVM's default IOAPIC/PIC entries followed by the MSI ones. */
	pthread_mutex_t routes_lock;
	struct kvm_irq_routing_entry *routes;
	uint32_t n_routes, cap_routes;

	/* The dirty log (dirty.c): on, and KVM_CLEAR_DIRTY_LOG in use (manual
	 * protect). Under lock; set_slot() adds KVM_MEM_LOG_DIRTY_PAGES to
	 * RAM slots while it is on. */
	bool dirty_log;
	bool dirty_manual;

	/* The long-mode context vCPUs were started with (for CPU_UP). */
	struct spk_x86_long_mode lm;
	bool have_lm;
};

struct spk_vcpu {
	uint32_t magic;
	struct spk_vm *vm;
	uint32_t id;
	int fd;
	struct kvm_run *run;
	enum spk_vcpu_state state;
	unsigned flags;

	/* kicks and interrupts, from any thread */
	atomic_bool cancel;
	atomic_bool has_thread;
	pthread_t thread;
	atomic_uint_least64_t pending[4]; /* vectors 0..255 queued for injection */
	atomic_uint wake_seq;             /* futex for spk_vcpu_wait_event() */

	/* completion of the exit handed to the caller last time */
	struct spk_exit *last_exit;
	bool last_from_kvm_hypercall; /* KVM_EXIT_HYPERCALL: ret goes to run */

	struct spk_vcpu_stats stats;
	struct spk_assist_stats assist; /* assist.c */
};

/* vm.c */
int spk_vm_prepare(struct spk_vm *vm);
/* vm.c: true for a live VM handle; false (with a message) for NULL or a
 * destroyed one. vcpu.c: the same for a vCPU. */
bool spk_vm_ok(const struct spk_vm *vm, const char *what);
bool spk_vcpu_ok(const struct spk_vcpu *vcpu, const char *what);

/* irqfd.c: install the irqchip's default GSI routes, GSI 0 (the PIT) to
 * IOAPIC pin 2 (spk_vm_create, after KVM_CREATE_IRQCHIP). */
int spk_kvm_routes_init(struct spk_vm *vm);
/* irqfd.c: free the GSI routing table (spk_vm_destroy). */
void spk_vm_routes_free(struct spk_vm *vm);

/* vcpu.c: make the vCPU's thread look at its flags again (leave KVM_RUN,
 * leave spk_vcpu_wait_event) without cancelling. Async-signal-safe. */
void spk_vcpu_wake(struct spk_vcpu *vcpu);
bool spk_vcpu_pending_irq(struct spk_vcpu *vcpu);

/* vcpu.c: hand the value the caller completed for the last exit to KVM's
 * run area (the next KVM_RUN gives it to the guest); none: nothing. */
void spk_kvm_complete_last(struct spk_vcpu *vcpu);

/* vcpu.c: a failed setup step leaves the vCPU INVALID (DESIGN.md 1). */
int spk_vcpu_invalidate(struct spk_vcpu *vcpu);

/* assist.c: complete an instruction KVM could not emulate (bytes[0..n));
 * true when done and the vCPU may run on. false: report the exit (why
 * gets a reason when an assist was tried and failed). */
bool spk_kvm_assist(struct spk_vcpu *vcpu, const uint8_t *bytes, unsigned n, char *why,
		    size_t why_len);

/* dirty.c: the flags of a slot for map (RAM: with the dirty log when on). */
uint32_t spk_kvm_slot_flags(const struct spk_vm *vm, bool readonly);

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
