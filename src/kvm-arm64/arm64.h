/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KVM/arm64 backend: VM and vCPU setup, memory slots, the in-kernel
 * GICv3 and the architected timer, and the translation of every KVM/arm64
 * exit into the library's exit model (sparkler/exit.h). Not installed.
 *
 * It is not yet behind the backend ops table (core/backend.h), so the
 * library's VM/vCPU API (sparkler/vm.h) has no arm64 backend; these
 * functions are shaped to become those ops (vm_create, mem_slot_add,
 * vcpu_create, vcpu_enter + vcpu_translate = spk_a64_vcpu_step,
 * vcpu_complete, vcpu_kick, vcpu_start = spk_a64_vcpu_power_on,
 * vcpu_set_debug, registers). Until then tests/arm64 drives it directly.
 *
 * Exits (what KVM/arm64 gives, and what this makes of it):
 * - KVM_EXIT_MMIO (a data abort with a valid syndrome, ISV=1, on a GPA
 *   with no memory slot or a write to a read-only one): MMIO with addr,
 *   width, is_write, data. KVM does not pass the syndrome on, so reg,
 *   reg_width and sign_ext come from the load/store instruction at the PC,
 *   decoded here, when the guest runs with its MMU off (the PC is then a
 *   guest-physical address) and the instruction agrees with KVM's width;
 *   else reg is -1. A read completes through mmio.data, and KVM writes the
 *   register (sign-extending as the syndrome says) at the next run.
 * - KVM_EXIT_ARM_NISV (an access KVM cannot emulate: no syndrome, e.g.
 *   ldp or a post-indexed load to MMIO): INTERNAL_ERROR, code
 *   SPK_INTERNAL_NO_SYNDROME, raw = the fault IPA.
 * - KVM_EXIT_HYPERCALL through the SMCCC filter (KVM_ARM_VM_SMCCC_FILTER,
 *   Linux 6.4+), HVC only: the library's hypercalls (function IDs
 *   SPK_A64_HC_BASE + nr, see sparkler/abi.h) as HYPERCALL, nr and x1..x6;
 *   PSCI CPU_ON (32 and 64-bit) as CPU_UP (target MPIDR, entry, context),
 *   PSCI CPU_OFF as CPU_DOWN. The result goes to x0 at the next run. Every
 *   other PSCI function (VERSION, FEATURES, SYSTEM_OFF, SYSTEM_RESET, ...)
 *   stays with KVM.
 * - KVM_EXIT_SYSTEM_EVENT: SHUTDOWN as SYSTEM_DOWN, RESET as RESET (source
 *   SYSTEM_EVENT: PSCI SYSTEM_OFF / SYSTEM_RESET); other types
 *   INTERNAL_ERROR.
 * - KVM_EXIT_DEBUG (KVM_SET_GUEST_DEBUG: single-step, hardware
 *   breakpoints): DEBUG, exception = the ESR's exception class (0x32
 *   software step, 0x30 hardware breakpoint, 0x34 watchpoint, 0x3c brk),
 *   dr6 = the whole ESR, dr7 = FAR, pc = the PC.
 * - KVM_EXIT_FAIL_ENTRY, KVM_EXIT_INTERNAL_ERROR, any other exit, a failing
 *   KVM_RUN: FAIL_ENTRY / INTERNAL_ERROR as on x86.
 * - KVM_RUN ending with EINTR after spk_a64_vcpu_kick(): CANCELLED.
 * Never: PIO (arm64 has no ports), SYSREG (KVM handles or injects UNDEF for
 * every trapped system register; no exit to userspace), HALT (WFI/WFE
 * block inside KVM_RUN until an interrupt), EXTERNAL_INTERRUPT,
 * SEND_IPI (the guest's GICv3 SGIs are the in-kernel GIC's).
 */
#ifndef SPK_KVM_ARM64_H
#define SPK_KVM_ARM64_H

#include <linux/kvm.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sparkler/exit.h>
#include <sparkler/mem.h>

/* The guest-physical layout of the in-kernel GICv3 (as QEMU's virt). */
#define SPK_A64_GICD_BASE   0x08000000ull
#define SPK_A64_GICD_SIZE   0x00010000ull
#define SPK_A64_GICR_BASE   0x080a0000ull
#define SPK_A64_GICR_SIZE   0x00020000ull /* per vCPU */
#define SPK_A64_GIC_NR_IRQS 128           /* SPIs 32..127 */
#define SPK_A64_MAX_VCPUS   32            /* redistributors below 0x08500000 */

/* PSCI function IDs KVM forwards to us (the rest it answers itself). */
#define SPK_PSCI_CPU_OFF   0x84000002u
#define SPK_PSCI_CPU_ON_32 0x84000003u
#define SPK_PSCI_CPU_ON_64 0xc4000003u
/* PSCI return codes (in x0) */
#define SPK_PSCI_SUCCESS          0
#define SPK_PSCI_INVALID_PARAMS   ((uint64_t)-2)
#define SPK_PSCI_ALREADY_ON       ((uint64_t)-4)
#define SPK_PSCI_INTERNAL_FAILURE ((uint64_t)-6)

struct spk_a64_vm {
	int kvm_fd;
	int vm_fd;
	int gic_fd;
	int run_size;
	struct kvm_vcpu_init init; /* the preferred target, PSCI 0.2 */
	uint32_t max_vcpus;
	uint32_t n_vcpus;
	uint32_t next_slot;
	bool gic_ready;
	bool smccc_filter;         /* KVM_ARM_VM_SMCCC_FILTER took our ranges */
	const struct spk_mem *mem; /* for decoding MMIO instructions; may be NULL */
};

struct spk_a64_vcpu {
	struct spk_a64_vm *vm;
	uint32_t id; /* also its MPIDR's Aff0 */
	int fd;
	struct kvm_run *run;
	atomic_bool cancel;
	pthread_t thread;
	atomic_bool has_thread;
	/* what the last exit leaves to write back at the next run */
	struct spk_exit *last_exit;
};

/* Open /dev/kvm, create a VM with room for max_vcpus (1..SPK_A64_MAX_VCPUS),
 * the preferred vCPU target with PSCI 0.2, the SMCCC filter (when the host
 * has it: without it HVC never reaches us, see has_smccc_filter), and the
 * in-kernel GICv3 at the addresses above. -errno with a message. */
int spk_a64_vm_open(struct spk_a64_vm *vm, uint32_t max_vcpus, const struct spk_mem *mem);
void spk_a64_vm_close(struct spk_a64_vm *vm);
/* Give the guest host memory [host, host+size) at gpa (4 KiB aligned). */
int spk_a64_vm_map(struct spk_a64_vm *vm, uint64_t gpa, uint64_t size, void *host, bool readonly);
/* Create vCPU id (ids in order from 0); powered_off: it waits for a PSCI
 * CPU_ON (spk_a64_vcpu_power_on). */
int spk_a64_vcpu_open(struct spk_a64_vm *vm, uint32_t id, bool powered_off,
                      struct spk_a64_vcpu *vcpu);
void spk_a64_vcpu_close(struct spk_a64_vcpu *vcpu);
/* Initialise the GIC once every vCPU exists (before the first run). */
int spk_a64_vm_finalize(struct spk_a64_vm *vm);
/* Start at pc in EL1h, interrupts masked, MMU off, with x0 = arg. */
int spk_a64_vcpu_set_entry(struct spk_a64_vcpu *vcpu, uint64_t pc, uint64_t arg);
/* A powered-off vCPU (or one that did CPU_OFF) starts at pc with x0 = arg. */
int spk_a64_vcpu_power_on(struct spk_a64_vcpu *vcpu, uint64_t pc, uint64_t arg);
/* x0..x30 (n 0..30), 31 = SP_EL1, 32 = PC, 33 = PSTATE. */
int spk_a64_vcpu_get_reg(struct spk_a64_vcpu *vcpu, unsigned n, uint64_t *value);
int spk_a64_vcpu_set_reg(struct spk_a64_vcpu *vcpu, unsigned n, uint64_t value);
/* KVM_SET_GUEST_DEBUG: single-step, and up to 16 hardware breakpoints at
 * the addresses given (n 0 with bp NULL: none). */
int spk_a64_vcpu_set_debug(struct spk_a64_vcpu *vcpu, bool single_step, const uint64_t *bp,
                           unsigned n);
/* Run until the next exit that needs the monitor: complete the previous
 * exit (an MMIO read's data, a hypercall's result in x0), KVM_RUN, and
 * translate. Call it from one thread per vCPU. */
int spk_a64_vcpu_step(struct spk_a64_vcpu *vcpu, struct spk_exit *exit);
/* Make the vCPU's KVM_RUN return (CANCELLED). Any thread; async-signal-safe
 * once the vCPU has run on its thread. */
void spk_a64_vcpu_kick(struct spk_a64_vcpu *vcpu);
/* Raise or lower SPI spi (32..SPK_A64_GIC_NR_IRQS-1). */
int spk_a64_irq_line(struct spk_a64_vm *vm, uint32_t spi, bool level);

/*
 * Decode the AArch64 load/store at insn for an MMIO exit of width bytes:
 * the register (0..30; 31 is the zero register for a store), its width in
 * bits and whether a load sign-extends. false when insn is not a
 * single-register load/store of that width. Pure (tests/arm64 checks it
 * on any host).
 */
bool spk_a64_decode_ldst(uint32_t insn, unsigned width, int8_t *reg, uint8_t *reg_width,
                         bool *sign_ext);

#endif
