// SPDX-License-Identifier: Apache-2.0
/*
 * Device state: for each device model, drive a device into a state the
 * guest could leave it in, save it, load it into a fresh device, and
 * check both then behave the same (every register read the same, with
 * the same side effects, the same interrupt line) and save the same
 * bytes. Then hostile sections: each refused with a message naming the
 * device and the field, and the device unchanged.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include <sparkler/devices.h>
#include <sparkler/log.h>
#include <sparkler/platform.h>
#include <sparkler/snapshot.h>

#include "../devices/devtest.h"

#include "snaptest.h"

/* ---- UART ---- */

#define COM 0x3f8

static void uart_tx(void *ctx, const uint8_t *buf, size_t n)
{
	(*(size_t *)ctx) += n;
}

static void test_uart(void **state)
{
	struct fake_irq ia = {0}, ib = {0};
	size_t txa = 0, txb = 0;
	struct spk_uart_config ca = {"com1", fake_line(&ia, 4), uart_tx, &txa};
	struct spk_uart_config cb = {"com1", fake_line(&ib, 4), uart_tx, &txb};
	struct spk_uart *a, *b;
	const struct spk_bus_ops *ops = spk_uart_ops();

	assert_int_equal(spk_uart_new(&ca, &a), 0);
	assert_int_equal(spk_uart_new(&cb, &b), 0);
	/* a driver's set-up: divisor, 8N1, FIFO with trigger 8, OUT2, interrupts */
	dev_wr(ops, a, COM, 3, 1, 0x80);
	dev_wr(ops, a, COM, 0, 1, 0x01);
	dev_wr(ops, a, COM, 1, 1, 0x00);
	dev_wr(ops, a, COM, 3, 1, 0x03);
	dev_wr(ops, a, COM, 2, 1, 0x81);
	dev_wr(ops, a, COM, 4, 1, 0x0b);
	dev_wr(ops, a, COM, 7, 1, 0x5a);
	dev_wr(ops, a, COM, 1, 1, 0x07);
	assert_int_equal(spk_uart_receive(a, (const uint8_t *)"hello", 5), 5);
	assert_true(ia.level);
	assert_int_equal(dev_rd(ops, a, COM, 0, 1), 'h'); /* the ring's head moves */

	round_trip("com1", spk_uart_state_ops(), a, b);
	assert_true(ib.level);                 /* the line follows the loaded state */
	for (unsigned reg = 0; reg < 8; reg++) /* IIR, LSR, RBR: reads with effects, same on both */
		for (int k = 0; k < 3; k++)
			assert_int_equal(dev_rd(ops, a, COM, reg, 1), dev_rd(ops, b, COM, reg, 1));
	assert_int_equal(spk_uart_rx_room(a), spk_uart_rx_room(b));
	dev_wr(ops, a, COM, 0, 1, 'x');
	dev_wr(ops, b, COM, 0, 1, 'x');
	assert_int_equal(txa, 1);
	assert_int_equal(txb, 1);
	assert_int_equal(ia.level, ib.level);

	const struct patch bad[] = {
	    {"ier", SPK_SNAP_U8, 0x10, NULL, 0, "bits outside 0xf"},
	    {"mcr", SPK_SNAP_U8, 0x20, NULL, 0, "bits outside"},
	    {"fcr", SPK_SNAP_U8, 0x08, NULL, 0, "programs a FIFO that is off"},
	    {"fcr", SPK_SNAP_U8, 0x21, NULL, 0, "bits outside"},
	    {"lsr_errors", SPK_SNAP_U8, 0x01, NULL, 0, "bits outside"},
	    {"msr", SPK_SNAP_U8, 0x00, NULL, 0, "the inputs are not"},
	    {"thr_ipending", SPK_SNAP_U8, 2, NULL, 0, "2 is more than 1"},
	    {"rx", SPK_SNAP_BYTES, 0, "0123456789abcdefg", 17, "17 bytes, the FIFO holds 16"},
	    {"lcr", SPK_SNAP_STR, 0, NULL, 0, "a str, not a u8"},
	};
	hostile("com1", spk_uart_state_ops(), b, bad, sizeof(bad) / sizeof(bad[0]));
	spk_uart_free(a);
	spk_uart_free(b);
}

/* ---- i8042 ---- */

static void test_i8042(void **state)
{
	struct fake_irq ia = {0}, ib = {0};
	struct fake_stop sa = {0}, sb = {0};
	struct spk_i8042_config ca = {fake_line(&ia, 1), fake_stop_fn, &sa};
	struct spk_i8042_config cb = {fake_line(&ib, 1), fake_stop_fn, &sb};
	struct spk_i8042 *a, *b;
	const struct spk_bus_ops *ops = spk_i8042_ops();

	assert_int_equal(spk_i8042_new(&ca, &a), 0);
	assert_int_equal(spk_i8042_new(&cb, &b), 0);
	dev_wr(ops, a, 0x64, 0, 1, 0x60); /* write the CTR: parameter pending */
	round_trip("i8042", spk_i8042_state_ops(), a, b);
	dev_wr(ops, a, 0x60, 0, 1, 0x47);
	dev_wr(ops, b, 0x60, 0, 1, 0x47);
	dev_wr(ops, a, 0x60, 0, 1, 0xed); /* SET_LEDS: keyboard parameter pending */
	dev_wr(ops, b, 0x60, 0, 1, 0xed);
	assert_int_equal(spk_i8042_ctrl_alt_del(a), 0);
	round_trip("i8042", spk_i8042_state_ops(), a, b);
	assert_true(ib.level);
	for (int k = 0; k < 12; k++) {
		assert_int_equal(dev_rd(ops, a, 0x64, 0, 1), dev_rd(ops, b, 0x64, 0, 1));
		assert_int_equal(dev_rd(ops, a, 0x60, 0, 1), dev_rd(ops, b, 0x60, 0, 1));
	}
	assert_int_equal(ia.level, ib.level);
	dev_wr(ops, a, 0x60, 0, 1, 0x02);
	dev_wr(ops, b, 0x60, 0, 1, 0x02);
	assert_int_equal(dev_rd(ops, a, 0x60, 0, 1), dev_rd(ops, b, 0x60, 0, 1));

	const struct patch bad[] = {
	    {"queue", SPK_SNAP_BYTES, 0, "0123456789abcdefg", 17, "the queue holds 16"},
	    {"ram", SPK_SNAP_BYTES, 0, "abc", 3, "3 bytes, not 32"},
	    {"status", SPK_SNAP_U8, 0x01, NULL, 0, "bits outside"},
	    {"cmd", SPK_SNAP_U8, 0xaa, NULL, 0, "not a command that waits"},
	    {"kbd_cmd", SPK_SNAP_U8, 0xff, NULL, 0, "not a keyboard command"},
	};
	hostile("i8042", spk_i8042_state_ops(), b, bad, sizeof(bad) / sizeof(bad[0]));
	spk_i8042_free(a);
	spk_i8042_free(b);
}

/* ---- RTC ---- */

static time_t fixed_now(void *ctx)
{
	return *(time_t *)ctx;
}

static void test_rtc(void **state)
{
	time_t now = 1765100000;
	struct spk_rtc_config cfg = {fixed_now, &now};
	struct spk_rtc *a, *b;
	const struct spk_bus_ops *ops = spk_rtc_ops();

	assert_int_equal(spk_rtc_new(&cfg, &a), 0);
	assert_int_equal(spk_rtc_new(&cfg, &b), 0);
	/* the guest sets the year to 2031 and binary mode, writes CMOS RAM */
	dev_wr(ops, a, 0x70, 0, 1, 0x0b);
	dev_wr(ops, a, 0x70, 1, 1, 0x06);
	dev_wr(ops, a, 0x70, 0, 1, 0x09);
	dev_wr(ops, a, 0x70, 1, 1, 31);
	dev_wr(ops, a, 0x70, 0, 1, 0x40);
	dev_wr(ops, a, 0x70, 1, 1, 0x99);
	dev_wr(ops, a, 0x70, 0, 1, 0x0b);
	dev_wr(ops, a, 0x70, 1, 1, 0x86); /* SET: the latch holds */
	round_trip("rtc", spk_rtc_state_ops(), a, b);
	dev_wr(ops, a, 0x70, 1, 1, 0x06);
	dev_wr(ops, b, 0x70, 1, 1, 0x06);
	now += 3600;
	for (unsigned reg = 0; reg < 0x80; reg++) {
		dev_wr(ops, a, 0x70, 0, 1, reg);
		dev_wr(ops, b, 0x70, 0, 1, reg);
		assert_int_equal(dev_rd(ops, a, 0x70, 1, 1), dev_rd(ops, b, 0x70, 1, 1));
	}
	dev_wr(ops, b, 0x70, 0, 1, 0x09);
	assert_int_equal(dev_rd(ops, b, 0x70, 1, 1), 31);

	uint8_t ram[128] = {0};

	ram[0x0a] = 0xa6;
	const struct patch bad[] = {
	    {"index", SPK_SNAP_U8, 0x80, NULL, 0, "128 is more than 127"},
	    {"ram", SPK_SNAP_BYTES, 0, ram, sizeof(ram), "update in progress"},
	    {"offset", SPK_SNAP_U64, 1ull << 62, NULL, 0, "beyond years"},
	    {"latch", SPK_SNAP_BYTES, 0, ram, 4, "4 bytes, not 8"},
	};
	hostile("rtc", spk_rtc_state_ops(), b, bad, sizeof(bad) / sizeof(bad[0]));
	ram[0x0a] = 0x26;
	ram[0x0b] = 0x90;
	const struct patch bad2[] = {{"ram", SPK_SNAP_BYTES, 0, ram, sizeof(ram), "SET and UIE"}};
	hostile("rtc", spk_rtc_state_ops(), b, bad2, 1);
	spk_rtc_free(a);
	spk_rtc_free(b);
}

/* ---- ACPI PM ---- */

static void test_acpi_pm(void **state)
{
	struct fake_irq ia = {0}, ib = {0};
	struct fake_stop sa = {0}, sb = {0};
	struct spk_acpi_pm_config ca = {5, 0x0e, fake_stop_fn, &sa, fake_line(&ia, 9)};
	struct spk_acpi_pm_config cb = {5, 0x0e, fake_stop_fn, &sb, fake_line(&ib, 9)};
	struct spk_acpi_pm *a, *b;
	const struct spk_bus_ops *ops = spk_acpi_pm_ops();

	assert_int_equal(spk_acpi_pm_new(&ca, &a), 0);
	assert_int_equal(spk_acpi_pm_new(&cb, &b), 0);
	dev_wr(ops, a, SPK_PC_GPE0_BLK, 2, 1, 0x01); /* GPE0_EN bit 0 */
	dev_wr(ops, a, SPK_PC_PM1A_EVT, 2, 2, 0x0100);
	dev_wr(ops, a, SPK_PC_PM1A_CNT, 0, 1, 0x02);
	spk_acpi_pm_power_button(a);
	assert_true(ia.level);
	round_trip("acpi_pm", spk_acpi_pm_state_ops(), a, b);
	assert_true(ib.level);
	for (unsigned off = 0; off < 4; off++) {
		assert_int_equal(dev_rd(ops, a, SPK_PC_GPE0_BLK, off, 1),
		                 dev_rd(ops, b, SPK_PC_GPE0_BLK, off, 1));
		assert_int_equal(dev_rd(ops, a, SPK_PC_PM1A_EVT, off, 1),
		                 dev_rd(ops, b, SPK_PC_PM1A_EVT, off, 1));
	}
	assert_int_equal(dev_rd(ops, a, SPK_PC_PM1A_CNT, 0, 2),
	                 dev_rd(ops, b, SPK_PC_PM1A_CNT, 0, 2));
	dev_wr(ops, b, SPK_PC_GPE0_BLK, 0, 1, 0x01); /* W1C */
	assert_false(ib.level);
	/* S5 still powers off */
	dev_wr(ops, b, SPK_PC_PM1A_CNT, 1, 1, (5 << 2) | 0x20);
	assert_int_equal(sb.down, 1);

	const struct patch bad[] = {
	    {"pm1_sts", SPK_SNAP_U16, 0x0001, NULL, 0, "bits outside 0x8000"},
	    {"pm1_en", SPK_SNAP_U16, 0x8000, NULL, 0, "bits outside"},
	    {"pm1_cnt", SPK_SNAP_U16, 0x2000, NULL, 0, "bits outside"},
	    {"gpe0_sts", SPK_SNAP_U16, 0x0004, NULL, 0, "bits outside 0x3"},
	    {"gpe0_en", SPK_SNAP_U16, 0x0100, NULL, 0, "bits outside 0x3"},
	};
	hostile("acpi_pm", spk_acpi_pm_state_ops(), b, bad, sizeof(bad) / sizeof(bad[0]));
	spk_acpi_pm_free(a);
	spk_acpi_pm_free(b);
}

/* ---- VM generation ID ---- */

struct genid_env {
	uint8_t *ram;
	struct spk_mem *mem;
	unsigned notified;
	int notify_rc;
};

#define GENID_GPA 0x1ff0

static int genid_notify(void *ctx)
{
	struct genid_env *e = ctx;

	e->notified++;
	return e->notify_rc;
}

static void genid_env_init(struct genid_env *e)
{
	memset(e, 0, sizeof(*e));
	e->ram = aligned_alloc(4096, 2 * 4096);
	memset(e->ram, 0, 2 * 4096);
	assert_int_equal(spk_mem_new(&e->mem), 0);
	assert_int_equal(spk_mem_add(e->mem, 0, 2 * 4096, SPK_MEM_RAM, e->ram, "ram"), 0);
}

static struct spk_vmgenid *genid_new(struct genid_env *e)
{
	const struct spk_vmgenid_config c = {e->mem, GENID_GPA, genid_notify, e};
	struct spk_vmgenid *g;

	assert_int_equal(spk_vmgenid_new(&c, &g), 0);
	return g;
}

/*
 * The ID is in guest memory where the config says and in the device's
 * copy; set writes a given or a random one and notifies; a load (restore,
 * clone, reset) checks the address and makes a new generation.
 */
static void test_vmgenid(void **state)
{
	struct genid_env ea, eb;
	uint8_t ia[SPK_VMGENID_LEN], ib[SPK_VMGENID_LEN], saved[SPK_VMGENID_LEN];
	const uint8_t mine[SPK_VMGENID_LEN] = {1, 2,  3,  4,  5,  6,  7,  8,
	                                       9, 10, 11, 12, 13, 14, 15, 16};
	struct spk_vmgenid *a, *b;

	genid_env_init(&ea);
	genid_env_init(&eb);
	a = genid_new(&ea);
	b = genid_new(&eb);
	/* a random ID at boot, in memory, no notification */
	assert_int_equal(spk_vmgenid_get(a, ia), 0);
	assert_memory_equal(ea.ram + GENID_GPA, ia, SPK_VMGENID_LEN);
	assert_int_equal(spk_vmgenid_get(b, ib), 0);
	assert_memory_not_equal(ia, ib, SPK_VMGENID_LEN);
	assert_int_equal(ea.notified, 0);
	assert_int_equal(spk_vmgenid_address(a), GENID_GPA);
	/* set: given bytes, then random ones; each notifies */
	assert_int_equal(spk_vmgenid_set(a, mine), 0);
	assert_memory_equal(ea.ram + GENID_GPA, mine, SPK_VMGENID_LEN);
	assert_int_equal(spk_vmgenid_set(a, NULL), 0);
	assert_memory_not_equal(ea.ram + GENID_GPA, mine, SPK_VMGENID_LEN);
	assert_int_equal(ea.notified, 2);
	assert_int_equal(spk_vmgenid_changes(a), 2);
	/* the guest scribbles over the page: get answers what the monitor wrote */
	assert_int_equal(spk_vmgenid_get(a, ia), 0);
	memset(ea.ram + GENID_GPA, 0x55, SPK_VMGENID_LEN);
	assert_int_equal(spk_vmgenid_get(a, saved), 0);
	assert_memory_equal(ia, saved, SPK_VMGENID_LEN);

	/* a load into b: a new ID, neither a's nor b's old one, written and notified */
	void *bytes;
	size_t nbytes;
	struct spk_snap_file *f = save_one("vmgenid", spk_vmgenid_state_ops(), a, &bytes, &nbytes);
	assert_int_equal(spk_snap_load_device(f, "vmgenid", spk_vmgenid_state_ops(), b), 0);
	assert_int_equal(spk_vmgenid_get(b, saved), 0);
	assert_memory_not_equal(saved, ia, SPK_VMGENID_LEN);
	assert_memory_not_equal(saved, ib, SPK_VMGENID_LEN);
	assert_memory_equal(eb.ram + GENID_GPA, saved, SPK_VMGENID_LEN);
	assert_int_equal(eb.notified, 1);
	assert_int_equal(spk_vmgenid_changes(b), 1);
	spk_snap_close(f);
	free(bytes);

	/* hostile sections: another address, a short ID; b unchanged, not notified */
	const uint8_t short_id[8] = {0};
	struct patch bad[] = {
	    {"gpa", SPK_SNAP_U64, 0x2000, NULL, 0, "this VM's ID is at 0x1ff0"},
	    {"id", SPK_SNAP_BYTES, 0, short_id, sizeof(short_id), "id"},
	};
	f = save_one("vmgenid", spk_vmgenid_state_ops(), a, &bytes, &nbytes);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct spk_snap_file *pf = patched(f, &bad[i]);

		assert_int_equal(spk_snap_load_device(pf, "vmgenid", spk_vmgenid_state_ops(), b),
		                 -EINVAL);
		assert_non_null(strstr(spk_last_error(), bad[i].expect));
		assert_int_equal(spk_vmgenid_get(b, ib), 0);
		assert_memory_equal(ib, saved, SPK_VMGENID_LEN);
		assert_int_equal(eb.notified, 1);
		spk_snap_close(pf);
	}
	spk_snap_close(f);
	free(bytes);

	/* a notifier that fails: set says so (the ID is written) */
	eb.notify_rc = -EIO;
	assert_int_equal(spk_vmgenid_set(b, mine), -EIO);
	assert_memory_equal(eb.ram + GENID_GPA, mine, SPK_VMGENID_LEN);

	/* refusals: NULLs, unaligned, outside memory */
	struct spk_vmgenid *g = (void *)1;
	struct spk_vmgenid_config c = {ea.mem, GENID_GPA + 8, NULL, NULL};
	assert_int_equal(spk_vmgenid_new(&c, &g), -EINVAL);
	assert_null(g);
	c.gpa = 2 * 4096;
	assert_int_equal(spk_vmgenid_new(&c, &g), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "not guest memory"));
	c.gpa = UINT64_MAX - 15;
	assert_int_equal(spk_vmgenid_new(&c, &g), -EINVAL);
	c.mem = NULL;
	c.gpa = GENID_GPA;
	assert_int_equal(spk_vmgenid_new(&c, &g), -EINVAL);
	assert_int_equal(spk_vmgenid_new(NULL, &g), -EINVAL);
	assert_int_equal(spk_vmgenid_new(&c, NULL), -EINVAL);
	assert_int_equal(spk_vmgenid_set(NULL, mine), -EINVAL);
	assert_int_equal(spk_vmgenid_get(NULL, ia), -EINVAL);
	assert_int_equal(spk_vmgenid_get(a, NULL), -EINVAL);
	assert_int_equal(spk_vmgenid_address(NULL), 0);
	assert_int_equal(spk_vmgenid_changes(NULL), 0);
	spk_vmgenid_free(NULL);

	spk_vmgenid_free(a);
	spk_vmgenid_free(b);
	spk_mem_free(ea.mem);
	spk_mem_free(eb.mem);
	free(ea.ram);
	free(eb.ram);
}

/* ---- boot timer ---- */

static void report(void *ctx, uint64_t ns)
{
	(*(unsigned *)ctx)++;
}

static void test_boot_timer(void **state)
{
	unsigned ra = 0, rb = 0;
	struct spk_boot_timer_config ca = {{0, 0}, report, &ra}, cb = {{0, 0}, report, &rb};
	struct spk_boot_timer *a, *b;
	const struct spk_bus_ops *ops = spk_boot_timer_ops();

	assert_int_equal(spk_boot_timer_new(&ca, &a), 0);
	assert_int_equal(spk_boot_timer_new(&cb, &b), 0);
	dev_wr(ops, a, 0, 0, 1, SPK_PC_BOOT_TIMER_MAGIC);
	assert_int_equal(ra, 1);
	round_trip("boot_timer", spk_boot_timer_state_ops(), a, b);
	dev_wr(ops, b, 0, 0, 1, SPK_PC_BOOT_TIMER_MAGIC);
	assert_int_equal(rb, 0); /* it had reported before the snapshot */
	const struct patch bad[] = {{"reported", SPK_SNAP_U8, 7, NULL, 0, "7 is more than 1"}};
	hostile("boot_timer", spk_boot_timer_state_ops(), b, bad, 1);
	spk_boot_timer_free(a);
	spk_boot_timer_free(b);
}

/* ---- the checked-in fixture (tests/unit/snapshot/fixture-v1.*) ----
 *
 * Written by format version 1 (`test_dev_state --write-fixture DIR`);
 * every later version must keep loading it: a format change that breaks
 * this test breaks users' snapshot files.
 */

struct legacy {
	struct fake_irq irq[3];
	struct fake_stop stop[2];
	time_t now;
	struct spk_uart *uart;
	struct spk_i8042 *kbd;
	struct spk_rtc *rtc;
	struct spk_acpi_pm *pm;
	struct spk_boot_timer *bt;
	struct spk_mem *mem;
	uint8_t *ram;
};

static void legacy_new(struct legacy *l)
{
	struct spk_uart_config uc = {"com1", fake_line(&l->irq[0], 4), NULL, NULL};
	struct spk_i8042_config kc = {fake_line(&l->irq[1], 1), fake_stop_fn, &l->stop[0]};
	struct spk_rtc_config rc = {fixed_now, &l->now};
	struct spk_acpi_pm_config pc = {5, 0x0e, fake_stop_fn, &l->stop[1],
	                                fake_line(&l->irq[2], 9)};
	struct spk_boot_timer_config bc = {{0, 0}, NULL, NULL};

	memset(l, 0, sizeof(*l));
	l->now = 1765100000;
	assert_int_equal(spk_uart_new(&uc, &l->uart), 0);
	assert_int_equal(spk_i8042_new(&kc, &l->kbd), 0);
	assert_int_equal(spk_rtc_new(&rc, &l->rtc), 0);
	assert_int_equal(spk_acpi_pm_new(&pc, &l->pm), 0);
	assert_int_equal(spk_boot_timer_new(&bc, &l->bt), 0);
	l->ram = aligned_alloc(4096, 2 * 4096);
	memset(l->ram, 0, 2 * 4096);
	assert_int_equal(spk_mem_new(&l->mem), 0);
	assert_int_equal(spk_mem_add(l->mem, 0, 2 * 4096, SPK_MEM_RAM, l->ram, "ram"), 0);
}

static void legacy_free(struct legacy *l)
{
	spk_uart_free(l->uart);
	spk_i8042_free(l->kbd);
	spk_rtc_free(l->rtc);
	spk_acpi_pm_free(l->pm);
	spk_boot_timer_free(l->bt);
	spk_mem_free(l->mem);
	free(l->ram);
}

static int write_fixture(const char *dir)
{
	struct legacy l;
	struct spk_snap_writer *w;
	struct spk_snap_header h;
	char snap[512], mem[512];

	legacy_new(&l);
	dev_wr(spk_uart_ops(), l.uart, COM, 7, 1, 0x5a);
	dev_wr(spk_uart_ops(), l.uart, COM, 2, 1, 0x01);
	spk_uart_receive(l.uart, (const uint8_t *)"hi", 2);
	spk_i8042_ctrl_alt_del(l.kbd);
	dev_wr(spk_rtc_ops(), l.rtc, 0x70, 0, 1, 0x40);
	dev_wr(spk_rtc_ops(), l.rtc, 0x70, 1, 1, 0x99);
	dev_wr(spk_acpi_pm_ops(), l.pm, SPK_PC_GPE0_BLK, 2, 1, 0x01);
	dev_wr(spk_boot_timer_ops(), l.bt, 0, 0, 1, SPK_PC_BOOT_TIMER_MAGIC);
	memcpy(l.ram + 4096 + 16, "fixture", 8);
	snprintf(snap, sizeof(snap), "%s/fixture-v1.snap", dir);
	snprintf(mem, sizeof(mem), "%s/fixture-v1.mem", dir);
	spk_snap_header_host(&h);
	snprintf(h.cpu_vendor, sizeof(h.cpu_vendor), "GenuineIntel");
	h.cpu_family = 6;
	h.cpu_model = 85;
	h.cpu_stepping = 7;
	snprintf(h.host_kernel, sizeof(h.host_kernel), "6.1.0-fixture");
	h.created = 1765100000;
	h.n_cpuid = 1;
	h.cpuid[0] = (struct spk_snap_cpuid){0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69};
	if (spk_snap_writer_new(&w) || spk_snap_put_header(w, &h) ||
	    spk_snap_mem_save(w, l.mem, "fixture-v1.mem", 0) ||
	    spk_snap_save_device(w, "com1", spk_uart_state_ops(), l.uart) ||
	    spk_snap_save_device(w, "i8042", spk_i8042_state_ops(), l.kbd) ||
	    spk_snap_save_device(w, "rtc", spk_rtc_state_ops(), l.rtc) ||
	    spk_snap_save_device(w, "acpi_pm", spk_acpi_pm_state_ops(), l.pm) ||
	    spk_snap_save_device(w, "boot_timer", spk_boot_timer_state_ops(), l.bt) ||
	    spk_snap_writer_save(w, snap, true)) {
		fprintf(stderr, "%s\n", spk_last_error());
		return 1;
	}
	spk_snap_writer_free(w);
	legacy_free(&l);
	/* the memory file was written in the current directory under its saved name */
	return rename("fixture-v1.mem", mem) == 0 ? 0 : 1;
}

static void test_fixture_v1(void **state)
{
	const char *dir = getenv("SPK_SNAP_FIXTURES");
	char snap[512], mem[512];
	struct spk_snap_file *f;
	struct spk_snap_mem_layout ml;
	struct legacy l;
	const struct spk_snap_header *h;
	int fd;

	if (!dir)
		skip();
	snprintf(snap, sizeof(snap), "%s/fixture-v1.snap", dir);
	snprintf(mem, sizeof(mem), "%s/fixture-v1.mem", dir);
	if (spk_snap_open(snap, &f) != 0)
		fail_msg("%s", spk_last_error());
	h = spk_snap_file_header(f);
	assert_int_equal(h->format_version, 1);
	assert_string_equal(h->cpu_vendor, "GenuineIntel");
	assert_int_equal(h->cpu_model, 85);
	assert_string_equal(h->host_kernel, "6.1.0-fixture");
	assert_int_equal(h->n_cpuid, 1);
	assert_int_equal(h->cpuid[0].ebx, 0x756e6547);

	legacy_new(&l);
	assert_int_equal(spk_snap_load_device(f, "com1", spk_uart_state_ops(), l.uart), 0);
	assert_int_equal(spk_snap_load_device(f, "i8042", spk_i8042_state_ops(), l.kbd), 0);
	assert_int_equal(spk_snap_load_device(f, "rtc", spk_rtc_state_ops(), l.rtc), 0);
	assert_int_equal(spk_snap_load_device(f, "acpi_pm", spk_acpi_pm_state_ops(), l.pm), 0);
	assert_int_equal(spk_snap_load_device(f, "boot_timer", spk_boot_timer_state_ops(), l.bt),
	                 0);
	assert_int_equal(dev_rd(spk_uart_ops(), l.uart, COM, 7, 1), 0x5a);
	assert_int_equal(dev_rd(spk_uart_ops(), l.uart, COM, 0, 1), 'h');
	assert_int_equal(dev_rd(spk_uart_ops(), l.uart, COM, 0, 1), 'i');
	assert_true(l.irq[1].level); /* the Ctrl+Alt+Del scancodes wait */
	dev_wr(spk_rtc_ops(), l.rtc, 0x70, 0, 1, 0x40);
	assert_int_equal(dev_rd(spk_rtc_ops(), l.rtc, 0x70, 1, 1), 0x99);
	assert_int_equal(dev_rd(spk_acpi_pm_ops(), l.pm, SPK_PC_GPE0_BLK, 2, 1), 0x01);

	assert_int_equal(spk_snap_mem_layout(f, &ml), 0);
	assert_string_equal(ml.file, "fixture-v1.mem");
	fd = open(mem, O_RDONLY);
	assert_true(fd >= 0);
	if (spk_snap_mem_restore(&ml, fd, l.mem) != 0)
		fail_msg("%s", spk_last_error());
	assert_string_equal((const char *)l.ram + 4096 + 16, "fixture");
	close(fd);
	spk_snap_mem_layout_fini(&ml);
	spk_snap_close(f);
	legacy_free(&l);
}

/* ---- a machine's set of devices ---- */

static void add_legacy(struct spk_snap_devices *d, struct legacy *l)
{
	assert_int_equal(spk_snap_devices_add(d, "com1", spk_uart_state_ops(), l->uart), 0);
	assert_int_equal(spk_snap_devices_add(d, "i8042", spk_i8042_state_ops(), l->kbd), 0);
	assert_int_equal(spk_snap_devices_add(d, "rtc", spk_rtc_state_ops(), l->rtc), 0);
	assert_int_equal(spk_snap_devices_add(d, "acpi_pm", spk_acpi_pm_state_ops(), l->pm), 0);
}

static int quiesced;

/* A quiesce that counts its calls and refuses from 100 on. */
static int count_quiesce(void *opaque)
{
	int *n = opaque;

	return ++*n > 100 ? -EBUSY : 0;
}

static void test_device_set(void **state)
{
	struct legacy a, b;
	struct spk_snap_devices *da, *db;
	struct spk_snap_writer *w;
	struct spk_snap_header h;
	struct spk_snap_file *f;
	const void *buf;
	size_t len;

	legacy_new(&a);
	legacy_new(&b);
	dev_wr(spk_uart_ops(), a.uart, COM, 7, 1, 0x77);
	assert_int_equal(spk_snap_devices_new(&da), 0);
	add_legacy(da, &a);
	assert_int_equal(spk_snap_devices_add(da, "x", NULL, a.uart), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "no state ops"));
	assert_int_equal(spk_snap_devices_add(da, "com1", spk_uart_state_ops(), a.uart), -EEXIST);
	assert_int_equal(spk_snap_devices_add(da, "Bad", spk_uart_state_ops(), a.uart), -EINVAL);
	/* quiesce functions: called in order, the first failure stops them */
	assert_int_equal(spk_snap_devices_add_quiesce(NULL, "com1", count_quiesce, &quiesced),
	                 -EINVAL);
	assert_int_equal(spk_snap_devices_add_quiesce(da, "com1", NULL, NULL), -EINVAL);
	assert_int_equal(spk_snap_devices_add_quiesce(da, "nope", count_quiesce, &quiesced),
	                 -ENOENT);
	assert_int_equal(spk_snap_devices_quiesce(da), 0); /* none yet */
	assert_int_equal(spk_snap_devices_add_quiesce(da, "com1", count_quiesce, &quiesced), 0);
	assert_int_equal(spk_snap_devices_add_quiesce(da, "com1", count_quiesce, &quiesced),
	                 -EEXIST);
	assert_int_equal(spk_snap_devices_add_quiesce(da, "rtc", count_quiesce, &quiesced), 0);
	assert_int_equal(spk_snap_devices_quiesce(da), 0);
	assert_int_equal(quiesced, 2);
	quiesced = 100; /* count_quiesce refuses from 100 on: rtc's is not called */
	assert_int_equal(spk_snap_devices_quiesce(da), -EBUSY);
	assert_int_equal(quiesced, 101);
	assert_int_equal(spk_snap_devices_quiesce(NULL), -EINVAL);
	spk_snap_header_host(&h);
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_devices_save(da, w), 0);
	assert_int_equal(spk_snap_writer_finish(w, &buf, &len), 0);
	assert_int_equal(spk_snap_open_buf(buf, len, &f), 0);

	/* the same set in another machine: loads */
	assert_int_equal(spk_snap_devices_new(&db), 0);
	add_legacy(db, &b);
	assert_int_equal(spk_snap_devices_load(db, f), 0);
	assert_int_equal(dev_rd(spk_uart_ops(), b.uart, COM, 7, 1), 0x77);
	/* one device more than the file: refused before any load */
	dev_wr(spk_uart_ops(), b.uart, COM, 7, 1, 0x11);
	assert_int_equal(spk_snap_devices_add(db, "boot_timer", spk_boot_timer_state_ops(), b.bt),
	                 0);
	assert_int_equal(spk_snap_devices_load(db, f), -EINVAL);
	assert_string_equal(
	    spk_last_error(),
	    "snapshot: this VM's device 'boot_timer' (boot_timer) is not in the snapshot");
	assert_int_equal(dev_rd(spk_uart_ops(), b.uart, COM, 7, 1), 0x11);
	spk_snap_devices_free(db);
	/* one device fewer: the file's 'acpi_pm' has nowhere to go */
	assert_int_equal(spk_snap_devices_new(&db), 0);
	assert_int_equal(spk_snap_devices_add(db, "com1", spk_uart_state_ops(), b.uart), 0);
	assert_int_equal(spk_snap_devices_add(db, "i8042", spk_i8042_state_ops(), b.kbd), 0);
	assert_int_equal(spk_snap_devices_add(db, "rtc", spk_rtc_state_ops(), b.rtc), 0);
	assert_int_equal(spk_snap_devices_load(db, f), -EINVAL);
	assert_non_null(
	    strstr(spk_last_error(), "device 'acpi_pm', acpi_pm): this VM has no such"));
	/* a name with another kind */
	assert_int_equal(spk_snap_devices_add(db, "acpi_pm", spk_boot_timer_state_ops(), b.bt), 0);
	assert_int_equal(spk_snap_devices_load(db, f), -EINVAL);
	assert_non_null(
	    strstr(spk_last_error(), "field 'kind': this VM's 'acpi_pm' is a boot_timer"));
	assert_int_equal(dev_rd(spk_uart_ops(), b.uart, COM, 7, 1), 0x11);
	assert_int_equal(spk_snap_devices_load(NULL, f), -EINVAL);

	spk_snap_devices_free(db);
	spk_snap_devices_free(da);
	spk_snap_close(f);
	spk_snap_writer_free(w);
	legacy_free(&a);
	legacy_free(&b);
}

/* ---- no device without state ----
 *
 * Every constructor in the public headers is a device or on the list of
 * things that are not. A device (it has bus ops, spk_X_ops(), or is the
 * PCI host) must declare spk_X_state_ops(); virtio devices cannot be made
 * without state ops (spk_virtio_new refuses, test_virtio_pci checks), and
 * a PCI function's state is its owner's (spk_pci_dev_state_*). A new
 * constructor fails this test until it is classified.
 */
/* pci_dev: saved by its owner (spk_pci_dev_state_*); virtio: the transport,
 * spk_virtio_state_ops(vd), required of every virtio device */
/* devices without bus ops (in guest memory), with state ops all the same */
static const char *const memory_devices[] = {"vmgenid"};
static const char *const not_devices[] = {
    "bus",         "evloop",      "hypercall_table", "mem",    "snap_devices", "snap_dirty",
    "snap_reader", "snap_writer", "pci_dev",         "virtio", "snap_reset",
};

static char *slurp_headers(const char *dir)
{
	static const char *const files[] = {
	    "abi.h",        "acpi.h",     "bus.h",         "devices.h", "evloop.h",     "exit.h",
	    "hypercall.h",  "linux.h",    "loader.h",      "log.h",     "mem.h",        "pci.h",
	    "platform.h",   "snapshot.h", "vcpu.h",        "virtio.h",  "virtio_blk.h", "vm.h",
	    "virtio_net.h", "x86.h",      "virtio_vsock.h"};
	size_t cap = 1 << 20, len = 0;
	char *all = calloc(1, cap), path[512];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		FILE *fp = fopen(path, "r");

		if (!fp)
			continue; /* a header that went away */
		len += fread(all + len, 1, cap - 1 - len, fp);
		fclose(fp);
	}
	all[len] = 0;
	return all;
}

static void test_every_device_has_state(void **state)
{
	const char *dir = getenv("SPK_INCLUDE_DIR");
	char *all, *p, want[128];
	unsigned devices = 0;

	if (!dir)
		skip();
	all = slurp_headers(dir);
	assert_non_null(strstr(all, "int spk_uart_new("));
	for (p = all; (p = strstr(p, "int spk_")); p++) {
		char name[64];
		size_t n = 0;
		const char *q = p + strlen("int spk_"), *end = strstr(q, "_new(");

		if (!end || end - q >= (long)sizeof(name) || memchr(q, '(', (size_t)(end - q)) ||
		    memchr(q, ' ', (size_t)(end - q)))
			continue;
		n = (size_t)(end - q);
		memcpy(name, q, n);
		name[n] = 0;
		bool listed = false;
		for (size_t i = 0; i < sizeof(not_devices) / sizeof(not_devices[0]); i++)
			listed |= strcmp(name, not_devices[i]) == 0;
		if (listed || strncmp(name, "virtio_", 7) == 0)
			continue;
		bool in_memory = false;
		for (size_t i = 0; i < sizeof(memory_devices) / sizeof(memory_devices[0]); i++)
			in_memory |= strcmp(name, memory_devices[i]) == 0;
		snprintf(want, sizeof(want), "spk_%s_ops(void)", name);
		if (!strstr(all, want) && strcmp(name, "pci_host") != 0 && !in_memory)
			fail_msg("spk_%s_new: neither a device with bus ops nor on the list of "
			         "non-devices in this test: classify it",
			         name);
		snprintf(want, sizeof(want), "spk_%s_state_ops(void)", name);
		if (!strstr(all, want))
			fail_msg(
			    "device spk_%s has no spk_%s_state_ops(): snapshots would forget it",
			    name, name);
		devices++;
	}
	/* uart, i8042, rtc, acpi_pm, boot_timer, pci_host, vmgenid, pl031 */
	assert_int_equal(devices, 8);
	free(all);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--write-fixture") == 0)
		return write_fixture(argv[2]);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uart),       cmocka_unit_test(test_i8042),
	    cmocka_unit_test(test_rtc),        cmocka_unit_test(test_acpi_pm),
	    cmocka_unit_test(test_boot_timer), cmocka_unit_test(test_vmgenid),
	    cmocka_unit_test(test_fixture_v1), cmocka_unit_test(test_every_device_has_state),
	    cmocka_unit_test(test_device_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
