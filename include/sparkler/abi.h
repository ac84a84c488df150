/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest ABI: numbers shared by the monitor and guest code. This header
 * is freestanding (only <stdint.h>) so that guest programs include it too.
 *
 * Hypercalls (x86-64). KVM answers vmcall itself, so a hypercall is a
 * 4-byte `out %eax, $SPK_HC_PORT`: the number in rax, up to six arguments
 * in rdi, rsi, rdx, r10, r8, r9 (the Linux syscall order), the result back
 * in rax. The immediate-port form of out leaves rdx free for an argument.
 * From CPL3 the port must be open in the TSS I/O bitmap (all four of
 * SPK_HC_PORT..+3 for the 4-byte out; spk_x86_long_mode_allow_ports(),
 * guest_user_allow_ports()); spk_x86_build_long_mode() closes it, and
 * IOPL 3 is no boundary (VT-x/AMD-V let it open every port). Only a 4-byte
 * write is a hypercall; other widths and reads of the port behave like
 * any unclaimed port (reads all ones, writes dropped: see exit.h's
 * HYPERCALL). Numbers below SPK_HC_EMBEDDER_BASE are
 * the library's; numbers from SPK_HC_EMBEDDER_BASE to SPK_HC_MAX are the
 * embedder's (spk_hypercall_register()).
 */
#ifndef SPARKLER_ABI_H
#define SPARKLER_ABI_H

#include <stdint.h>

#define SPK_HC_PORT 0xe4

/*
 * Hypercalls (arm64). An SMCCC call through `hvc #0`: the function ID in
 * x0 is SPK_A64_HC_BASE + the number below (a fast SMC64 call of the OEM
 * service range, which KVM's SMCCC filter forwards to the monitor), up to
 * six arguments in x1..x6, the result back in x0. The same numbers as on
 * x86-64; but CPU_ON, CPU_OFF, SYSTEM_OFF and SYSTEM_RESET are PSCI's own
 * calls on arm64 (the guest SDK uses those: CPU_ON and CPU_OFF come to
 * the monitor as CPU_UP/CPU_DOWN, SYSTEM_OFF/SYSTEM_RESET through KVM as
 * SYSTEM_DOWN/RESET). Needs Linux 6.4+ on the host (the SMCCC filter).
 */
#define SPK_A64_HC_BASE 0xc3000000u

/*
 * The guest-physical layout of the in-kernel GICv3 the arm64 backend
 * gives a VM with SPK_IRQCHIP_KERNEL (the addresses of QEMU's virt
 * machine): the distributor, then one 128 KiB redistributor (RD and SGI
 * frames) per vCPU, at most SPK_A64_MAX_VCPUS. SPIs are INTIDs 32 ..
 * 32 + SPK_A64_GIC_NR_SPIS - 1; spk_vm_irq_line()'s gsi n is INTID 32 + n.
 * The architected timer: PPI 27 (virtual), 30 (physical, EL1).
 */
#define SPK_A64_GICD_BASE      0x08000000ull
#define SPK_A64_GICD_SIZE      0x00010000ull
#define SPK_A64_GICR_BASE      0x080a0000ull
#define SPK_A64_GICR_SIZE      0x00020000ull /* per vCPU */
#define SPK_A64_MAX_VCPUS      32
#define SPK_A64_GIC_NR_SPIS    96
#define SPK_A64_TIMER_VIRT_PPI 27
#define SPK_A64_TIMER_PHYS_PPI 30

enum spk_hc_nr {
	SPK_HC_CPU_ON = 1,        /* (target cpu, entry, arg) -> 0 or -errno */
	SPK_HC_CPU_OFF = 2,       /* (state): does not return */
	SPK_HC_SEND_IPI = 3,      /* (target cpu, vector, flags SPK_IPI_*) */
	SPK_HC_SYSTEM_OFF = 4,    /* (): does not return */
	SPK_HC_SYSTEM_RESET = 5,  /* (): does not return */
	SPK_HC_CONSOLE_WRITE = 6, /* (gpa, len) -> bytes written or -errno */
	SPK_HC_UCALL = 7,         /* (type, a0..a4): see SPK_UCALL_* */
	SPK_HC_VCPU_ID = 8,       /* () -> the calling vCPU's id */
	SPK_HC_FN = 9,            /* (op SPK_FN_OP_*, ...): function sandboxes, fn_abi.h */
	SPK_HC_EMBEDDER_BASE = 0x100,
	SPK_HC_MAX = 0xffff,
};

/* flags of SPK_HC_SEND_IPI */
#define SPK_IPI_TO_SELF (1u << 0)
#define SPK_IPI_TO_ALL  (1u << 1) /* all but self, unless TO_SELF too */

/* The most bytes one SPK_HC_CONSOLE_WRITE takes. */
#define SPK_HC_CONSOLE_MAX 4096

/*
 * ucall: how a test guest talks to its host test loop (after the Linux KVM
 * selftests). The first argument is the type; the rest depend on it.
 */
enum spk_ucall_type {
	SPK_UCALL_DONE = 1,   /* (value): the guest finished its test */
	SPK_UCALL_SYNC = 2,   /* (stage, value): a checkpoint */
	SPK_UCALL_ASSERT = 3, /* (expr gpa, file gpa, line, a, b): failed assert */
	SPK_UCALL_PRINT = 4,  /* (gpa, len): a line of text */
};

/* How long strings a ucall points at may be (including the NUL). */
#define SPK_UCALL_STR_MAX 256

/* Negative errno values the library returns to guests in rax. */
#define SPK_HC_EINVAL ((uint64_t)-22)
#define SPK_HC_ENOSYS ((uint64_t)-38)
#define SPK_HC_EFAULT ((uint64_t)-14)
#define SPK_HC_EBUSY  ((uint64_t)-16)
#define SPK_HC_ENODEV ((uint64_t)-19)

#endif
