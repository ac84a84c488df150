/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `sparkler run`: boot a Linux microVM with a serial console, the legacy
 * PC devices, ACPI and N vCPUs; the process exits with the guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/acpi.h>
#include <sparkler/devices.h>
#include <sparkler/linux.h>
#include <sparkler/platform.h>
#include <sparkler/snapshot.h>

#include "vmm/vmm.h"

#include "vmm/gdb/gdb.h"
#include "vmm/machine/machine.h"
#include "vmm/confine/seccomp_policy.h"

#define ESCAPE_CHAR 0x01 /* Ctrl-A, then x: quit */

/* long options without a letter */
enum { OPT_NET = 0x100, OPT_VSOCK, OPT_NO_PVM_CMDLINE, OPT_RESTORE, OPT_RESTORE_MEM,
       OPT_RESTORE_UFFD, OPT_CLONE };

/* Shared with the signal and stdin threads. */
static struct {
	struct spk_machine *m;
	atomic_bool done;
	bool virtio_console; /* the terminal is hvc0 */
	bool raw_tty;
	struct termios saved_tty;
	/* the same, as the kernel's struct termios (TCGETS), for restoring
	 * with one ioctl(0, TCSETS) from a signal handler: glibc's tcsetattr
	 * may make other calls, which a filtered thread's seccomp traps */
	unsigned char saved_ktty[64];
	bool have_ktty;
} g;

/* ---- the terminal ------------------------------------------------------ */

/* One ioctl(0, TCSETS) when we have the kernel's struct (what the main
 * thread's filter allows: glibc's tcsetattr reads the terminal back with
 * TCGETS after setting it). */
static void restore_tty(void)
{
	if (!g.raw_tty)
		return;
	if (g.have_ktty)
		ioctl(STDIN_FILENO, TCSETS, g.saved_ktty);
	else
		tcsetattr(STDIN_FILENO, TCSANOW, &g.saved_tty);
	g.raw_tty = false;
}

/* Async-signal-safe, one system call the seccomp lists allow: for the
 * crash handlers and the seccomp trap, which die right after it without
 * atexit, maybe on a filtered vCPU or device thread. */
static void restore_tty_now(void)
{
	if (g.raw_tty && g.have_ktty)
		ioctl(STDIN_FILENO, TCSETS, g.saved_ktty);
}

/* A crash (ours) must not leave the user's terminal raw: restore it, then
 * die of the same signal. */
static void crash_handler(int sig)
{
	restore_tty_now();
	raise(sig); /* SA_RESETHAND: the default action now */
}

static void restore_on_crash(void)
{
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
	struct sigaction sa = {.sa_handler = crash_handler, .sa_flags = SA_RESETHAND | SA_NODEFER};

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

static void raw_tty(void)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &g.saved_tty) < 0)
		return;
	g.have_ktty = ioctl(STDIN_FILENO, TCGETS, g.saved_ktty) == 0;
	t = g.saved_tty;
	cfmakeraw(&t);
	t.c_oflag |= OPOST | ONLCR; /* our own messages still end lines */
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
		g.raw_tty = true;
		atexit(restore_tty);
		restore_on_crash();
		/* SIGSYS from a filter, or a filter that cannot be installed */
		spk_seccomp_fatal_hook = restore_tty_now;
	}
}

/* ---- host-side threads: signals and stdin --------------------------------- */

static void *signal_main(void *p)
{
	sigset_t *set = p;
	int sig;

	pthread_setname_np(pthread_self(), "signals");
	spk_seccomp_install_or_die(SPK_SECCOMP_SIGNAL, "signals");
	while (sigwait(set, &sig) == 0) {
		if (atomic_load(&g.done))
			break;
		if (sig == SIGPWR) {
			/* as lxc-stop asks a container to shut down: the guest
			 * decides, the VM runs on until it powers off */
			bool pressed = spk_machine_power_button(g.m) == 0;

			fprintf(stderr, "\r\nsparkler: SIGPWR: %s\r\n",
			        pressed ? "pressed the power button" : "no VM running yet, ignored");
			continue;
		}
		fprintf(stderr, "\r\nsparkler: %s: stopping the guest\r\n", strsignal(sig));
		spk_machine_stop(g.m);
	}
	return NULL;
}

/* Keyboard input goes to the virtio console with --console-virtio, else COM1. */
static void feed_uart(const uint8_t *buf, size_t n)
{
	for (size_t done = 0; done < n && !atomic_load(&g.done);) {
		size_t took = g.virtio_console
				      ? spk_machine_console_input(g.m, buf + done, n - done)
				      : spk_machine_serial_input(g.m, buf + done, n - done);

		done += took;
		if (!took)
			usleep(1000); /* the guest has not drained its FIFO yet */
	}
}

/* Drop the escape sequence from in[0, n) into out; true on Ctrl-A x. */
static bool filter_escape(const uint8_t *in, size_t n, uint8_t *out, size_t *m, bool *escape)
{
	*m = 0;
	for (size_t i = 0; i < n; i++) {
		if (*escape) {
			*escape = false;
			if (in[i] == 'x')
				return true;
			if (in[i] != ESCAPE_CHAR)
				continue;
		} else if (in[i] == ESCAPE_CHAR) {
			*escape = true;
			continue;
		}
		out[(*m)++] = in[i];
	}
	return false;
}

static void *stdin_main(void *p)
{
	bool escape = false;
	uint8_t in[64], out[64];

	/* it hands input to the UART or, with --console-virtio, pops the
	 * guest's receive queue from guest memory: filtered like a device */
	pthread_setname_np(pthread_self(), "stdin");
	spk_seccomp_install_or_die(SPK_SECCOMP_DEVICE, "stdin");

	while (!atomic_load(&g.done)) {
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		ssize_t n = read(STDIN_FILENO, in, sizeof(in));
		if (n <= 0)
			break; /* EOF: the guest keeps running without input */
		size_t m;
		if (filter_escape(in, (size_t)n, out, &m, &escape)) {
			fprintf(stderr, "\r\nsparkler: quit (Ctrl-A x)\r\n");
			spk_machine_stop(g.m);
			return NULL;
		}
		feed_uart(out, m);
	}
	return NULL;
}

/* ---- options ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: sparkler run --kernel PATH [options]\n"
	    "       sparkler run --restore STATE [--restore-mem MEM] [--serial, --timeout, ...]\n"
	    "  --kernel PATH        bzImage or ELF vmlinux (PVH entry when it has one)\n"
	    "  --initrd PATH        initial ramdisk\n"
	    "  --cmdline STRING     kernel command line (default \"" SPK_MACHINE_DEFAULT_CMDLINE
	    "\")\n"
	    "  --cpus N             vCPUs (default 1)\n"
	    "  --mem SIZE           guest RAM, K/M/G suffixes (default 512M)\n"
	    "  --cpu-template NAME  host (default) or minimal\n"
	    "  --serial DEST        stdout (default), none, or file:PATH\n"
	    "  --reboot             restart the guest when it resets\n"
	    "  --no-pvh             boot an ELF kernel through its 64-bit entry\n"
	    "  --timeout SEC        stop the guest after SEC seconds (exit status 4)\n"
	    "  --no-pvm-cmdline     on a PVM host, add nothing to the kernel command line\n"
	    "                       (by default: noxsave nowatchdog, where missing)\n"
	    "  --restore STATE      run the VM a snapshot saved (PUT /snapshot/create) from\n"
	    "                       where it was; --restore-mem MEM: its memory file if not\n"
	    "                       the one the state names\n"
	    "  --restore-uffd       with --restore: guest memory through userfaultfd (a\n"
	    "                       page-fault thread of the library) instead of a mapping\n"
	    "  --clone K            with --restore: run clone K (1-1023) of the snapshot, with\n"
	    "                       an identity of its own: vsock CID + K and socket\n"
	    "                       <path>.K, each TAP <tap>.K with MAC + K; memory shared\n"
	    "                       with the other clones until written; a new VM generation\n"
	    "                       ID (every restore has one)\n"
	    "  --no-seccomp         run without system call filters (debugging only)\n"
	    "  --gdb ADDR           serve gdb on tcp:[HOST:]PORT or unix:PATH; the guest\n"
	    "                       waits for it before its first instruction\n"
	    "  --gdb-no-wait        with --gdb: boot at once, gdb may attach later\n"
	    "  --entropy            a virtio-rng device (entropy from the host's getrandom)\n"
	    "  --disk PATH[,ro]     a virtio-blk disk on a raw image (a size in whole 512-byte\n"
	    "                       sectors); ,ro: read-only; repeat for more (drive0, drive1..)\n"
	    "  --console-virtio     a virtio console (hvc0) on the terminal: its output to\n"
	    "                       stdout, keyboard input to it instead of COM1; boot with\n"
	    "                       console=hvc0 (COM1 still goes where --serial says)\n"
	    "  --net tap=NAME[,mac=MAC]  a virtio-net device on TAP NAME (made if there is\n"
	    "                       none, brought up); MAC like 06:00:ac:10:00:02, default a\n"
	    "                       random local one; repeat for more (at most 4)\n"
	    "  --vsock cid=N,uds=PATH  a virtio-vsock device, guest CID N: host programs\n"
	    "                       connect to PATH and write \"CONNECT <port>\\n\"; the guest's\n"
	    "                       connections to host port P go to the socket PATH_P\n"
	    "On a terminal, Ctrl-A x quits. Exit status: 0 powered off, 2 bad usage,\n"
	    "3 the guest reset, 4 crash or internal error, 5 stopped from the host.\n"
	    "SIGINT, SIGTERM, SIGHUP, SIGQUIT stop the guest (5); SIGPWR presses the ACPI\n"
	    "power button and the guest decides (a clean shutdown powers off: 0).\n");
}

struct cli {
	struct spk_machine_config cfg;
	const char *serial;
	const char *gdb; /* --gdb ADDR */
	bool gdb_no_wait;
	bool no_pvm_cmdline;
	const char *restore, *restore_mem; /* --restore STATE, --restore-mem MEM */
	bool restore_uffd;                 /* --restore-uffd */
	uint32_t clone;                    /* --clone K (0: none) */
};

/* One line: "sparkler: OPT ARG: WHY" (ARG may be NULL). */
static int bad(const char *opt, const char *arg, const char *why)
{
	fprintf(stderr, "sparkler: %s%s%s: %s\n", opt, arg ? " " : "", arg ? arg : "", why);
	return -1;
}

/* --disk PATH[,ro]: the next drive (drive0, drive1, ...); opened at boot. */
static int add_disk(struct spk_machine_config *cfg, const char *arg)
{
	size_t len = strlen(arg);
	bool ro = len >= 3 && strcmp(arg + len - 3, ",ro") == 0;
	struct spk_drive_config *d;
	char why[64];

	if (cfg->n_drives >= SPK_MACHINE_MAX_DRIVES) {
		snprintf(why, sizeof(why), "too many disks (at most %d)", SPK_MACHINE_MAX_DRIVES);
		return bad("--disk", arg, why);
	}
	d = &cfg->drives[cfg->n_drives];
	len -= ro ? 3 : 0;
	if (len == 0)
		return bad("--disk", arg, "needs the path of a raw image");
	if (!(d->path = strndup(arg, len)))
		return -ENOMEM;
	snprintf(d->id, sizeof(d->id), "drive%u", cfg->n_drives);
	d->read_only = ro;
	cfg->n_drives++;
	return 0;
}

/* "AA:BB:CC:DD:EE:FF", a unicast address. */
static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	int end = 0;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &end) != 6 || s[end] || end != 17 || (v[0] & 1))
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

/* A TAP or MAC given twice. */
static int net_clash(const struct spk_machine_config *cfg, const struct spk_net_config *n,
		     const char *arg)
{
	for (uint32_t i = 0; i < cfg->n_nets; i++) {
		if (strcmp(cfg->nets[i].tap, n->tap) == 0)
			return bad("--net", arg, "that TAP is given twice");
		if (n->has_mac && cfg->nets[i].has_mac && !memcmp(cfg->nets[i].mac, n->mac, 6))
			return bad("--net", arg, "that MAC is given twice");
	}
	return 0;
}

/* --net tap=NAME[,mac=MAC]: the next network interface (net0, net1, ...). */
static int add_net(struct spk_machine_config *cfg, const char *arg)
{
	struct spk_net_config n = {0};
	char buf[128], *save = NULL;

	if (cfg->n_nets >= SPK_MACHINE_MAX_NETS || strlen(arg) >= sizeof(buf))
		return bad("--net", arg, cfg->n_nets >= SPK_MACHINE_MAX_NETS
					     ? "too many interfaces (at most 4)"
					     : "too long");
	memcpy(buf, arg, strlen(arg) + 1); /* fits: checked above */
	for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		if (strncmp(kv, "tap=", 4) == 0 && kv[4] && strlen(kv + 4) < sizeof(n.tap) &&
		    !strchr(kv + 4, '/'))
			snprintf(n.tap, sizeof(n.tap), "%s", kv + 4);
		else if (strncmp(kv, "mac=", 4) == 0 && parse_mac(kv + 4, n.mac) == 0)
			n.has_mac = true;
		else
			return bad("--net", arg, "use tap=NAME[,mac=MAC]: a name of 1 to 15 "
						 "characters, a unicast MAC like 06:00:ac:10:00:02");
	}
	if (!*n.tap)
		return bad("--net", arg, "needs tap=NAME");
	if (net_clash(cfg, &n, arg) < 0)
		return -1;
	snprintf(n.id, sizeof(n.id), "net%u", cfg->n_nets);
	cfg->nets[cfg->n_nets++] = n;
	return 0;
}

/* --vsock cid=N,uds=PATH */
static int set_vsock(struct spk_machine_config *cfg, const char *arg)
{
	const size_t sun_max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	char buf[256], *save = NULL;
	const char *uds = NULL;
	uint64_t cid = 0;

	if (cfg->vsock.enabled || strlen(arg) >= sizeof(buf))
		return bad("--vsock", arg, cfg->vsock.enabled ? "only one vsock device" : "too long");
	memcpy(buf, arg, strlen(arg) + 1); /* fits: checked above */
	for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		if (strncmp(kv, "cid=", 4) == 0 && spk_parse_uint(kv + 4, 3, UINT32_MAX - 1, &cid) == 0)
			continue;
		if (strncmp(kv, "uds=", 4) == 0 && kv[4] && strlen(kv + 4) <= sun_max)
			uds = kv + 4;
		else
			return bad("--vsock", arg, "use cid=N,uds=PATH: a CID from 3 to 4294967294, "
						   "a socket path of at most 107 bytes");
	}
	if (!cid || !uds)
		return bad("--vsock", arg, "needs cid=N and uds=PATH");
	cfg->vsock.enabled = true;
	cfg->vsock.guest_cid = (uint32_t)cid;
	return spk_config_set_str(&cfg->vsock.uds_path, uds);
}

static int parse_one(struct cli *c, int opt, const char *arg, char **argv)
{
	struct spk_machine_config *cfg = &c->cfg;
	uint64_t v;
	const char *err;

	switch (opt) {
	case 'k': return spk_config_set_str(&cfg->kernel, arg);
	case 'i': return spk_config_set_str(&cfg->initrd, arg);
	case 'c': return spk_config_set_str(&cfg->cmdline, arg);
	case 's': c->serial = arg; return 0;
	case 'r': cfg->reboot = true; return 0;
	case 'P': cfg->no_pvh = true; return 0;
	case 'N': spk_seccomp_enabled = false; return 0;
	case 'g': c->gdb = arg; return 0;
	case 'G': c->gdb_no_wait = true; return 0;
	case 'E': cfg->entropy = true; return 0;
	case 'V': cfg->virtio_console = true; return 0;
	case 'D': return add_disk(cfg, arg);
	case OPT_NET: return add_net(cfg, arg);
	case OPT_VSOCK: return set_vsock(cfg, arg);
	case OPT_NO_PVM_CMDLINE: c->no_pvm_cmdline = true; return 0;
	case OPT_RESTORE:
		c->restore = arg;
		return 0;
	case OPT_RESTORE_MEM:
		c->restore_mem = arg;
		return 0;
	case OPT_RESTORE_UFFD:
		c->restore_uffd = true;
		return 0;
	case OPT_CLONE:
		if (spk_parse_uint(arg, 1, SPK_CLONE_MAX - 1, &v) < 0)
			return bad("--clone", arg, "need 1 to 1023");
		c->clone = (uint32_t)v;
		return 0;
	case 'h': usage(stdout); exit(0);
	case 'n':
		if (spk_parse_uint(arg, 1, 255, &v) < 0)
			return bad("--cpus", arg, "need 1 to 255");
		cfg->vcpus = (uint32_t)v;
		return 0;
	case 'm':
		if (spk_parse_size(arg, &cfg->mem, &err) < 0) {
			fprintf(stderr, "sparkler: --mem %s: %s\n", arg, err);
			return -1;
		}
		return 0;
	case 't':
		if (spk_cpu_template_parse(arg, &cfg->template) < 0)
			return bad("--cpu-template", arg, "use host or minimal");
		return 0;
	case 'T':
		if (spk_parse_uint(arg, 1, 86400 * 365, &cfg->timeout) < 0)
			return bad("--timeout", arg, "need whole seconds");
		return 0;
	default:
		return bad("run:", argv[optind - 1], "unknown or incomplete option");
	}
}

/* On a PVM host: the kernel options a stock kernel needs there
 * (spk_pvm_cmdline); the machine says which were added when the guest
 * starts (after every check: a bad command line stays one line). */
static int pvm_cmdline(struct cli *c)
{
	struct spk_machine_config *cfg = &c->cfg;
	char added[64], *cmd;
	int rc;

	if (strcmp(spk_host_kvm_kind(), "pvm") != 0)
		return 0;
	rc = spk_pvm_cmdline(cfg->cmdline ? cfg->cmdline : SPK_MACHINE_DEFAULT_CMDLINE, &cmd,
			     added, sizeof(added));
	if (rc < 0)
		return bad("--cmdline", NULL, rc == -E2BIG ? "too long to add the PVM options (2048 bytes)"
							  : strerror(-rc));
	free(cfg->cmdline);
	cfg->cmdline = cmd;
	if (added[0])
		snprintf(cfg->start_note, sizeof(cfg->start_note),
			 "sparkler: PVM host: added \"%s\" to the kernel command line "
			 "(--no-pvm-cmdline: leave it as given)",
			 added);
	return 0;
}

/*
 * --restore STATE [--restore-mem MEM]: the machine (vCPUs, memory, devices,
 * their files and TAPs) is the snapshot's; of the options only --serial,
 * --timeout, --no-seccomp and --gdb apply.
 */
static int restore_config(struct cli *c)
{
	struct spk_machine_config s;
	char err[512];

	if (!c->restore)
		return bad(c->restore_mem ? "--restore-mem"
		           : c->clone     ? "--clone"
		                          : "--restore-uffd",
		           c->restore_mem, "needs --restore");
	if (c->cfg.kernel || c->cfg.initrd || c->cfg.n_drives || c->cfg.n_nets ||
	    c->cfg.vsock.enabled || c->cfg.entropy || c->cfg.virtio_console || c->cfg.reboot)
		return bad(
		    "--restore", c->restore,
		    "the machine comes from the snapshot: not with --kernel, --initrd, --disk, "
		    "--net, --vsock, --entropy, --console-virtio or --reboot");
	spk_machine_config_init(&s);
	if (spk_machine_config_from_snapshot(c->restore, &s, err, sizeof(err)) < 0) {
		spk_machine_config_free(&s);
		return bad("--restore", NULL, err);
	}
	if (c->clone) {
		struct spk_clone_id id;

		if (spk_machine_clone_id(&s, c->clone, &id, err, sizeof(err)) < 0 ||
		    spk_machine_config_clone(&s, &id, err, sizeof(err)) < 0) {
			spk_machine_config_free(&s);
			return bad("--clone", NULL, err);
		}
	}
	s.timeout = c->cfg.timeout;
	s.restore_uffd_own = c->restore_uffd;
	if (spk_config_set_str(&s.restore_mem, c->restore_mem) < 0) {
		spk_machine_config_free(&s);
		return -1;
	}
	spk_machine_config_free(&c->cfg);
	c->cfg = s;
	return 0;
}

static int parse_opts(int argc, char **argv, struct cli *c)
{
	static const struct option longs[] = {
	    {"kernel", required_argument, NULL, 'k'},
	    {"initrd", required_argument, NULL, 'i'},
	    {"cmdline", required_argument, NULL, 'c'},
	    {"cpus", required_argument, NULL, 'n'},
	    {"mem", required_argument, NULL, 'm'},
	    {"cpu-template", required_argument, NULL, 't'},
	    {"serial", required_argument, NULL, 's'},
	    {"reboot", no_argument, NULL, 'r'},
	    {"no-pvh", no_argument, NULL, 'P'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"no-seccomp", no_argument, NULL, 'N'},
	    {"no-pvm-cmdline", no_argument, NULL, OPT_NO_PVM_CMDLINE},
	    {"entropy", no_argument, NULL, 'E'},
	    {"console-virtio", no_argument, NULL, 'V'},
	    {"disk", required_argument, NULL, 'D'},
	    {"gdb", required_argument, NULL, 'g'},
	    {"gdb-no-wait", no_argument, NULL, 'G'},
	    {"net", required_argument, NULL, OPT_NET},
	    {"vsock", required_argument, NULL, OPT_VSOCK},
	    {"restore", required_argument, NULL, OPT_RESTORE},
	    {"restore-mem", required_argument, NULL, OPT_RESTORE_MEM},
	    {"restore-uffd", no_argument, NULL, OPT_RESTORE_UFFD},
	    {"clone", required_argument, NULL, OPT_CLONE},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char err[256];
	int opt;

	spk_machine_config_init(&c->cfg);
	c->serial = "stdout";
	c->gdb = NULL;
	c->gdb_no_wait = false;
	c->no_pvm_cmdline = false;
	c->restore = c->restore_mem = NULL;
	c->restore_uffd = false;
	c->clone = 0;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", longs, NULL)) != -1)
		if (parse_one(c, opt, optarg, argv) < 0)
			return -1;
	if (optind != argc)
		return bad("run:", argv[optind], "unexpected argument");
	if (c->restore || c->restore_mem || c->restore_uffd || c->clone)
		return restore_config(c);
	if (!c->cfg.kernel)
		return bad("run", NULL, "--kernel is required");
	if (c->gdb && spk_gdb_check_listen(c->gdb, err, sizeof(err)) < 0)
		return bad("run", NULL, err);
	if (c->gdb_no_wait && !c->gdb)
		return bad("--gdb-no-wait", NULL, "needs --gdb");
	if (spk_machine_config_check(&c->cfg, err, sizeof(err)) < 0)
		return bad(strstr(err, "memory") ? "--mem" : "run", NULL, err);
	return c->no_pvm_cmdline ? 0 : pvm_cmdline(c);
}

static int open_serial(const char *dest)
{
	if (strcmp(dest, "stdout") == 0)
		return STDOUT_FILENO;
	if (strcmp(dest, "none") == 0)
		return -1;
	if (strncmp(dest, "file:", 5) == 0 && dest[5])
		return open(dest + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	errno = EINVAL;
	return -2;
}

/* ---- gdb ---------------------------------------------------------------------------- */

static enum spk_action gdb_on_exit(void *ctx, struct spk_vcpu *vcpu, struct spk_exit *e)
{
	return spk_gdb_on_exit(ctx, vcpu, e);
}

static bool gdb_vm_start(void *ctx, struct spk_vm *vm)
{
	return spk_gdb_vm_start(ctx, vm);
}

static void gdb_vm_end(void *ctx, int status, bool final)
{
	spk_gdb_vm_end(ctx, status, final);
}

static void gdb_kill(void *opaque)
{
	spk_machine_stop(opaque);
}

/* --gdb: start the stub and hook it into the machine. */
static int start_gdb(const struct cli *c, struct spk_gdb **out)
{
	const struct spk_gdb_config gc = {.listen = c->gdb, .no_wait = c->gdb_no_wait,
					  .kill = gdb_kill, .opaque = g.m};
	char err[256];

	*out = NULL;
	if (!c->gdb)
		return 0;
	if (spk_gdb_start(&gc, out, err, sizeof(err)) < 0) {
		fprintf(stderr, "sparkler: %s\n", err);
		return -1;
	}
	const struct spk_machine_debugger d = {.ctx = *out, .on_exit = gdb_on_exit,
					       .vm_start = gdb_vm_start, .vm_end = gdb_vm_end};
	spk_machine_set_debugger(g.m, &d);
	return 0;
}

/* ---- the command ---------------------------------------------------------------- */

int spk_cmd_run(int argc, char **argv)
{
	struct cli c;
	char err[512] = "";
	sigset_t set;
	pthread_t sig_t, in_t;
	int status;

	if (parse_opts(argc, argv, &c) < 0) {
		spk_machine_config_free(&c.cfg);
		return SPK_STATUS_USAGE;
	}
	spk_seccomp_warn_if_off();
	c.cfg.serial_fd = open_serial(c.serial);
	if (c.cfg.serial_fd < -1 || (c.cfg.serial_fd == -1 && strcmp(c.serial, "none") != 0)) {
		fprintf(stderr, "sparkler: --serial %s: %s\n", c.serial, strerror(errno));
		spk_machine_config_free(&c.cfg);
		return SPK_STATUS_USAGE;
	}
	if (spk_machine_new(&c.cfg, &g.m, err, sizeof(err)) < 0) {
		fprintf(stderr, "sparkler: %s\n", err);
		spk_machine_config_free(&c.cfg);
		return SPK_STATUS_USAGE;
	}
	struct spk_gdb *gdb;
	if (start_gdb(&c, &gdb) < 0) {
		spk_machine_free(g.m);
		spk_machine_config_free(&c.cfg);
		return SPK_STATUS_USAGE;
	}
	/* signals go to one thread, never to a vCPU thread */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGPWR); /* the power button, not a stop */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	g.virtio_console = c.cfg.virtio_console;
	bool console = strcmp(c.serial, "stdout") == 0 || c.cfg.virtio_console;
	if (console)
		raw_tty();
	/* the signal thread filters itself with its own list: made before
	 * the main thread's filter, which does not have sigwait */
	pthread_create(&sig_t, NULL, signal_main, &set);
	/* from here the main thread only builds, runs and tears down VMs (a
	 * guest reset with --reboot builds the next one); the threads it
	 * makes from now on inherit its list and stack their own on top */
	spk_seccomp_install_or_die(SPK_SECCOMP_MONITOR, "main");
	if (console && pthread_create(&in_t, NULL, stdin_main, NULL) == 0)
		pthread_detach(in_t);

	status = spk_machine_run(g.m, err, sizeof(err));
	if (status != SPK_STATUS_OK && status != SPK_STATUS_STOPPED && *err)
		fprintf(stderr, "sparkler: %s\n", err);

	spk_gdb_free(gdb);
	atomic_store(&g.done, true);
	/* wake its sigwait (SIGTERM is blocked everywhere and only ever
	 * sigwait-ed for, so this ends no thread); done is set */
	pthread_kill(sig_t, SIGTERM); // NOLINT(bugprone-bad-signal-to-kill-thread)
	pthread_join(sig_t, NULL);
	restore_tty();
	spk_machine_free(g.m);
	spk_machine_config_free(&c.cfg);
	return status;
}
