/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CPL3 boundary the guest SDK keeps (tests/guest/guest_tests.c, case
 * cpl3_boundary): user code (guest_run_user) faults with #GP on every
 * port the program did not open, the hypercall port included, and with
 * #PF on the page tables, GDT and TSS the monitor built; ports opened with
 * guest_user_allow_ports() work, and close again. Each stage reports
 * (stage, the vector user code faulted with or NO_FAULT, the #PF error
 * code, the result) as a ucall SYNC; the host checks them.
 */
#include <guest.h>

#define NO_FAULT 0x100

static volatile uint64_t fault_vec, fault_err;

static void on_fault(uint64_t vector, uint64_t error, struct guest_frame *frame)
{
	GUEST_ASSERT_EQ(frame->cs & 3, 3); /* only user code faults here */
	fault_vec = vector;
	fault_err = error;
	guest_user_abort(frame);
}

static uint64_t do_out(uint64_t port)
{
	outb((uint16_t)port, 1);
	return 0;
}

static uint64_t do_write(uint64_t addr)
{
	*(volatile uint8_t *)addr = 0x5a;
	return 0;
}

static uint64_t do_read(uint64_t addr)
{
	return *(volatile uint8_t *)addr;
}

static uint64_t do_hypercall(uint64_t unused)
{
	return guest_hc0(SPK_HC_VCPU_ID) + 0x1000;
}

static void stage(uint64_t n, uint64_t (*fn)(uint64_t), uint64_t arg)
{
	fault_vec = NO_FAULT;
	fault_err = 0;
	uint64_t r = guest_run_user(fn, arg);
	guest_ucall(SPK_UCALL_SYNC, n, fault_vec, fault_err, r, 0);
}

int main(void)
{
	struct guest_dtr gdtr = guest_sgdt();
	uint64_t cr3;

	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	guest_irq_set(13, on_fault);
	guest_irq_set(14, on_fault);

	stage(1, do_out, 0x80);                      /* closed port: #GP */
	stage(2, do_hypercall, 0);                   /* the hypercall port is closed too */
	stage(3, do_write, cr3);                     /* the PML4: #PF */
	stage(4, do_write, gdtr.base);               /* the GDT: #PF */
	stage(5, do_read, gdtr.base + 0x100 + 0x68); /* the TSS's bitmap: #PF */
	GUEST_ASSERT_EQ(guest_user_allow_ports(0x80, 1), 0);
	stage(6, do_out, 0x80); /* opened: no fault */
	GUEST_ASSERT_EQ(guest_user_allow_ports(SPK_HC_PORT, 4), 0);
	stage(7, do_hypercall, 0); /* opened: the hypercall runs */
	GUEST_ASSERT_EQ(guest_user_deny_ports(0x80, 1), 0);
	stage(8, do_out, 0x80); /* closed again */
	GUEST_ASSERT_EQ(guest_user_allow_ports(0xffff, 2), -22);
	return 0;
}
