/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Function sandboxes (include/sparkler/fn.h): the latency of calling a
 * trivial guest function (add, "ii:i") with a reset before each call,
 * with state kept (no reset), and with a new sandbox per call; the limit
 * beside them is one bare KVM_RUN round trip at CPL3 plus copying the
 * pages a reset copies back. Target (issue 16): a call with reset costs at
 * most 3x that limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/sparkler.h>

#include "bare.h"
#include "bench.h"
#include "guest.h"

#define FN_GUEST     SPK_BENCH_GUEST_DIR "/t_fn_basic.elf"
#define FN_CALLS_MAX 20000

struct lat {
	double p50, p99, per_s;
	int n;
};

/* Sort n latencies (µs) and summarise them; total: wall time of all. */
static struct lat summarise(double *v, int n, double total)
{
	struct lat l = {.n = n};

	if (!n)
		return l;
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	l.p50 = v[n / 2];
	l.p99 = v[(n * 99) / 100];
	l.per_s = total > 0 ? n / (total / 1e6) : 0;
	return l;
}

static int call_add(struct spk_fn *fn, int i)
{
	const struct spk_fn_value a[] = {{.type = SPK_FN_I64, .i64 = i},
	                                 {.type = SPK_FN_I64, .i64 = 1}};
	struct spk_fn_value r;

	if (spk_fn_call(fn, "add", a, 2, &r) < 0 || r.i64 != i + 1) {
		fprintf(stderr, "sparkler-bench: fn call %d: %s\n", i, spk_last_error());
		return -1;
	}
	return 0;
}

/* n calls on one sandbox opened with flags; *pages: pages the last reset copied. */
static struct lat measure_calls(unsigned flags, int n, double *v, uint64_t *pages)
{
	const struct spk_fn_config cfg = {.flags = flags, .console_fd = -1};
	struct spk_fn *fn;
	struct spk_fn_stats st;
	int done = 0;

	if (spk_fn_open(FN_GUEST, &cfg, &fn) < 0) {
		fprintf(stderr, "sparkler-bench: fn: %s\n", spk_last_error());
		return (struct lat){0};
	}
	call_add(fn, -1); /* the first call skips the reset */
	double t0 = bench_now_us();
	for (; done < n; done++) {
		double t = bench_now_us();
		if (call_add(fn, done) < 0)
			break;
		v[done] = bench_now_us() - t;
	}
	double total = bench_now_us() - t0;
	if (pages && spk_fn_stats(fn, &st) == 0)
		*pages = st.last_reset_pages;
	spk_fn_close(fn);
	return summarise(v, done, total);
}

/* A new sandbox per call: open, call, close. */
static struct lat measure_new_vm(int n, double *v)
{
	const struct spk_fn_config cfg = {.console_fd = -1};
	int done = 0;
	double t0 = bench_now_us();

	for (; done < n; done++) {
		struct spk_fn *fn;
		double t = bench_now_us();

		if (spk_fn_open(FN_GUEST, &cfg, &fn) < 0) {
			fprintf(stderr, "sparkler-bench: fn: %s\n", spk_last_error());
			break;
		}
		int rc = call_add(fn, done);
		spk_fn_close(fn);
		if (rc < 0)
			break;
		v[done] = bench_now_us() - t;
	}
	return summarise(v, done, bench_now_us() - t0);
}

/* The limit: one bare CPL3 exit round trip plus copying pages pages. */
static double limit_us(int exits, uint64_t pages)
{
	struct guest_code g;
	struct bare_vm bare;
	double best = 0;
	int kvm = bare_kvm_open();

	if (kvm < 0)
		return 0;
	guest_loop64(&g, (uint32_t)exits);
	if (bare_vm_create(&bare, kvm, 16 << 20) == 0 && bare_vm_load(&bare, g.bytes, g.len) == 0)
		for (int rep = 0; rep < 5; rep++) {
			if (bare_vm_enter(&bare, 3) < 0)
				break;
			double t0 = bench_now_us();
			long n = bare_vm_run(&bare, -1);
			double per = (bench_now_us() - t0) / (double)(n > 0 ? n : 1);
			if (n > 0 && (best == 0 || per < best))
				best = per;
		}
	bare_vm_destroy(&bare);
	close(kvm);
	if (best == 0)
		return 0;
	/* copying the pages: from one buffer to another, as a reset does */
	size_t len = (size_t)(pages ? pages : 1) * 4096;
	char *a = malloc(len), *b = calloc(1, len);
	if (!a || !b) {
		free(a);
		free(b);
		return best;
	}
	memset(a, 1, len);
	double t0 = bench_now_us();
	for (int i = 0; i < 100; i++) {
		memcpy(b, a, len);
		__asm__ volatile("" ::"r"(b) : "memory");
	}
	double copy = (bench_now_us() - t0) / 100;
	free(a);
	free(b);
	return best + copy;
}

static void row_lat(struct report *r, const char *name, const struct lat *l, double limit,
                    const char *note)
{
	struct row *row = report_row(r, name, "µs/call", 1);

	if (!row)
		return;
	row->spk = l->n ? cell_value(l->p50) : cell_text("failed");
	row->qemu = cell_text("n/a");
	row->limit = limit > 0 ? cell_value(limit) : cell_text("n/a");
	row_note(row, "p50 %.1f µs, p99 %.1f µs, %.0f calls/s over %d calls. %s", l->p50, l->p99,
	         l->per_s, l->n, note);
}

void bench_fn(const struct bench_opts *o, struct report *r)
{
	int n = o->quick ? 500 : FN_CALLS_MAX, n_vm = o->quick ? 20 : 200;
	double *v = calloc(FN_CALLS_MAX, sizeof(double));
	uint64_t pages = 0;

	if (!v)
		return;
	struct lat reset = measure_calls(0, n, v, &pages);
	struct lat keep = measure_calls(SPK_FN_KEEP_STATE, n, v, NULL);
	struct lat fresh = measure_new_vm(n_vm, v);
	double limit = limit_us(o->quick ? 10000 : 100000, pages);
	char note[512];

	snprintf(note, sizeof(note),
	         "spk_fn_call of add(i, 1) in guest/tests/fn_basic.c (runs at CPL3), a reset "
	         "before each: the dirty log's pages (%llu) copied back, regs and sregs reloaded. "
	         "Limit: one bare KVM_RUN round trip at CPL3 plus copying %llu pages.",
	         (unsigned long long)pages, (unsigned long long)pages);
	row_lat(r, "Function call with reset", &reset, limit, note);
	row_lat(r, "Function call, state kept", &keep, limit,
	        "The same with SPK_FN_KEEP_STATE: no reset; the limit as above.");
	row_lat(r, "Function call, new sandbox per call", &fresh, limit,
	        "spk_fn_open (a VM, the ELF, the guest's boot at CPL0 and init to READY), "
	        "one call, spk_fn_close.");
	if (reset.n && limit > 0)
		report_target(r, reset.p50 <= 3 * limit ? TARGET_MET : TARGET_MISSED,
		              "function call with reset <= 3x a bare exit round trip + page copies",
		              "p50 %.1f µs vs limit %.1f µs (%.1fx)", reset.p50, limit,
		              reset.p50 / limit);
	free(v);
}
