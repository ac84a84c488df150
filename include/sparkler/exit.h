/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The exit model: every reason spk_vcpu_run() hands control back to the
 * monitor, as one architecture-neutral tagged union.
 *
 * The enum is open: new kinds may be added at the end. A caller's switch
 * must have a default that treats an unknown kind as fatal.
 */
#ifndef SPARKLER_EXIT_H
#define SPARKLER_EXIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum spk_exit_kind {
	/*
	 * An exit the library handled itself (a device on the bus, a
	 * registered hypercall, an interrupt window). spk_vcpu_run() only
	 * returns it when SPK_VCPU_RETURN_HANDLED is set; the caller just
	 * runs again.
	 */
	SPK_EXIT_NONE = 0,
	/*
	 * Guest access to guest-physical memory that is neither RAM nor ROM.
	 * KVM x86-64: KVM_EXIT_MMIO for an address no device on the bus
	 * claims, when the MMIO miss policy is SPK_MISS_EXIT. KVM decodes the
	 * instruction itself, so reg/reg_width/sign_ext are unknown (-1/0).
	 * A read is completed with spk_exit_complete_read() or by filling
	 * data[] before the next spk_vcpu_run().
	 * KVM/arm64 (src/kvm-arm64): KVM_EXIT_MMIO, a data abort with a valid
	 * syndrome, routed by the core as on x86 (bus, miss policy);
	 * reg/reg_width/sign_ext from the load/store at the PC when the
	 * guest's MMU is off (else -1/0); KVM writes the register.
	 */
	SPK_EXIT_MMIO,
	/*
	 * Port I/O. KVM x86-64: KVM_EXIT_IO for a port no device claims, when
	 * the PIO miss policy is SPK_MISS_EXIT. For rep ins/outs, count > 1
	 * and data holds count * width bytes. KVM/arm64: never (no ports).
	 */
	SPK_EXIT_PIO,
	/*
	 * System register (MSR on x86). KVM x86-64: KVM_EXIT_X86_RDMSR/WRMSR
	 * for an MSR named in spk_vm_config.msr_exits (through
	 * KVM_X86_SET_MSR_FILTER) that no SYSREG device claims. Set
	 * sysreg.fault to make the guest take #GP instead. KVM/arm64: never
	 * (KVM emulates or refuses every trapped system register itself).
	 */
	SPK_EXIT_SYSREG,
	/*
	 * A hypercall (see hypercall.h) that no registered handler took. KVM
	 * x86-64: a 4-byte write to SPK_HC_PORT; the registers come with the
	 * exit through KVM_CAP_SYNC_REGS. The result goes back in rax.
	 * KVM/arm64: `hvc #0` with x0 = SPK_A64_HC_BASE + nr (abi.h),
	 * forwarded by KVM's SMCCC filter (Linux 6.4+) as KVM_EXIT_HYPERCALL;
	 * args from x1..x6, the result back in x0.
	 */
	SPK_EXIT_HYPERCALL,
	/*
	 * A physical interrupt that arrived while the guest ran. Produced by
	 * backends where the monitor owns the interrupt controller (AxVisor's
	 * model). KVM x86-64 never produces it: the host kernel takes host
	 * interrupts, and the library injects vectors queued with
	 * spk_vcpu_interrupt() itself. Nor does KVM/arm64.
	 */
	SPK_EXIT_EXTERNAL_INTERRUPT,
	/*
	 * An access to guest-physical memory that is neither RAM nor a device,
	 * or a write to read-only memory. KVM x86-64: KVM_EXIT_MMIO that hits
	 * no device under the default MMIO miss policy (SPK_MISS_FAULT), or
	 * that writes a SPK_MEM_READONLY region. x86 cannot tell an
	 * instruction fetch from a read here. A read completes with all-ones
	 * unless the caller completes it with a value. KVM/arm64: the same,
	 * from KVM_EXIT_MMIO (no fetches: KVM cannot run code outside RAM).
	 */
	SPK_EXIT_NESTED_PAGE_FAULT,
	/*
	 * KVM x86-64: KVM_EXIT_HLT, only without the in-kernel irqchip; with
	 * it, KVM keeps a halted vCPU inside KVM_RUN until an interrupt
	 * arrives, so a guest that halts for good never returns (kick it, or
	 * spk_vm_request_stop()). Under spk_vm_run() the default action waits
	 * for an interrupt (spk_vcpu_interrupt) when the guest halted with
	 * interrupts on, and stops the vCPU when they were off: once every
	 * vCPU stopped, the run ends with kind CPU_DOWN. KVM/arm64: never
	 * (WFI and WFE wait inside KVM_RUN, with or without the in-kernel
	 * GIC; kick the vCPU or spk_vm_request_stop()).
	 */
	SPK_EXIT_HALT,
	/*
	 * The guest asks to start another vCPU (hypercall SPK_HC_CPU_ON).
	 * The hypercall returns 0 unless the caller completes it with an
	 * error. spk_vm_run() starts the target when its handler accepts.
	 * KVM/arm64: PSCI CPU_ON (32/64-bit) forwarded by the SMCCC filter;
	 * target_cpu is the vCPU id the MPIDR names (KVM's layout: Aff0 =
	 * id & 15, Aff1 = id >> 4), UINT64_MAX for an MPIDR no vCPU can have;
	 * arg is the context id. The completed value is 0 or -errno as on
	 * x86-64; the guest gets it as PSCI's code: 0 SUCCESS, -EBUSY
	 * ALREADY_ON (-4), -EINVAL/-ENODEV/-ENOENT/-ERANGE INVALID_PARAMETERS
	 * (-2), any other INTERNAL_FAILURE (-6). spk_vm_run()'s default
	 * start resets the target (KVM_ARM_VCPU_INIT) and enters it at
	 * entry_point in EL1h, masked, with x0 = arg.
	 */
	SPK_EXIT_CPU_UP,
	/* The calling vCPU stops itself (hypercall SPK_HC_CPU_OFF; KVM/arm64:
	 * PSCI CPU_OFF, forwarded by the SMCCC filter: KVM then sees the vCPU
	 * off, and a KVM_RUN of it waits until it is started again). */
	SPK_EXIT_CPU_DOWN,
	/* Hypercall SPK_HC_SEND_IPI: deliver vector to target_cpu. KVM/arm64:
	 * never (SGIs are the in-kernel GICv3's). */
	SPK_EXIT_SEND_IPI,
	/*
	 * Power off: hypercall SPK_HC_SYSTEM_OFF, KVM_SYSTEM_EVENT_SHUTDOWN,
	 * or a device (ACPI PM1 S5) through spk_vm_request_stop(). KVM/arm64:
	 * PSCI SYSTEM_OFF, which KVM answers with KVM_SYSTEM_EVENT_SHUTDOWN
	 * on the calling vCPU after powering every vCPU off: the others
	 * sleep inside KVM_RUN until kicked (spk_vm_run() kicks them).
	 */
	SPK_EXIT_SYSTEM_DOWN,
	/*
	 * Reset: a triple fault (KVM_EXIT_SHUTDOWN), KVM_SYSTEM_EVENT_RESET,
	 * hypercall SPK_HC_SYSTEM_RESET, or a device (i8042 0xFE, ACPI reset
	 * register) through spk_vm_request_stop(). KVM/arm64: PSCI
	 * SYSTEM_RESET (KVM_SYSTEM_EVENT_RESET).
	 */
	SPK_EXIT_RESET,
	/* KVM x86-64: KVM_EXIT_DEBUG (single-step, hardware breakpoints).
	 * KVM/arm64: the same; exception is the ESR's class (0x32 step, 0x30
	 * hardware breakpoint, 0x34 watchpoint, 0x3c brk), dr6 the ESR, dr7
	 * the FAR. */
	SPK_EXIT_DEBUG,
	/*
	 * KVM x86-64: KVM_EXIT_FAIL_ENTRY, a state KVM_SET_SREGS took but
	 * the processor refused to enter, e.g. long mode with CS.L and CS.D
	 * both set: on SVM (the bed: QEMU TCG's AMD-V, Linux 6.1) 0xffffffff,
	 * VMEXIT_INVALID; on VMX 0x80000021, invalid guest state. PVM enters
	 * that state and runs the guest (guest-fail_entry checks each).
	 */
	/* KVM/arm64: KVM_EXIT_FAIL_ENTRY as KVM reports it (e.g.
	 * KVM_EXIT_FAIL_ENTRY_CPU_UNSUPPORTED); not seen in the arm64 bed. */
	SPK_EXIT_FAIL_ENTRY,
	/*
	 * Anything the backend could not run or does not know. KVM x86-64:
	 * KVM_EXIT_INTERNAL_ERROR (code = suberror, with the instruction
	 * bytes for emulation failures), an unknown KVM_EXIT_* (code =
	 * SPK_INTERNAL_UNKNOWN_EXIT, raw = the reason), a failing KVM_RUN,
	 * or an access under SPK_MISS_FATAL.
	 */
	/* KVM/arm64: also KVM_EXIT_ARM_NISV, an MMIO access without a
	 * syndrome (code SPK_INTERNAL_NO_SYNDROME). */
	SPK_EXIT_INTERNAL_ERROR,
	/* spk_vcpu_kick() stopped the vCPU (signal + immediate_exit). */
	SPK_EXIT_CANCELLED,
	SPK_EXIT__COUNT
};

/* Access flags of a nested page fault. */
enum {
	SPK_ACCESS_READ = 1u << 0,
	SPK_ACCESS_WRITE = 1u << 1,
	SPK_ACCESS_EXEC = 1u << 2,
};

enum spk_halt_cause {
	SPK_HALT_HLT = 0, /* x86 hlt */
	SPK_HALT_WFI,     /* arm64 wfi */
	SPK_HALT_WFE,     /* arm64 wfe */
};

/* Where a SYSTEM_DOWN or RESET came from. */
enum spk_event_source {
	SPK_SOURCE_HYPERCALL = 0,
	SPK_SOURCE_TRIPLE_FAULT,
	SPK_SOURCE_SYSTEM_EVENT, /* KVM_EXIT_SYSTEM_EVENT */
	SPK_SOURCE_DEVICE,       /* spk_vm_request_stop() from a device */
};

/* INTERNAL_ERROR codes below 0x100 are KVM suberrors, as KVM numbers them. */
enum {
	SPK_INTERNAL_EMULATION = 1, /* KVM_INTERNAL_ERROR_EMULATION */
	SPK_INTERNAL_UNKNOWN_EXIT = 0x100,
	SPK_INTERNAL_RUN_FAILED,  /* KVM_RUN returned an error; raw = errno */
	SPK_INTERNAL_STRICT_MISS, /* access to no device under SPK_MISS_FATAL */
	SPK_INTERNAL_BAD_EXIT,    /* the backend reported nonsense (bad sizes) */
	/* a hypercall whose registers could not be read or written. Other
	 * accesses to SPK_HC_PORT than a 4-byte write (1- and 2-byte writes,
	 * reads) are not hypercalls: they go the way of any unclaimed port
	 * (the PIO miss policy: by default reads all ones, writes dropped). */
	SPK_INTERNAL_HYPERCALL,
	/* KVM/arm64: KVM_EXIT_ARM_NISV, an MMIO access without a valid
	 * syndrome (ldp, post-index, ...) that KVM cannot emulate; raw = the
	 * fault IPA. */
	SPK_INTERNAL_NO_SYNDROME,
};

#define SPK_EXIT_MSG_MAX  96
#define SPK_EXIT_INSN_MAX 16

struct spk_vcpu;

struct spk_exit {
	enum spk_exit_kind kind;
	uint32_t vcpu; /* id of the vCPU that exited */
	/*
	 * Guest instruction pointer at the exit (KVM x86-64: from
	 * KVM_CAP_SYNC_REGS; 0 where the host lacks it). For an access KVM
	 * has already carried out, a PIO or MMIO write, it is the next
	 * instruction; for a read (in, an MMIO load) it is the instruction
	 * itself, which KVM finishes with the completed value at the next
	 * spk_vcpu_run(). Measured on PVM (tests/guest/contract.c,
	 * test_exit_pc); KVM's VMX and SVM code skip an out before the exit
	 * and finish an in after it in the same way.
	 */
	uint64_t pc;
	union {
		struct {
			uint64_t addr;
			uint8_t width; /* 1, 2, 4 or 8 */
			bool is_write;
			uint8_t data[8]; /* little-endian, width bytes valid */
			int8_t reg;      /* -1: not known (KVM decodes) */
			uint8_t reg_width;
			bool sign_ext;
		} mmio;
		struct {
			uint16_t port;
			uint8_t width; /* 1, 2 or 4 */
			bool is_write;
			uint32_t count; /* > 1 for rep ins/outs */
			/* count * width bytes, owned by the library, valid until
			 * the next spk_vcpu_run() */
			uint8_t *data;
		} pio;
		struct {
			uint64_t id; /* the MSR number on x86 */
			bool is_write;
			bool fault; /* set by the caller: raise #GP in the guest */
			int8_t reg; /* -1: not known */
			uint64_t value;
		} sysreg;
		struct {
			uint64_t nr;
			uint64_t args[6];
			uint64_t ret; /* what the guest gets back in rax */
		} hypercall;
		struct {
			uint64_t vector;
		} external_interrupt;
		struct {
			uint64_t addr;
			uint32_t access; /* SPK_ACCESS_* */
			uint8_t width;   /* access width when known, else 0 */
			uint8_t data[8]; /* written bytes, or the value read */
			bool readonly;   /* the address is in read-only memory */
		} npf;
		struct {
			enum spk_halt_cause cause;
		} halt;
		struct {
			uint64_t target_cpu;
			uint64_t entry_point;
			uint64_t arg;
		} cpu_up;
		struct {
			uint64_t state;
		} cpu_down;
		struct {
			uint64_t target_cpu;
			uint64_t target_cpu_aux; /* a mask of further targets */
			bool to_all;
			bool to_self;
			uint64_t vector;
		} ipi;
		struct {
			enum spk_event_source source;
		} system_down;
		struct {
			enum spk_event_source source;
		} reset;
		struct {
			uint64_t pc;
			uint32_t exception; /* 1 = #DB, 3 = #BP */
			uint64_t dr6;
			uint64_t dr7;
		} debug;
		struct {
			uint64_t hardware_entry_failure_reason;
			uint32_t cpu;
		} fail_entry;
		struct {
			uint32_t code; /* SPK_INTERNAL_* or a KVM suberror */
			uint64_t raw;  /* the raw exit reason or errno */
			char message[SPK_EXIT_MSG_MAX];
			uint8_t insn[SPK_EXIT_INSN_MAX];
			uint8_t insn_len;
		} internal;
	};
	/* Library-private completion state: do not touch. */
	struct {
		struct spk_vcpu *vcpu;
		uint64_t hc_ret;
		uint32_t flags;
	} priv;
};

/* A short name for a kind ("MMIO", "PIO", ...); "UNKNOWN" for others.
 * Pure, thread-safe. */
const char *spk_exit_name(enum spk_exit_kind kind);

/*
 * Format an exit as one line of text for logs (always NUL-terminated,
 * truncated to size). Returns the length snprintf would have produced. A
 * NULL exit formats as "(no exit)"; a NULL buf is size 0 (the exception to
 * the NULL rule: like snprintf, it measures). Thread-safe.
 */
int spk_exit_format(const struct spk_exit *exit, char *buf, size_t size);

/*
 * Complete an exit that returns a value to the guest, before the next
 * spk_vcpu_run() on that vCPU: MMIO/NPF reads (data, little-endian), PIO
 * reads (the first element when count == 1, else use data), SYSREG reads,
 * and everything that came from a hypercall (HYPERCALL, CPU_UP, CPU_DOWN,
 * SEND_IPI: the value goes to rax). Returns -EINVAL for NULL or an exit
 * that takes no value. Call it on the thread that ran the vCPU, between
 * two spk_vcpu_run() calls.
 */
int spk_exit_complete_read(struct spk_exit *exit, uint64_t value);

#ifdef __cplusplus
}
#endif
#endif
