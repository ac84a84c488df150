/* SPDX-License-Identifier: Apache-2.0 */
/*
 * seccomp allowlists per kind of thread. A thread installs its filter on
 * itself (spk_seccomp_install) before it touches anything the guest
 * controls: a vCPU thread before its first KVM_RUN, a device thread before
 * its first event. Threads a filtered thread creates inherit its filter
 * (a CPU_UP vCPU from a vCPU thread). A syscall outside the list traps:
 * the SIGSYS handler names the thread and the syscall, then the process
 * dies of SIGSYS. The lists are in seccomp_rules.c; the build compiles
 * them to BPF (seccomp-gen), and this file only installs the programs.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vmm/confine/seccomp_policy.h"
/* spk_seccomp_bpf[profile]: the allowlists of seccomp_rules.c compiled to
 * BPF at build time by seccomp-gen; spk_syscall_names[nr] */
#include "seccomp_bpf.h"

/*
 * Sanitizer builds run without filters: their runtimes stop the world with
 * ptrace, read /proc and map shadow memory from any thread (LeakSanitizer
 * at exit, reports on error). The normal build, which CI tests too, always
 * filters.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SPK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SPK_SANITIZED 1
#endif
#endif

#ifdef SPK_SANITIZED
bool spk_seccomp_enabled = false;
static const bool sanitized = true;
#else
bool spk_seccomp_enabled = true;
static const bool sanitized = false;
#endif

static __thread char thread_name[16] = "unfiltered";

void (*volatile spk_seccomp_fatal_hook)(void);

static void run_fatal_hook(void)
{
	void (*hook)(void) = spk_seccomp_fatal_hook;

	if (hook)
		hook();
}

/* ---- the trap ----------------------------------------------------------- */

static void put(const char *s)
{
	ssize_t unused = write(STDERR_FILENO, s, strlen(s));
	(void)unused;
}

static void put_num(long v)
{
	char buf[24];
	int i = sizeof(buf);

	buf[--i] = '\0';
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v && i > 0);
	put(buf + i);
}

/* Async-signal-safe: write(2) only, then die of SIGSYS for real. */
static void sigsys_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	put("sparkler: seccomp: thread ");
	put(thread_name);
	put(" made forbidden system call ");
	if (si->si_syscall >= 0 &&
	    (size_t)si->si_syscall < sizeof(spk_syscall_names) / sizeof(spk_syscall_names[0]) &&
	    spk_syscall_names[si->si_syscall]) {
		put(spk_syscall_names[si->si_syscall]);
		put(" (");
		put_num(si->si_syscall);
		put(")");
	} else {
		put_num(si->si_syscall);
	}
	put("; stopping\n");
	run_fatal_hook();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_handler_once(void)
{
	struct sigaction sa = {.sa_sigaction = sigsys_handler, .sa_flags = SA_SIGINFO};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSYS, &sa, NULL);
}

/* Once per process: a thread that inherited a filter cannot call
 * rt_sigaction any more (a vCPU started with CPU_UP, say). */
static void install_handler(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, install_handler_once);
}

/* ---- installing --------------------------------------------------------- */

static const char *profile_name(enum spk_seccomp_profile p)
{
	static const char *const names[] = {
	    [SPK_SECCOMP_VCPU] = "vcpu",     [SPK_SECCOMP_DEVICE] = "device",
	    [SPK_SECCOMP_API] = "api",       [SPK_SECCOMP_MONITOR] = "monitor",
	    [SPK_SECCOMP_SIGNAL] = "signal", [SPK_SECCOMP_TIMER] = "timer",
	    [SPK_SECCOMP_REAPER] = "reaper",
	};

	return (unsigned)p < sizeof(names) / sizeof(names[0]) && names[p] ? names[p] : "?";
}

void spk_seccomp_warn_if_off(void)
{
	static bool said;

	if (!spk_seccomp_enabled && !said && !sanitized) {
		said = true;
		fprintf(stderr, "sparkler: WARNING: --no-seccomp: system call filters are OFF; "
				"a compromised monitor thread can do anything this process can. "
				"For debugging only.\n");
	}
}

int spk_seccomp_install(enum spk_seccomp_profile p, const char *name)
{
	struct sock_fprog prog;

	snprintf(thread_name, sizeof(thread_name), "%s", name ? name : profile_name(p));
	if (!spk_seccomp_enabled)
		return 0;
	if ((unsigned)p >= sizeof(spk_seccomp_bpf) / sizeof(spk_seccomp_bpf[0]))
		return -EINVAL;
	install_handler();
	/* a blocked SIGSYS would kill without the report: let it through */
	sigset_t sys;
	sigemptyset(&sys);
	sigaddset(&sys, SIGSYS);
	pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
	prog = (struct sock_fprog){.len = spk_seccomp_bpf[p].len,
	                           .filter = (struct sock_filter *)spk_seccomp_bpf[p].filter};
	/* no_new_privs first: without CAP_SYS_ADMIN the kernel refuses a
	 * filter otherwise; filters stack, so a thread that has one may add
	 * a narrower one */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return -errno;
	return 0;
}

void spk_seccomp_install_or_die(enum spk_seccomp_profile p, const char *name)
{
	int rc = spk_seccomp_install(p, name);

	if (rc < 0) {
		fprintf(stderr, "sparkler: seccomp: cannot filter thread %s: %s\n", thread_name,
			strerror(-rc));
		run_fatal_hook();
		_exit(4);
	}
}

const char *spk_seccomp_thread_name(void)
{
	return thread_name;
}
