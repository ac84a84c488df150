/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sparkler-bench: sparkler side by side with QEMU and with the limit (a
 * bare KVM program) on exit round trips, start-up, memory and VM churn, and
 * virtio-blk throughput next to the host's own reads and writes.
 * Prints a Markdown table and writes it to results.md, with results.json
 * next to it (the ratios too); `make bench` runs it.
 * Targets are reported as met or missed, never asserted.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/sparkler.h>

#include "bare.h"
#include "bench.h"

#ifndef SPK_BENCH_SPARKLER
#error "SPK_BENCH_SPARKLER: the path of the sparkler program (bench/meson.build)"
#endif
#ifndef SPK_BENCH_BARE
#error "SPK_BENCH_BARE: the path of sparkler-bench-bare (bench/meson.build)"
#endif
#ifndef SPK_BENCH_OUT_DIR
#error "SPK_BENCH_OUT_DIR: where results go (bench/meson.build)"
#endif

/* ---- helpers the sections share ----------------------------------------------- */

void bench_path(const struct bench_opts *o, const char *name, char *buf)
{
	snprintf(buf, PATH_MAX, "%s/%s", o->out_dir, name);
}

double bench_now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void bench_log_path(const struct bench_opts *o, char *buf)
{
	bench_path(o, "child-stderr.log", buf);
}

static void print_log_tail(const char *path)
{
	char buf[1024];
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	if (fseek(f, -(long)sizeof(buf) + 1, SEEK_END) < 0)
		rewind(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	if (n)
		fprintf(stderr, "  its stderr:\n%s", buf);
}

void bench_child_failed(const struct bench_opts *o, const char *who, int status)
{
	char log[PATH_MAX];

	if (status == -1)
		fprintf(stderr, "sparkler-bench: %s could not be started\n", who);
	else if (WIFEXITED(status))
		fprintf(stderr, "sparkler-bench: %s exited with status %d\n", who,
		        WEXITSTATUS(status));
	else
		fprintf(stderr, "sparkler-bench: %s ended by signal %d\n", who, WTERMSIG(status));
	bench_log_path(o, log);
	print_log_tail(log);
}

void qemu_argv(const struct bench_opts *o, const char *bios, const char *mem_mib,
               char *argv[QEMU_ARGC])
{
	/* clang-format off */
	char *const a[] = {
		(char *)o->qemu, "-accel", "kvm", "-M",
		"microvm,x-option-roms=off,isa-serial=on,rtc=off,pit=off,pic=off", "-nodefaults",
		"-no-user-config", "-bios", (char *)bios, "-m", (char *)mem_mib, "-display",
		"none", "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
		/* port 0xe9 to stdout: the first-instruction marker of the start-up guest */
		"-debugcon", "stdio", NULL,
	};
	/* clang-format on */
	_Static_assert(sizeof(a) / sizeof(a[0]) <= QEMU_ARGC, "QEMU_ARGC too small");

	memcpy(argv, a, sizeof(a));
}

/* ---- the host --------------------------------------------------------------------- */

static void cpu_model(char *buf, size_t size)
{
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(buf, size, "unknown CPU");
	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) == 0 && colon) {
			snprintf(buf, size, "%s", colon + 2);
			buf[strcspn(buf, "\n")] = '\0';
			break;
		}
	}
	if (f)
		fclose(f);
}

/* "7.2.22 (Debian ...)" from `qemu --version`, or "not installed". */
static void qemu_version(const char *qemu, char *buf, size_t size)
{
	char cmd[PATH_MAX + 32], line[256] = "";
	const char *prefix = "QEMU emulator version ";

	snprintf(buf, size, "not installed");
	if (!qemu[0] || strchr(qemu, '\''))
		return;
	snprintf(cmd, sizeof(cmd), "'%s' --version 2>/dev/null", qemu);
	FILE *p = popen(cmd, "r");
	if (!p)
		return;
	if (fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = '\0';
		snprintf(buf, size, "%s",
		         strncmp(line, prefix, strlen(prefix)) ? line : line + strlen(prefix));
	}
	pclose(p);
}

static void host_info(const struct bench_opts *o, struct host_info *h)
{
	struct utsname u;
	time_t now = time(NULL);

	cpu_model(h->cpu, sizeof(h->cpu));
	h->cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (uname(&u) == 0)
		snprintf(h->kernel, sizeof(h->kernel), "%s %s", u.sysname, u.release);
	h->kvm = spk_host_kvm_kind();
	qemu_version(o->qemu, h->qemu, sizeof(h->qemu));
	strftime(h->date, sizeof(h->date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	getloadavg(&h->load_start, 1);
}

/* qemu-system-x86_64 on PATH into buf, or "". */
static void find_qemu(char *buf)
{
	const char *path = getenv("PATH");
	char dirs[4096];

	buf[0] = '\0';
	snprintf(dirs, sizeof(dirs), "%s", path ? path : "/usr/bin:/bin");
	for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(buf, PATH_MAX, "%s/qemu-system-x86_64", d);
		if (access(buf, X_OK) == 0)
			return;
	}
	buf[0] = '\0';
}

/* ---- command line ---------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: sparkler-bench [options]\n"
	        "  --quick          fewer iterations (a few seconds; numbers are rougher)\n"
	        "  --only LIST      sections, comma-separated: exits,startup,memory,churn,blk,linux,fn,snap\n"
	        "  --out DIR        where results.json, results.md and the guest images go\n"
	        "                   (default %s)\n"
	        "  --sparkler PATH  the sparkler program (default %s)\n"
	        "  --bare PATH      the bare program (default %s)\n"
	        "  --qemu PATH      qemu-system-x86_64 (default: from PATH; \"none\" to skip)\n"
	        "  --no-resident    do not hold a resident VM open while measuring\n",
	        SPK_BENCH_OUT_DIR, SPK_BENCH_SPARKLER, SPK_BENCH_BARE);
}

static int parse_sections(const char *list, unsigned *out)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {{"exits", SECTION_EXITS},
	             {"startup", SECTION_STARTUP},
	             {"memory", SECTION_MEMORY},
	             {"churn", SECTION_CHURN},
	             {"blk", SECTION_BLK},
	             {"linux", SECTION_LINUX},
	             {"fn", SECTION_FN}, {"snap", SECTION_SNAP}};
	char buf[256];

	*out = 0;
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *save, *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
		unsigned bit = 0;

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(s, names[i].name) == 0)
				bit = names[i].bit;
		if (!bit) {
			fprintf(stderr, "sparkler-bench: unknown section '%s'\n", s);
			return -1;
		}
		*out |= bit;
	}
	return 0;
}

static int parse(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longs[] = {
	    {"quick", no_argument, NULL, 'q'},
	    {"only", required_argument, NULL, 'o'},
	    {"out", required_argument, NULL, 'd'},
	    {"sparkler", required_argument, NULL, 's'},
	    {"bare", required_argument, NULL, 'b'},
	    {"qemu", required_argument, NULL, 'Q'},
	    {"no-resident", no_argument, NULL, 'R'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	*o = (struct bench_opts){.sections = ~0u,
	                         .out_dir = SPK_BENCH_OUT_DIR,
	                         .sparkler = SPK_BENCH_SPARKLER,
	                         .resident = true,
	                         .bare = SPK_BENCH_BARE};
	find_qemu(o->qemu);
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'q':
			o->quick = true;
			break;
		case 'o':
			if (parse_sections(optarg, &o->sections) < 0)
				return -1;
			break;
		case 'd':
			o->out_dir = optarg;
			break;
		case 's':
			o->sparkler = optarg;
			break;
		case 'b':
			o->bare = optarg;
			break;
		case 'Q':
			snprintf(o->qemu, sizeof(o->qemu), "%s",
			         strcmp(optarg, "none") ? optarg : "");
			break;
		case 'R':
			o->resident = false;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return -1;
	}
	return 0;
}

/* ---- main --------------------------------------------------------------------------- */

/*
 * A VM with one idle vCPU held open for the whole run, as on a host that
 * runs VMs. Without it, each short-lived VM's vCPU flips a KVM static key
 * (perf: kvm_create_lapic -> static_key_slow_inc, kvm_arch_vcpu_destroy ->
 * static_key_slow_dec), patching kernel text on every CPU: churn then
 * swings 2x with whether anything else on the machine has a VM open.
 */
static int open_resident(struct bare_vm *vm)
{
	int kvm = bare_kvm_open();

	if (kvm < 0)
		return kvm;
	int rc = bare_vm_create(vm, kvm, 2 << 20);
	close(kvm);
	return rc;
}

static bool any_failed(const struct report *r)
{
	for (int i = 0; i < r->n_rows; i++) {
		const struct cell *c[] = {&r->rows[i].spk, &r->rows[i].qemu, &r->rows[i].limit};

		for (int k = 0; k < 3; k++)
			if (!c[k]->ok && strcmp(c[k]->text, "failed") == 0)
				return true;
	}
	return false;
}

/* The table printed on stdout, also as a file: 0 or -errno. */
static int write_markdown(const char *path, const struct report *r)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	report_markdown(f, r);
	int err = ferror(f) ? EIO : 0;
	if (fclose(f) != 0 && !err)
		err = errno;
	return -err;
}

int main(int argc, char **argv)
{
	static struct report r;
	struct bench_opts o;
	char why[256], json[PATH_MAX], md[PATH_MAX];

	if (parse(argc, argv, &o) < 0)
		return 2;
	if (!spk_kvm_usable(why, sizeof(why))) {
		fprintf(stderr, "sparkler-bench: no usable KVM: %s\n", why);
		return 77;
	}
	if (mkdir(o.out_dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "sparkler-bench: cannot create %s: %s\n", o.out_dir,
		        strerror(errno));
		return 2;
	}
	host_info(&o, &r.host);
	r.quick = o.quick;
	struct bare_vm resident;
	r.resident = o.resident && open_resident(&resident) == 0;
	if (o.sections & SECTION_EXITS)
		bench_exits(&o, &r);
	if (o.sections & SECTION_STARTUP)
		bench_startup(&o, &r);
	if (o.sections & SECTION_MEMORY)
		bench_memory(&o, &r);
	if (o.sections & SECTION_CHURN)
		bench_churn(&o, &r);
	if (o.sections & SECTION_BLK)
		bench_blk(&o, &r);
	if (o.sections & SECTION_LINUX)
		bench_linux(&o, &r);
	if (o.sections & SECTION_FN)
		bench_fn(&o, &r);
	if (o.sections & SECTION_SNAP)
		bench_snap(&o, &r);
	if (r.resident)
		bare_vm_destroy(&resident);
	getloadavg(&r.host.load_end, 1);
	report_markdown(stdout, &r);
	fflush(stdout); /* before the line on stderr, when both go to one terminal */
	bench_path(&o, "results.json", json);
	bench_path(&o, "results.md", md);
	int rc = report_json(json, &r);
	if (rc < 0)
		fprintf(stderr, "sparkler-bench: cannot write %s: %s\n", json, strerror(-rc));
	int rc_md = write_markdown(md, &r);
	if (rc_md < 0)
		fprintf(stderr, "sparkler-bench: cannot write %s: %s\n", md, strerror(-rc_md));
	if (rc >= 0 && rc_md >= 0)
		fprintf(stderr, "sparkler-bench: results in %s and %s\n", json, md);
	return rc < 0 || rc_md < 0 || any_failed(&r) ? 1 : 0;
}
