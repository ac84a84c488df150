/* SPDX-License-Identifier: Apache-2.0 */
/*
 * seccomp: a filtered thread can do its job, and a forbidden system call
 * kills the process with SIGSYS and a line naming the thread and the call,
 * after the fatal hook (`sparkler run` restores the terminal in it).
 * Each case runs in a child process.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/confine/seccomp_policy.h"

/* Run fn in a child with stderr captured; its wait status and output. */
static int in_child(void (*fn)(void), char *out, size_t size)
{
	int fds[2], status;

	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		fn();
		_exit(0);
	}
	close(fds[1]);
	/* read to EOF: closing early would kill the child with SIGPIPE */
	size_t got = 0;
	ssize_t n;
	while ((n = read(fds[0], out + got, size - 1 - got)) > 0 && got + (size_t)n < size - 1)
		got += (size_t)n;
	if (n > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void *thread_allowed(void *p)
{
	/* what a vCPU thread does: memory, locks, writes, threads */
	assert_int_equal(spk_seccomp_install(SPK_SECCOMP_VCPU, "vcpu0"), 0);
	void *m = malloc(1 << 20);
	free(m);
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&mu);
	pthread_mutex_unlock(&mu);
	write(STDERR_FILENO, "still alive\n", 12);
	return NULL;
}

static void child_allowed(void)
{
	pthread_t t;

	pthread_create(&t, NULL, thread_allowed, NULL);
	pthread_join(t, NULL);
}

static void *thread_forbidden(void *p)
{
	assert_int_equal(spk_seccomp_install(SPK_SECCOMP_VCPU, "vcpu1"), 0);
	/* a vCPU thread has no business opening files */
	syscall(SYS_openat, AT_FDCWD, "/etc/hostname", O_RDONLY);
	write(STDERR_FILENO, "survived\n", 9);
	return NULL;
}

static void child_forbidden(void)
{
	pthread_t t;

	pthread_create(&t, NULL, thread_forbidden, NULL);
	pthread_join(t, NULL);
}

static void *thread_bad_ioctl(void *p)
{
	assert_int_equal(spk_seccomp_install(SPK_SECCOMP_DEVICE, "virtio-blk"), 0);
	int tty = 0;
	syscall(SYS_ioctl, 0, 0x5401 /* TCGETS: not a KVM ioctl */, &tty);
	write(STDERR_FILENO, "survived\n", 9);
	return NULL;
}

static void child_bad_ioctl(void)
{
	pthread_t t;

	pthread_create(&t, NULL, thread_bad_ioctl, NULL);
	pthread_join(t, NULL);
}

/* The terminal of `sparkler run`, as its fatal hook restores it: a pty. */
static int pty_slave = -1;
static struct termios saved_tty;
static unsigned char saved_ktty[64]; /* the kernel's struct termios */

/* What run.c's hook does: one ioctl(0, TCSETS) */
static void restore_tty_hook(void)
{
	ioctl(STDIN_FILENO, TCSETS, saved_ktty);
}

static void raw_stdin(void)
{
	struct termios raw;

	dup2(pty_slave, STDIN_FILENO);
	tcgetattr(STDIN_FILENO, &saved_tty);
	ioctl(STDIN_FILENO, TCGETS, saved_ktty);
	raw = saved_tty;
	cfmakeraw(&raw);
	tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

static void child_raw_forbidden_hooked(void)
{
	raw_stdin();
	spk_seccomp_fatal_hook = restore_tty_hook;
	child_forbidden(); /* dies of SIGSYS in a vCPU-filtered thread */
}

static void child_raw_forbidden_unhooked(void)
{
	raw_stdin();
	child_forbidden();
}

static bool same_tty(const struct termios *a, const struct termios *b)
{
	return a->c_iflag == b->c_iflag && a->c_oflag == b->c_oflag &&
	       a->c_cflag == b->c_cflag && a->c_lflag == b->c_lflag &&
	       !memcmp(a->c_cc, b->c_cc, sizeof(a->c_cc));
}

/* The hook runs in the SIGSYS handler of the filtered thread, whose filter
 * lets exactly this ioctl(0, TCSETS) through: the terminal is the one from
 * before; without the hook it stays raw. */
static void test_fatal_hook_restores_tty(void **state)
{
	struct termios before, after;
	char out[512];
	int master = posix_openpt(O_RDWR | O_NOCTTY);

	assert_true(master >= 0);
	assert_int_equal(grantpt(master), 0);
	assert_int_equal(unlockpt(master), 0);
	pty_slave = open(ptsname(master), O_RDWR | O_NOCTTY);
	assert_true(pty_slave >= 0);
	assert_int_equal(tcgetattr(pty_slave, &before), 0);

	int st = in_child(child_raw_forbidden_hooked, out, sizeof(out));
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
	assert_non_null(strstr(out, "thread vcpu1"));
	assert_int_equal(tcgetattr(pty_slave, &after), 0);
	assert_true(same_tty(&before, &after));

	st = in_child(child_raw_forbidden_unhooked, out, sizeof(out));
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
	assert_int_equal(tcgetattr(pty_slave, &after), 0);
	assert_false(same_tty(&before, &after)); /* left raw */
	assert_false(after.c_lflag & ICANON);
	close(pty_slave);
	close(master);
}

static void test_allowed(void **state)
{
	char out[512];
	int st = in_child(child_allowed, out, sizeof(out));

	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_non_null(strstr(out, "still alive"));
}

static void test_forbidden_is_fatal(void **state)
{
	char out[512];
	int st = in_child(child_forbidden, out, sizeof(out));

	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
	assert_null(strstr(out, "survived"));
	assert_non_null(strstr(out, "thread vcpu1"));
	char want[64];
	snprintf(want, sizeof(want), "forbidden system call openat (%d)", SYS_openat);
	assert_non_null(strstr(out, want));
}

static void test_only_kvm_ioctls(void **state)
{
	char out[512];
	int st = in_child(child_bad_ioctl, out, sizeof(out));

	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
	assert_non_null(strstr(out, "thread virtio-blk"));
}

int main(void)
{
	/* sanitizer builds leave filters off (their runtimes need ptrace) */
	spk_seccomp_enabled = true;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed),
		cmocka_unit_test(test_forbidden_is_fatal),
		cmocka_unit_test(test_only_kvm_ioctls),
		cmocka_unit_test(test_fatal_hook_restores_tty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
