/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seccomp allowlists, one per kind of thread, as libseccomp rules.
 * Only the build runs this: seccomp-gen (seccomp_gen.c) compiles each
 * profile to BPF once, into seccomp_bpf.h, and the sparkler program
 * installs those programs as they are (seccomp.c), the way Firecracker's
 * seccompiler does. Compiling them at every start cost 0.26 ms of the
 * 1.47 ms from exec to the guest's end (perf stat, `sparkler sandbox`
 * with and without --no-seccomp), and libseccomp at run time.
 */
#include <errno.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/sockios.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>

#include "vmm/confine/seccomp_rules.h"

/* ---- the allowlists: every syscall with who needs it -------------------- */

struct rule {
	int nr;
	const char *why;
};

/* What every filtered thread needs: memory, locks, signals, exiting. */
static const struct rule common[] = {
	{SCMP_SYS(futex), "pthread mutexes, conditions and the HALT wait"},
	{SCMP_SYS(mmap), "malloc arenas; thread stacks of CPU_UP threads"},
	{SCMP_SYS(munmap), "free of large blocks, thread stacks"},
	{SCMP_SYS(mprotect), "guard pages of new thread stacks"},
	{SCMP_SYS(madvise), "glibc trims freed thread stacks"},
	{SCMP_SYS(brk), "malloc"},
	{SCMP_SYS(rt_sigprocmask), "pthread_sigmask: kick signal, blocked host signals"},
	{SCMP_SYS(rt_sigreturn), "return from the kick signal's handler"},
	{SCMP_SYS(sigaltstack), "glibc thread exit"},
	{SCMP_SYS(exit), "thread exit"},
	{SCMP_SYS(exit_group), "process exit"},
	{SCMP_SYS(gettid), "pthread_kill"},
	{SCMP_SYS(getpid), "pthread_kill"},
	{SCMP_SYS(tgkill), "kicking vCPU threads (spk_vcpu_kick)"},
	{SCMP_SYS(clock_gettime), "exit statistics, timeouts (when the vDSO falls back)"},
	{SCMP_SYS(clock_nanosleep), "bounded waits"},
	{SCMP_SYS(nanosleep), "bounded waits"},
	{SCMP_SYS(sched_yield), "spinning on a contended lock"},
	{SCMP_SYS(write), "console output (hypercall, debug port, UART), log lines"},
	{SCMP_SYS(writev), "stdio flushing several buffers"},
	{SCMP_SYS(restart_syscall), "a futex wait interrupted by the kick signal"},
	{SCMP_SYS(seccomp), "a thread adding its own, narrower filter (filters only stack)"},
};

/* A vCPU thread: KVM (ioctls of type KVMIO only, see below), and making
 * the thread of a vCPU the guest starts with CPU_UP. */
static const struct rule vcpu[] = {
	{SCMP_SYS(clone3), "CPU_UP starts a vCPU thread"},
	{SCMP_SYS(clone), "CPU_UP starts a vCPU thread (older glibc)"},
	{SCMP_SYS(set_robust_list), "a new thread's start"},
	{SCMP_SYS(rseq), "a new thread's start"},
};

/* A device or event-loop thread: its queues, files and sockets. */
static const struct rule device[] = {
	{SCMP_SYS(read), "eventfds, sockets, TAP"},
	{SCMP_SYS(readv), "TAP, sockets"},
	{SCMP_SYS(pread64), "disk images"},
	{SCMP_SYS(preadv), "disk images"},
	{SCMP_SYS(pwrite64), "disk images"},
	{SCMP_SYS(pwritev), "disk images"},
	{SCMP_SYS(fdatasync), "virtio-blk flush"},
	{SCMP_SYS(fsync), "virtio-blk flush"},
	{SCMP_SYS(fallocate), "virtio-blk discard and write-zeroes"},
	{SCMP_SYS(epoll_wait), "the event loop"},
	{SCMP_SYS(epoll_pwait), "the event loop"},
	{SCMP_SYS(epoll_ctl), "adding and removing sources"},
	{SCMP_SYS(eventfd2), "notifications"},
	{SCMP_SYS(close), "connections that end"},
	{SCMP_SYS(getrandom), "virtio-rng"},
	{SCMP_SYS(io_uring_enter), "virtio-blk with io_uring"},
	{SCMP_SYS(sendmsg), "vsock over Unix sockets"},
	{SCMP_SYS(recvmsg), "vsock over Unix sockets"},
	{SCMP_SYS(accept4), "vsock: host connections"},
	{SCMP_SYS(connect), "vsock: guest connections to uds_path_PORT"},
	{SCMP_SYS(socket), "vsock: guest connections to uds_path_PORT"},
	{SCMP_SYS(poll), "bounded waits on sockets"},
	{SCMP_SYS(ppoll), "bounded waits on sockets"},
	{SCMP_SYS(fcntl), "non-blocking sockets"},
	{SCMP_SYS(setsockopt), "gdb stub: TCP_NODELAY on its connection"},
	{SCMP_SYS(recvfrom), "gdb stub and vsock: socket reads"},
	{SCMP_SYS(sendto), "gdb stub and vsock: socket writes"},
	{SCMP_SYS(shutdown), "gdb stub and vsock: closing a connection"},
	{SCMP_SYS(timerfd_settime), "rate limiters' refills, MMDS retransmissions"},
	{SCMP_SYS(ioctl), "KVM only (below)"},
};

/* Building and tearing down a VM (the main thread of `run`, which also
 * rebuilds it on a guest reset with --reboot; the API process's VM
 * thread): reading the kernel and disks, making the devices, their TAPs,
 * sockets and threads. */
static const struct rule build[] = {
	{SCMP_SYS(openat), "the kernel, initrd, disks, /dev/kvm, /dev/net/tun; thread names"},
	{SCMP_SYS(newfstatat), "checking drive and kernel paths"},
	{SCMP_SYS(fstat), "file sizes"},
	{SCMP_SYS(statx), "file sizes"},
	{SCMP_SYS(lseek), "file sizes, stdio"},
	{SCMP_SYS(access), "checking paths"},
	{SCMP_SYS(unlink), "removing sockets we made (API, gdb, vsock) at the end"},
	{SCMP_SYS(bind), "vsock: the host side's listening socket"},
	{SCMP_SYS(listen), "vsock: the host side's listening socket"},
	{SCMP_SYS(epoll_create1), "the event loops' epoll"},
	{SCMP_SYS(prlimit64), "glibc reading limits for new threads"},
	{SCMP_SYS(clone3), "the vCPU and event-loop threads"},
	{SCMP_SYS(clone), "threads (older glibc)"},
	{SCMP_SYS(set_robust_list), "a new thread's start"},
	{SCMP_SYS(rseq), "a new thread's start"},
	{SCMP_SYS(mremap), "realloc of large buffers"},
	{SCMP_SYS(rt_sigaction), "the SIGSYS and kick handlers of new VMs"},
	{SCMP_SYS(sched_getaffinity), "glibc thread start"},
	{SCMP_SYS(timerfd_create), "event-loop timers"},
	{SCMP_SYS(timerfd_settime), "event-loop timers"},
	{SCMP_SYS(io_uring_setup), "virtio-blk with io_uring"},
	{SCMP_SYS(io_uring_register), "virtio-blk with io_uring"},
	{SCMP_SYS(userfaultfd), "snapshot load with the Uffd backend (its ioctls: below)"},
	{SCMP_SYS(pidfd_open), "snapshot load, Uffd: watching the external handler's exit"},
	{SCMP_SYS(getsockopt), "snapshot load, Uffd: the handler's pid (SO_PEERCRED)"},
};

/* The API process (every thread of it, on top of the lists above): it
 * serves HTTP on its Unix socket, writes logs and metrics, and on
 * InstanceStart makes the VM (build). */
static const struct rule api[] = {
	{SCMP_SYS(renameat2), "the API socket: its temporary name into place, once listening"},
	{SCMP_SYS(rename), "the same, where the file system has no RENAME_NOREPLACE"},
	{SCMP_SYS(getsockname), "libmicrohttpd"},
	{SCMP_SYS(getpeername), "libmicrohttpd"},
	{SCMP_SYS(getsockopt), "libmicrohttpd"},
	{SCMP_SYS(pipe2), "libmicrohttpd's wakeups"},
	{SCMP_SYS(dup), "serial and metrics descriptors"},
	{SCMP_SYS(dup3), "serial and metrics descriptors"},
	{SCMP_SYS(prctl), "thread names"},
	{SCMP_SYS(signalfd4), "host signals"},
	{SCMP_SYS(uname), "glibc"},
	{SCMP_SYS(getuid), "glibc"},
	{SCMP_SYS(ftruncate), "metrics files"},
	{SCMP_SYS(getdents64), "closing descriptors"},
};

/* The signal thread of `run`: sigwait, then a flag, a kick or the power
 * button (KVM's irqchip, an ioctl of type KVMIO), and a line on stderr. */
static const struct rule signals[] = {
	{SCMP_SYS(rt_sigtimedwait), "sigwait"},
};

/* Timers that end things: the --timeout watchdog (a kick) and the API
 * server's request deadlines (shutdown(2) of a slow connection). */
static const struct rule timer[] = {
	{SCMP_SYS(shutdown), "the API server: cutting a connection past its deadline"},
};

/* The jail's outer parent, still root in the host's namespaces: it waits
 * for the jailed child, forwards signals to it and exits as it did. */
static const struct rule reaper[] = {
	{SCMP_SYS(wait4), "waitpid for the jailed child"},
	{SCMP_SYS(kill), "forwarding SIGINT/TERM/HUP/QUIT to the jailed child"},
	{SCMP_SYS(rt_sigaction), "dying of the child's signal: SIG_DFL, then raise"},
};

/* One argument comparison, spelled out (libseccomp's SCMP_A* macros leave
 * datum_b out for two-operand compares, which clang warns about). */
static struct scmp_arg_cmp arg_cmp(unsigned arg, enum scmp_compare op, uint64_t a, uint64_t b)
{
	return (struct scmp_arg_cmp){.arg = arg, .op = op, .datum_a = a, .datum_b = b};
}

/* ioctl: a vCPU or device thread may only talk to KVM (type KVMIO). */
static int allow_kvm_ioctls(scmp_filter_ctx ctx)
{
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				arg_cmp(1, SCMP_CMP_MASKED_EQ, 0xff00, (uint64_t)KVMIO << 8));
}

/* ioctl of type 0xAA (userfaultfd's: UFFDIO_API/REGISTER/COPY/ZEROPAGE/
 * WAKE/UNREGISTER, /dev/userfaultfd's USERFAULTFD_IOC_NEW): a snapshot
 * load with the Uffd backend, and the library's page-fault thread. */
static int allow_uffd_ioctls(scmp_filter_ctx ctx)
{
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				arg_cmp(1, SCMP_CMP_MASKED_EQ, 0xff00, 0xAAu << 8));
}

/* ioctl in the API process, beyond KVM: setting up the TAP of each
 * virtio-net device InstanceStart makes (src/virtio/net.c), by command. */
static int allow_tap_ioctls(scmp_filter_ctx ctx)
{
	static const unsigned long cmds[] = {
		TUNSETIFF,       /* attach (or make) the TAP */
		TUNSETVNETHDRSZ, /* its 12-byte virtio_net_hdr */
		TUNSETOFFLOAD,   /* offloads off */
		SIOCGIFFLAGS,    /* is the link up? */
		SIOCSIFFLAGS,    /* bring it up */
		SIOCSIFMTU,      /* the API's mtu */
	};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					  arg_cmp(1, SCMP_CMP_EQ, (uint64_t)cmds[i], 0));
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ioctl(0, TCSETS): the only terminal call, made by the SIGSYS handler of a
 * filtered thread so that `sparkler run` dies with the user's terminal
 * restored (spk_seccomp_fatal_hook); a trapped call there would kill the
 * process with the terminal still raw. */
static int allow_tty_restore(scmp_filter_ctx ctx)
{
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2,
				arg_cmp(0, SCMP_CMP_EQ, 0, 0), /* stdin */
				arg_cmp(1, SCMP_CMP_EQ, TCSETS, 0));
}

/* prctl: only PR_SET_NO_NEW_PRIVS, which spk_seccomp_install sets before it
 * stacks a filter (a CPU_UP vCPU thread filtering itself again), and
 * PR_GET_NAME, the thread's own name for the API logger's lines (glibc's
 * pthread_getname_np on itself). */
static int allow_no_new_privs(scmp_filter_ctx ctx)
{
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
				  arg_cmp(0, SCMP_CMP_EQ, PR_SET_NO_NEW_PRIVS, 0));

	return rc ? rc
		  : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
				     arg_cmp(0, SCMP_CMP_EQ, PR_GET_NAME, 0));
}

/* rt_sigaction(sig, NULL, &old): reading a disposition, never changing
 * one. libsparkler checks that the kick signal's handler is still its own
 * before each spk_vcpu_run() and in each spk_vcpu_kick() (vcpu.h). */
static int allow_sigaction_read(scmp_filter_ctx ctx)
{
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1,
	                        arg_cmp(1, SCMP_CMP_EQ, 0, 0));
}

static int add_rules(scmp_filter_ctx ctx, const struct rule *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (r[i].nr == SCMP_SYS(ioctl))
			continue; /* only with the KVMIO argument check */
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r[i].nr, 0);
		/* a syscall this kernel or libseccomp does not know: skip */
		if (rc < 0 && rc != -EDOM && rc != -EFAULT)
			return rc;
	}
	return 0;
}

/* prctl(PR_SET_NAME): the threads the main thread of `run` makes after
 * its filter name themselves (stdin, gdb stub). */
static int allow_set_name(scmp_filter_ctx ctx)
{
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
				arg_cmp(0, SCMP_CMP_EQ, PR_SET_NAME, 0));
}

#define ADD(list) add_rules(ctx, (list), sizeof(list) / sizeof((list)[0]))

int spk_seccomp_rules(scmp_filter_ctx ctx, enum spk_seccomp_profile p)
{
	bool vm_builder = p == SPK_SECCOMP_MONITOR || p == SPK_SECCOMP_API;
	/* the lists that allow all of rt_sigaction (the jail's parent sets
	 * SIG_DFL before it dies of its child's signal) */
	bool any_sigaction = vm_builder || p == SPK_SECCOMP_REAPER;
	int rc = ADD(common);

	if (rc == 0 && p == SPK_SECCOMP_VCPU)
		rc = ADD(vcpu);
	if (rc == 0 && (p == SPK_SECCOMP_DEVICE || vm_builder))
		rc = ADD(device);
	if (rc == 0 && vm_builder)
		rc = ADD(build);
	if (rc == 0 && p == SPK_SECCOMP_API)
		rc = ADD(api);
	if (rc == 0 && p == SPK_SECCOMP_SIGNAL)
		rc = ADD(signals);
	if (rc == 0 && p == SPK_SECCOMP_TIMER)
		rc = ADD(timer);
	if (rc == 0 && p == SPK_SECCOMP_REAPER)
		rc = ADD(reaper);
	if (rc == 0 && p != SPK_SECCOMP_REAPER)
		rc = allow_kvm_ioctls(ctx);
	if (rc == 0 && vm_builder)
		rc = allow_tap_ioctls(ctx);
	if (rc == 0 && vm_builder)
		rc = allow_uffd_ioctls(ctx);
	if (rc == 0 && p != SPK_SECCOMP_API && p != SPK_SECCOMP_REAPER)
		rc = allow_tty_restore(ctx);
	if (rc == 0 && p != SPK_SECCOMP_API) /* the API list allows all of prctl */
		rc = allow_no_new_privs(ctx);
	if (rc == 0 && p == SPK_SECCOMP_MONITOR)
		rc = allow_set_name(ctx);
	if (rc == 0 && !any_sigaction)
		rc = allow_sigaction_read(ctx);
	return rc;
}
