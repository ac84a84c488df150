/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Linux boot to init: the small test kernel (tests/linux/small_kernel.py,
 * built by `make test` into <build>/linux-cache/small-*) with its busybox
 * initramfs. Both numbers are the wall time from fork() until the
 * monitor's serial console (a pipe) carried the kernel's "Run /init as
 * init process" (on PVM hosts init then dies at its first system call,
 * see the README, so the kernel's line is the mark, not init's own); QEMU runs the same kernel,
 * initramfs and command line (-M microvm, -accel kvm). Where QEMU does not get there in the time
 * sparkler needed plus a margin (on PVM hosts it stops in the kernel's 16-bit setup code), the cell
 * says so and the note has the last line it printed.
 */
#include <errno.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "spawn.h"

#define CMDLINE "console=ttyS0 reboot=k panic=-1"
#define MARKER  "Run /init as init process"

/* The newest small-kernel build in the cache: 0, or -1 when there is none. */
static int find_kernel(char *bz, char *initrd)
{
	glob_t g;
	int rc = -1;

	if (glob(SPK_BENCH_LINUX_CACHE "/small-*/bzImage", 0, NULL, &g) == 0 && g.gl_pathc) {
		snprintf(bz, PATH_MAX, "%s", g.gl_pathv[g.gl_pathc - 1]);
		snprintf(initrd, PATH_MAX, "%.*s/initramfs.cpio", (int)(strrchr(bz, '/') - bz), bz);
		rc = access(initrd, R_OK) == 0 ? 0 : -1;
	}
	globfree(&g);
	return rc;
}

/*
 * Run argv with stdout and stderr into a pipe copied to log, killed after
 * limit_s. The ms from fork() to the first MARKER on the pipe (-1: none),
 * with *status; -2 when it could not start.
 */
static double run_to_marker(char *const argv[], const char *log, int limit_s, int *status)
{
	char buf[4096], tail[sizeof(MARKER) + sizeof(buf)];
	size_t kept = 0;
	double t0 = now_ns(), marker = -1;
	int fds[2];
	FILE *out = fopen(log, "w");

	if (!out || pipe(fds) < 0) {
		if (out)
			fclose(out);
		return -2;
	}
	pid_t pid = fork();
	if (pid < 0) {
		fclose(out);
		close(fds[0]);
		close(fds[1]);
		return -2;
	}
	if (pid == 0) {
		if (dup2(fds[1], STDOUT_FILENO) < 0 || dup2(fds[1], STDERR_FILENO) < 0 ||
		    !freopen("/dev/null", "r", stdin))
			_exit(127);
		close(fds[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		double left = limit_s * 1e3 - (now_ns() - t0) / 1e6;

		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&p, 1, left > 1000 ? 1000 : (int)left) <= 0)
			continue;
		ssize_t n = read(fds[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		fwrite(buf, 1, (size_t)n, out);
		if (marker < 0) {
			/* the marker may straddle two reads: keep the end of the last */
			memcpy(tail + kept, buf, (size_t)n);
			kept += (size_t)n;
			if (memmem(tail, kept, MARKER, strlen(MARKER)))
				marker = (now_ns() - t0) / 1e6;
			size_t keep = kept < strlen(MARKER) ? kept : strlen(MARKER);
			memmove(tail, tail + kept - keep, keep);
			kept = keep;
		}
	}
	close(fds[0]);
	waitpid(pid, status, 0);
	fclose(out);
	return marker;
}

/* The last non-empty line of the file that is not QEMU's own complaint. */
static void last_line(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	char line[512];

	snprintf(out, len, "(nothing)");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (line[0] && !strstr(line, "qemu-system"))
			snprintf(out, len, "%.*s", (int)(len - 1), line);
	}
	fclose(f);
}

/* sparkler: ms from its start to the marker, or a negative value. */
static double sparkler_once(const struct bench_opts *o, const char *bz, const char *initrd,
                            const char *log)
{
	char *argv[] = {(char *)o->sparkler, "run",       "--kernel", (char *)bz, "--initrd",
	                (char *)initrd,      "--cmdline", CMDLINE,    "--mem",    "512M",
	                "--timeout",         "900",       NULL};
	int status = -1;

	return run_to_marker(argv, log, 960, &status);
}

void bench_linux(const struct bench_opts *o, struct report *r)
{
	char bz[PATH_MAX], initrd[PATH_MAX], log[PATH_MAX], qlog[PATH_MAX], last[200];
	struct row *row = report_row(r, "Linux boot to init (small test kernel, 1 vCPU)", "ms", 0);
	double samples[SAMPLES_MAX], worst = 0;
	int n = 0, runs = o->quick ? 1 : 3;

	if (!row)
		return;
	if (find_kernel(bz, initrd) < 0) {
		row->spk = cell_text("no kernel");
		row_note(row,
		         "the small test kernel is built by `make test` (tests/linux/"
		         "small_kernel.py) into %s; none there yet",
		         SPK_BENCH_LINUX_CACHE);
		return;
	}
	bench_path(o, "linux-sparkler.log", log);
	for (int i = 0; i < runs; i++) {
		double ms = sparkler_once(o, bz, initrd, log);

		if (ms < 0)
			break;
		samples[n++] = ms;
		worst = ms > worst ? ms : worst;
	}
	row->spk = cell_samples(samples, n);
	if (!n) {
		last_line(log, last, sizeof(last));
		row_note(row, "sparkler did not reach init; its last line: \"%s\"", last);
		return;
	}
	if (!o->qemu[0]) {
		row->qemu = cell_text("not installed");
		return;
	}
	/* QEMU gets what sparkler needed, twice over, and at least 30 s */
	int limit = (int)(worst / 1000 * 2) + 30;
	char qemu[PATH_MAX];

	snprintf(qemu, sizeof(qemu), "%s", o->qemu);
	char *qargv[] = {qemu,
	                 "-accel",
	                 "kvm",
	                 "-M",
	                 "microvm,x-option-roms=off,isa-serial=on,rtc=on,acpi=on",
	                 "-m",
	                 "512",
	                 "-nodefaults",
	                 "-no-user-config",
	                 "-display",
	                 "none",
	                 "-no-reboot",
	                 "-serial",
	                 "stdio",
	                 "-kernel",
	                 bz,
	                 "-initrd",
	                 initrd,
	                 "-append",
	                 CMDLINE,
	                 NULL};
	int status;

	bench_path(o, "linux-qemu.log", qlog);
	double q = run_to_marker(qargv, qlog, limit, &status);
	static const char how[] = "ms from the monitor's fork() to the kernel's \"Run /init as "
	                          "init process\" on its serial console (a pipe the bench reads); "
	                          "same kernel, initramfs and command line; QEMU -M "
	                          "microvm,acpi=on -accel kvm";
	if (q >= 0) {
		row->qemu = cell_value(q);
		row_note(row, "%s", how);
	} else {
		last_line(qlog, last, sizeof(last));
		row->qemu = cell_text("no init");
		row_note(row, "%s. QEMU did not reach init in %d s; the last it printed: \"%s\"",
		         how, limit, last);
	}
}
