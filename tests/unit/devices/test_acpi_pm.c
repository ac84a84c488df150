// SPDX-License-Identifier: Apache-2.0
/* ACPI PM1a blocks, GPE0, the reset register: S5, reset, the power button, widths, offsets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sparkler/platform.h>

#include "devtest.h"

/* Ports of our own, so the test does not depend on the platform's. */
#define EVT   0xb000
#define CNT   0xb004
#define GPE   0xb008
#define RESET 0xb100

#define SLP_TYP(t) ((unsigned)(t) << 10)
#define SLP_EN     0x2000
#define PWRBTN     0x0100 /* PM1: the fixed button, no longer used */
#define GPE_PWRBTN 0x0001 /* GPE0 bit 0: the control-method button */
#define GPE_VMGEN  0x0002 /* GPE0 bit 1: the VM generation ID changed */
#define GPE_WIRED  (GPE_PWRBTN | GPE_VMGEN)

struct env {
	struct spk_acpi_pm *p;
	struct fake_irq sci;
	struct fake_stop stop;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct spk_acpi_pm_config cfg;

	assert_non_null(e);
	cfg = (struct spk_acpi_pm_config){.s5_slp_typ = 5,
	                                  .reset_value = 0x06,
	                                  .stop = fake_stop_fn,
	                                  .stop_ctx = &e->stop,
	                                  .sci = fake_line(&e->sci, 9)};
	assert_int_equal(spk_acpi_pm_new(&cfg, &e->p), 0);
	spk_acpi_pm_set_ports(e->p, EVT, CNT, GPE, RESET);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	log_capture_stop();
	assert_int_equal(e->sci.redundant, 0);
	assert_int_equal(e->stop.other, 0);
	spk_acpi_pm_free(e->p);
	free(e);
	return 0;
}

/* The blocks are registered separately: offsets are relative to each. */
static uint64_t rd(struct env *e, uint16_t base, uint64_t off, unsigned width)
{
	return dev_rd(spk_acpi_pm_ops(), e->p, base, off, width);
}

static void wr(struct env *e, uint16_t base, uint64_t off, unsigned width, uint64_t v)
{
	dev_wr(spk_acpi_pm_ops(), e->p, base, off, width, v);
}

static void test_s5(void **state)
{
	struct env *e = *state;
	struct log_capture logs;

	log_capture_start(&logs);
	/* ACPICA writes SLP_TYP first, then SLP_TYP | SLP_EN */
	wr(e, CNT, 0, 2, SLP_TYP(5));
	assert_int_equal(e->stop.down, 0);
	assert_int_equal(rd(e, CNT, 0, 2), SLP_TYP(5) | 0x1); /* SCI_EN reads 1 */
	wr(e, CNT, 0, 2, SLP_TYP(5) | SLP_EN);
	assert_int_equal(e->stop.down, 1);
	assert_int_equal(e->stop.reset, 0);
	/* SLP_EN is write-only */
	assert_int_equal(rd(e, CNT, 0, 2) & SLP_EN, 0);
	/* other sleep types are ignored (and wake at once: WAK_STS) */
	for (unsigned t = 0; t < 8; t++) {
		if (t == 5)
			continue;
		wr(e, CNT, 0, 2, SLP_TYP(t) | SLP_EN);
	}
	assert_int_equal(e->stop.down, 1);
	assert_true(logs.warnings >= 1);
	assert_int_equal(rd(e, EVT, 0, 2) & 0x8000, 0x8000);
	wr(e, EVT, 0, 2, 0x8000);
	assert_int_equal(rd(e, EVT, 0, 2) & 0x8000, 0);
	/* a byte write of the high half does it too */
	wr(e, CNT, 1, 1, (SLP_TYP(5) | SLP_EN) >> 8);
	assert_int_equal(e->stop.down, 2);
	/* SLP_EN with S5 and junk in the low byte still powers off */
	wr(e, CNT, 0, 2, SLP_TYP(5) | SLP_EN | 0x00ff);
	assert_int_equal(e->stop.down, 3);
	/* the low byte alone never does */
	wr(e, CNT, 0, 1, 0xff);
	assert_int_equal(e->stop.down, 3);
	assert_int_equal(e->stop.reset, 0);
}

static void test_reset(void **state)
{
	struct env *e = *state;

	wr(e, RESET, 0, 1, 0x02); /* "reboot=pci" writes this first */
	wr(e, RESET, 0, 1, 0x0e);
	wr(e, RESET, 0, 1, 0x00);
	assert_int_equal(e->stop.reset, 0);
	wr(e, RESET, 0, 1, 0x06);
	assert_int_equal(e->stop.reset, 1);
	assert_int_equal(e->stop.down, 0);
	assert_int_equal(rd(e, RESET, 0, 1), 0);
}

static void test_power_button(void **state)
{
	struct env *e = *state;

	/* a press sets GPE0_STS bit 0, not PM1's PWRBTN_STS (FADT: control method) */
	spk_acpi_pm_power_button(e->p);
	assert_int_equal(rd(e, GPE, 0, 2), GPE_PWRBTN);
	assert_int_equal(rd(e, EVT, 0, 2), 0);
	/* status without enable: no SCI; PM1's PWRBTN_EN does not route it */
	assert_false(e->sci.level);
	wr(e, EVT, 2, 2, PWRBTN);
	assert_false(e->sci.level);
	/* enabling GPE 0 raises the SCI */
	wr(e, GPE, 2, 2, GPE_PWRBTN);
	assert_int_equal(rd(e, GPE, 2, 2), GPE_PWRBTN);
	assert_true(e->sci.level);
	assert_int_equal(e->sci.gsi, 9);
	/* writing 0 bits, or other bits, clears nothing */
	wr(e, GPE, 0, 2, 0x0000);
	wr(e, GPE, 0, 2, 0xfffc);
	assert_true(e->sci.level);
	assert_int_equal(rd(e, GPE, 0, 2), GPE_PWRBTN);
	/* write 1 to clear, as ACPICA does before it runs _E00 */
	wr(e, GPE, 0, 1, GPE_PWRBTN);
	assert_int_equal(rd(e, GPE, 0, 2), 0);
	assert_false(e->sci.level);
	/* pressed while enabled: straight up */
	spk_acpi_pm_power_button(e->p);
	assert_true(e->sci.level);
	spk_acpi_pm_power_button(e->p); /* already pending: no second edge */
	assert_int_equal(e->sci.rises, 2);
	/* disabling lowers it, the status stays */
	wr(e, GPE, 2, 1, 0);
	assert_false(e->sci.level);
	assert_int_equal(rd(e, GPE, 0, 2), GPE_PWRBTN);
	wr(e, GPE, 3, 1, 0xff); /* the high enable byte: GPEs 8-15 are not wired */
	assert_false(e->sci.level);
	wr(e, GPE, 2, 1, GPE_PWRBTN);
	assert_true(e->sci.level);
	/* a dword write at the block: clears the status, keeps the enable */
	wr(e, GPE, 0, 4, 0x0001ffff);
	assert_false(e->sci.level);
	assert_int_equal(rd(e, GPE, 0, 4), 0x00010000);
	/* PM1's status never saw the button */
	assert_int_equal(rd(e, EVT, 0, 2), 0);
	assert_int_equal(e->stop.down + e->stop.reset, 0);
}

/* GPE 1 (the VM generation ID): raised by the monitor, the same edge semantics. */
static void test_gpe_vmgenid(void **state)
{
	struct env *e = *state;

	assert_int_equal(spk_acpi_pm_raise_gpe(e->p, 1), 0);
	assert_int_equal(rd(e, GPE, 0, 2), GPE_VMGEN);
	assert_false(e->sci.level);
	wr(e, GPE, 2, 2, GPE_WIRED);
	assert_int_equal(rd(e, GPE, 2, 2), GPE_WIRED);
	assert_true(e->sci.level);
	/* the button's clear leaves GPE 1 pending */
	spk_acpi_pm_power_button(e->p);
	wr(e, GPE, 0, 1, GPE_PWRBTN);
	assert_int_equal(rd(e, GPE, 0, 2), GPE_VMGEN);
	assert_true(e->sci.level);
	wr(e, GPE, 0, 1, GPE_VMGEN);
	assert_false(e->sci.level);
	/* GPEs that are not wired, and NULL: refused, nothing set */
	assert_int_equal(spk_acpi_pm_raise_gpe(e->p, 2), -EINVAL);
	assert_int_equal(spk_acpi_pm_raise_gpe(e->p, 16), -EINVAL);
	assert_int_equal(spk_acpi_pm_raise_gpe(e->p, UINT32_MAX), -EINVAL);
	assert_int_equal(spk_acpi_pm_raise_gpe(NULL, 1), -EINVAL);
	assert_int_equal(rd(e, GPE, 0, 2), 0);
}

/* GPE0: 16 status bits, 16 enable bits; only GPEs 0 and 1 exist. */
static void test_gpe0_registers(void **state)
{
	struct env *e = *state;

	/* only GPE 0's and 1's enables stick, in every width */
	wr(e, GPE, 2, 2, 0xffff);
	assert_int_equal(rd(e, GPE, 2, 2), GPE_WIRED);
	wr(e, GPE, 0, 4, 0xfffe0000);
	assert_int_equal(rd(e, GPE, 0, 4), (uint32_t)GPE_VMGEN << 16);
	wr(e, GPE, 2, 1, 0xff);
	assert_int_equal(rd(e, GPE, 2, 1), GPE_WIRED);
	assert_int_equal(rd(e, GPE, 3, 1), 0);
	wr(e, GPE, 2, 1, GPE_PWRBTN); /* GPE 1 (test_gpe_vmgenid) off again */
	/* the status: byte, word, unaligned word and dword reads agree */
	spk_acpi_pm_power_button(e->p);
	assert_int_equal(rd(e, GPE, 0, 1), 0x01);
	assert_int_equal(rd(e, GPE, 1, 1), 0x00);
	assert_int_equal(rd(e, GPE, 1, 2), 0x0100); /* STS high byte, EN low byte */
	assert_int_equal(rd(e, GPE, 0, 4), 0x00010001);
	assert_true(e->sci.level);
	/* the status high byte is a different register: writing it clears nothing */
	wr(e, GPE, 1, 1, 0xff);
	assert_int_equal(rd(e, GPE, 0, 2), GPE_PWRBTN);
	assert_true(e->sci.level);
	/* a word write straddling status high and enable low: enable 0, SCI down */
	wr(e, GPE, 1, 2, 0x00ff);
	assert_int_equal(rd(e, GPE, 0, 4), 0x00000001);
	assert_false(e->sci.level);
	/* bytes past the block read as nothing there, writes there are logged */
	assert_int_equal(rd(e, GPE, 3, 2), 0xff00);
	assert_int_equal(e->stop.down + e->stop.reset, 0);
}

/* A bad access next to the block: logged, changes nothing. */
static void test_gpe0_outside(void **state)
{
	struct env *e = *state;
	struct log_capture logs;

	log_capture_start(&logs);
	spk_acpi_pm_power_button(e->p);
	wr(e, GPE, 4, 2, 0xffff); /* two bytes past GPE0_EN */
	assert_int_equal(logs.warnings, 2);
	assert_int_equal(rd(e, GPE, 0, 4), 0x00000001);
	assert_false(e->sci.level);
	log_capture_stop();
}

static void test_widths_and_offsets(void **state)
{
	struct env *e = *state;

	/* a sleep type that is not S5 sets WAK_STS, the one PM1 status bit ever set */
	wr(e, CNT, 0, 2, SLP_TYP(1) | SLP_EN);
	wr(e, EVT, 2, 1, 0x21); /* TMR_EN | GBL_EN */
	wr(e, EVT, 3, 1, 0x01); /* PWRBTN_EN */
	/* the event block byte by byte, word by word, and whole */
	assert_int_equal(rd(e, EVT, 0, 1), 0x00);
	assert_int_equal(rd(e, EVT, 1, 1), 0x80);
	assert_int_equal(rd(e, EVT, 2, 1), 0x21);
	assert_int_equal(rd(e, EVT, 3, 1), 0x01);
	assert_int_equal(rd(e, EVT, 0, 2), 0x8000);
	assert_int_equal(rd(e, EVT, 1, 2), 0x2180); /* unaligned */
	assert_int_equal(rd(e, EVT, 2, 2), 0x0121);
	assert_int_equal(rd(e, EVT, 0, 4), 0x01218000);
	assert_false(e->sci.level); /* WAK_STS has no enable bit */
	/* a dword write: clears the status, sets the enables */
	wr(e, EVT, 0, 4, 0x0000ffff);
	assert_int_equal(rd(e, EVT, 0, 4), 0);
	assert_false(e->sci.level);
	wr(e, EVT, 0, 4, 0x01000000);
	assert_int_equal(rd(e, EVT, 0, 4), 0x01000000);
	/* undefined enable bits do not stick */
	wr(e, EVT, 2, 2, 0xffff);
	assert_int_equal(rd(e, EVT, 2, 2), 0x4721);
	/* the control block: SCI_EN in both widths */
	assert_int_equal(rd(e, CNT, 0, 1) & 1, 1);
	assert_int_equal(rd(e, CNT, 0, 2) & 1, 1);
	wr(e, CNT, 1, 1, SLP_TYP(3) >> 8);
	assert_int_equal(rd(e, CNT, 1, 1), SLP_TYP(3) >> 8);
	assert_int_equal(rd(e, CNT, 0, 2), SLP_TYP(3) | 1);
	/* bytes past the blocks read as nothing there */
	assert_int_equal(rd(e, CNT, 1, 2), 0xff00 | (SLP_TYP(3) >> 8));
	assert_int_equal(rd(e, RESET, 0, 2), 0xff00);
	assert_int_equal(e->stop.down + e->stop.reset, 0);
}

static void test_default_ports(void **state)
{
	struct spk_acpi_pm *p;
	struct fake_stop stop = {0};
	struct spk_acpi_pm_config cfg = {
	    .s5_slp_typ = 5, .reset_value = 6, .stop = fake_stop_fn, .stop_ctx = &stop};

	assert_int_equal(spk_acpi_pm_new(&cfg, &p), 0);
	/* the platform's ports until told otherwise */
	dev_wr(spk_acpi_pm_ops(), p, SPK_PC_RESET_PORT, 0, 1, 6);
	assert_int_equal(stop.reset, 1);
	dev_wr(spk_acpi_pm_ops(), p, SPK_PC_PM1A_CNT, 0, 2, SLP_TYP(5) | SLP_EN);
	assert_int_equal(stop.down, 1);
	/* no SCI line configured: the button still sets the status */
	dev_wr(spk_acpi_pm_ops(), p, SPK_PC_GPE0_BLK, 2, 2, GPE_PWRBTN);
	spk_acpi_pm_power_button(p);
	assert_int_equal(dev_rd(spk_acpi_pm_ops(), p, SPK_PC_GPE0_BLK, 0, 4), 0x00010001);
	assert_int_equal(dev_rd(spk_acpi_pm_ops(), p, SPK_PC_PM1A_EVT, 0, 2), 0);
	spk_acpi_pm_free(p);
}

static void test_hostile(void **state)
{
	struct env *e = *state;
	struct log_capture logs;
	uint64_t seed = 0xac91;
	/* ports past the blocks: RESET + 1-4 and GPE + 4 (off is 0-4) */
	static const uint16_t bases[] = {EVT, CNT, RESET, GPE};

	log_capture_start(&logs);
	for (unsigned n = 0; n < HOSTILE_ITERATIONS; n++) {
		unsigned width = prng_width(&seed);
		uint16_t base = bases[prng_next(&seed) % 4];
		uint64_t off = prng_next(&seed) % 5;
		uint16_t sts, en, gsts, gen;

		if (prng_next(&seed) % 3 == 0)
			rd(e, base, off, width);
		else
			wr(e, base, off, width, prng_value(&seed, width));
		if (n % 50 == 0)
			spk_acpi_pm_power_button(e->p);
		sts = (uint16_t)rd(e, EVT, 0, 2);
		en = (uint16_t)rd(e, EVT, 2, 2);
		gsts = (uint16_t)rd(e, GPE, 0, 2);
		gen = (uint16_t)rd(e, GPE, 2, 2);
		/* the SCI is PM1's enabled events or GPE0's; only GPE 0 ever fires */
		assert_int_equal(e->sci.level, (sts & en & 0x0721) || (gsts & gen));
		assert_int_equal(e->sci.level, (gsts & gen & GPE_PWRBTN) != 0);
		assert_int_equal(sts & ~0x8000, 0); /* only WAK */
		assert_int_equal(gsts & ~GPE_PWRBTN, 0);
		assert_int_equal(gen & ~GPE_WIRED, 0);
		assert_int_equal(rd(e, CNT, 0, 2) & 0x2001, 1);
	}
	/* at most a burst of warnings and one "suppressed" line */
	assert_true(logs.lines <= SPK_DEV_LOG_BURST + 1);
	log_capture_stop();
	assert_int_equal(e->stop.other, 0);
	assert_true(e->stop.down > 0 && e->stop.reset > 0);
}

static void test_config_errors(void **state)
{
	struct spk_acpi_pm *p = (void *)1;
	struct spk_acpi_pm_config cfg = {.s5_slp_typ = 8};

	assert_int_equal(spk_acpi_pm_new(NULL, &p), -EINVAL);
	assert_null(p);
	assert_int_equal(spk_acpi_pm_new(&cfg, &p), -EINVAL);
	cfg.s5_slp_typ = 5;
	assert_int_equal(spk_acpi_pm_new(&cfg, NULL), -EINVAL);
	assert_int_equal(spk_acpi_pm_new(&cfg, &p), 0);
	/* no stop hook: S5 and reset do nothing, and do not crash */
	dev_wr(spk_acpi_pm_ops(), p, SPK_PC_PM1A_CNT, 0, 2, SLP_TYP(5) | SLP_EN);
	dev_wr(spk_acpi_pm_ops(), p, SPK_PC_RESET_PORT, 0, 1, 0);
	assert_int_equal(spk_acpi_pm_ops()->read(p, 0, 2, NULL), 0xffff);
	spk_acpi_pm_ops()->write(p, 0, 2, 0xffff, NULL);
	spk_acpi_pm_free(p);
	spk_acpi_pm_free(NULL);
	spk_acpi_pm_power_button(NULL);
	spk_acpi_pm_set_ports(NULL, 1, 2, 3, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_s5, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_power_button, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpe0_registers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpe_vmgenid, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpe0_outside, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_widths_and_offsets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
	    cmocka_unit_test(test_default_ports),
	    cmocka_unit_test(test_config_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
