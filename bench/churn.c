/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Churn: how many trivial VMs a second can be created, run for their one
 * exit (the done hypercall) and destroyed: in-process through the library
 * and through a bare ioctl loop (the limit), and one process per VM with
 * `sparkler sandbox`, the bare program and QEMU.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bare.h"
#include "bench.h"
#include "guest.h"
#include "libvm.h"
#include "spawn.h"

#define CHURN_MEM (2ull << 20)

/* What perf (sched:sched_switch) showed when two at a time were slower than one. */
#define PARALLEL_NOTE                                                                              \
	" Where two at a time are slower than one (the bare loop too), the time is spent "         \
	"asleep in the kernel: on the PVM machine perf showed the threads blocked in "             \
	"synchronize_srcu() under KVM_SET_USER_MEMORY_REGION and VM teardown "                     \
	"(mmu_notifier_unregister), with the CPUs mostly idle."

/* ---- in-process ---------------------------------------------------------------- */

struct worker {
	pthread_t thread;
	bool bare;
	double seconds;
	long vms, failures;
};

static bool lib_one(const struct guest_code *g)
{
	struct lib_vm v;

	if (lib_vm_create(&v, CHURN_MEM, g, 0) < 0)
		return false;
	int rc = lib_vm_run(&v);
	lib_vm_destroy(&v);
	return rc == 0;
}

/* The limit keeps /dev/kvm open across VMs; the library opens it for each. */
static bool bare_one(int kvm, const struct guest_code *g)
{
	struct bare_vm v;
	bool ok = bare_vm_create(&v, kvm, CHURN_MEM) == 0 &&
	          bare_vm_load(&v, g->bytes, g->len) == 0 && bare_vm_enter(&v, 0) == 0 &&
	          bare_vm_run(&v, -1) == 1;

	bare_vm_destroy(&v);
	return ok;
}

static void *worker_main(void *p)
{
	struct worker *w = p;
	struct guest_code g;
	int kvm = w->bare ? bare_kvm_open() : -1;
	double end = now_ns() + w->seconds * 1e9;

	guest_oneexit64(&g);
	while (now_ns() < end) {
		if (!(w->bare ? bare_one(kvm, &g) : lib_one(&g))) {
			w->failures++;
			break;
		}
		w->vms++;
	}
	if (kvm >= 0)
		close(kvm);
	return NULL;
}

/* VMs per second over all threads, or -1. */
static double churn_inproc(bool bare, int threads, double seconds)
{
	struct worker w[2] = {{.bare = bare, .seconds = seconds},
	                      {.bare = bare, .seconds = seconds}};
	long vms = 0, failures = 0;
	double t0 = now_ns();

	for (int i = 0; i < threads; i++)
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0)
			return -1; /* with one thread: nothing to join */
	for (int i = 0; i < threads; i++) {
		pthread_join(w[i].thread, NULL);
		vms += w[i].vms;
		failures += w[i].failures;
	}
	return failures ? -1 : (double)vms / ((now_ns() - t0) / 1e9);
}

/* ---- one process per VM ------------------------------------------------------------ */

/* Reap one child; false when there is none left to wait for. */
static bool reap(int expect, long *done, long *failed)
{
	int st;
	pid_t pid;

	while ((pid = wait(&st)) < 0 && errno == EINTR)
		;
	if (pid < 0)
		return false;
	if (exited_with(st, expect))
		(*done)++;
	else
		(*failed)++;
	return true;
}

/* Keep `parallel` children in flight for `seconds`; VMs per second, or -1. */
static double churn_proc(char *const argv[], int expect, int parallel, double seconds)
{
	long done = 0, failed = 0;
	int running = 0;
	double t0 = now_ns(), end = t0 + seconds * 1e9;

	for (;;) {
		while (running < parallel && now_ns() < end && spawn_quiet(argv) > 0)
			running++;
		if (running == 0 || !reap(expect, &done, &failed))
			break;
		running--;
	}
	if (failed || !done) {
		fprintf(stderr, "sparkler-bench: %s: %ld of %ld runs failed\n", argv[0], failed,
		        failed + done);
		return -1;
	}
	return (double)done / ((now_ns() - t0) / 1e9);
}

/* ---- the rows ------------------------------------------------------------------------ */

struct churn_programs {
	char elf[PATH_MAX], flat[PATH_MAX], bios[PATH_MAX];
	char *sandbox[8], *bare[8], *qemu[QEMU_ARGC];
};

static int churn_guests(const struct bench_opts *o, struct churn_programs *p)
{
	static uint8_t img[GUEST_BIOS_SIZE];
	struct guest_code g;

	bench_path(o, "oneexit.elf", p->elf);
	bench_path(o, "oneexit.flat", p->flat);
	bench_path(o, "oneexit.bios", p->bios);
	guest_oneexit64(&g);
	guest_oneexit_bios(img);
	if (guest_write_elf(p->elf, &g) < 0 || guest_write_flat(p->flat, g.bytes, g.len) < 0 ||
	    guest_write_flat(p->bios, img, sizeof(img)) < 0)
		return -1;
	char **a = p->sandbox;
	a[0] = (char *)o->sparkler, a[1] = "sandbox", a[2] = "--cpus", a[3] = "1";
	a[4] = "--mem", a[5] = "64M", a[6] = p->elf, a[7] = NULL;
	a = p->bare;
	a[0] = (char *)o->bare, a[1] = "--mem", a[2] = "64", a[3] = p->flat, a[4] = NULL;
	if (o->qemu[0])
		qemu_argv(o, p->bios, "64", p->qemu);
	return 0;
}

static struct cell rate_cell(double v)
{
	return v > 0 ? cell_value(v) : cell_text("failed");
}

static void inproc_rows(struct report *r, double seconds)
{
	for (int threads = 1; threads <= 2; threads++) {
		char name[64];

		snprintf(name, sizeof(name), "Churn, in-process, %d thread%s", threads,
		         threads > 1 ? "s" : "");
		struct row *row = report_row(r, name, "VMs/s", 0);
		if (!row)
			return;
		row->spk = rate_cell(churn_inproc(false, threads, seconds));
		row->qemu = cell_text("n/a");
		row->limit = rate_cell(churn_inproc(true, threads, seconds));
		row_note(
		    row,
		    "%d thread%s, each for %.1f s: create a VM (2 MiB RAM, 1 vCPU), load a "
		    "2-instruction guest at CPL0, run it to its one exit (the done hypercall), "
		    "destroy it. sparkler: spk_vm_create ... spk_vcpu_run ... spk_vm_destroy, "
		    "which also opens /dev/kvm, calls KVM_GET_SUPPORTED_CPUID and sets CPUID for "
		    "each VM; limit: raw ioctls with /dev/kvm opened once per thread, no CPUID "
		    "setup.%s",
		    threads, threads > 1 ? "s in parallel" : "", seconds,
		    threads > 1 ? PARALLEL_NOTE : "");
	}
}

static void proc_rows(const struct bench_opts *o, struct report *r, struct churn_programs *p,
                      double seconds)
{
	for (int parallel = 1; parallel <= 2; parallel++) {
		struct row *row = report_row(r,
		                             parallel == 1 ? "Churn, process per VM, 1 at a time"
		                                           : "Churn, process per VM, 2 in parallel",
		                             "VMs/s", 0);
		if (!row)
			return;
		row->spk = rate_cell(churn_proc(p->sandbox, 0, parallel, seconds));
		row->qemu =
		    o->qemu[0]
		        ? rate_cell(churn_proc(p->qemu, GUEST_QEMU_STATUS, parallel, seconds))
		        : cell_text("not installed");
		row->limit = rate_cell(churn_proc(p->bare, 0, parallel, seconds));
		row_note(row,
		         "fork/exec/wait4 with %d child%s in flight for %.1f s each: `sparkler "
		         "sandbox --cpus 1 --mem 64M` with a one-exit ELF, the bare program, QEMU "
		         "with the same guest in real mode (-m 64).%s",
		         parallel, parallel > 1 ? "ren" : "", seconds,
		         parallel > 1 ? PARALLEL_NOTE : "");
	}
}

static void churn_targets(struct report *r, const struct row *rows)
{
	const char *in = "in-process churn at least 0.8x the bare loop";
	const char *proc = "process-per-VM churn at least 300 VMs/s on one core";
	double one = row_ratio(&rows[0].spk, &rows[0].limit);
	double two = row_ratio(&rows[1].spk, &rows[1].limit);

	if (one == 0 || two == 0)
		report_target(r, TARGET_UNKNOWN, in, "not measured");
	else
		report_target(r, one >= 0.8 && two >= 0.8 ? TARGET_MET : TARGET_MISSED, in,
		              "%.2fx with 1 thread, %.2fx with 2", one, two);
	if (!rows[2].spk.ok)
		report_target(r, TARGET_UNKNOWN, proc, "not measured");
	else
		report_target(r, rows[2].spk.v >= 300 ? TARGET_MET : TARGET_MISSED, proc,
		              "%.0f VMs/s with `sparkler sandbox`, one at a time (%+.0f%%)",
		              rows[2].spk.v, (rows[2].spk.v / 300 - 1) * 100);
}

void bench_churn(const struct bench_opts *o, struct report *r)
{
	static struct churn_programs p;
	double seconds = o->quick ? 0.4 : 2.0;
	int first = r->n_rows;

	fprintf(stderr, "churn: in-process...\n");
	inproc_rows(r, seconds);
	fprintf(stderr, "churn: process per VM...\n");
	if (churn_guests(o, &p) < 0) {
		fprintf(stderr, "sparkler-bench: cannot write the churn guests\n");
		return;
	}
	proc_rows(o, r, &p, seconds);
	if (r->n_rows == first + 4)
		churn_targets(r, &r->rows[first]);
}
