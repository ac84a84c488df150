/* SPDX-License-Identifier: Apache-2.0 */
/* Child processes for the process-level benchmarks: fork/exec, timed from the parent. */
#ifndef SPK_BENCH_SPAWN_H
#define SPK_BENCH_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

/* Nanoseconds of CLOCK_MONOTONIC. */
double now_ns(void);

struct child_run {
	/* milliseconds from just before fork(): the arrival of the child's
	 * first and second byte on stdout (negative when none came), and
	 * the moment wait4() reaped it */
	double first_ms, second_ms, exit_ms;
	long maxrss_kib; /* ru_maxrss of the child */
	int status;      /* as wait4() gives it */
};

/*
 * Run argv (argv[0] a path) with stdin from /dev/null, stdout into a pipe
 * the parent times, stderr to log_path (truncated). 0, or -errno when the
 * child could not be started.
 */
int spawn_timed(char *const argv[], const char *log_path, struct child_run *out);

/* Start argv with every standard stream on /dev/null; the pid or -errno. */
pid_t spawn_quiet(char *const argv[]);

/* true when status is a normal exit with the given code. */
bool exited_with(int status, int code);

#endif
