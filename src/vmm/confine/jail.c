/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The jail: `sparkler --jail DIR --uid U --gid G COMMAND ...` confines the
 * monitor before it reads any guest input: new mount, PID, IPC and UTS
 * namespaces (and a new network namespace on request), pivot_root into DIR
 * (which holds what the VM needs; /dev/kvm, /dev/net/tun and /dev/null are
 * made there, owned by U:G), resource limits, every other file descriptor closed,
 * the environment cleared, every capability dropped, then U:G. Paths on the
 * command line are then paths inside DIR. The program binary and its
 * libraries are already mapped, so DIR needs none of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/confine/jail.h"
#include "vmm/confine/seccomp_policy.h"

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t len, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return saved ? -saved : -EINVAL;
}

/*
 * A device node of the jail's own, owned by the jail's user (as
 * Firecracker's jailer makes them): the host's /dev/kvm is usually
 * root:kvm 0660, which the unprivileged jailed user could not open.
 */
static int make_dev(const struct spk_jail *j, const char *dev, bool required, char *err, size_t len)
{
	char target[4096];
	struct stat st;

	if (stat(dev, &st) < 0 || !S_ISCHR(st.st_mode)) {
		if (!required)
			return 0;
		return fail(err, len, "jail: %s is not a character device on the host", dev);
	}
	snprintf(target, sizeof(target), "%s%s", j->dir, dev);
	unlink(target);
	if (mknod(target, S_IFCHR | 0600, st.st_rdev) < 0 || chown(target, j->uid, j->gid) < 0)
		return fail(err, len, "jail: cannot make %s (is %s mounted nodev?): %s", target,
		            j->dir, strerror(errno));
	return 0;
}

static int make_dirs(const char *dir, char *err, size_t len)
{
	static const char *const sub[] = {"/dev", "/dev/net", "/.old-root"};
	char path[4096];

	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", dir, sub[i]);
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return fail(err, len, "jail: cannot create %s: %s", path, strerror(errno));
	}
	return 0;
}

/* New root: DIR becomes / and the host's tree is gone from our view. */
static int pivot(const struct spk_jail *j, char *err, size_t len)
{
	const char *dir = j->dir;

	/* our mounts must not propagate back to the host's namespace */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return fail(err, len, "jail: making mounts private: %s", strerror(errno));
	/* pivot_root needs the new root to be a mount point */
	if (mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail(err, len, "jail: bind-mounting %s: %s", dir, strerror(errno));
	int rc = make_dirs(dir, err, len);
	if (rc == 0)
		rc = make_dev(j, "/dev/kvm", true, err, len);
	if (rc == 0)
		rc = make_dev(j, "/dev/net/tun", false, err, len);
	if (rc == 0)
		rc = make_dev(j, "/dev/null", true, err, len);
	if (rc < 0)
		return rc;
	if (chdir(dir) < 0 || syscall(SYS_pivot_root, ".", ".old-root") < 0)
		return fail(err, len, "jail: pivot_root into %s: %s", dir, strerror(errno));
	if (chdir("/") < 0 || umount2("/.old-root", MNT_DETACH) < 0 || rmdir("/.old-root") < 0)
		return fail(err, len, "jail: dropping the old root: %s", strerror(errno));
	return 0;
}

static int set_limits(const struct spk_jail *j, char *err, size_t len)
{
	const struct {
		int res;
		rlim_t value;
		const char *name;
	} lim[] = {
	    {RLIMIT_NOFILE, j->max_files ? j->max_files : 2048, "RLIMIT_NOFILE"},
	    {RLIMIT_CORE, 0, "RLIMIT_CORE"},
	    {RLIMIT_MEMLOCK, 64 << 10, "RLIMIT_MEMLOCK"},
	};

	for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
		struct rlimit r = {lim[i].value, lim[i].value};

		if (setrlimit(lim[i].res, &r) < 0)
			return fail(err, len, "jail: %s: %s", lim[i].name, strerror(errno));
	}
	return 0;
}

static int drop_privileges(const struct spk_jail *j, char *err, size_t len)
{
	/* the bounding set first: what no exec can ever regain */
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return fail(err, len, "jail: dropping capability %d: %s", cap,
			            strerror(errno));
	if (setgroups(0, NULL) < 0 || setresgid(j->gid, j->gid, j->gid) < 0 ||
	    setresuid(j->uid, j->uid, j->uid) < 0)
		return fail(err, len, "jail: becoming %u:%u: %s", j->uid, j->gid, strerror(errno));
	/* a non-root uid clears the permitted and effective sets; make sure */
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2] = {{0}};
	if (syscall(SYS_capset, &h, d) < 0)
		return fail(err, len, "jail: capset: %s", strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail(err, len, "jail: no_new_privs: %s", strerror(errno));
	return 0;
}

/* The parent stays outside as the reaper: it forwards signals and exits
 * with the jailed child's status. It holds alive_fd, the write end of a
 * pipe, until it exits: the child's test that it is still there. */
static pid_t child_pid;

static void forward(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

static _Noreturn void wait_child(pid_t pid, int alive_fd)
{
	/* SIGPWR too: `run` and the API process press the guest's power button on it */
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPWR};
	int status;

	child_pid = pid;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], forward);
	/* root in the host's namespaces: waitpid, kill and exit, nothing else */
	spk_seccomp_install_or_die(SPK_SECCOMP_REAPER, "jail-parent");
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	(void)alive_fd; /* closed by the exit */
	if (WIFSIGNALED(status)) {
		signal(WTERMSIG(status), SIG_DFL);
		raise(WTERMSIG(status));
	}
	exit(WIFEXITED(status) ? WEXITSTATUS(status) : 4);
}

/* Every descriptor from 3 up but keep. */
static void close_all_but(int keep)
{
	if ((keep > 3 && syscall(SYS_close_range, 3, keep - 1, 0) < 0) ||
	    syscall(SYS_close_range, keep + 1, ~0u, 0) < 0) {
		for (int fd = 3; fd < 65536; fd++)
			if (fd != keep)
				close(fd);
	}
}

/*
 * The jailed child dies with the outer parent (SIGKILL when it exits), so
 * killing the parent never leaves a monitor running. Set after the last
 * change of credentials, which clears it. The parent may have died before:
 * getppid() cannot tell (0 for PID 1 of a PID namespace whose parent is
 * outside it), the pipe can: EOF once the parent's write end is closed.
 */
static int die_with_parent(int alive_fd, char *err, size_t len)
{
	char c;
	ssize_t n;

	errno = 0;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
		close(alive_fd);
		return fail(err, len, "jail: parent-death signal: %s", strerror(errno));
	}
	n = read(alive_fd, &c, 1);
	close(alive_fd);
	if (n == 0) {
		errno = ESRCH;
		return fail(err, len, "jail: the outer parent exited before the jail was ready");
	}
	errno = 0;
	return 0;
}

int spk_jail_enter(const struct spk_jail *j, char *err, size_t len)
{
	struct stat st;
	int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;

	errno = 0;
	if (geteuid() != 0)
		return fail(err, len, "jail: needs root (to make namespaces and pivot_root)");
	if (!j->dir || stat(j->dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return fail(err, len, "jail: %s is not a directory", j->dir ? j->dir : "(none)");
	if (j->uid == 0 || j->gid == 0)
		return fail(err, len, "jail: --uid and --gid must not be 0 (root)");
	if (j->new_netns)
		flags |= CLONE_NEWNET;
	if (unshare(flags) < 0)
		return fail(err, len, "jail: unshare: %s", strerror(errno));
	/* the parent's liveness for the child: EOF on alive[0] once it is gone */
	int alive[2];
	if (pipe2(alive, O_CLOEXEC | O_NONBLOCK) < 0)
		return fail(err, len, "jail: pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork(); /* the child is PID 1 of the new PID namespace */
	if (pid < 0) {
		int saved = errno;

		close(alive[0]);
		close(alive[1]);
		errno = saved;
		return fail(err, len, "jail: fork: %s", strerror(errno));
	}
	if (pid > 0) {
		close(alive[0]);
		wait_child(pid, alive[1]);
	}
	close(alive[1]);
	if (sethostname("sparkler", 8) < 0 || pivot(j, err, len) < 0 || set_limits(j, err, len) < 0)
		return -EPERM;
	close_all_but(alive[0]);
	/* clearenv() only drops libc's pointers; /proc/PID/environ shows the
	 * original strings, so wipe them too */
	for (char **e = environ; e && *e; e++)
		memset(*e, 0, strlen(*e));
	clearenv();
	if (drop_privileges(j, err, len) < 0)
		return -EPERM;
	return die_with_parent(alive[0], err, len);
}
