/* SPDX-License-Identifier: Apache-2.0 */
/* fork/exec helpers of the process-level benchmarks (see spawn.h). */
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"

double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* In the child: put fd on target, or give up before exec. */
static void move_fd(int fd, int target)
{
	if (fd < 0 || dup2(fd, target) < 0)
		_exit(127);
}

/* In the child, after fork(): never returns. */
static void exec_child(char *const argv[], int out_fd, int err_fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	move_fd(null, STDIN_FILENO);
	move_fd(out_fd >= 0 ? out_fd : null, STDOUT_FILENO);
	move_fd(err_fd >= 0 ? err_fd : null, STDERR_FILENO);
	execv(argv[0], argv);
	_exit(127);
}

/* Timestamp the first two bytes that come through the pipe, until EOF. */
static void time_output(int fd, double t0, struct child_run *out)
{
	char buf[256];
	long seen = 0;

	out->first_ms = out->second_ms = -1;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		double t = (now_ns() - t0) / 1e6;
		if (seen == 0)
			out->first_ms = t;
		if (seen < 2 && seen + n >= 2)
			out->second_ms = t;
		seen += n;
	}
}

int spawn_timed(char *const argv[], const char *log_path, struct child_run *out)
{
	int pipefd[2];
	struct rusage ru = {0};

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	double t0 = now_ns();
	pid_t pid = fork();
	if (pid == 0)
		exec_child(argv, pipefd[1], log);
	int err = errno;
	close(pipefd[1]);
	if (log >= 0)
		close(log);
	if (pid < 0) {
		close(pipefd[0]);
		return -err;
	}
	time_output(pipefd[0], t0, out);
	close(pipefd[0]);
	while (wait4(pid, &out->status, 0, &ru) < 0 && errno == EINTR)
		;
	out->exit_ms = (now_ns() - t0) / 1e6;
	out->maxrss_kib = ru.ru_maxrss;
	return 0;
}

pid_t spawn_quiet(char *const argv[])
{
	pid_t pid = fork();

	if (pid == 0)
		exec_child(argv, -1, -1);
	return pid < 0 ? -errno : pid;
}

bool exited_with(int status, int code)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == code;
}
