// SPDX-License-Identifier: Apache-2.0
/*
 * Exits as text, and the completion of exits that hand a value back to
 * the guest. The backend marks in exit->priv.flags which field it will
 * copy back into KVM at the next run; completion writes only that field.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sparkler/exit.h>
#include <sparkler/hypercall.h>

#include "core/internal.h"

static const char *const exit_names[SPK_EXIT__COUNT] = {
    [SPK_EXIT_NONE] = "NONE",
    [SPK_EXIT_MMIO] = "MMIO",
    [SPK_EXIT_PIO] = "PIO",
    [SPK_EXIT_SYSREG] = "SYSREG",
    [SPK_EXIT_HYPERCALL] = "HYPERCALL",
    [SPK_EXIT_EXTERNAL_INTERRUPT] = "EXTERNAL_INTERRUPT",
    [SPK_EXIT_NESTED_PAGE_FAULT] = "NESTED_PAGE_FAULT",
    [SPK_EXIT_HALT] = "HALT",
    [SPK_EXIT_CPU_UP] = "CPU_UP",
    [SPK_EXIT_CPU_DOWN] = "CPU_DOWN",
    [SPK_EXIT_SEND_IPI] = "SEND_IPI",
    [SPK_EXIT_SYSTEM_DOWN] = "SYSTEM_DOWN",
    [SPK_EXIT_RESET] = "RESET",
    [SPK_EXIT_DEBUG] = "DEBUG",
    [SPK_EXIT_FAIL_ENTRY] = "FAIL_ENTRY",
    [SPK_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
    [SPK_EXIT_CANCELLED] = "CANCELLED",
};

const char *spk_exit_name(enum spk_exit_kind kind)
{
	/* The enum is open: a value from a newer backend is not an index. */
	if ((unsigned)kind >= SPK_EXIT__COUNT || !exit_names[kind])
		return "UNKNOWN";
	return exit_names[kind];
}

/* ---- formatting ---- */

/* An snprintf-like appender: len counts what would have been written. */
struct out {
	char *buf;
	size_t size;
	size_t len;
};

static void __attribute__((format(printf, 2, 3))) out_add(struct out *o, const char *fmt, ...)
{
	size_t room = o->len < o->size ? o->size - o->len : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n;
}

/* width bytes of little-endian data as a number (width clamped to 8). */
static uint64_t le_value(const uint8_t *data, unsigned width)
{
	uint64_t v = 0;

	if (width > 8)
		width = 8;
	for (unsigned i = 0; i < width; i++)
		v |= (uint64_t)data[i] << (8 * i);
	return v;
}

static const char *rw_name(bool is_write)
{
	return is_write ? "write" : "read";
}

static void format_mmio(struct out *o, const struct spk_exit *e)
{
	out_add(o, " addr=0x%" PRIx64 " width=%u", e->mmio.addr, e->mmio.width);
	if (e->mmio.is_write)
		out_add(o, " data=0x%" PRIx64, le_value(e->mmio.data, e->mmio.width));
	if (e->mmio.reg >= 0)
		out_add(o, " reg=%d reg_width=%u sign_ext=%d", e->mmio.reg, e->mmio.reg_width,
		        e->mmio.sign_ext);
}

static void format_pio(struct out *o, const struct spk_exit *e)
{
	out_add(o, " port=0x%x width=%u count=%" PRIu32, e->pio.port, e->pio.width, e->pio.count);
	/* Only a single written element is worth a value; rep data is bulk. */
	if (e->pio.is_write && e->pio.count == 1 && e->pio.data)
		out_add(o, " data=0x%" PRIx64, le_value(e->pio.data, e->pio.width));
}

static void format_sysreg(struct out *o, const struct spk_exit *e)
{
	out_add(o, " id=0x%" PRIx64, e->sysreg.id);
	if (e->sysreg.is_write)
		out_add(o, " value=0x%" PRIx64, e->sysreg.value);
	if (e->sysreg.fault)
		out_add(o, " fault=1");
}

static void format_hypercall(struct out *o, const struct spk_exit *e)
{
	const char *name = spk_hypercall_name(e->hypercall.nr);

	out_add(o, " nr=0x%" PRIx64, e->hypercall.nr);
	if (name)
		out_add(o, " (%s)", name);
	out_add(o,
	        " args=0x%" PRIx64 ",0x%" PRIx64 ",0x%" PRIx64 ",0x%" PRIx64 ",0x%" PRIx64
	        ",0x%" PRIx64,
	        e->hypercall.args[0], e->hypercall.args[1], e->hypercall.args[2],
	        e->hypercall.args[3], e->hypercall.args[4], e->hypercall.args[5]);
}

static void format_npf(struct out *o, const struct spk_exit *e)
{
	uint32_t a = e->npf.access;

	out_add(o, " addr=0x%" PRIx64 " access=%s%s%s", e->npf.addr, a & SPK_ACCESS_READ ? "r" : "",
	        a & SPK_ACCESS_WRITE ? "w" : "", a & SPK_ACCESS_EXEC ? "x" : "");
	if (!(a & (SPK_ACCESS_READ | SPK_ACCESS_WRITE | SPK_ACCESS_EXEC)))
		out_add(o, "none");
	out_add(o, " width=%u", e->npf.width);
	if ((a & SPK_ACCESS_WRITE) && e->npf.width)
		out_add(o, " data=0x%" PRIx64, le_value(e->npf.data, e->npf.width));
	if (e->npf.readonly)
		out_add(o, " readonly=1");
}

static const char *halt_name(enum spk_halt_cause cause)
{
	switch (cause) {
	case SPK_HALT_HLT:
		return "HLT";
	case SPK_HALT_WFI:
		return "WFI";
	case SPK_HALT_WFE:
		return "WFE";
	}
	return "UNKNOWN";
}

static const char *source_name(enum spk_event_source source)
{
	switch (source) {
	case SPK_SOURCE_HYPERCALL:
		return "hypercall";
	case SPK_SOURCE_TRIPLE_FAULT:
		return "triple-fault";
	case SPK_SOURCE_SYSTEM_EVENT:
		return "system-event";
	case SPK_SOURCE_DEVICE:
		return "device";
	}
	return "unknown";
}

static void format_ipi(struct out *o, const struct spk_exit *e)
{
	out_add(
	    o, " target=%" PRIu64 " aux=0x%" PRIx64 " vector=0x%" PRIx64 " to_all=%d to_self=%d",
	    e->ipi.target_cpu, e->ipi.target_cpu_aux, e->ipi.vector, e->ipi.to_all, e->ipi.to_self);
}

static void format_debug(struct out *o, const struct spk_exit *e)
{
	const char *exc = e->debug.exception == 1   ? " (#DB)"
	                  : e->debug.exception == 3 ? " (#BP)"
	                                            : "";

	out_add(o,
	        " debug_pc=0x%" PRIx64 " exception=%" PRIu32 "%s dr6=0x%" PRIx64 " dr7=0x%" PRIx64,
	        e->debug.pc, e->debug.exception, exc, e->debug.dr6, e->debug.dr7);
}

static const char *internal_code_name(uint32_t code)
{
	switch (code) {
	case SPK_INTERNAL_EMULATION:
		return "emulation";
	case 2: /* KVM_INTERNAL_ERROR_SIMUL_EX */
		return "simultaneous exceptions";
	case 3: /* KVM_INTERNAL_ERROR_DELIVERY_EV */
		return "event delivery";
	case 4: /* KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON */
		return "unexpected exit reason";
	case SPK_INTERNAL_UNKNOWN_EXIT:
		return "unknown exit";
	case SPK_INTERNAL_RUN_FAILED:
		return "run failed";
	case SPK_INTERNAL_STRICT_MISS:
		return "strict miss";
	case SPK_INTERNAL_BAD_EXIT:
		return "bad exit";
	case SPK_INTERNAL_HYPERCALL:
		return "bad hypercall";
	case SPK_INTERNAL_NO_SYNDROME:
		return "MMIO without syndrome";
	}
	return "unknown";
}

/*
 * The message in quotes, kept to one line: it may be unterminated (a full
 * buffer) and may quote guest-controlled text.
 */
static void format_message(struct out *o, const char *msg)
{
	char clean[SPK_EXIT_MSG_MAX];
	size_t len = strnlen(msg, SPK_EXIT_MSG_MAX);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)msg[i];

		clean[i] = (c < 0x20 || c >= 0x7f || c == '"') ? '?' : (char)c;
	}
	out_add(o, " \"%.*s\"", (int)len, clean);
}

static void format_internal(struct out *o, const struct spk_exit *e)
{
	unsigned n = e->internal.insn_len;

	out_add(o, " code=%" PRIu32 " (%s) raw=0x%" PRIx64, e->internal.code,
	        internal_code_name(e->internal.code), e->internal.raw);
	format_message(o, e->internal.message);
	if (n > SPK_EXIT_INSN_MAX)
		n = SPK_EXIT_INSN_MAX;
	for (unsigned i = 0; i < n; i++)
		out_add(o, "%s%02x", i ? " " : " insn=", e->internal.insn[i]);
}

/* The fields of each kind, after the common "KIND vcpu=N pc=0x..." part. */
static void format_fields(struct out *o, const struct spk_exit *e)
{
	switch (e->kind) {
	case SPK_EXIT_MMIO:
		format_mmio(o, e);
		break;
	case SPK_EXIT_PIO:
		format_pio(o, e);
		break;
	case SPK_EXIT_SYSREG:
		format_sysreg(o, e);
		break;
	case SPK_EXIT_HYPERCALL:
		format_hypercall(o, e);
		break;
	case SPK_EXIT_EXTERNAL_INTERRUPT:
		out_add(o, " vector=0x%" PRIx64, e->external_interrupt.vector);
		break;
	case SPK_EXIT_NESTED_PAGE_FAULT:
		format_npf(o, e);
		break;
	case SPK_EXIT_HALT:
		out_add(o, " cause=%s", halt_name(e->halt.cause));
		break;
	case SPK_EXIT_CPU_UP:
		out_add(o, " target=%" PRIu64 " entry=0x%" PRIx64 " arg=0x%" PRIx64,
		        e->cpu_up.target_cpu, e->cpu_up.entry_point, e->cpu_up.arg);
		break;
	case SPK_EXIT_CPU_DOWN:
		out_add(o, " state=0x%" PRIx64, e->cpu_down.state);
		break;
	case SPK_EXIT_SEND_IPI:
		format_ipi(o, e);
		break;
	case SPK_EXIT_SYSTEM_DOWN:
		out_add(o, " source=%s", source_name(e->system_down.source));
		break;
	case SPK_EXIT_RESET:
		out_add(o, " source=%s", source_name(e->reset.source));
		break;
	case SPK_EXIT_DEBUG:
		format_debug(o, e);
		break;
	case SPK_EXIT_FAIL_ENTRY:
		out_add(o, " reason=0x%" PRIx64 " cpu=%" PRIu32,
		        e->fail_entry.hardware_entry_failure_reason, e->fail_entry.cpu);
		break;
	case SPK_EXIT_INTERNAL_ERROR:
		format_internal(o, e);
		break;
	case SPK_EXIT_NONE:
	case SPK_EXIT_CANCELLED:
	case SPK_EXIT__COUNT:
		break;
	}
}

/* Kinds whose first word is followed by the direction of the access. */
static const char *direction(const struct spk_exit *e)
{
	switch (e->kind) {
	case SPK_EXIT_MMIO:
		return rw_name(e->mmio.is_write);
	case SPK_EXIT_PIO:
		return rw_name(e->pio.is_write);
	case SPK_EXIT_SYSREG:
		return rw_name(e->sysreg.is_write);
	default:
		return NULL;
	}
}

int spk_exit_format(const struct spk_exit *exit, char *buf, size_t size)
{
	struct out o = {.buf = buf, .size = buf ? size : 0, .len = 0};
	const char *dir;

	if (o.size > 0)
		buf[0] = '\0';
	if (!exit) {
		out_add(&o, "(no exit)");
		return (int)o.len;
	}
	out_add(&o, "%s", spk_exit_name(exit->kind));
	if ((unsigned)exit->kind >= SPK_EXIT__COUNT)
		out_add(&o, "(%d)", (int)exit->kind);
	dir = direction(exit);
	if (dir)
		out_add(&o, " %s", dir);
	out_add(&o, " vcpu=%" PRIu32 " pc=0x%" PRIx64, exit->vcpu, exit->pc);
	format_fields(&o, exit);
	return o.len > INT_MAX ? INT_MAX : (int)o.len;
}

/* ---- completion ---- */

static void store_le(uint8_t *dst, uint64_t value, unsigned width)
{
	for (unsigned i = 0; i < width; i++)
		dst[i] = (uint8_t)(value >> (8 * i));
}

static int refuse(const struct spk_exit *e, const char *why)
{
	return spk_fail(EINVAL,
	                "exit: cannot complete %s exit of vcpu %" PRIu32 " with a value: %s",
	                spk_exit_name(e->kind), e->vcpu, why);
}

static int complete_mmio(struct spk_exit *e, uint64_t value)
{
	if (e->kind != SPK_EXIT_MMIO)
		return refuse(e, "not an MMIO exit");
	if (e->mmio.is_write)
		return refuse(e, "it is a write");
	if (e->mmio.width == 0 || e->mmio.width > sizeof(e->mmio.data))
		return spk_fail(
		    EINVAL, "exit: MMIO read of vcpu %" PRIu32 " at 0x%" PRIx64 " has bad width %u",
		    e->vcpu, e->mmio.addr, e->mmio.width);
	store_le(e->mmio.data, value, e->mmio.width);
	return 0;
}

static int complete_npf(struct spk_exit *e, uint64_t value)
{
	if (e->kind != SPK_EXIT_NESTED_PAGE_FAULT)
		return refuse(e, "not a nested page fault");
	if (!(e->npf.access & SPK_ACCESS_READ))
		return refuse(e, "the fault is not a read");
	/* The width may be unknown (0): the backend copies what it needs. */
	store_le(e->npf.data, value, sizeof(e->npf.data));
	return 0;
}

static int complete_pio(struct spk_exit *e, uint64_t value)
{
	if (e->kind != SPK_EXIT_PIO)
		return refuse(e, "not a PIO exit");
	if (e->pio.is_write)
		return refuse(e, "it is a write");
	if (e->pio.count != 1)
		return refuse(e, "a rep read (count != 1) is completed by filling pio.data");
	if (!e->pio.data)
		return refuse(e, "no data buffer");
	if (e->pio.width != 1 && e->pio.width != 2 && e->pio.width != 4)
		return spk_fail(EINVAL,
		                "exit: PIO read of vcpu %" PRIu32 " at port 0x%x"
		                " has bad width %u",
		                e->vcpu, e->pio.port, e->pio.width);
	store_le(e->pio.data, value, e->pio.width);
	return 0;
}

static int complete_sysreg(struct spk_exit *e, uint64_t value)
{
	if (e->kind != SPK_EXIT_SYSREG)
		return refuse(e, "not a SYSREG exit");
	if (e->sysreg.is_write)
		return refuse(e, "it is a write");
	e->sysreg.value = value;
	return 0;
}

int spk_exit_complete_read(struct spk_exit *exit, uint64_t value)
{
	if (!exit)
		return spk_fail(EINVAL, "exit: complete_read without an exit");
	switch (exit->priv.flags) {
	case SPK_COMPLETE_MMIO:
		return complete_mmio(exit, value);
	case SPK_COMPLETE_NPF:
		return complete_npf(exit, value);
	case SPK_COMPLETE_PIO:
		return complete_pio(exit, value);
	case SPK_COMPLETE_SYSREG:
		return complete_sysreg(exit, value);
	case SPK_COMPLETE_HC:
		/* hypercall.ret lives in the union: only a HYPERCALL has it. */
		if (exit->kind != SPK_EXIT_HYPERCALL)
			return refuse(exit, "not a HYPERCALL exit");
		exit->hypercall.ret = value;
		return 0;
	case SPK_COMPLETE_HC_PRIV:
		/* CPU_UP, CPU_DOWN, SEND_IPI: the result sits outside the union. */
		exit->priv.hc_ret = value;
		return 0;
	}
	return refuse(exit, "it returns no value to the guest");
}
