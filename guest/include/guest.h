/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sparkler guest SDK: freestanding C for small guest programs that a
 * sparkler monitor starts directly in long mode at CPL0. A program
 * defines `int main(void)`; its return value goes to the host as a ucall
 * DONE, then the guest powers off.
 */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sparkler/abi.h>

#include <guest_api.h>

/* ---- hypercalls (abi.h) ---- */
static inline uint64_t guest_hypercall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2,
				       uint64_t a3, uint64_t a4, uint64_t a5)
{
	register uint64_t r10 __asm__("r10") = a3;
	register uint64_t r8 __asm__("r8") = a4;
	register uint64_t r9 __asm__("r9") = a5;
	uint64_t ret = nr;

	__asm__ volatile("outl %%eax, %[port]"
			 : "+a"(ret)
			 : [port] "i"(SPK_HC_PORT), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8),
			   "r"(r9)
			 : "memory");
	return ret;
}

static inline uint64_t guest_hc0(uint64_t nr)
{
	return guest_hypercall(nr, 0, 0, 0, 0, 0, 0);
}

int64_t guest_send_ipi(uint32_t cpu, uint8_t vector, uint32_t flags);

/* ---- CPL3 ----
 * User code runs with IOPL 0: its in/out reach only the ports the TSS I/O
 * bitmap opens. The SDK closes every port when the boot CPU starts (the
 * hypercall port too: guest_printf, GUEST_ASSERT and guest_done from CPL3
 * need SPK_HC_PORT opened), so a program opens what its user code needs,
 * from CPL0. The page tables, GDT and TSS the monitor built are
 * supervisor-only: user code touching them takes a #PF. */
/* Run fn(arg) at CPL3 on this CPU's user stack; its result. CPL0 only.
 * Loads the SDK's IDT on this CPU and points the TSS's rsp0 at this CPU's
 * trap stack: interrupts and faults at CPL3 arrive there (guest_irq_set;
 * fn's return is a #UD the SDK recognises, not one of fn's).
 * The monitor's TSS is one for all CPUs: one CPU at a time at CPL3. */
uint64_t guest_run_user(uint64_t (*fn)(uint64_t), uint64_t arg);
/* The same on a stack of the caller's (stack_top 16-byte aligned). */
uint64_t guest_run_user_on(uint64_t (*fn)(uint64_t), uint64_t arg, void *stack_top);
/* Open / close ports [first, first + count) to CPL3 code on every CPU (one
 * TSS). CPL0 only. 0, or -22 (beyond 0xffff, or no TSS bitmap). */
int guest_user_allow_ports(uint32_t first, uint32_t count);
int guest_user_deny_ports(uint32_t first, uint32_t count);

/* ---- interrupts ---- */
struct guest_frame {
	uint64_t rip, cs, rflags, rsp, ss;
};
/* From the handler of a fault taken at CPL3 (frame->cs & 3): when the
 * handler returns, guest_run_user() returns GUEST_USER_ABORTED. */
#define GUEST_USER_ABORTED ((uint64_t)-1)
void guest_user_abort(struct guest_frame *frame);
typedef void (*guest_irq_fn)(uint64_t vector, uint64_t error, struct guest_frame *frame);
/* Install fn for vector and load the IDT on this CPU. */
void guest_irq_set(uint8_t vector, guest_irq_fn fn);
/* Let software interrupts (int3, int n) reach vector from CPL3 too (DPL3 gate). */
void guest_irq_set_user(uint8_t vector);
static inline void guest_sti(void)
{
	__asm__ volatile("sti" ::: "memory");
}
static inline void guest_cli(void)
{
	__asm__ volatile("cli" ::: "memory");
}
static inline void guest_pause(void)
{
	__asm__ volatile("pause" ::: "memory");
}

/* ---- descriptor tables ---- */
/* What sgdt/sidt store and lgdt/lidt load. */
struct guest_dtr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));
static inline struct guest_dtr guest_sgdt(void)
{
	struct guest_dtr d;
	__asm__ volatile("sgdt %0" : "=m"(d));
	return d;
}

/* ---- port I/O, MMIO, MSRs ---- */
static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}


#endif
