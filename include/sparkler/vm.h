/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Virtual machines: creation, guest memory, and a runner that drives one
 * thread per vCPU.
 */
#ifndef SPARKLER_VM_H
#define SPARKLER_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sparkler/bus.h>
#include <sparkler/exit.h>
#include <sparkler/hypercall.h>
#include <sparkler/mem.h>
#include <sparkler/vcpu.h>

#ifdef __cplusplus
extern "C" {
#endif

struct spk_vm;
struct spk_cpuid_entry; /* x86.h */

enum spk_irqchip {
	/* No interrupt controller in the kernel: hlt exits as HALT, the
	 * library injects vectors itself (KVM_INTERRUPT). */
	SPK_IRQCHIP_NONE = 0,
	/* KVM's LAPIC, IOAPIC and PIC, plus its PIT. */
	SPK_IRQCHIP_KERNEL,
};

/*
 * The CPUID policy hook: called once per vCPU with the entries KVM
 * supports (already given this vCPU's APIC id). Edit them in place, add up
 * to cap entries (*n is the count), return 0 or -errno.
 */
typedef int (*spk_cpuid_policy_fn)(void *opaque, uint32_t vcpu_id, struct spk_cpuid_entry *entries,
				   uint32_t *n, uint32_t cap);

struct spk_vm_config {
	uint32_t max_vcpus; /* 0 means 1 */
	enum spk_irqchip irqchip;
	spk_cpuid_policy_fn cpuid_policy; /* may be NULL */
	void *cpuid_opaque;
	/* MSRs that exit as SYSREG (KVM_X86_SET_MSR_FILTER); MSRs claimed on
	 * the bus's SYSREG space are added to these when the VM first runs. */
	const uint32_t *msr_exits;
	uint32_t n_msr_exits;
	/* Where SPK_HC_CONSOLE_WRITE goes: an fd, or 0 for stdout. */
	int console_fd;
	/* The signal spk_vcpu_kick() sends to vCPU threads: 0 means SIGRTMIN.
	 * The library installs an empty handler for it unless the program
	 * has one (then vCPU creation fails: see "The kick signal", vcpu.h). */
	int kick_signal;
	/* true: no instruction assists (include/sparkler/assist.h); an
	 * instruction KVM cannot emulate is then always an INTERNAL_ERROR exit. */
	bool no_assists;
};

/*
 * Open /dev/kvm and create a VM (cfg NULL: all defaults); *out receives
 * it, owned by the caller until spk_vm_destroy(). -EINVAL (NULL out, bad
 * config), -ENODEV (with the reason in spk_last_error()) when KVM is
 * missing or unusable, or KVM's error; nothing is left behind on failure.
 * Thread-safe (VMs are independent).
 */
int spk_vm_create(const struct spk_vm_config *cfg, struct spk_vm **out);

/*
 * Destroy the VM, its vCPUs, memory, bus devices' entries and hypercall
 * table. NULL: does nothing, returns 0.
 * While vCPUs run (spk_vcpu_run() on the embedder's threads, or
 * spk_vm_run() on another thread) it stops them first: spk_vm_run() ends
 * (its result: CANCELLED, unhandled, "the VM is being destroyed"), every
 * spk_vcpu_run() returns CANCELLED and new runs are refused (-ESHUTDOWN);
 * destroy waits until each has returned, then frees. Threads of the
 * embedder must not touch the VM or its vCPUs after destroy returned: the
 * handles are dead (the library detects most uses of them and returns
 * -EINVAL, but that is a diagnosis, not a guarantee).
 * Returns 0; -EINVAL for a VM that is not alive (a second destroy is
 * refused without touching it); -EDEADLK when called from one of the
 * VM's own spk_vm_run() threads (an on_exit handler; return
 * SPK_ACT_STOP_VM instead). Thread-safe; not signal-safe.
 */
int spk_vm_destroy(struct spk_vm *vm);

/* The VM's parts, owned by the VM (dead after spk_vm_destroy). NULL or
 * dead vm: NULL / 0, with a message. Thread-safe. */
struct spk_mem *spk_vm_mem(struct spk_vm *vm);
struct spk_bus *spk_vm_bus(struct spk_vm *vm);
struct spk_hypercall_table *spk_vm_hypercalls(struct spk_vm *vm);
uint32_t spk_vm_max_vcpus(const struct spk_vm *vm);

/*
 * Add guest memory at [gpa, gpa + size) (page-aligned): RAM and READONLY
 * get anonymous host memory (untouched pages cost nothing) and a KVM slot;
 * UNPOPULATED is only declared. *host (may be NULL) receives the mapping,
 * owned by the VM. -EINVAL (NULL, alignment, empty, wraps, unknown type,
 * over a registered MMIO device), -EEXIST (overlaps other memory), -ENOSPC,
 * -ENOMEM, or KVM's refusal of the slot (e.g. beyond the guest's physical
 * address width): then nothing of it stays (no region, no slot, no
 * mapping). Memory cannot be removed (see README). Thread-safe; before or
 * while vCPUs run.
 */
int spk_vm_add_memory(struct spk_vm *vm, uint64_t gpa, uint64_t size, enum spk_mem_type type,
		      const char *name, void **host);

/* Back an UNPOPULATED region that starts at gpa with RAM. -ENOENT if no
 * such region; rolls back on failure. Thread-safe, also while vCPUs run. */
int spk_vm_populate_memory(struct spk_vm *vm, uint64_t gpa);

/*
 * Ask every vCPU to stop with SYSTEM_DOWN or RESET (from a device, a
 * signal handler or another thread): each spk_vcpu_run() returns that kind
 * with source SPK_SOURCE_DEVICE. The first request wins (later ones
 * return 0). -EINVAL for NULL, a dead VM or another kind (fixed
 * messages). Thread-safe and signal-safe.
 */
int spk_vm_request_stop(struct spk_vm *vm, enum spk_exit_kind kind);

/* Inject an interrupt on an IOAPIC/PIC line (in-kernel irqchip only,
 * else -EINVAL). Thread-safe, not signal-safe. */
int spk_vm_irq_line(struct spk_vm *vm, uint32_t gsi, bool level);

/*
 * ---- Doorbells and interrupts without a monitor round trip ----
 *
 * ioeventfd: a guest write to addr in space (SPK_BUS_MMIO or SPK_BUS_PIO)
 * of len bytes (1, 2, 4 or 8; for MMIO also 0: any width) signals the
 * eventfd fd inside KVM; the vCPU does not exit. With match set only a
 * write of exactly value does; other writes exit as usual (to the bus).
 * The same (space, addr, len, match, value) can be registered once.
 * Registrations may change while the VM runs (a guest moving a PCI BAR).
 */
struct spk_ioeventfd {
	enum spk_bus_space space;
	uint64_t addr;
	unsigned len;
	int fd;
	bool match;
	uint64_t value;
};

int spk_vm_ioeventfd_add(struct spk_vm *vm, const struct spk_ioeventfd *io);
int spk_vm_ioeventfd_del(struct spk_vm *vm, const struct spk_ioeventfd *io);

/* A message-signalled interrupt as a device writes it (x86: address
 * 0xfeeXXXXX with the destination APIC id, data with the vector). */
struct spk_msi {
	uint64_t addr;
	uint32_t data;
};

/*
 * GSI routing (in-kernel irqchip only). The VM keeps KVM's routing table:
 * GSIs 0-23 go to the IOAPIC pins (and 0-15 to the PICs) exactly as KVM's
 * default does, so spk_vm_irq_line() is unchanged; MSI routes get GSIs
 * from SPK_VM_FIRST_MSI_GSI up. Each change rewrites the table in KVM
 * (KVM_SET_GSI_ROUTING, which waits for an RCU grace period: a fraction
 * of a millisecond), so change routes when a guest programs a vector, not
 * per interrupt. A failed change leaves the table as it was.
 */
#define SPK_VM_FIRST_MSI_GSI 24

/* Add a route for msi; *gsi receives its GSI. */
int spk_vm_msi_route_add(struct spk_vm *vm, const struct spk_msi *msi, uint32_t *gsi);
/* Point the MSI route gsi at another message. */
int spk_vm_msi_route_set(struct spk_vm *vm, uint32_t gsi, const struct spk_msi *msi);
/* Remove the MSI route gsi (its irqfds should be removed first). */
int spk_vm_msi_route_del(struct spk_vm *vm, uint32_t gsi);

/*
 * irqfd: a write to the eventfd fd raises gsi inside KVM (for an MSI
 * route: sends the message; for GSIs 0-23: an edge on the IOAPIC pin).
 * The monitor's device threads, or anything else holding fd, interrupt
 * the guest without an ioctl.
 */
int spk_vm_irqfd_add(struct spk_vm *vm, uint32_t gsi, int fd);
int spk_vm_irqfd_del(struct spk_vm *vm, uint32_t gsi, int fd);

/* Send one MSI now (KVM_SIGNAL_MSI). 0 also when the guest has the
 * vector masked in its LAPIC: delivery is the guest's business. */
int spk_vm_signal_msi(struct spk_vm *vm, const struct spk_msi *msi);

/*
 * The runner: one thread per vCPU. Every exit the library did not handle
 * goes to on_exit on that vCPU's thread, which returns what to do.
 */
enum spk_action {
	/* The default: CPU_UP starts the target (creating it if needed) at
	 * entry_point with arg through spk_vm_config's start hook; CPU_DOWN
	 * stops the vCPU; SEND_IPI queues the vector on the targets;
	 * SYSTEM_DOWN and RESET end the run; CANCELLED and NONE run again;
	 * any other kind is unhandled: the run ends with an error report
	 * naming the kind, the vCPU and the RIP. */
	SPK_ACT_DEFAULT = 0,
	SPK_ACT_CONTINUE, /* handled: run again */
	SPK_ACT_STOP_VCPU, /* this vCPU is done, the others go on */
	SPK_ACT_STOP_VM,   /* end the run: every vCPU stops */
};

struct spk_run_ops {
	enum spk_action (*on_exit)(struct spk_vcpu *vcpu, struct spk_exit *exit, void *opaque);
	/* Hold every vCPU before its first instruction until spk_vm_resume()
	 * (a debugger attaching first, an API that starts the VM paused). */
	bool start_paused;
	/* Called on each vCPU thread before its first run (e.g. to install a
	 * seccomp filter there, before any guest instruction). May be NULL. */
	void (*thread_start)(struct spk_vcpu *vcpu, void *opaque);
	/* Start a vCPU that CPU_UP named (state CREATED or STOPPED) at
	 * entry with arg. NULL: the backend's default start; on x86-64 the
	 * long-mode start of x86.h, with the context the boot vCPU was
	 * started with. */
	int (*start_vcpu)(struct spk_vcpu *vcpu, uint64_t entry, uint64_t arg, void *opaque);
};

struct spk_run_result {
	/* Why the run ended: SYSTEM_DOWN, RESET, CPU_DOWN (all vCPUs
	 * stopped), or the kind of the exit that stopped it. */
	enum spk_exit_kind kind;
	struct spk_exit exit;  /* the exit that ended the run */
	bool unhandled;        /* an exit nobody handled ended it */
	char report[256];      /* one line for humans when unhandled */
};

/*
 * Run the VM from the vCPUs that are READY (at least the boot vCPU) until
 * it powers off, resets, every vCPU stopped, or on_exit said STOP_VM.
 * Returns 0 with *res filled, or -errno if threads could not be started.
 * One spk_vm_run() per VM at a time: a second is refused with -EBUSY and
 * leaves the first (and *res) alone; -ESHUTDOWN while the VM is being
 * destroyed. spk_vm_destroy() from another thread ends the run (res: kind
 * CANCELLED, unhandled, "the VM is being destroyed"). ops and opaque must
 * stay valid until it returns; on_exit runs on the vCPU threads, which
 * must not destroy the VM (-EDEADLK). Blocks the calling thread.
 */
int spk_vm_run(struct spk_vm *vm, const struct spk_run_ops *ops, void *opaque,
	       struct spk_run_result *res);

/*
 * Pause and resume a VM inside spk_vm_run(), from any thread (a vCPU
 * thread of the run too, e.g. a debugger stopping the others from an
 * exit handler). Pause kicks every vCPU and returns once each is held
 * between two runs, so registers and memory can be read consistently;
 * -ETIMEDOUT if a vCPU did not stop within a second (it stays asked),
 * -EINVAL if the VM is not running. Both are idempotent.
 */
int spk_vm_pause(struct spk_vm *vm);
int spk_vm_resume(struct spk_vm *vm);
bool spk_vm_paused(struct spk_vm *vm);

/* Host facts. */
/* "vmx", "svm", "pvm", or "unknown"; "none" when /dev/kvm is missing. */
const char *spk_host_kvm_kind(void);
/* true when /dev/kvm opens and answers KVM_GET_API_VERSION 12; else why. */
bool spk_kvm_usable(char *why, size_t why_size);

#ifdef __cplusplus
}
#endif
#endif
