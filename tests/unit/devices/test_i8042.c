// SPDX-License-Identifier: Apache-2.0
/* The i8042: Linux's probe, the command byte, reset, Ctrl+Alt+Del, the queue, hostile input. */
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

#define DATA SPK_PC_I8042_DATA
#define CMD  SPK_PC_I8042_CMD

struct env {
	struct spk_i8042 *k;
	struct fake_irq irq;
	struct fake_stop stop;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct spk_i8042_config cfg;

	assert_non_null(e);
	cfg = (struct spk_i8042_config){
	    .kbd_irq = fake_line(&e->irq, 1), .stop = fake_stop_fn, .stop_ctx = &e->stop};
	assert_int_equal(spk_i8042_new(&cfg, &e->k), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	log_capture_stop();
	assert_int_equal(e->irq.redundant, 0);
	assert_int_equal(e->stop.other, 0);
	spk_i8042_free(e->k);
	free(e);
	return 0;
}

/* Each port is registered on its own, one byte long: offset 0. */
static uint8_t in(struct env *e, uint16_t port)
{
	return (uint8_t)dev_rd(spk_i8042_ops(), e->k, port, 0, 1);
}

static void out(struct env *e, uint16_t port, uint8_t v)
{
	dev_wr(spk_i8042_ops(), e->k, port, 0, 1, v);
}

static uint8_t status(struct env *e)
{
	return in(e, CMD);
}

/* Linux's i8042_command(): a command, its parameter, one reply byte. */
static int command(struct env *e, uint8_t cmd, int param, uint8_t *reply)
{
	out(e, CMD, cmd);
	if (param >= 0)
		out(e, DATA, (uint8_t)param);
	if (!reply)
		return 0;
	if (!(status(e) & 0x01))
		return -1; /* would time out */
	*reply = in(e, DATA);
	return 0;
}

/* Drain the output buffer as i8042_flush() does; returns the count. */
static unsigned flush(struct env *e)
{
	unsigned n = 0;

	while ((status(e) & 0x01) && n < 64) {
		in(e, DATA);
		n++;
	}
	return n;
}

static void test_self_test(void **state)
{
	struct env *e = *state;
	uint8_t r;

	assert_int_equal(status(e) & 0x01, 0);
	assert_int_equal(status(e) & 0x10, 0x10); /* no keylock */
	assert_int_equal(command(e, 0xaa, -1, &r), 0);
	assert_int_equal(r, 0x55);
	assert_int_equal(status(e) & 0x01, 0);
	assert_int_equal(status(e) & 0x04, 0x04); /* system flag */
	assert_int_equal(command(e, 0xab, -1, &r), 0);
	assert_int_equal(r, 0x00);
	/* no AUX port: its test fails with a clock-line error */
	assert_int_equal(command(e, 0xa9, -1, &r), 0);
	assert_true(r != 0 && r != 0xfa && r != 0xff);
	assert_int_equal(e->stop.reset, 0);
}

static void test_command_byte(void **state)
{
	struct env *e = *state;
	uint8_t r, r2;

	assert_int_equal(command(e, 0x20, -1, &r), 0);
	assert_int_equal(command(e, 0x20, -1, &r2), 0);
	assert_int_equal(r, r2);                  /* a stable CTR read */
	assert_int_equal(r & 0x41, 0x41);         /* XLATE, KBDINT */
	assert_int_equal(status(e) & 0x08, 0x08); /* last write: command */
	assert_int_equal(command(e, 0x60, 0x45, NULL), 0);
	assert_int_equal(status(e) & 0x08, 0x00); /* last write: data */
	assert_int_equal(command(e, 0x20, -1, &r), 0);
	assert_int_equal(r, 0x45);
	/* AD/AE and A7/A8 flip their CTR bits */
	out(e, CMD, 0xad);
	out(e, CMD, 0xa7);
	assert_int_equal(command(e, 0x20, -1, &r), 0);
	assert_int_equal(r & 0x30, 0x30);
	out(e, CMD, 0xae);
	out(e, CMD, 0xa8);
	assert_int_equal(command(e, 0x20, -1, &r), 0);
	assert_int_equal(r & 0x30, 0x00);
	/* the output port round trip, and RAM beyond the CTR */
	assert_int_equal(command(e, 0xd1, 0xdf, NULL), 0);
	assert_int_equal(command(e, 0xd0, -1, &r), 0);
	assert_int_equal(r, 0xdf);
	assert_int_equal(command(e, 0x65, 0x77, NULL), 0);
	assert_int_equal(command(e, 0x25, -1, &r), 0);
	assert_int_equal(r, 0x77);
	/* a controller reply replaces what the keyboard had queued */
	assert_int_equal(spk_i8042_ctrl_alt_del(e->k), 0);
	assert_int_equal(command(e, 0x20, -1, &r), 0);
	assert_int_equal(r, 0x45);
	assert_int_equal(status(e) & 0x01, 0);
	/* AUX parameters are swallowed, not taken for keyboard commands */
	assert_int_equal(command(e, 0xd3, 0x5a, NULL), 0);
	assert_int_equal(command(e, 0xd4, 0xff, NULL), 0);
	assert_int_equal(status(e) & 0x01, 0);
	assert_int_equal(e->stop.reset, 0);
}

static void test_reset(void **state)
{
	struct env *e = *state;

	out(e, CMD, 0xff);  /* pulse nothing */
	out(e, CMD, 0xd1);  /* a write-output-port command pending... */
	out(e, DATA, 0xfe); /* ...takes 0xfe as its parameter, not a reset */
	assert_int_equal(e->stop.reset, 0);
	out(e, CMD, 0xfe);
	assert_int_equal(e->stop.reset, 1);
	assert_int_equal(e->stop.down, 0);
	/* a new command cancels a pending parameter */
	out(e, CMD, 0xd1);
	out(e, CMD, 0xaa);
	assert_int_equal(in(e, DATA), 0x55);
	out(e, DATA, 0xf4); /* so this goes to the keyboard */
	assert_int_equal(in(e, DATA), 0xfa);
	/* 0xfe on the data port is a keyboard "resend", not a reset */
	out(e, DATA, 0xfe);
	assert_int_equal(e->stop.reset, 1);
}

static void test_keyboard_commands(void **state)
{
	struct env *e = *state;
	unsigned rises = e->irq.rises;

	out(e, DATA, 0xff); /* reset: ACK, BAT passed */
	assert_true(e->irq.level);
	assert_int_equal(in(e, DATA), 0xfa);
	assert_true(e->irq.level); /* fell and rose again for the next byte */
	assert_int_equal(in(e, DATA), 0xaa);
	assert_false(e->irq.level);
	assert_int_equal(e->irq.rises, rises + 2); /* one edge per byte */

	out(e, DATA, 0xf2); /* get ID: translated MF2 */
	assert_int_equal(in(e, DATA), 0xfa);
	assert_int_equal(in(e, DATA), 0xab);
	assert_int_equal(in(e, DATA), 0x41);

	out(e, DATA, 0xed); /* set LEDs, then its parameter */
	assert_int_equal(in(e, DATA), 0xfa);
	out(e, DATA, 0x00);
	assert_int_equal(in(e, DATA), 0xfa);
	out(e, DATA, 0xf4); /* enable */
	assert_int_equal(in(e, DATA), 0xfa);
	out(e, DATA, 0xee); /* echo */
	assert_int_equal(in(e, DATA), 0xee);
	out(e, DATA, 0x12); /* garbage: resend */
	assert_int_equal(in(e, DATA), 0xfe);
	assert_int_equal(status(e) & 0x01, 0);
	/* an empty buffer reads the last byte again */
	assert_int_equal(in(e, DATA), 0xfe);
}

static const uint8_t cad1[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};

static void test_ctrl_alt_del(void **state)
{
	struct env *e = *state;
	uint8_t set2[] = {0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14};
	unsigned rises = e->irq.rises;

	assert_int_equal(spk_i8042_ctrl_alt_del(e->k), 0);
	assert_true(e->irq.level);
	for (unsigned i = 0; i < sizeof(cad1); i++) {
		assert_int_equal(status(e) & 0x01, 0x01);
		assert_int_equal(in(e, DATA), cad1[i]);
	}
	assert_int_equal(status(e) & 0x01, 0);
	assert_false(e->irq.level);
	assert_int_equal(e->irq.rises, rises + sizeof(cad1));

	/* translation off (i8042.direct): set 2 */
	command(e, 0x60, 0x01 | 0x04, NULL);
	assert_int_equal(spk_i8042_ctrl_alt_del(e->k), 0);
	for (unsigned i = 0; i < sizeof(set2); i++)
		assert_int_equal(in(e, DATA), set2[i]);

	/* keyboard interrupt off: queued, no IRQ until it is enabled */
	command(e, 0x60, 0x44, NULL);
	assert_int_equal(spk_i8042_ctrl_alt_del(e->k), 0);
	assert_false(e->irq.level);
	assert_int_equal(status(e) & 0x01, 0x01);
	command(e, 0x60, 0x45, NULL);
	/* writing the CTR does not flush the keyboard's bytes */
	assert_true(e->irq.level);
	assert_int_equal(in(e, DATA), cad1[0]);
}

static void test_queue_bound(void **state)
{
	struct env *e = *state;
	struct log_capture logs;

	log_capture_start(&logs);
	/* 0xd2 puts a byte in the output buffer as if the keyboard sent it */
	for (unsigned i = 0; i < 40; i++)
		command(e, 0xd2, (int)i, NULL);
	assert_true(logs.warnings >= 1); /* the overflow was said */
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(in(e, DATA), i);
	assert_int_equal(status(e) & 0x01, 0);
	/* a full queue refuses Ctrl+Alt+Del whole, not in part */
	for (unsigned i = 0; i < 10; i++)
		command(e, 0xd2, 0x42, NULL);
	assert_int_equal(spk_i8042_ctrl_alt_del(e->k), -ENOSPC);
	assert_int_equal(flush(e), 10);
	assert_int_equal(spk_i8042_ctrl_alt_del(e->k), 0);
	assert_int_equal(flush(e), sizeof(cad1));
	assert_int_equal(spk_i8042_ctrl_alt_del(NULL), -EINVAL);
}

/* The order of Linux's i8042_controller_check/selftest/init and atkbd. */
static void test_linux_probe(void **state)
{
	struct env *e = *state;
	uint8_t ctr, ctr2, r;

	spk_i8042_ctrl_alt_del(e->k); /* junk from before the driver */
	assert_true(flush(e) < 16);   /* "No controller found" otherwise */
	assert_int_equal(command(e, 0xaa, -1, &r), 0);
	assert_int_equal(r, 0x55);
	assert_int_equal(command(e, 0x20, -1, &ctr), 0);
	assert_int_equal(command(e, 0x20, -1, &ctr2), 0);
	assert_int_equal(ctr, ctr2);
	assert_int_equal(status(e) & 0x10, 0x10); /* "Keylock active" otherwise */
	ctr |= 0x10;                              /* KBDDIS */
	ctr &= (uint8_t)~0x01;                    /* KBDINT */
	assert_int_equal(command(e, 0x60, ctr, NULL), 0);
	assert_int_equal(flush(e), 0);
	/* i8042_enable_kbd_port */
	ctr &= (uint8_t)~0x10;
	ctr |= 0x01;
	assert_int_equal(command(e, 0x60, ctr, NULL), 0);
	assert_false(e->irq.level);
	/* atkbd_probe: GETID through the interrupt */
	out(e, DATA, 0xf2);
	assert_true(e->irq.level);
	assert_int_equal(in(e, DATA), 0xfa);
	assert_int_equal(in(e, DATA), 0xab);
	assert_int_equal(in(e, DATA), 0x41);
	assert_false(e->irq.level);
	assert_int_equal(e->stop.reset, 0);
}

static void test_hostile(void **state)
{
	struct env *e = *state;
	struct log_capture logs;
	uint64_t seed = 0x8042;
	uint8_t r;

	log_capture_start(&logs);
	for (unsigned n = 0; n < HOSTILE_ITERATIONS; n++) {
		unsigned width = prng_width(&seed);
		uint16_t port = (prng_next(&seed) & 1) ? DATA : CMD;
		uint64_t off = prng_next(&seed) % 3; /* past the port too */

		if (prng_next(&seed) % 3 == 0)
			dev_rd(spk_i8042_ops(), e->k, port, off, width);
		else
			dev_wr(spk_i8042_ops(), e->k, port, off, width, prng_value(&seed, width));
		if (n % 97 == 0)
			spk_i8042_ctrl_alt_del(e->k);
		if (!(status(e) & 0x01))
			assert_false(e->irq.level);
	}
	/* spk_fail's DEBUG lines for a full queue are not the device's */
	assert_true(logs.warnings <= SPK_DEV_LOG_BURST + 1);
	log_capture_stop();
	assert_int_equal(e->stop.down, 0);
	assert_true(e->stop.reset > 0); /* 0xf0-0xfe pulses did reset */
	/* the queue never holds more than 16 bytes */
	assert_true(flush(e) <= 16);
	/* and the controller still answers */
	assert_int_equal(command(e, 0xaa, -1, &r), 0);
	assert_int_equal(r, 0x55);
	assert_int_equal(command(e, 0x60, 0x65, NULL), 0);
	assert_int_equal(command(e, 0x20, -1, &r), 0);
	assert_int_equal(r, 0x65);
}

static void test_config_errors(void **state)
{
	struct spk_i8042 *k = (void *)1;
	struct spk_i8042_config cfg = {.stop = NULL};

	assert_int_equal(spk_i8042_new(NULL, &k), -EINVAL);
	assert_null(k);
	assert_int_equal(spk_i8042_new(&cfg, NULL), -EINVAL);
	assert_int_equal(spk_i8042_new(&cfg, &k), 0);
	/* no stop hook, no irq: a reset is dropped, nothing crashes */
	dev_wr(spk_i8042_ops(), k, CMD, 0, 1, 0xfe);
	assert_int_equal(spk_i8042_ctrl_alt_del(k), 0);
	/* no who: nothing to tell the ports apart by */
	assert_int_equal(spk_i8042_ops()->read(k, 0, 1, NULL), 0xff);
	spk_i8042_ops()->write(k, 0, 1, 0xfe, NULL);
	spk_i8042_free(k);
	spk_i8042_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_self_test, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_command_byte, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keyboard_commands, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ctrl_alt_del, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_bound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_linux_probe, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
	    cmocka_unit_test(test_config_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
