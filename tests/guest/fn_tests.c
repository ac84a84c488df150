/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Function sandboxes (include/sparkler/fn.h) under KVM, with the guests
 * guest/tests/fn_basic.c (no C library) and fn_musl.c (musl). One case
 * per program run: `fn_tests CASE`. No timed assertions: budgets are
 * checked by what they end, cancellation waits for the guest to get
 * where it is cancelled.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define BASIC GUEST_DIR "/t_fn_basic.elf"
#define MUSL  GUEST_DIR "/t_fn_musl.elf"

static struct spk_fn_value i64(int64_t v)
{
	return (struct spk_fn_value){.type = SPK_FN_I64, .i64 = v};
}

static struct spk_fn_value f64(double v)
{
	return (struct spk_fn_value){.type = SPK_FN_F64, .f64 = v};
}

static struct spk_fn_value bytes(const void *p, size_t n)
{
	return (struct spk_fn_value){.type = SPK_FN_BYTES, .ptr = p, .len = n};
}

static struct spk_fn_value str(const char *s)
{
	return (struct spk_fn_value){.type = SPK_FN_STR, .ptr = s, .len = strlen(s)};
}

static struct spk_fn *open_basic(const struct spk_fn_config *cfg)
{
	struct spk_fn *fn = NULL;

	CHECK_OK(spk_fn_open(BASIC, cfg, &fn));
	CHECK(fn != NULL, "open gave a sandbox");
	return fn;
}

/* Call and expect an error, whose message must contain want. */
static void call_fails(struct spk_fn *fn, const char *name, const struct spk_fn_value *args,
                       unsigned n, int err, const char *want)
{
	struct spk_fn_value r;
	int rc = spk_fn_call(fn, name, args, n, &r);

	CHECK(rc == -err, "%s: returned %d (%s), want %d", name, rc, spk_last_error(), -err);
	CHECK(strstr(spk_last_error(), want), "%s: message '%s' lacks '%s'", name, spk_last_error(),
	      want);
	printf("  %s -> %d: %s\n", name, rc, spk_last_error());
}

static int64_t call_i64(struct spk_fn *fn, const char *name, const struct spk_fn_value *args,
                        unsigned n)
{
	struct spk_fn_value r;

	CHECK_OK(spk_fn_call(fn, name, args, n, &r));
	CHECK_EQ(r.type, SPK_FN_I64);
	return r.i64;
}

/* The sandbox still works: a plain call gives the right answer. */
static void still_works(struct spk_fn *fn)
{
	const struct spk_fn_value a[] = {i64(40), i64(2)};

	CHECK_EQ(call_i64(fn, "add", a, 2), 42);
}

/* ---- typed calls ---- */

static void case_typed(void)
{
	struct spk_fn *fn = open_basic(NULL);
	struct spk_fn_value r;
	const char *sig = NULL;

	CHECK(spk_fn_exports(fn) >= 20, "exports: %zu", spk_fn_exports(fn));
	CHECK(spk_fn_export_name(fn, 0, &sig) != NULL, "export 0 has a name");
	const struct spk_fn_value a[] = {i64(INT64_MAX - 5), i64(5)};
	CHECK_EQ(call_i64(fn, "add", a, 2), INT64_MAX);
	const struct spk_fn_value neg[] = {i64(-7), i64(-8)};
	CHECK_EQ(call_i64(fn, "add", neg, 2), -15);
	const struct spk_fn_value d[] = {f64(1.25), i64(-3)};
	CHECK_OK(spk_fn_call(fn, "scale", d, 2, &r));
	CHECK(r.type == SPK_FN_F64 && r.f64 == -3.75, "scale: %f", r.f64);
	/* guest_fn_init ran before READY, and its state is what calls see */
	CHECK_EQ(call_i64(fn, "init_value_get", NULL, 0), 42);
	spk_fn_close(fn);
}

/* ---- strings and buffers ---- */

static void case_buffers(void)
{
	struct spk_fn *fn = open_basic(NULL);
	struct spk_fn_value r;
	static uint8_t big[30000], want[30000]; /* a result goes after the arguments */

	for (size_t i = 0; i < sizeof(big); i++) {
		big[i] = (uint8_t)(i * 7 + 3);
		want[sizeof(big) - 1 - i] = big[i];
	}
	const struct spk_fn_value b[] = {bytes(big, sizeof(big))};
	CHECK_OK(spk_fn_call(fn, "reverse", b, 1, &r));
	CHECK(r.type == SPK_FN_BYTES && r.len == sizeof(big) && !memcmp(r.ptr, want, r.len),
	      "reverse of %zu bytes", r.len);
	const struct spk_fn_value empty[] = {bytes(NULL, 0)};
	CHECK_OK(spk_fn_call(fn, "reverse", empty, 1, &r));
	CHECK_EQ(r.len, 0);
	const struct spk_fn_value s[] = {str("left"), str("right")};
	CHECK_OK(spk_fn_call(fn, "join", s, 2, &r));
	CHECK(r.type == SPK_FN_STR && !strcmp(r.ptr, "left+right") && r.len == 10, "join: %s",
	      (const char *)r.ptr);
	const struct spk_fn_value s2[] = {str(""), (struct spk_fn_value){.type = SPK_FN_STR}};
	CHECK_OK(spk_fn_call(fn, "join", s2, 2, &r));
	CHECK(!strcmp(r.ptr, "+"), "join of empties: %s", (const char *)r.ptr);
	spk_fn_close(fn);
}

/* ---- bad input from the host side ---- */

static void case_bad_calls(void)
{
	struct spk_fn *fn = open_basic(NULL);
	struct spk_fn_value r;
	static uint8_t huge[70000];

	call_fails(fn, "nope", NULL, 0, ENOENT, "no function \"nope\"");
	const struct spk_fn_value one[] = {i64(1)};
	call_fails(fn, "add", one, 1, EINVAL, "takes 2 arguments");
	const struct spk_fn_value wrong[] = {i64(1), str("x")};
	call_fails(fn, "add", wrong, 2, EINVAL, "argument 1 must be 'i'");
	call_fails(fn, "add", NULL, 2, EINVAL, "NULL arguments");
	const struct spk_fn_value nullp[] = {(struct spk_fn_value){.type = SPK_FN_BYTES, .len = 3}};
	call_fails(fn, "reverse", nullp, 1, EINVAL, "NULL with length 3");
	const struct spk_fn_value toobig[] = {bytes(huge, sizeof(huge))};
	call_fails(fn, "reverse", toobig, 1, E2BIG, "do not fit");
	CHECK(spk_fn_call(NULL, "add", NULL, 0, &r) == -EINVAL, "NULL sandbox");
	CHECK(spk_fn_call(fn, NULL, NULL, 0, &r) == -EINVAL, "NULL name");
	/* guest-side errors */
	const struct spk_fn_value e[] = {i64(-5)};
	call_fails(fn, "fail", e, 1, EREMOTEIO, "returned error -5");
	call_fails(fn, "no_result", NULL, 0, EPROTO, "without a result");
	const struct spk_fn_value tb[] = {i64(100 << 10)};
	call_fails(fn, "too_big", tb, 1, EREMOTEIO, "returned error -7");
	still_works(fn);
	spk_fn_close(fn);
}

/* ---- reset isolation and keep-state ---- */

static void case_reset(void)
{
	struct spk_fn *fn = open_basic(NULL);
	struct spk_fn_value r;
	struct spk_fn_stats st;

	const struct spk_fn_value s[] = {str("the secret of call 1")};
	CHECK_OK(spk_fn_call(fn, "set_secret", s, 1, &r));
	CHECK_EQ(r.type, SPK_FN_VOID);
	CHECK_OK(spk_fn_call(fn, "get_secret", NULL, 0, &r));
	CHECK(r.type == SPK_FN_STR && r.len == 0, "call 2 saw '%s'", (const char *)r.ptr);
	for (int i = 0; i < 200; i++)
		CHECK_EQ(call_i64(fn, "count", NULL, 0), 1);
	CHECK_OK(spk_fn_stats(fn, &st));
	CHECK(st.resets >= 201 && st.calls == 202 && st.failed == 0,
	      "stats: %llu resets %llu calls", (unsigned long long)st.resets,
	      (unsigned long long)st.calls);
	/* the page count wrote (and the call buffer, the stack): a few, not all */
	CHECK(st.last_reset_pages >= 1 && st.last_reset_pages <= 64, "reset copied %llu pages",
	      (unsigned long long)st.last_reset_pages);
	printf("  last reset: %llu pages in %llu ns\n", (unsigned long long)st.last_reset_pages,
	       (unsigned long long)st.last_reset_ns);
	spk_fn_close(fn);

	fn = open_basic(&(struct spk_fn_config){.flags = SPK_FN_KEEP_STATE});
	CHECK_OK(spk_fn_call(fn, "set_secret", s, 1, &r));
	CHECK_OK(spk_fn_call(fn, "get_secret", NULL, 0, &r));
	CHECK(!strcmp(r.ptr, "the secret of call 1"), "keep-state lost it: '%s'",
	      (const char *)r.ptr);
	for (int i = 1; i <= 50; i++)
		CHECK_EQ(call_i64(fn, "count", NULL, 0), i);
	/* a failed call resets even with KEEP_STATE */
	call_fails(fn, "null_write", NULL, 0, EFAULT, "#PF");
	CHECK_EQ(call_i64(fn, "count", NULL, 0), 1);
	CHECK_EQ(call_i64(fn, "count", NULL, 0), 2);
	spk_fn_close(fn);
}

/* ---- host functions ---- */

static int host_add(struct spk_fn_host_call *hc, const struct spk_fn_value *a, unsigned n,
                    struct spk_fn_value *ret, void *opaque)
{
	atomic_int *calls = opaque;

	atomic_fetch_add(calls, 1);
	CHECK(spk_fn_host_sandbox(hc) != NULL, "the host call knows its sandbox");
	CHECK(!spk_fn_host_cancelled(hc), "not cancelled");
	ret->i64 = a[0].i64 + a[1].i64;
	return 0;
}

static int host_upper(struct spk_fn_host_call *hc, const struct spk_fn_value *a, unsigned n,
                      struct spk_fn_value *ret, void *opaque)
{
	static char buf[256];
	size_t len = a[0].len < sizeof(buf) ? a[0].len : sizeof(buf) - 1;

	CHECK(((const char *)a[0].ptr)[a[0].len] == 0, "string arguments end in a NUL");
	for (size_t i = 0; i < len; i++) {
		char ch = ((const char *)a[0].ptr)[i];
		buf[i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
	}
	if (len == 3 && !memcmp(buf, "ERR", 3))
		return -ENOENT;
	ret->ptr = buf;
	ret->len = len;
	return 0;
}

static void case_host(void)
{
	struct spk_fn *fn = open_basic(NULL);
	struct spk_fn_value r;
	atomic_int calls = 0;

	CHECK_OK(spk_fn_register_host(fn, "add", "ii:i", host_add, &calls));
	CHECK(spk_fn_register_host(fn, "add", "ii:i", host_add, NULL) == -EEXIST, "twice");
	CHECK(spk_fn_register_host(fn, "x", "q:i", host_add, NULL) == -EINVAL, "bad signature");
	CHECK(spk_fn_register_host(fn, "x", "i:", host_add, NULL) == -EINVAL, "no result type");
	CHECK(spk_fn_register_host(NULL, "x", "i:i", host_add, NULL) == -EINVAL, "NULL");
	CHECK(spk_fn_register_host(fn, "x", "i:i", NULL, NULL) == -EINVAL, "NULL fn");
	CHECK_OK(spk_fn_register_host(fn, "upper", "s:s", host_upper, NULL));
	const struct spk_fn_value a[] = {i64(3), i64(4)};
	CHECK_EQ(call_i64(fn, "host_add", a, 2), 70);
	CHECK_EQ(atomic_load(&calls), 1);
	const struct spk_fn_value s[] = {str("shout me")};
	CHECK_OK(spk_fn_call(fn, "host_upper", s, 1, &r));
	CHECK(!strcmp(r.ptr, "SHOUT ME"), "upper: %s", (const char *)r.ptr);
	/* the host function's error reaches the guest, which returns it */
	const struct spk_fn_value e[] = {str("err")};
	call_fails(fn, "host_upper", e, 1, EREMOTEIO, "returned error -2");
	/* types that do not match the host function: -EINVAL to the guest */
	CHECK_EQ(call_i64(fn, "host_wrong_types", NULL, 0), -EINVAL);
	/* an unregistered host function ends the call */
	call_fails(fn, "host_missing", NULL, 0, EPROTO, "\"nobody\", which is not registered");
	still_works(fn);
	spk_fn_close(fn);
}

/* ---- hostile guests ---- */

static void case_hostile(void)
{
	struct spk_fn *fn = open_basic(NULL);
	uint8_t b[4] = {1, 2, 3, 4};
	static const char *const garbage_want[] = {"outside the", "outside the", "has type 0x69",
	                                           "has type 0x7777"};

	CHECK_OK(spk_fn_register_host(fn, "upper", "s:s", host_upper, NULL));
	for (int mode = 0; mode < 4; mode++) {
		const struct spk_fn_value a[] = {bytes(b, 4), i64(mode)};
		call_fails(fn, "garbage", a, 2, EPROTO, garbage_want[mode]);
		still_works(fn);
	}
	const struct spk_fn_value g[] = {bytes(b, 4)};
	call_fails(fn, "garbage_str", g, 1, EPROTO, "without its NUL");
	static const char *const frame_want[] = {"malformed frame", "malformed frame",
	                                         "malformed frame", "outside the",
	                                         "beyond the data"};
	for (int mode = 0; mode < 5; mode++) {
		const struct spk_fn_value a[] = {i64(mode)};
		call_fails(fn, "bad_host_frame", a, 1, EPROTO, frame_want[mode]);
		still_works(fn);
	}
	call_fails(fn, "null_write", NULL, 0, EFAULT, "#PF page fault");
	still_works(fn);
	call_fails(fn, "beyond_ram", NULL, 0, EFAULT, "cr2 0x10000000000");
	const struct spk_fn_value z[] = {i64(1), i64(0)};
	call_fails(fn, "divide", z, 2, EFAULT, "#DE divide error");
	call_fails(fn, "power_off", NULL, 0, EPROTO, "SYSTEM_DOWN");
	spk_fn_close(fn);
}

/* ---- budgets ---- */

static void case_budgets(void)
{
	/* an exit budget ends a call that makes too many exits, and only it */
	struct spk_fn *fn =
	    open_basic(&(struct spk_fn_config){.exit_budget = 100, .console_fd = -1});
	const struct spk_fn_value few[] = {i64(10)}, many[] = {i64(1000)};
	struct spk_fn_stats st;

	CHECK_OK(spk_fn_call(fn, "many_exits", few, 1, NULL));
	CHECK_OK(spk_fn_stats(fn, &st));
	CHECK_EQ(st.last_exits, 11);
	call_fails(fn, "many_exits", many, 1, EDQUOT, "exit budget (100 exits)");
	still_works(fn);
	/* a budget that ends a call right after a port read the library
	 * answered: KVM's pending completion of it (rax or memory, and rip)
	 * must not reach the next call, which starts from the reset point */
	for (int mode = 0; mode < 2; mode++) {
		const struct spk_fn_value m[] = {i64(mode)};
		for (int round = 0; round < 3; round++) {
			call_fails(fn, "port_read_loop", m, 1, EDQUOT, "exit budget");
			still_works(fn);
		}
	}
	spk_fn_close(fn);

	/* a time budget ends a loop (no assertion on how long it took) */
	fn = open_basic(&(struct spk_fn_config){.time_budget_ns = 200000000});
	call_fails(fn, "spin", NULL, 0, ETIMEDOUT, "time budget");
	still_works(fn);
	call_fails(fn, "spin", NULL, 0, ETIMEDOUT, "time budget");
	still_works(fn);
	spk_fn_close(fn);
}

/* ---- cancellation from another thread ---- */

struct canceller {
	struct spk_fn *fn;
	atomic_bool started, in_host;
	pthread_t thread;
};

static int host_started(struct spk_fn_host_call *hc, const struct spk_fn_value *a, unsigned n,
                        struct spk_fn_value *ret, void *opaque)
{
	struct canceller *c = opaque;

	atomic_store(&c->started, true);
	return 0;
}

/* Blocks until the call is cancelled: what a host function must notice. */
static int host_block(struct spk_fn_host_call *hc, const struct spk_fn_value *a, unsigned n,
                      struct spk_fn_value *ret, void *opaque)
{
	struct canceller *c = opaque;

	atomic_store(&c->in_host, true);
	while (!spk_fn_host_cancelled(hc))
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	ret->i64 = 1;
	return 0;
}

static void *cancel_main(void *opaque)
{
	struct canceller *c = opaque;

	/* wait for the guest to be where it is to be cancelled */
	while (!atomic_load(&c->started) && !atomic_load(&c->in_host))
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	CHECK_OK(spk_fn_cancel(c->fn));
	return NULL;
}

static void case_cancel(void)
{
	struct canceller c = {0};

	c.fn = open_basic(NULL);
	CHECK(spk_fn_cancel(c.fn) == -ESRCH, "nothing to cancel");
	CHECK_OK(spk_fn_register_host(c.fn, "started", ":v", host_started, &c));
	CHECK_OK(spk_fn_register_host(c.fn, "block", ":i", host_block, &c));

	/* in the guest, spinning at CPL3 */
	pthread_create(&c.thread, NULL, cancel_main, &c);
	call_fails(c.fn, "spin_after_host", NULL, 0, ECANCELED, "cancelled");
	pthread_join(c.thread, NULL);
	still_works(c.fn);

	/* inside a host function */
	atomic_store(&c.started, false);
	pthread_create(&c.thread, NULL, cancel_main, &c);
	call_fails(c.fn, "host_block", NULL, 0, ECANCELED, "cancelled");
	pthread_join(c.thread, NULL);
	CHECK(atomic_load(&c.in_host), "the call was inside the host function");
	still_works(c.fn);
	CHECK(spk_fn_cancel(c.fn) == -ESRCH, "nothing to cancel after");
	spk_fn_close(c.fn);
}

/* ---- NULLs, double close, two threads ---- */

struct racer {
	struct spk_fn *fn;
	atomic_int ok, busy;
};

static void *race_main(void *opaque)
{
	struct racer *r = opaque;

	for (int i = 0; i < 100; i++) {
		const struct spk_fn_value a[] = {i64(i), i64(1)};
		struct spk_fn_value v;
		int rc = spk_fn_call(r->fn, "add", a, 2, &v);

		if (rc == 0) {
			CHECK_EQ(v.i64, i + 1);
			atomic_fetch_add(&r->ok, 1);
		} else {
			CHECK(rc == -EBUSY, "a racing call: %d %s", rc, spk_last_error());
			atomic_fetch_add(&r->busy, 1);
		}
	}
	return NULL;
}

static void case_misuse(void)
{
	struct spk_fn *fn = NULL;
	struct spk_fn_stats st;

	CHECK(spk_fn_open(NULL, NULL, &fn) == -EINVAL, "NULL path");
	CHECK(spk_fn_open(BASIC, NULL, NULL) == -EINVAL, "NULL out");
	CHECK(spk_fn_open("/nonexistent.elf", NULL, &fn) == -ENOENT && !fn, "missing file: %s",
	      spk_last_error());
	CHECK(spk_fn_open("/etc/hostname", NULL, &fn) < 0 && !fn, "not an ELF");
	/* an SDK guest that is not a function guest never says READY */
	CHECK(spk_fn_open(GUEST_DIR "/t_done.elf", &(struct spk_fn_config){.console_fd = -1},
	                  &fn) == -EPROTO &&
	          !fn,
	      "a plain guest: %s", spk_last_error());
	printf("  plain guest: %s\n", spk_last_error());
	CHECK(spk_fn_open(BASIC, &(struct spk_fn_config){.mem_size = 3 << 20}, &fn) == -EINVAL,
	      "mem_size");
	CHECK(spk_fn_open(BASIC, &(struct spk_fn_config){.vcpus = 2}, &fn) == -EINVAL, "vcpus");
	CHECK(spk_fn_open(BASIC, &(struct spk_fn_config){.flags = 8}, &fn) == -EINVAL, "flags");
	CHECK_EQ(spk_fn_close(NULL), 0);
	CHECK(spk_fn_cancel(NULL) == -EINVAL, "cancel NULL");
	CHECK(spk_fn_stats(NULL, &st) == -EINVAL, "stats NULL");
	CHECK(spk_fn_exports(NULL) == 0, "exports NULL");
	CHECK(spk_fn_export_name(NULL, 0, NULL) == NULL, "export name NULL");
	CHECK(!spk_fn_host_cancelled(NULL) && !spk_fn_host_sandbox(NULL), "host call NULL");

	fn = open_basic(NULL);
	CHECK(spk_fn_stats(fn, NULL) == -EINVAL, "stats NULL out");
	CHECK(spk_fn_export_name(fn, 100000, NULL) == NULL, "export past the end");

	/* two threads on one sandbox: each call either runs or is refused */
	struct racer r = {.fn = fn};
	pthread_t t1, t2;
	pthread_create(&t1, NULL, race_main, &r);
	pthread_create(&t2, NULL, race_main, &r);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	CHECK_EQ(atomic_load(&r.ok) + atomic_load(&r.busy), 200);
	CHECK(atomic_load(&r.ok) > 0, "some calls ran");
	printf("  two threads: %d ran, %d refused\n", atomic_load(&r.ok), atomic_load(&r.busy));

	CHECK_OK(spk_fn_close(fn));
	CHECK(spk_fn_close(fn) == -EINVAL, "double close");
	CHECK(spk_fn_call(fn, "add", NULL, 0, NULL) == -EINVAL, "call after close");
	CHECK(spk_fn_cancel(fn) == -EINVAL, "cancel after close");
}

/* close while another thread's call spins: the call is cancelled */
struct closer {
	struct spk_fn *fn;
	atomic_bool started;
	int rc;
};

static int host_started2(struct spk_fn_host_call *hc, const struct spk_fn_value *a, unsigned n,
                         struct spk_fn_value *ret, void *opaque)
{
	atomic_store(&((struct closer *)opaque)->started, true);
	return 0;
}

static void *closer_call(void *opaque)
{
	struct closer *c = opaque;

	c->rc = spk_fn_call(c->fn, "spin_after_host", NULL, 0, NULL);
	return NULL;
}

static void case_close_running(void)
{
	struct closer c = {0};
	pthread_t t;

	c.fn = open_basic(NULL);
	CHECK_OK(spk_fn_register_host(c.fn, "started", ":v", host_started2, &c));
	pthread_create(&t, NULL, closer_call, &c);
	while (!atomic_load(&c.started))
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	CHECK_OK(spk_fn_close(c.fn));
	pthread_join(t, NULL);
	CHECK(c.rc == -ECANCELED, "the running call: %d", c.rc);
}

/* ---- musl ---- */

static struct spk_fn *open_musl(const struct spk_fn_config *cfg)
{
	struct spk_fn *fn = NULL;

	if (access(MUSL, R_OK) != 0) {
		printf("SKIP: %s not built (no musl-dev)\n", MUSL);
		exit(77);
	}
	CHECK_OK(spk_fn_open(MUSL, cfg, &fn));
	return fn;
}

static int cmp32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	return (x > y) - (x < y);
}

static void case_musl(void)
{
	struct spk_fn *fn = open_musl(NULL);
	struct spk_fn_value r;
	int32_t v[1000], sorted[1000];

	CHECK_OK(spk_fn_call(fn, "hello", NULL, 0, &r));
	CHECK(!strcmp(r.ptr, "hello from musl"), "hello: %s", (const char *)r.ptr);
	for (int i = 0; i < 1000; i++)
		v[i] = sorted[i] = (int32_t)((i * 7919) % 1000) - 500;
	qsort(sorted, 1000, 4, cmp32);
	const struct spk_fn_value b[] = {bytes(v, sizeof(v))};
	CHECK_OK(spk_fn_call(fn, "sort", b, 1, &r));
	CHECK(r.len == sizeof(v) && !memcmp(r.ptr, sorted, sizeof(v)), "qsort in the guest");
	const struct spk_fn_value f[] = {str("pi"), f64(3.14159265)};
	CHECK_OK(spk_fn_call(fn, "format", f, 2, &r));
	CHECK(!strcmp(r.ptr, "pi=3.142 (3.141593e+00)"), "format: %s", (const char *)r.ptr);
	const struct spk_fn_value p[] = {str("-2.5e3")};
	CHECK_OK(spk_fn_call(fn, "parse_double", p, 1, &r));
	CHECK(r.f64 == -2500.0, "strtod: %f", r.f64);
	const struct spk_fn_value small[] = {i64(1 << 20)};
	CHECK_EQ(call_i64(fn, "alloc", small, 1), 256);
	CHECK(call_i64(fn, "now", NULL, 0) > 0, "clock_gettime");
	CHECK_EQ(call_i64(fn, "no_file", NULL, 0), ENOSYS);
	/* the memory cap: more than guest RAM cannot be had */
	const struct spk_fn_value huge[] = {i64(64 << 20)};
	CHECK_EQ(call_i64(fn, "alloc", huge, 1), -1);
	CHECK_EQ(call_i64(fn, "alloc", small, 1), 256);
	const struct spk_fn_value q[] = {i64(9)};
	call_fails(fn, "quit", q, 1, EPROTO, "exited with status 9");
	CHECK_OK(spk_fn_call(fn, "hello", NULL, 0, &r));
	spk_fn_close(fn);
}

/* thousands of calls with reset, each right */
static void case_many(void)
{
	struct spk_fn *fn = open_musl(&(struct spk_fn_config){.console_fd = -1});
	struct spk_fn_value r;
	struct spk_fn_stats st;

	for (int i = 0; i < 2000; i++) {
		int32_t v[3] = {i, -i, 7};
		int32_t want[3] = {-i, 7, i};
		if (i < 7) {
			want[1] = i;
			want[2] = 7;
		}
		if (i == 0) {
			want[0] = 0;
			want[1] = 0;
		}
		const struct spk_fn_value b[] = {bytes(v, sizeof(v))};
		CHECK_OK(spk_fn_call(fn, "sort", b, 1, &r));
		CHECK(!memcmp(r.ptr, want, sizeof(want)), "call %d: %d %d %d", i,
		      ((const int32_t *)r.ptr)[0], ((const int32_t *)r.ptr)[1],
		      ((const int32_t *)r.ptr)[2]);
	}
	CHECK_OK(spk_fn_stats(fn, &st));
	CHECK(st.calls == 2000 && st.resets == 1999 && !st.failed, "stats");
	spk_fn_close(fn);
}

int main(int argc, char **argv)
{
	static const struct th_case cases[] = {
	    {"typed", case_typed},         {"buffers", case_buffers},
	    {"bad_calls", case_bad_calls}, {"reset", case_reset},
	    {"host", case_host},           {"hostile", case_hostile},
	    {"budgets", case_budgets},     {"cancel", case_cancel},
	    {"misuse", case_misuse},       {"close_running", case_close_running},
	    {"musl", case_musl},           {"many", case_many},
	};

	return th_main(argc, argv, cases, SPK_ARRAY_SIZE_T(cases));
}
