// SPDX-License-Identifier: Apache-2.0
/* Exit names, exit formatting, and read completion. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <sparkler/exit.h>
#include <sparkler/log.h>

#include "core/internal.h"

static void test_names(void **unused)
{
	static const struct {
		enum spk_exit_kind kind;
		const char *name;
	} names[] = {
	    {SPK_EXIT_NONE, "NONE"},
	    {SPK_EXIT_MMIO, "MMIO"},
	    {SPK_EXIT_PIO, "PIO"},
	    {SPK_EXIT_SYSREG, "SYSREG"},
	    {SPK_EXIT_HYPERCALL, "HYPERCALL"},
	    {SPK_EXIT_EXTERNAL_INTERRUPT, "EXTERNAL_INTERRUPT"},
	    {SPK_EXIT_NESTED_PAGE_FAULT, "NESTED_PAGE_FAULT"},
	    {SPK_EXIT_HALT, "HALT"},
	    {SPK_EXIT_CPU_UP, "CPU_UP"},
	    {SPK_EXIT_CPU_DOWN, "CPU_DOWN"},
	    {SPK_EXIT_SEND_IPI, "SEND_IPI"},
	    {SPK_EXIT_SYSTEM_DOWN, "SYSTEM_DOWN"},
	    {SPK_EXIT_RESET, "RESET"},
	    {SPK_EXIT_DEBUG, "DEBUG"},
	    {SPK_EXIT_FAIL_ENTRY, "FAIL_ENTRY"},
	    {SPK_EXIT_INTERNAL_ERROR, "INTERNAL_ERROR"},
	    {SPK_EXIT_CANCELLED, "CANCELLED"},
	};

	/* Every kind is listed once: a new kind must be added here too. */
	assert_int_equal(sizeof(names) / sizeof(names[0]), SPK_EXIT__COUNT);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_int_equal(names[i].kind, i);
		assert_string_equal(spk_exit_name(names[i].kind), names[i].name);
	}
	assert_string_equal(spk_exit_name(SPK_EXIT__COUNT), "UNKNOWN");
	assert_string_equal(spk_exit_name((enum spk_exit_kind)1000), "UNKNOWN");
	assert_string_equal(spk_exit_name((enum spk_exit_kind) - 1), "UNKNOWN");
}

/* Format e and check that every needle appears in the line. */
static void check_format(const struct spk_exit *e, const char *const *needles)
{
	char buf[512];
	int n = spk_exit_format(e, buf, sizeof(buf));

	assert_int_equal(n, (int)strlen(buf));
	assert_null(strchr(buf, '\n'));
	for (; *needles; needles++) {
		if (!strstr(buf, *needles))
			fail_msg("\"%s\" not in \"%s\"", *needles, buf);
	}
}

#define CHECK(e, ...) check_format(&(e), (const char *const[]){__VA_ARGS__, NULL})

static struct spk_exit exit_of(enum spk_exit_kind kind)
{
	struct spk_exit e;

	memset(&e, 0, sizeof(e));
	e.kind = kind;
	e.vcpu = 3;
	e.pc = 0x100234;
	return e;
}

static void test_format_mmio_pio_sysreg(void **unused)
{
	struct spk_exit e = exit_of(SPK_EXIT_MMIO);
	uint8_t pio_data[4] = {0x41, 0, 0, 0};
	char buf[256];

	e.vcpu = 0;
	e.mmio.addr = 0xd0000000;
	e.mmio.width = 4;
	e.mmio.is_write = true;
	memcpy(e.mmio.data, (uint8_t[]){0x78, 0x56, 0x34, 0x12}, 4);
	e.mmio.reg = -1;
	spk_exit_format(&e, buf, sizeof(buf));
	assert_string_equal(
	    buf, "MMIO write vcpu=0 pc=0x100234 addr=0xd0000000 width=4 data=0x12345678");
	e.mmio.is_write = false;
	e.mmio.reg = 2;
	e.mmio.reg_width = 8;
	CHECK(e, "MMIO read ", "addr=0xd0000000", "width=4", "reg=2", "reg_width=8");
	spk_exit_format(&e, buf, sizeof(buf));
	assert_null(strstr(buf, "data="));

	e = exit_of(SPK_EXIT_PIO);
	e.pio.port = 0x3f8;
	e.pio.width = 1;
	e.pio.is_write = true;
	e.pio.count = 1;
	e.pio.data = pio_data;
	CHECK(e, "PIO write", "vcpu=3", "pc=0x100234", "port=0x3f8", "width=1", "count=1",
	      "data=0x41");
	e.pio.is_write = false;
	e.pio.count = 16;
	CHECK(e, "PIO read", "port=0x3f8", "count=16");

	e = exit_of(SPK_EXIT_SYSREG);
	e.sysreg.id = 0xc0000080;
	e.sysreg.is_write = true;
	e.sysreg.value = 0xd01;
	CHECK(e, "SYSREG write", "id=0xc0000080", "value=0xd01");
	e.sysreg.is_write = false;
	e.sysreg.fault = true;
	CHECK(e, "SYSREG read", "id=0xc0000080", "fault=1");
}

static void test_format_hypercall_and_cpu(void **unused)
{
	struct spk_exit e = exit_of(SPK_EXIT_HYPERCALL);

	e.hypercall.nr = 7;
	for (int i = 0; i < 6; i++)
		e.hypercall.args[i] = 0xa0 + i;
	CHECK(e, "HYPERCALL", "nr=0x7", "UCALL", "0xa0", "0xa5");
	e.hypercall.nr = 0x1234;
	CHECK(e, "HYPERCALL", "nr=0x1234");

	e = exit_of(SPK_EXIT_EXTERNAL_INTERRUPT);
	e.external_interrupt.vector = 0x20;
	CHECK(e, "EXTERNAL_INTERRUPT", "vector=0x20");

	e = exit_of(SPK_EXIT_CPU_UP);
	e.cpu_up.target_cpu = 2;
	e.cpu_up.entry_point = 0x200000;
	e.cpu_up.arg = 0x55;
	CHECK(e, "CPU_UP", "target=2", "entry=0x200000", "arg=0x55");

	e = exit_of(SPK_EXIT_CPU_DOWN);
	e.cpu_down.state = 9;
	CHECK(e, "CPU_DOWN", "state=0x9");

	e = exit_of(SPK_EXIT_SEND_IPI);
	e.ipi.target_cpu = 1;
	e.ipi.target_cpu_aux = 0xf0;
	e.ipi.vector = 0x40;
	e.ipi.to_all = true;
	CHECK(e, "SEND_IPI", "target=1", "aux=0xf0", "vector=0x40", "to_all=1", "to_self=0");

	e = exit_of(SPK_EXIT_HALT);
	e.halt.cause = SPK_HALT_WFI;
	CHECK(e, "HALT", "cause=WFI");
}

static void test_format_faults_and_events(void **unused)
{
	struct spk_exit e = exit_of(SPK_EXIT_NESTED_PAGE_FAULT);

	e.npf.addr = 0xfee00000;
	e.npf.access = SPK_ACCESS_WRITE;
	e.npf.width = 2;
	e.npf.data[0] = 0x34;
	e.npf.data[1] = 0x12;
	e.npf.readonly = true;
	CHECK(e, "NESTED_PAGE_FAULT", "addr=0xfee00000", "access=w", "width=2", "data=0x1234",
	      "readonly=1");
	e.npf.access = SPK_ACCESS_READ | SPK_ACCESS_EXEC;
	CHECK(e, "access=rx");

	e = exit_of(SPK_EXIT_SYSTEM_DOWN);
	e.system_down.source = SPK_SOURCE_DEVICE;
	CHECK(e, "SYSTEM_DOWN", "source=device");

	e = exit_of(SPK_EXIT_RESET);
	e.reset.source = SPK_SOURCE_TRIPLE_FAULT;
	CHECK(e, "RESET", "source=triple-fault");

	e = exit_of(SPK_EXIT_DEBUG);
	e.debug.pc = 0x1000;
	e.debug.exception = 3;
	e.debug.dr6 = 0xffff0ff0;
	e.debug.dr7 = 0x400;
	CHECK(e, "DEBUG", "debug_pc=0x1000", "exception=3", "#BP", "dr6=0xffff0ff0", "dr7=0x400");

	e = exit_of(SPK_EXIT_FAIL_ENTRY);
	e.fail_entry.hardware_entry_failure_reason = 0x80000021;
	e.fail_entry.cpu = 5;
	CHECK(e, "FAIL_ENTRY", "reason=0x80000021", "cpu=5");

	e = exit_of(SPK_EXIT_NONE);
	CHECK(e, "NONE vcpu=3 pc=0x100234");
	e = exit_of(SPK_EXIT_CANCELLED);
	CHECK(e, "CANCELLED vcpu=3 pc=0x100234");
	e = exit_of((enum spk_exit_kind)77);
	CHECK(e, "UNKNOWN(77)", "vcpu=3");
}

static void test_format_internal(void **unused)
{
	struct spk_exit e = exit_of(SPK_EXIT_INTERNAL_ERROR);
	char buf[256];

	e.vcpu = 0;
	e.internal.code = SPK_INTERNAL_EMULATION;
	snprintf(e.internal.message, sizeof(e.internal.message), "message");
	e.internal.insn[0] = 0xdb;
	e.internal.insn[1] = 0xe3;
	e.internal.insn_len = 2;
	spk_exit_format(&e, buf, sizeof(buf));
	assert_string_equal(
	    buf,
	    "INTERNAL_ERROR vcpu=0 pc=0x100234 code=1 (emulation) raw=0x0 \"message\" insn=db e3");

	/* An unterminated message, newlines and a bogus length stay on one line. */
	memset(e.internal.message, 'x', sizeof(e.internal.message));
	e.internal.message[3] = '\n';
	e.internal.code = SPK_INTERNAL_UNKNOWN_EXIT;
	e.internal.raw = 0x42;
	e.internal.insn_len = 200;
	CHECK(e, "code=256 (unknown exit)", "raw=0x42", "xxx?xxxx");
	spk_exit_format(&e, buf, sizeof(buf));
	assert_null(strchr(buf, '\n'));
}

static void test_format_truncation(void **unused)
{
	struct spk_exit e = exit_of(SPK_EXIT_MMIO);
	char full[256], small[16];
	int n, m;

	e.mmio.addr = 0xd0000000;
	e.mmio.width = 4;
	e.mmio.is_write = true;
	e.mmio.reg = -1;
	n = spk_exit_format(&e, full, sizeof(full));
	assert_true(n > (int)sizeof(small));
	memset(small, 'Z', sizeof(small));
	m = spk_exit_format(&e, small, sizeof(small));
	assert_int_equal(m, n);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_memory_equal(small, full, sizeof(small) - 1);

	/* size 1: just the terminator; size 0: nothing written at all. */
	memset(small, 'Z', sizeof(small));
	assert_int_equal(spk_exit_format(&e, small, 1), n);
	assert_int_equal(small[0], '\0');
	assert_int_equal(small[1], 'Z');
	assert_int_equal(spk_exit_format(&e, small, 0), n);
	assert_int_equal(spk_exit_format(&e, NULL, 0), n);
	assert_true(spk_exit_format(NULL, full, sizeof(full)) > 0);
}

/* ---- completion ---- */

static void test_complete_mmio(void **unused)
{
	struct spk_exit e = exit_of(SPK_EXIT_MMIO);

	e.priv.flags = SPK_COMPLETE_MMIO;
	e.mmio.width = 2;
	memset(e.mmio.data, 0xee, sizeof(e.mmio.data));
	assert_int_equal(spk_exit_complete_read(&e, 0x12345678), 0);
	/* Little-endian, width bytes only. */
	assert_int_equal(e.mmio.data[0], 0x78);
	assert_int_equal(e.mmio.data[1], 0x56);
	assert_int_equal(e.mmio.data[2], 0xee);

	e.mmio.width = 8;
	assert_int_equal(spk_exit_complete_read(&e, 0x0102030405060708), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(e.mmio.data[i], 8 - i);

	e.mmio.is_write = true;
	assert_int_equal(spk_exit_complete_read(&e, 1), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "write"));
	e.mmio.is_write = false;
	e.mmio.width = 9;
	assert_int_equal(spk_exit_complete_read(&e, 1), -EINVAL);
}

static void test_complete_npf(void **unused)
{
	struct spk_exit e = exit_of(SPK_EXIT_NESTED_PAGE_FAULT);

	e.priv.flags = SPK_COMPLETE_NPF;
	e.npf.access = SPK_ACCESS_READ;
	e.npf.width = 4;
	assert_int_equal(spk_exit_complete_read(&e, 0xcafef00d), 0);
	assert_int_equal(e.npf.data[0], 0x0d);
	assert_int_equal(e.npf.data[3], 0xca);
	e.npf.access = SPK_ACCESS_WRITE;
	assert_int_equal(spk_exit_complete_read(&e, 0), -EINVAL);
	assert_int_equal(e.npf.data[0], 0x0d);
}

static void test_complete_pio(void **unused)
{
	struct spk_exit e = exit_of(SPK_EXIT_PIO);
	uint8_t data[8];

	memset(data, 0xee, sizeof(data));
	e.priv.flags = SPK_COMPLETE_PIO;
	e.pio.width = 2;
	e.pio.count = 1;
	e.pio.data = data;
	assert_int_equal(spk_exit_complete_read(&e, 0xabcd), 0);
	assert_int_equal(data[0], 0xcd);
	assert_int_equal(data[1], 0xab);
	assert_int_equal(data[2], 0xee);

	e.pio.width = 4;
	assert_int_equal(spk_exit_complete_read(&e, 0x11223344), 0);
	assert_int_equal(data[3], 0x11);
	assert_int_equal(data[4], 0xee);

	e.pio.count = 2; /* rep ins: fill data instead */
	assert_int_equal(spk_exit_complete_read(&e, 1), -EINVAL);
	e.pio.count = 1;
	e.pio.data = NULL;
	assert_int_equal(spk_exit_complete_read(&e, 1), -EINVAL);
	e.pio.data = data;
	e.pio.is_write = true;
	assert_int_equal(spk_exit_complete_read(&e, 1), -EINVAL);
	e.pio.is_write = false;
	e.pio.width = 8;
	assert_int_equal(spk_exit_complete_read(&e, 1), -EINVAL);
	assert_int_equal(data[0], 0x44);
}

static void test_complete_sysreg_and_hypercalls(void **unused)
{
	struct spk_exit e = exit_of(SPK_EXIT_SYSREG);

	e.priv.flags = SPK_COMPLETE_SYSREG;
	assert_int_equal(spk_exit_complete_read(&e, 0xfeedface12345678), 0);
	assert_true(e.sysreg.value == 0xfeedface12345678);
	e.sysreg.is_write = true;
	assert_int_equal(spk_exit_complete_read(&e, 1), -EINVAL);

	e = exit_of(SPK_EXIT_HYPERCALL);
	e.priv.flags = SPK_COMPLETE_HC;
	assert_int_equal(spk_exit_complete_read(&e, (uint64_t)-22), 0);
	assert_true(e.hypercall.ret == (uint64_t)-22);

	static const enum spk_exit_kind priv_kinds[] = {SPK_EXIT_CPU_UP, SPK_EXIT_CPU_DOWN,
	                                                SPK_EXIT_SEND_IPI};
	for (size_t i = 0; i < 3; i++) {
		e = exit_of(priv_kinds[i]);
		e.priv.flags = SPK_COMPLETE_HC_PRIV;
		assert_int_equal(spk_exit_complete_read(&e, 77), 0);
		assert_true(e.priv.hc_ret == 77);
	}
}

static void test_complete_refusals(void **unused)
{
	struct spk_exit e;

	/* Exits that take no value: every kind with no completion flag. */
	for (int k = 0; k < SPK_EXIT__COUNT; k++) {
		e = exit_of((enum spk_exit_kind)k);
		e.priv.flags = SPK_COMPLETE_NONE;
		assert_int_equal(spk_exit_complete_read(&e, 1), -EINVAL);
		assert_non_null(strstr(spk_last_error(), spk_exit_name((enum spk_exit_kind)k)));
	}
	/* A flag that does not match the kind is refused, not obeyed. */
	e = exit_of(SPK_EXIT_HALT);
	e.priv.flags = SPK_COMPLETE_MMIO;
	assert_int_equal(spk_exit_complete_read(&e, 1), -EINVAL);
	e.priv.flags = SPK_COMPLETE_HC;
	assert_int_equal(spk_exit_complete_read(&e, 1), -EINVAL);
	e.priv.flags = 999;
	assert_int_equal(spk_exit_complete_read(&e, 1), -EINVAL);
	assert_int_equal(spk_exit_complete_read(NULL, 1), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_format_mmio_pio_sysreg),
	    cmocka_unit_test(test_format_hypercall_and_cpu),
	    cmocka_unit_test(test_format_faults_and_events),
	    cmocka_unit_test(test_format_internal),
	    cmocka_unit_test(test_format_truncation),
	    cmocka_unit_test(test_complete_mmio),
	    cmocka_unit_test(test_complete_npf),
	    cmocka_unit_test(test_complete_pio),
	    cmocka_unit_test(test_complete_sysreg_and_hypercalls),
	    cmocka_unit_test(test_complete_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
