/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Start-up and memory: a trivial guest in a fresh process, for `sparkler
 * sandbox`, the bare program and QEMU, timed from the parent. The guest's
 * first instruction writes a byte to the debug console (port 0xe9), which
 * each monitor copies to its stdout, a pipe the parent timestamps; a second
 * byte comes just before the done signal.
 */
#include <stdio.h>
#include <unistd.h>

#include <sparkler/x86.h>

#include "bench.h"
#include "guest.h"
#include "spawn.h"

#define SETTLE_MS 20

enum { PROG_SANDBOX, PROG_BARE, PROG_QEMU, PROG__COUNT };

struct programs {
	char elf[PATH_MAX], flat[PATH_MAX], bios[PATH_MAX];
	char sandbox_mem[16];
	char *argv[PROG__COUNT][QEMU_ARGC];
	int expect[PROG__COUNT];
};

static int write_guests(const struct bench_opts *o, struct programs *ps)
{
	static uint8_t img[GUEST_BIOS_SIZE];
	struct guest_code g;

	bench_path(o, "startup.elf", ps->elf);
	bench_path(o, "startup.flat", ps->flat);
	bench_path(o, "startup.bios", ps->bios);
	guest_startup64(&g);
	guest_startup_bios(img);
	if (guest_write_elf(ps->elf, &g) < 0 || guest_write_flat(ps->flat, g.bytes, g.len) < 0 ||
	    guest_write_flat(ps->bios, img, sizeof(img)) < 0) {
		fprintf(stderr, "sparkler-bench: cannot write the start-up guests in %s\n",
		        o->out_dir);
		return -1;
	}
	return 0;
}

/* The three command lines, each with mib MiB of guest RAM and one vCPU. */
static void make_argv(const struct bench_opts *o, const char *mib, struct programs *ps)
{
	char **a = ps->argv[PROG_SANDBOX];

	snprintf(ps->sandbox_mem, sizeof(ps->sandbox_mem), "%sM", mib);
	a[0] = (char *)o->sparkler, a[1] = "sandbox", a[2] = "--cpus", a[3] = "1";
	a[4] = "--mem", a[5] = ps->sandbox_mem, a[6] = ps->elf, a[7] = NULL;
	a = ps->argv[PROG_BARE];
	a[0] = (char *)o->bare, a[1] = "--mem", a[2] = (char *)mib, a[3] = ps->flat, a[4] = NULL;
	ps->argv[PROG_QEMU][0] = NULL;
	if (o->qemu[0])
		qemu_argv(o, ps->bios, mib, ps->argv[PROG_QEMU]);
	ps->expect[PROG_SANDBOX] = ps->expect[PROG_BARE] = 0;
	ps->expect[PROG_QEMU] = GUEST_QEMU_STATUS;
}

/* One run; false (with the child's log) when it failed. */
static bool run_one(const struct bench_opts *o, const struct programs *ps, int prog,
                    struct child_run *c)
{
	char log[PATH_MAX];

	*c = (struct child_run){.status = -1};
	bench_log_path(o, log);
	if (spawn_timed(ps->argv[prog], log, c) < 0 || !exited_with(c->status, ps->expect[prog])) {
		bench_child_failed(o, ps->argv[prog][0], c->status);
		return false;
	}
	return true;
}

/* ---- start-up ----------------------------------------------------------------- */

/* What the parent timestamps in a run. */
enum { AT_FIRST, AT_DONE, AT_EXIT, AT__COUNT };

struct startup_samples {
	struct samples at[AT__COUNT];
};

static void time_one(const struct bench_opts *o, const struct programs *ps, int prog,
                     struct startup_samples *s)
{
	struct child_run c;

	if (!run_one(o, ps, prog, &c))
		return;
	if (c.second_ms < 0) {
		fprintf(stderr, "sparkler-bench: %s wrote no console bytes\n", ps->argv[prog][0]);
		return;
	}
	samples_add(&s->at[AT_FIRST], c.first_ms);
	samples_add(&s->at[AT_DONE], c.second_ms);
	samples_add(&s->at[AT_EXIT], c.exit_ms);
}

/*
 * Each run after a pause, the programs in turn starting with another one
 * each round: QEMU's exit leaves the kernel work for a few milliseconds,
 * which otherwise lands in whichever program runs next.
 */
static void time_settled(const struct bench_opts *o, const struct programs *ps, int prog,
                         struct startup_samples *s)
{
	if (!ps->argv[prog][0])
		return;
	usleep(SETTLE_MS * 1000);
	time_one(o, ps, prog, s);
}

static struct cell cell_or(struct samples *s, const char *why)
{
	return s->n ? cell_samples(s->v, s->n) : cell_text(why);
}

/* A row for one timestamp; the method is told once, in the note of the first. */
static void startup_row(struct report *r, const char *name, struct startup_samples *s, int at,
                        const char *qemu_why, const char *note, int first_row, int runs)
{
	struct row *row = report_row(r, name, "ms", 2);

	if (!row)
		return;
	row->spk = cell_or(&s[PROG_SANDBOX].at[at], "failed");
	row->qemu = cell_or(&s[PROG_QEMU].at[at], qemu_why);
	row->limit = cell_or(&s[PROG_BARE].at[at], "failed");
	if (r->n_rows - 1 != first_row) {
		row_note(row, "%s Same runs as [%d].", note, first_row + 1);
		return;
	}
	row_note(row,
	         "%s Trivial guest, 64 MiB, 1 vCPU: `sparkler sandbox --cpus 1 --mem 64M` with a "
	         "minimal ELF and the bare program (`sparkler-bench-bare`: create VM, run, exit) "
	         "enter it at CPL0 in 64-bit mode, QEMU at the reset vector in real mode. %d runs "
	         "each, taking turns, each after a 20 ms pause; fork/exec from this process, "
	         "clock_gettime(CLOCK_MONOTONIC).",
	         note, runs);
}

/*
 * The guest writes one console byte with its first instruction and one
 * right before done, one exit later (microseconds): the parent mostly
 * finds both bytes in the pipe when it wakes, so "to first instruction"
 * and "to done" are one number. The table has the row to done (the
 * target's); the first byte's medians are in its note.
 */
static void first_instruction_note(char *buf, size_t size, const struct cell first[PROG__COUNT])
{
	char v[PROG__COUNT][24];

	for (int k = 0; k < PROG__COUNT; k++)
		if (first[k].ok)
			snprintf(v[k], sizeof(v[k]), "%.2f ms", first[k].v);
		else
			snprintf(v[k], sizeof(v[k]), "%s", first[k].text);
	snprintf(buf, size,
	         "From just before fork() to the arrival in the parent's pipe of console bytes "
	         "(port 0xe9: the sandbox's debug port, the bare program's write(1), QEMU's "
	         "isa-debugcon -debugcon stdio). The guest's first instruction writes one, the "
	         "instruction before its done signal (hypercall SYSTEM_OFF; isa-debug-exit under "
	         "QEMU) another, one exit later: the parent mostly finds both in the pipe when it "
	         "wakes, so the two times are one number and this single row stands for both. "
	         "The cells are the time to the second byte (guest done); medians to the first "
	         "byte (first instruction): sparkler %s, QEMU %s, limit %s.",
	         v[PROG_SANDBOX], v[PROG_QEMU], v[PROG_BARE]);
}

static void startup_targets(struct report *r, const struct row *done)
{
	const char *bare = "sparkler process start to guest done within 1.5x of the bare program";
	const char *qemu = "sparkler process start to guest done at least 10x faster than QEMU";
	double vs_bare = row_ratio(&done->spk, &done->limit);
	double vs_qemu = row_ratio(&done->qemu, &done->spk);

	if (vs_bare == 0)
		report_target(r, TARGET_UNKNOWN, bare, "not measured");
	else
		report_target(r, vs_bare <= 1.5 ? TARGET_MET : TARGET_MISSED, bare,
		              "%.2f ms vs %.2f ms (median): %.2fx", done->spk.v, done->limit.v,
		              vs_bare);
	if (vs_qemu == 0)
		report_target(r, TARGET_UNKNOWN, qemu, "QEMU %s", done->qemu.text);
	else
		report_target(r, vs_qemu >= 10 ? TARGET_MET : TARGET_MISSED, qemu,
		              "%.2f ms vs QEMU %.2f ms (median): %.1fx faster", done->spk.v,
		              done->qemu.v, vs_qemu);
}

void bench_startup(const struct bench_opts *o, struct report *r)
{
	static struct programs ps;
	struct startup_samples s[PROG__COUNT] = {0};
	const int runs = o->quick ? 5 : 21;

	fprintf(stderr, "start-up: %d runs of each program...\n", runs);
	if (write_guests(o, &ps) < 0)
		return;
	make_argv(o, "64", &ps);
	for (int i = 0; i < runs; i++)
		for (int k = 0; k < PROG__COUNT; k++)
			time_settled(o, &ps, (i + k) % PROG__COUNT, &s[(i + k) % PROG__COUNT]);
	const char *qemu_why = o->qemu[0] ? "failed" : "not installed";
	int first = r->n_rows;
	char note[768];
	struct cell at_first[PROG__COUNT];

	for (int k = 0; k < PROG__COUNT; k++)
		at_first[k] = cell_or(&s[k].at[AT_FIRST], "n/a");
	first_instruction_note(note, sizeof(note), at_first);
	startup_row(r, "Start-up: process start to first guest instruction and guest done", s,
	            AT_DONE, qemu_why, note, first, runs);
	startup_row(r, "Start-up: process start to process reaped", s, AT_EXIT, qemu_why,
	            "To wait4() returning: the monitor has torn the VM down and exited.", first,
	            runs);
	if (r->n_rows == first + 2)
		startup_targets(r, &r->rows[first]);
}

/* ---- memory -------------------------------------------------------------------- */

/* Median peak RSS in MiB of runs of one program, or a negative value. */
static double peak_rss_mib(const struct bench_opts *o, const struct programs *ps, int prog,
                           int runs)
{
	struct samples s = {.n = 0};
	struct child_run c;

	for (int i = 0; i < runs && ps->argv[prog][0]; i++)
		if (run_one(o, ps, prog, &c))
			samples_add(&s, (double)c.maxrss_kib / 1024);
	return s.n ? cell_samples(s.v, s.n).v : -1;
}

static struct cell rss_cell(double mib, const char *why)
{
	return mib > 0 ? cell_value(mib) : cell_text(why);
}

/* What a child forked from this process starts with: the floor of ru_maxrss. */
static double fork_floor_mib(const struct bench_opts *o)
{
	char *argv[] = {"/bin/true", NULL};
	char log[PATH_MAX];
	struct child_run c;

	bench_log_path(o, log);
	if (spawn_timed(argv, log, &c) < 0)
		return -1;
	return (double)c.maxrss_kib / 1024;
}

static void memory_target(struct report *r, const struct row *row, double touched_mib)
{
	const char *what = "monitor RSS under 2 MiB beyond guest memory";

	if (!row->spk.ok) {
		report_target(r, TARGET_UNKNOWN, what, "not measured");
		return;
	}
	double beyond = row->spk.v - touched_mib;
	report_target(r, beyond < 2 ? TARGET_MET : TARGET_MISSED, what,
	              "%.2f MiB peak minus %.2f MiB of guest memory touched = %.2f MiB%s",
	              row->spk.v, touched_mib, beyond,
	              beyond < 2 ? "" : " (over by the difference to 2 MiB)");
}

void bench_memory(const struct bench_opts *o, struct report *r)
{
	static struct programs ps, big;
	const int runs = o->quick ? 1 : 3;

	fprintf(stderr, "memory: peak RSS with 128 MiB of guest RAM...\n");
	if (write_guests(o, &ps) < 0)
		return;
	big = ps;
	make_argv(o, "128", &ps);
	make_argv(o, "1024", &big);
	struct row *row = report_row(r, "Peak RSS, 1 vCPU, 128 MiB guest RAM", "MiB", 2);
	if (!row)
		return;
	row->spk = rss_cell(peak_rss_mib(o, &ps, PROG_SANDBOX, runs), "failed");
	row->qemu = rss_cell(peak_rss_mib(o, &ps, PROG_QEMU, runs),
	                     o->qemu[0] ? "failed" : "not installed");
	row->limit = rss_cell(peak_rss_mib(o, &ps, PROG_BARE, runs), "failed");
	double big_mib = peak_rss_mib(o, &big, PROG_SANDBOX, 1);
	/* the sandbox's page tables map 4 GiB; the guest touches its one code page */
	double touched = (double)(spk_x86_long_mode_size(4ull << 30) + 4096) / (1 << 20);
	row_note(
	    row,
	    "ru_maxrss of the child from wait4() (median of %d), running the start-up guest, "
	    "which touches one page; with its page tables about %.0f KiB of guest RAM are "
	    "resident. With `--mem 1G` the sandbox peaks at %.2f MiB: untouched guest RAM costs "
	    "nothing, it is anonymous MAP_NORESERVE memory the kernel backs only when touched. "
	    "A child forked from this benchmark cannot report less than it starts with "
	    "(/bin/true: %.2f MiB).",
	    runs, touched * 1024, big_mib, fork_floor_mib(o));
	memory_target(r, row, touched);
}
