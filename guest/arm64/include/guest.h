/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sparkler guest SDK on arm64: freestanding C for small guest programs
 * that a monitor starts at EL1 with the MMU off (guest-physical =
 * virtual), interrupts masked. The API is guest_api.h's, as on x86-64;
 * here the hypercalls are SMCCC calls through `hvc #0` (sparkler/abi.h),
 * and power and vCPUs go through PSCI.
 */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sparkler/abi.h>

#include <guest_api.h>

/* One SMCCC call: function ID in x0, arguments in x1..x6, result in x0. */
static inline uint64_t guest_smccc(uint64_t fn, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
                                   uint64_t a4, uint64_t a5)
{
	register uint64_t x0 __asm__("x0") = fn;
	register uint64_t x1 __asm__("x1") = a0;
	register uint64_t x2 __asm__("x2") = a1;
	register uint64_t x3 __asm__("x3") = a2;
	register uint64_t x4 __asm__("x4") = a3;
	register uint64_t x5 __asm__("x5") = a4;
	register uint64_t x6 __asm__("x6") = a5;

	__asm__ volatile("hvc #0"
	                 : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3)
	                 : "r"(x4), "r"(x5), "r"(x6)
	                 : "memory");
	return x0;
}

/* A library or embedder hypercall (abi.h numbers). */
static inline uint64_t guest_hypercall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2,
                                       uint64_t a3, uint64_t a4, uint64_t a5)
{
	return guest_smccc(SPK_A64_HC_BASE + nr, a0, a1, a2, a3, a4, a5);
}

static inline uint64_t guest_hc0(uint64_t nr)
{
	return guest_hypercall(nr, 0, 0, 0, 0, 0, 0);
}

/* PSCI function IDs the SDK uses, and CPU_ON's results (guest_cpu_on
 * returns these on arm64: 0, -2 invalid parameters, -4 already on). */
#define GUEST_PSCI_CPU_OFF        0x84000002u
#define GUEST_PSCI_CPU_ON         0xc4000003u
#define GUEST_PSCI_SYSTEM_OFF     0x84000008u
#define GUEST_PSCI_SYSTEM_RESET   0x84000009u
#define GUEST_PSCI_INVALID_PARAMS (-2)
#define GUEST_PSCI_ALREADY_ON     (-4)

/* ---- exceptions ---- */
/* What the vectors save; a handler may change elr (where eret goes). */
struct guest_frame {
	uint64_t x[31];
	uint64_t elr, spsr, esr, far;
	uint64_t pad;
};
/* kind: 0..15, the vector's slot (4 sync, 5 IRQ, 6 FIQ, 7 SError from
 * EL1 with SP_ELx). */
typedef void (*guest_exception_fn)(uint64_t kind, struct guest_frame *frame);
/* Handle every exception with fn (NULL: the default, which reports an
 * assert to the host with the ESR and ELR, and powers off). */
void guest_exception_set(guest_exception_fn fn);
#define GUEST_ESR_EC(esr) (((esr) >> 26) & 0x3f)

static inline void guest_pause(void)
{
	__asm__ volatile("yield" ::: "memory");
}

/* ---- interrupts: the in-kernel GICv3 (abi.h's layout) and the timer ---- */
/* IRQs are taken (PSTATE.I clear) or not; wfi waits for one pending,
 * masked or not. */
static inline void guest_irq_enable(void)
{
	__asm__ volatile("msr daifclr, #2\n\tisb" ::: "memory");
}

static inline void guest_irq_disable(void)
{
	__asm__ volatile("msr daifset, #2" ::: "memory");
}

static inline void guest_wfi(void)
{
	__asm__ volatile("dsb sy\n\twfi" ::: "memory");
}

/* The distributor (affinity routing, both groups on), this vCPU's
 * redistributor awake and the CPU interface (system registers, priority
 * mask open, group 1 on). Once per vCPU (the distributor part is
 * idempotent). */
void guest_gic_init(void);
/* Enable / disable one interrupt (INTID: 16..31 PPIs of this vCPU,
 * 32.. SPIs, routed to vCPU 0), group 1, priority 0x80. */
void guest_gic_enable(uint32_t intid);
void guest_gic_disable(uint32_t intid);
/* Acknowledge the highest pending interrupt (ICC_IAR1_EL1; 1023: none)
 * and end it (ICC_EOIR1_EL1). */
uint32_t guest_gic_ack(void);
void guest_gic_eoi(uint32_t intid);
/* The virtual timer (PPI 27): fire once after ticks of CNTFRQ, or stop
 * (disabled: its level goes down). */
void guest_timer_start(uint64_t ticks);
void guest_timer_stop(void);
uint64_t guest_timer_freq(void);

#endif
