/* SPDX-License-Identifier: Apache-2.0 */
/* A function guest without a C library: tests/guest/fn_tests.c calls it. */
#include <guest_fn.h>

static char secret[64];
static int64_t counter;
static int64_t init_value;

int guest_fn_init(void)
{
	init_value = 42;
	return 0;
}

SPK_EXPORT(add, "ii:i")
{
	return guest_fn_ret_i64(c, guest_fn_i64(c, 0) + guest_fn_i64(c, 1));
}

SPK_EXPORT(scale, "di:d")
{
	return guest_fn_ret_f64(c, guest_fn_f64(c, 0) * (double)guest_fn_i64(c, 1));
}

SPK_EXPORT(init_value_get, ":i")
{
	return guest_fn_ret_i64(c, init_value);
}

/* the bytes reversed */
SPK_EXPORT(reverse, "b:b")
{
	size_t n;
	const uint8_t *p = guest_fn_bytes(c, 0, &n);
	static uint8_t out[65536];

	if (n > sizeof(out))
		return 7;
	for (size_t i = 0; i < n; i++)
		out[i] = p[n - 1 - i];
	return guest_fn_ret_bytes(c, out, n);
}

/* "<a>+<b>" */
SPK_EXPORT(join, "ss:s")
{
	size_t na, nb;
	const char *a = guest_fn_str(c, 0, &na), *b = guest_fn_str(c, 1, &nb);
	static char out[256];

	if (na + nb + 2 > sizeof(out))
		return 7;
	memcpy(out, a, na);
	out[na] = '+';
	memcpy(out + na + 1, b, nb + 1);
	return guest_fn_ret_str(c, out);
}

SPK_EXPORT(set_secret, "s:v")
{
	size_t n;
	const char *s = guest_fn_str(c, 0, &n);

	if (n >= sizeof(secret))
		return 7;
	memcpy(secret, s, n + 1);
	return 0;
}

SPK_EXPORT(get_secret, ":s")
{
	return guest_fn_ret_str(c, secret);
}

SPK_EXPORT(count, ":i")
{
	return guest_fn_ret_i64(c, ++counter);
}

SPK_EXPORT(fail, "i:i")
{
	return (int)guest_fn_i64(c, 0);
}

SPK_EXPORT(no_result, ":i")
{
	return 0;
}

SPK_EXPORT(too_big, "i:b")
{
	static uint8_t big[128 << 10];

	return guest_fn_ret_bytes(c, big, (size_t)guest_fn_i64(c, 0));
}

/* ---- host functions ---- */

SPK_EXPORT(host_add, "ii:i")
{
	struct guest_fn_result r;
	int64_t rc = guest_fn_host("add", "ii:i", &r, guest_fn_i64(c, 0), guest_fn_i64(c, 1));

	return rc ? (int)rc : guest_fn_ret_i64(c, r.i64 * 10);
}

SPK_EXPORT(host_upper, "s:s")
{
	struct guest_fn_result r;
	int64_t rc = guest_fn_host("upper", "s:s", &r, guest_fn_str(c, 0, NULL));

	return rc ? (int)rc : guest_fn_ret_str(c, r.data);
}

SPK_EXPORT(host_wrong_types, ":i")
{
	/* "add" takes two integers: the host answers -EINVAL */
	return guest_fn_ret_i64(c, guest_fn_host("add", "s:i", NULL, "x"));
}

SPK_EXPORT(host_missing, ":i")
{
	return guest_fn_ret_i64(c, guest_fn_host("nobody", ":i", NULL));
}

/* a host function that blocks until the call is cancelled */
SPK_EXPORT(host_block, ":i")
{
	return guest_fn_ret_i64(c, guest_fn_host("block", ":i", NULL));
}

/* tell the host, then spin */
SPK_EXPORT(spin_after_host, ":v")
{
	guest_fn_host("started", ":v", NULL);
	for (;;)
		__asm__ volatile("" ::: "memory");
	return 0;
}

/* ---- misbehaving guests ---- */

SPK_EXPORT(spin, ":v")
{
	for (;;)
		__asm__ volatile("" ::: "memory");
	return 0;
}

SPK_EXPORT(many_exits, "i:v")
{
	for (int64_t i = 0; i < guest_fn_i64(c, 0); i++)
		guest_write(".", 1);
	return 0;
}

SPK_EXPORT(null_write, ":v")
{
	volatile uint64_t addr = 0x10008; /* the page tables: supervisor only */

	*(volatile uint64_t *)addr = 1;
	return 0;
}

SPK_EXPORT(beyond_ram, ":v")
{
	volatile uint64_t addr = 1ull << 40; /* not mapped: #PF */

	*(volatile uint64_t *)addr = 1;
	return 0;
}

/* port reads forever, `in` (mode 0) or `ins` into memory (mode 1): each is
 * an exit the library answers itself (the hypercall port, read: all ones), so an exit
 * budget ends the call right after one, with KVM still owing the
 * instruction its completion (rax or memory, and rip) */
SPK_EXPORT(port_read_loop, "i:v")
{
	static volatile uint32_t sink[4];
	int64_t mode = guest_fn_i64(c, 0);

	for (;;) {
		if (mode == 0) {
			uint32_t v;
			__asm__ volatile("inl %w1, %0" : "=a"(v) : "Nd"((uint16_t)SPK_HC_PORT));
			sink[0] = v;
		} else {
			void *dst = (void *)&sink[1];
			__asm__ volatile("insl"
			                 : "+D"(dst)
			                 : "d"((uint16_t)SPK_HC_PORT)
			                 : "memory");
		}
	}
	return 0;
}

SPK_EXPORT(divide, "ii:i")
{
	volatile int64_t a = guest_fn_i64(c, 0), b = guest_fn_i64(c, 1);

	return guest_fn_ret_i64(c, a / b);
}

SPK_EXPORT(power_off, ":v")
{
	guest_hc0(SPK_HC_SYSTEM_OFF); /* not a function sandbox's exit */
	return 0;
}

SPK_EXPORT(do_exit, "i:v")
{
	int64_t st = guest_fn_i64(c, 0);
	uint64_t r;

	__asm__ volatile("syscall" : "=a"(r) : "a"(60), "D"(st) : "rcx", "r11", "memory");
	return 0;
}

/* the frame of the current call: the first bytes argument is at offset 0 */
static struct spk_fn_frame *frame_of(const struct guest_fn_call *c)
{
	return (struct spk_fn_frame *)((const uint8_t *)guest_fn_bytes(c, 0, NULL) -
	                               SPK_FN_DATA_OFFSET);
}

/* a result the SDK would not write: mode 0 offset out of the data area,
 * 1 a length that wraps, 2 the wrong type, 3 a status that means nothing,
 * 4 a string without its NUL */
SPK_EXPORT(garbage, "bi:b")
{
	struct spk_fn_frame *f = frame_of(c);
	int64_t mode = guest_fn_i64(c, 1);
	int rc = guest_fn_ret_bytes(c, "ok", 2);

	if (mode == 0)
		f->ret.v = 1ull << 40;
	else if (mode == 1)
		f->ret.len = ~0ull - 3;
	else if (mode == 2)
		f->ret.type = SPK_FN_T_I64;
	else if (mode == 3) {
		/* the SDK writes the status after we return: corrupt the magic of
		 * the next frame instead, by pointing the status at garbage */
		f->ret.type = 0x7777;
	}
	return rc;
}

SPK_EXPORT(garbage_str, "b:s")
{
	struct spk_fn_frame *f = frame_of(c);
	int rc = guest_fn_ret_str(c, "abc");
	uint8_t *data = (uint8_t *)f + SPK_FN_DATA_OFFSET;

	data[f->ret.v + f->ret.len] = 'x'; /* no NUL */
	return rc;
}

/* a host call frame the SDK would not write: 0 bad magic, 1 too many
 * arguments, 2 a name without its NUL, 3 a bytes argument outside the
 * data area, 4 arguments that end beyond it */
SPK_EXPORT(bad_host_frame, "i:i")
{
	struct spk_fn_frame *f = guest_fn_host_frame();
	int64_t mode = guest_fn_i64(c, 0);

	*f = (struct spk_fn_frame){.magic = SPK_FN_MAGIC, .nargs = 1, .name = "upper"};
	f->args[0] = (struct spk_fn_abi_val){.type = SPK_FN_T_STR, .v = 0, .len = 1};
	((uint8_t *)f + SPK_FN_DATA_OFFSET)[0] = 'a';
	((uint8_t *)f + SPK_FN_DATA_OFFSET)[1] = 0;
	f->args_end = 8;
	if (mode == 0)
		f->magic = 0x1234;
	else if (mode == 1)
		f->nargs = 99;
	else if (mode == 2)
		memset(f->name, 'n', sizeof(f->name));
	else if (mode == 3)
		f->args[0].v = ~0ull - 8;
	else if (mode == 4)
		f->args_end = 1ull << 40;
	return guest_fn_ret_i64(c,
	                        (int64_t)guest_hypercall(SPK_HC_FN, SPK_FN_OP_HOST, 0, 0, 0, 0, 0));
}
