/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Exit round trip: a guest does n `out` to port 0x80, which nobody claims,
 * then signals done. Timed in-process through spk_vcpu_run() and through a
 * bare KVM_RUN loop (the limit), and per process for `sparkler sandbox`
 * and QEMU, where start-up is taken out by running the guest with n and
 * with 1 write: (T(n) - T(1)) / (n - 1). One more guest is a PVH kernel
 * file that `sparkler run --kernel` and QEMU's `-kernel` both run, the
 * bare loop running its code in the same 32-bit mode.
 */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bare.h"
#include "bench.h"
#include "guest.h"
#include "libvm.h"
#include "spawn.h"

#define EXIT_MEM (2ull << 20)

struct exit_plan {
	uint32_t n_inproc; /* port writes per in-process run */
	int reps_cpl3;     /* (library, bare loop) pairs of runs */
	int reps_cpl0;
	uint32_t n_proc; /* port writes per process run: start-up noise needs more */
	int reps_proc;   /* (n, 1) process pairs of the sandbox and of QEMU, each */
};

/* Where the library's time per exit goes, from spk_vcpu_get_stats(). */
struct lib_acct {
	uint64_t exits, run_ns, handle_ns;
};

/* The library and the bare loop at one CPL: µs per exit, and library / bare of each pair. */
struct inproc_mode {
	struct samples lib, bare, ratio;
	struct lib_acct acct;
};

struct exit_results {
	struct inproc_mode cpl3, cpl0;
	struct samples sandbox, qemu;
	const char *qemu_why;                       /* when there are no QEMU samples */
	struct samples pvh_run, pvh_qemu, pvh_bare; /* the PVH file */
	const char *pvh_qemu_why;
};

/* ---- in-process: the library and the bare loop, same guest bytes, same CPL ---- */

static int count_lib_exits(struct lib_vm *v, const struct spk_vcpu_stats *before, uint32_t n,
                           struct lib_acct *acct)
{
	struct spk_vcpu_stats after;

	spk_vcpu_get_stats(v->cpu, &after);
	uint64_t exits = after.count[SPK_EXIT_PIO] - before->count[SPK_EXIT_PIO];
	if (exits != n) {
		fprintf(stderr, "sparkler-bench: the library saw %llu port exits, not %u\n",
		        (unsigned long long)exits, n);
		return -1;
	}
	acct->exits += exits;
	acct->run_ns += after.run_ns[SPK_EXIT_PIO] - before->run_ns[SPK_EXIT_PIO];
	acct->handle_ns += after.handle_ns[SPK_EXIT_PIO] - before->handle_ns[SPK_EXIT_PIO];
	return 0;
}

/* µs per exit of one run of the library, or -1. */
static double time_lib(struct lib_vm *v, unsigned cpl, uint32_t n, struct lib_acct *acct)
{
	struct spk_vcpu_stats before;

	if (lib_vm_restart(v, cpl) < 0)
		return -1;
	spk_vcpu_get_stats(v->cpu, &before);
	double t0 = now_ns();
	if (lib_vm_run(v) < 0)
		return -1;
	double t = now_ns() - t0;
	if (count_lib_exits(v, &before, n, acct) < 0)
		return -1;
	return t / 1e3 / n;
}

/* µs per exit of one run of the bare loop, or -1. */
static double time_bare(struct bare_vm *b, unsigned cpl, uint32_t n)
{
	if (bare_vm_enter(b, cpl) < 0)
		return -1;
	double t0 = now_ns();
	long exits = bare_vm_run(b, -1);
	double t = now_ns() - t0;
	if (exits != (long)n + 1) {
		fprintf(stderr, "sparkler-bench: the bare loop saw %ld exits, not %u\n", exits,
		        n + 1);
		return -1;
	}
	return t / 1e3 / n;
}

/*
 * Runs in pairs, back to back, alternating which goes first: the machine's
 * noise drifts slowly, so the ratio within a pair is steadier than the
 * ratio of two medians.
 */
static void measure_inproc(struct lib_vm *lib, struct bare_vm *bare, unsigned cpl, int reps,
                           uint32_t n, struct inproc_mode *m)
{
	for (int i = 0; i < reps; i++) {
		double l = -1, b;

		if (i % 2)
			l = time_lib(lib, cpl, n, &m->acct);
		b = time_bare(bare, cpl, n);
		if (i % 2 == 0)
			l = time_lib(lib, cpl, n, &m->acct);
		if (l <= 0 || b <= 0)
			continue;
		samples_add(&m->lib, l);
		samples_add(&m->bare, b);
		samples_add(&m->ratio, l / b);
	}
}

/*
 * Pin this thread, and so the children it starts, to the CPU it is on,
 * *saved receiving the old mask: on the 2-core PVM machine a loop whose
 * vCPU thread migrates mid-way varies by 50%.
 */
static bool pin_here(cpu_set_t *saved)
{
	cpu_set_t one;
	int cpu = sched_getcpu();

	if (cpu < 0 || sched_getaffinity(0, sizeof(*saved), saved) < 0)
		return false;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return sched_setaffinity(0, sizeof(one), &one) == 0;
}

static void run_inproc(const struct exit_plan *p, struct exit_results *x)
{
	struct guest_code g;
	struct lib_vm lib;
	struct bare_vm bare;

	guest_loop64(&g, p->n_inproc);
	int kvm = bare_kvm_open();
	if (kvm < 0)
		return;
	if (bare_vm_create(&bare, kvm, EXIT_MEM) == 0 && bare_vm_load(&bare, g.bytes, g.len) == 0 &&
	    lib_vm_create(&lib, EXIT_MEM, &g, 3) == 0) {
		measure_inproc(&lib, &bare, 3, p->reps_cpl3, p->n_inproc, &x->cpl3);
		measure_inproc(&lib, &bare, 0, p->reps_cpl0, p->n_inproc, &x->cpl0);
		lib_vm_destroy(&lib);
	}
	bare_vm_destroy(&bare);
	close(kvm);
}

/* ---- per process: the sandbox and QEMU ------------------------------------- */

/* One run's wall time in ms, or -1 (with the child's log) when it failed. */
static double run_ms(const struct bench_opts *o, char *const argv[], int expect)
{
	struct child_run c = {.status = -1};
	char log[PATH_MAX];

	bench_log_path(o, log);
	if (spawn_timed(argv, log, &c) < 0 || !exited_with(c.status, expect)) {
		bench_child_failed(o, argv[0], c.status);
		return -1;
	}
	return c.exit_ms;
}

static void measure_pairs(const struct bench_opts *o, char *const argv_n[], char *const argv_1[],
                          int expect, const struct exit_plan *p, struct samples *s)
{
	for (int i = 0; i < p->reps_proc; i++) {
		double t1 = run_ms(o, argv_1, expect), tn = run_ms(o, argv_n, expect);

		if (t1 > 0 && tn > 0)
			samples_add(s, (tn - t1) * 1e3 / (p->n_proc - 1));
	}
}

static void run_sandbox(const struct bench_opts *o, const struct exit_plan *p,
                        struct exit_results *x)
{
	char elf_n[PATH_MAX], elf_1[PATH_MAX];
	struct guest_code g;

	bench_path(o, "loop-n.elf", elf_n);
	bench_path(o, "loop-1.elf", elf_1);
	guest_loop_sandbox(&g, p->n_proc);
	if (guest_write_elf(elf_n, &g) < 0)
		return;
	guest_loop_sandbox(&g, 1);
	if (guest_write_elf(elf_1, &g) < 0)
		return;
	char *argv_n[] = {(char *)o->sparkler, "sandbox", "--cpus", "1", elf_n, NULL};
	char *argv_1[] = {(char *)o->sparkler, "sandbox", "--cpus", "1", elf_1, NULL};
	measure_pairs(o, argv_n, argv_1, 0, p, &x->sandbox);
}

static void run_qemu(const struct bench_opts *o, const struct exit_plan *p, struct exit_results *x)
{
	static uint8_t img[GUEST_BIOS_SIZE];
	char bios_n[PATH_MAX], bios_1[PATH_MAX];
	char *argv_n[QEMU_ARGC], *argv_1[QEMU_ARGC];

	if (!o->qemu[0]) {
		x->qemu_why = "not installed";
		return;
	}
	x->qemu_why = "failed";
	bench_path(o, "loop-n.bios", bios_n);
	bench_path(o, "loop-1.bios", bios_1);
	guest_loop_bios(img, p->n_proc);
	if (guest_write_flat(bios_n, img, sizeof(img)) < 0)
		return;
	guest_loop_bios(img, 1);
	if (guest_write_flat(bios_1, img, sizeof(img)) < 0)
		return;
	qemu_argv(o, bios_n, "64", argv_n);
	qemu_argv(o, bios_1, "64", argv_1);
	measure_pairs(o, argv_n, argv_1, GUEST_QEMU_STATUS, p, &x->qemu);
}

/* ---- one PVH kernel file: `sparkler run`, QEMU -kernel, the bare loop ---------- */

/* The bare loop runs the file's code, 32-bit protected mode at CPL0 like a PVH entry. */
static void run_pvh_bare(const struct exit_plan *p, const struct guest_code *g,
                         struct exit_results *x)
{
	struct bare_vm bare;
	int kvm = bare_kvm_open();

	if (kvm < 0)
		return;
	if (bare_vm_create(&bare, kvm, EXIT_MEM) == 0 && bare_vm_load(&bare, g->bytes, g->len) == 0)
		for (int i = 0; i < p->reps_cpl0; i++) {
			if (bare_vm_enter32(&bare, GUEST_LOAD) < 0)
				break;
			double t0 = now_ns();
			long exits = bare_vm_run(&bare, -1);
			double t = now_ns() - t0;
			if (exits != (long)p->n_proc + 1) {
				fprintf(stderr,
				        "sparkler-bench: the bare loop saw %ld exits of the PVH "
				        "code, not %u\n",
				        exits, p->n_proc + 1);
				break;
			}
			samples_add(&x->pvh_bare, t / 1e3 / p->n_proc);
		}
	bare_vm_destroy(&bare);
	close(kvm);
}

static void run_pvh(const struct bench_opts *o, const struct exit_plan *p, struct exit_results *x)
{
	char elf_n[PATH_MAX], elf_1[PATH_MAX];
	struct guest_code g, g1;

	x->pvh_qemu_why = o->qemu[0] ? "failed" : "not installed";
	bench_path(o, "pvh-loop-n.elf", elf_n);
	bench_path(o, "pvh-loop-1.elf", elf_1);
	guest_loop_pvh(&g, p->n_proc);
	guest_loop_pvh(&g1, 1);
	if (guest_write_pvh(elf_n, &g) < 0 || guest_write_pvh(elf_1, &g1) < 0) {
		fprintf(stderr, "sparkler-bench: cannot write the PVH guests in %s\n", o->out_dir);
		return;
	}
	/* clang-format off */
	char *spk_n[] = {(char *)o->sparkler, "run", "--kernel", elf_n, "--mem", "64M",
	                 "--cpus", "1", "--serial", "none", NULL};
	char *spk_1[] = {(char *)o->sparkler, "run", "--kernel", elf_1, "--mem", "64M",
	                 "--cpus", "1", "--serial", "none", NULL};
	char *qemu_n[] = {(char *)o->qemu, "-accel", "kvm", "-M",
	                  "microvm,x-option-roms=off,isa-serial=on,rtc=off,pit=off,pic=off",
	                  "-nodefaults", "-no-user-config", "-kernel", elf_n, "-m", "64",
	                  "-display", "none", "-no-reboot", "-device",
	                  "isa-debug-exit,iobase=0xf4,iosize=4", NULL};
	/* clang-format on */
	char *qemu_1[sizeof(qemu_n) / sizeof(qemu_n[0])];

	/* sparkler run exits 3 when the guest resets */
	measure_pairs(o, spk_n, spk_1, 3, p, &x->pvh_run);
	if (o->qemu[0]) {
		memcpy(qemu_1, qemu_n, sizeof(qemu_n));
		qemu_1[8] = elf_1;
		measure_pairs(o, qemu_n, qemu_1, GUEST_PVH_QEMU_STATUS, p, &x->pvh_qemu);
	}
	run_pvh_bare(p, &g, x);
}

/* ---- the rows ------------------------------------------------------------------ */

static void note_acct(char *buf, size_t size, const struct lib_acct *a)
{
	if (!a->exits) {
		snprintf(buf, size, "no library statistics");
		return;
	}
	snprintf(buf, size,
	         "spk_vcpu_get_stats(): %.2f µs inside KVM_RUN and %.2f µs in the library per exit",
	         (double)a->run_ns / 1e3 / (double)a->exits,
	         (double)a->handle_ns / 1e3 / (double)a->exits);
}

static void rows_cpl3(struct report *r, const struct exit_plan *p, struct exit_results *x)
{
	char acct[160];
	struct row *row = report_row(r, "Exit round trip, in-process, CPL3", "µs/exit", 2);

	if (!row)
		return;
	note_acct(acct, sizeof(acct), &x->cpl3.acct);
	row->spk = cell_samples(x->cpl3.lib.v, x->cpl3.lib.n);
	row->qemu = cell_text("n/a");
	row->limit = cell_samples(x->cpl3.bare.v, x->cpl3.bare.n);
	row_note(row,
	         "%u `out %%al, $0x80` then the done hypercall, in 64-bit mode at CPL3 (ports "
	         "opened in the TSS bitmap), "
	         "through spk_vcpu_run() (sparkler) and a bare KVM_RUN loop (limit) in this "
	         "process; %d pairs of runs back to back; time / %u. %s. QEMU "
	         "cannot start a guest at CPL3. Every exit round trip run, in this process or a "
	         "child, is pinned to one CPU.",
	         p->n_inproc, p->reps_cpl3, p->n_inproc, acct);
	struct cell bare = row->limit;

	row = report_row(r, "Exit round trip, `sparkler sandbox` process, CPL3", "µs/exit", 2);
	if (!row)
		return;
	row->spk = cell_samples(x->sandbox.v, x->sandbox.n);
	row->qemu = cell_text("n/a");
	row->limit = bare;
	row_note(row,
	         "The same loop as an ELF run by `sparkler sandbox --cpus 1`, which enters it at "
	         "CPL0: it iretq's to CPL3 first. (T(%u writes) - T(1 write)) / %u over two "
	         "processes, %d pairs. Limit: the bare loop of the row above.",
	         p->n_proc, p->n_proc - 1, p->reps_proc);
}

static void row_cpl0(struct report *r, const struct exit_plan *p, struct exit_results *x)
{
	char acct[160];
	struct row *row = report_row(r, "Exit round trip, CPL0 (emulated by PVM)", "µs/exit", 2);

	if (!row)
		return;
	note_acct(acct, sizeof(acct), &x->cpl0.acct);
	row->spk = cell_samples(x->cpl0.lib.v, x->cpl0.lib.n);
	row->qemu = x->qemu.n ? cell_samples(x->qemu.v, x->qemu.n) : cell_text(x->qemu_why);
	row->limit = cell_samples(x->cpl0.bare.v, x->cpl0.bare.n);
	row_note(row,
	         "The loop at CPL0, where PVM emulates every instruction: sparkler (in-process "
	         "library) and the bare loop in 64-bit mode, %u writes, %d pairs of runs (%s); "
	         "QEMU in 16-bit real mode from the reset vector, the same 6 loop bytes (the "
	         "counter is %%cx there, %%ecx in long mode; the 4 setup instructions differ by an "
	         "operand-size prefix), (T(%u) - T(1)) / %u over two QEMU processes, %d pairs.",
	         p->n_inproc, p->reps_cpl0, acct, p->n_proc, p->n_proc - 1, p->reps_proc);
}

static void row_pvh(struct report *r, const struct exit_plan *p, struct exit_results *x)
{
	struct row *row = report_row(r,
	                             "Exit round trip, one PVH file: `sparkler run` / QEMU "
	                             "-kernel, CPL0 32-bit (emulated)",
	                             "µs/exit", 2);

	if (!row)
		return;
	row->spk = cell_samples(x->pvh_run.v, x->pvh_run.n);
	row->qemu =
	    x->pvh_qemu.n ? cell_samples(x->pvh_qemu.v, x->pvh_qemu.n) : cell_text(x->pvh_qemu_why);
	row->limit = cell_samples(x->pvh_bare.v, x->pvh_bare.n);
	row_note(
	    row,
	    "One file, byte for byte, for both monitors: an ELF64 kernel with the PVH note "
	    "(XEN_ELFNOTE_PHYS32_ENTRY), entered in flat 32-bit protected mode at CPL0 by "
	    "`sparkler run --kernel FILE --mem 64M --cpus 1 --serial none` (its Linux PVH "
	    "loader) and by `qemu-system-x86_64 -M microvm -accel kvm -m 64 -kernel FILE` "
	    "(qboot loads it from fw_cfg and jumps to the PVH entry). The code: `mov $n, "
	    "%%ecx`, then n times `out %%al, $0x80` (a diagnostic port neither monitor acts "
	    "on: both return to the guest), `sub $1, %%ecx`, `jnz`; then `out $0xfe` to the i8042 "
	    "port 0x64 (sparkler resets, `sparkler run` exits 3; microvm has no i8042) "
	    "and `out` to port 0xf4 (QEMU's isa-debug-exit). (T(%u writes) - T(1 write)) / "
	    "%u over two processes, %d pairs each: start-up, firmware (QEMU runs qboot "
	    "first) and teardown cancel out. Limit: the same code bytes loaded at 1 MiB in "
	    "a bare VM in this process, entered in the same 32-bit mode, the loop timed "
	    "directly (time / %u, %d runs). Every instruction here is emulated by PVM.",
	    p->n_proc, p->n_proc - 1, p->reps_proc, p->n_proc, p->reps_cpl0);
}

static void exit_target(struct report *r, struct inproc_mode *cpl3, struct inproc_mode *cpl0)
{
	const char *what = "library exit overhead within 5% of the bare loop";

	if (!cpl3->ratio.n || !cpl0->ratio.n) {
		report_target(r, TARGET_UNKNOWN, what, "not measured");
		return;
	}
	struct cell r3 = cell_samples(cpl3->ratio.v, cpl3->ratio.n);
	struct cell r0 = cell_samples(cpl0->ratio.v, cpl0->ratio.n);
	report_target(r, r3.v <= 1.05 ? TARGET_MET : TARGET_MISSED, what,
	              "at CPL3 the library takes %+.1f%% (median of %d paired runs, %+.1f%% to "
	              "%+.1f%%); at CPL0, where exits are cheaper, %+.1f%%",
	              (r3.v - 1) * 100, cpl3->ratio.n, (r3.min - 1) * 100, (r3.max - 1) * 100,
	              (r0.v - 1) * 100);
}

void bench_exits(const struct bench_opts *o, struct report *r)
{
	const struct exit_plan p = o->quick ? (struct exit_plan){5000, 3, 2, 5000, 1}
	                                    : (struct exit_plan){20000, 15, 7, 50000, 5};
	struct exit_results x = {.qemu_why = "failed"};
	cpu_set_t saved;
	bool pinned = pin_here(&saved);

	fprintf(stderr, "exit round trip: in-process (%u exits a run)...\n", p.n_inproc);
	run_inproc(&p, &x);
	fprintf(stderr, "exit round trip: sparkler sandbox...\n");
	run_sandbox(o, &p, &x);
	fprintf(stderr, "exit round trip: QEMU...\n");
	run_qemu(o, &p, &x);
	fprintf(stderr,
	        "exit round trip: one PVH file in sparkler run, QEMU and the bare loop...\n");
	run_pvh(o, &p, &x);
	if (pinned)
		sched_setaffinity(0, sizeof(saved), &saved);
	rows_cpl3(r, &p, &x);
	row_cpl0(r, &p, &x);
	row_pvh(r, &p, &x);
	exit_target(r, &x.cpl3, &x.cpl0);
}
