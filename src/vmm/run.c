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
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/acpi.h>
#include <sparkler/devices.h>
#include <sparkler/linux.h>
#include <sparkler/platform.h>

#include "vmm/vmm.h"

#define KERNEL_MAX (512ull << 20)
#define INITRD_MAX (2ull << 30)
#define ESCAPE_CHAR 0x01 /* Ctrl-A, then x: quit */
#define DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=1"

struct run_opts {
	const char *kernel, *initrd, *cmdline, *serial;
	uint64_t mem, cpus, timeout;
	enum spk_cpu_template template;
	bool reboot, no_pvh;
};

struct machine {
	struct spk_vm *vm;
	struct spk_uart *uart;
	struct spk_i8042 *kbd;
	struct spk_rtc *rtc;
	struct spk_acpi_pm *pm;
	struct spk_boot_timer *timer;
	struct spk_cpu_policy cpu;
	unsigned holes_logged;
};

/* Shared with the signal, stdin and watchdog threads. */
static struct {
	pthread_mutex_t lock;
	struct machine *current;
	int serial_fd;
	struct timespec t0;
	atomic_bool stop_host;  /* a signal or the escape sequence */
	atomic_bool timed_out;
	atomic_bool done;
	bool raw_tty;
	struct termios saved_tty;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .serial_fd = STDOUT_FILENO};

/* ---- the terminal ------------------------------------------------------ */

static void restore_tty(void)
{
	if (g.raw_tty) {
		tcsetattr(STDIN_FILENO, TCSANOW, &g.saved_tty);
		g.raw_tty = false;
	}
}

/* A crash (ours) must not leave the user's terminal raw: restore it, then
 * die of the same signal. tcsetattr is async-signal-safe. */
static void crash_handler(int sig)
{
	if (g.raw_tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &g.saved_tty);
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
	t = g.saved_tty;
	cfmakeraw(&t);
	t.c_oflag |= OPOST | ONLCR; /* our own messages still end lines */
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
		g.raw_tty = true;
		atexit(restore_tty);
		restore_on_crash();
	}
}

/* ---- stopping from the host ---------------------------------------------- */

static void kick_current(void)
{
	pthread_mutex_lock(&g.lock);
	if (g.current)
		for (uint32_t i = 0; i < spk_vm_max_vcpus(g.current->vm); i++)
			if (spk_vm_vcpu(g.current->vm, i))
				spk_vcpu_kick(spk_vm_vcpu(g.current->vm, i));
	pthread_mutex_unlock(&g.lock);
}

static void *signal_main(void *p)
{
	sigset_t *set = p;
	int sig;

	while (sigwait(set, &sig) == 0) {
		if (atomic_load(&g.done))
			break;
		fprintf(stderr, "\r\nsparkler: %s: stopping the guest\r\n", strsignal(sig));
		atomic_store(&g.stop_host, true);
		kick_current();
	}
	return NULL;
}

static void *watchdog_main(void *p)
{
	uint64_t ms = *(uint64_t *)p * 1000;

	for (uint64_t waited = 0; waited < ms && !atomic_load(&g.done); waited += 50)
		usleep(50 * 1000);
	if (!atomic_load(&g.done)) {
		atomic_store(&g.timed_out, true);
		kick_current();
	}
	return NULL;
}

/* ---- stdin to the UART ------------------------------------------------------ */

static void feed_uart(const uint8_t *buf, size_t n)
{
	for (size_t done = 0; done < n && !atomic_load(&g.done);) {
		pthread_mutex_lock(&g.lock);
		size_t took = g.current ? spk_uart_receive(g.current->uart, buf + done, n - done) : 0;
		pthread_mutex_unlock(&g.lock);
		done += took;
		if (!took)
			usleep(1000); /* the guest has not drained its FIFO yet */
	}
}

static void *stdin_main(void *p)
{
	bool escape = false;
	uint8_t in[64], out[64];

	while (!atomic_load(&g.done)) {
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		ssize_t n = read(STDIN_FILENO, in, sizeof(in));
		if (n <= 0)
			break; /* EOF: the guest keeps running without input */
		size_t m = 0;
		for (ssize_t i = 0; i < n; i++) {
			if (escape) {
				escape = false;
				if (in[i] == 'x') {
					fprintf(stderr, "\r\nsparkler: quit (Ctrl-A x)\r\n");
					atomic_store(&g.stop_host, true);
					kick_current();
					return NULL;
				}
				if (in[i] != ESCAPE_CHAR)
					continue;
			} else if (in[i] == ESCAPE_CHAR) {
				escape = true;
				continue;
			}
			out[m++] = in[i];
		}
		feed_uart(out, m);
	}
	return NULL;
}

/* ---- device glue --------------------------------------------------------------- */

static void serial_tx(void *ctx, const uint8_t *buf, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t w = write(g.serial_fd, buf + done, n - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the console went away: drop the output */
		done += (size_t)w;
	}
}

static void device_stop(void *ctx, enum spk_exit_kind kind)
{
	struct machine *m = ctx;

	spk_vm_request_stop(m->vm, kind);
}

static void boot_timer_report(void *ctx, uint64_t ns)
{
	fprintf(stderr, "\r\nsparkler: boot timer: the guest reached init %.3f ms after sparkler "
			"started\r\n", ns / 1e6);
}

static int add_devices(struct machine *m)
{
	struct spk_bus *bus = spk_vm_bus(m->vm);
	const struct spk_uart_config uc = {.name = "com1", .irq = spk_vm_irq(m->vm, SPK_PC_COM1_IRQ),
					   .tx = serial_tx};
	const struct spk_i8042_config kc = {.kbd_irq = spk_vm_irq(m->vm, 1), .stop = device_stop,
					    .stop_ctx = m};
	const struct spk_acpi_pm_config pc = {.s5_slp_typ = SPK_PC_S5_SLP_TYP,
					      .reset_value = SPK_PC_RESET_VALUE,
					      .stop = device_stop, .stop_ctx = m,
					      .sci = spk_vm_irq(m->vm, SPK_PC_SCI_IRQ)};
	const struct spk_boot_timer_config tc = {.start = g.t0, .report = boot_timer_report};
	const struct spk_rtc_config rc_cfg = {0};
	int rc;

	if ((rc = spk_uart_new(&uc, &m->uart)) < 0 || (rc = spk_i8042_new(&kc, &m->kbd)) < 0 ||
	    (rc = spk_rtc_new(&rc_cfg, &m->rtc)) < 0 || (rc = spk_acpi_pm_new(&pc, &m->pm)) < 0 ||
	    (rc = spk_boot_timer_new(&tc, &m->timer)) < 0)
		return rc;
	spk_acpi_pm_set_ports(m->pm, SPK_PC_PM1A_EVT, SPK_PC_PM1A_CNT, SPK_PC_RESET_PORT);
	const struct {
		enum spk_bus_space space;
		uint64_t base, len;
		const char *name;
		const struct spk_bus_ops *ops;
		void *dev;
	} regs[] = {
		{SPK_BUS_PIO, SPK_PC_COM1, 8, "com1", spk_uart_ops(), m->uart},
		{SPK_BUS_PIO, SPK_PC_I8042_DATA, 1, "i8042-data", spk_i8042_ops(), m->kbd},
		{SPK_BUS_PIO, SPK_PC_I8042_CMD, 1, "i8042-cmd", spk_i8042_ops(), m->kbd},
		{SPK_BUS_PIO, SPK_PC_RTC, 2, "rtc", spk_rtc_ops(), m->rtc},
		{SPK_BUS_PIO, SPK_PC_PM1A_EVT, 4, "pm1a-evt", spk_acpi_pm_ops(), m->pm},
		{SPK_BUS_PIO, SPK_PC_PM1A_CNT, 2, "pm1a-cnt", spk_acpi_pm_ops(), m->pm},
		{SPK_BUS_PIO, SPK_PC_RESET_PORT, 1, "acpi-reset", spk_acpi_pm_ops(), m->pm},
		{SPK_BUS_MMIO, SPK_PC_BOOT_TIMER, 0x1000, "boot-timer", spk_boot_timer_ops(),
		 m->timer},
	};
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		rc = spk_bus_register(bus, regs[i].space, regs[i].base, regs[i].len, regs[i].name,
				      regs[i].ops, regs[i].dev, SPK_BUS_LOCKLESS);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int add_acpi(struct machine *m, uint32_t ncpus, uint64_t *rsdp)
{
	const struct spk_acpi_config c = {
		.ncpus = ncpus,
		.lapic_addr = SPK_PC_LAPIC,
		.ioapic_addr = SPK_PC_IOAPIC,
		.ioapic_id = (uint8_t)ncpus,
		.pm1a_evt_port = SPK_PC_PM1A_EVT,
		.pm1a_cnt_port = SPK_PC_PM1A_CNT,
		.sci_irq = SPK_PC_SCI_IRQ,
		.reset_port = SPK_PC_RESET_PORT,
		.reset_value = SPK_PC_RESET_VALUE,
		.s5_slp_typ = SPK_PC_S5_SLP_TYP,
		.com1 = true,
		.com1_port = SPK_PC_COM1,
		.com1_irq = SPK_PC_COM1_IRQ,
	};
	struct spk_acpi_info info;
	int rc = spk_acpi_build(spk_vm_mem(m->vm), SPK_PC_ACPI_START, SPK_PC_ACPI_END, &c, &info);

	*rsdp = info.rsdp;
	return rc;
}

static void destroy_machine(struct machine *m)
{
	pthread_mutex_lock(&g.lock);
	if (g.current == m)
		g.current = NULL;
	pthread_mutex_unlock(&g.lock);
	spk_vm_destroy(m->vm);
	spk_uart_free(m->uart);
	spk_i8042_free(m->kbd);
	spk_rtc_free(m->rtc);
	spk_acpi_pm_free(m->pm);
	spk_boot_timer_free(m->timer);
	memset(m, 0, sizeof(*m));
}

/* Everything before the first instruction; a failure here starts nothing. */
static int build_machine(struct machine *m, const struct run_opts *o, const void *kernel,
			 size_t kernel_size, const void *initrd, size_t initrd_size)
{
	struct spk_linux_boot boot;
	struct spk_vcpu *vcpu;
	uint64_t rsdp = 0;
	int rc;

	m->cpu = (struct spk_cpu_policy){.ncpus = (uint32_t)o->cpus, .template = o->template,
					 .clear_cx16 = strcmp(spk_host_kvm_kind(), "pvm") == 0};
	const struct spk_vm_config cfg = {.max_vcpus = (uint32_t)o->cpus,
					  .irqchip = SPK_IRQCHIP_KERNEL,
					  .cpuid_policy = spk_cpuid_policy,
					  .cpuid_opaque = &m->cpu};
	if ((rc = spk_vm_create(&cfg, &m->vm)) < 0 || (rc = spk_pc_add_ram(m->vm, o->mem)) < 0 ||
	    (rc = add_acpi(m, (uint32_t)o->cpus, &rsdp)) < 0 || (rc = add_devices(m)) < 0)
		return rc;
	const struct spk_linux_config lc = {
		.kernel = kernel, .kernel_size = kernel_size,
		.initrd = initrd, .initrd_size = initrd_size,
		.cmdline = o->cmdline, .mem_size = o->mem, .rsdp = rsdp, .no_pvh = o->no_pvh,
	};
	if ((rc = spk_linux_load(spk_vm_mem(m->vm), &lc, &boot)) < 0)
		return rc;
	for (uint32_t i = 0; i < o->cpus; i++) {
		if ((rc = spk_vcpu_create(m->vm, i, &vcpu)) < 0)
			return rc;
		/* vCPU 0 starts at the kernel's entry; the others wait for
		 * the guest's INIT/SIPI in the in-kernel LAPIC */
		rc = i == 0 ? spk_linux_setup_vcpu(vcpu, spk_vm_mem(m->vm), &boot)
			    : spk_vcpu_ready(vcpu);
		if (rc < 0)
			return rc;
	}
	pthread_mutex_lock(&g.lock);
	g.current = m;
	pthread_mutex_unlock(&g.lock);
	return 0;
}

/* ---- exits ------------------------------------------------------------------ */

static enum spk_action run_on_exit(struct spk_vcpu *vcpu, struct spk_exit *e, void *opaque)
{
	struct machine *m = opaque;

	switch (e->kind) {
	case SPK_EXIT_NESTED_PAGE_FAULT:
		/* a driver probing an address with nothing behind it: what a
		 * PC does (reads all-ones, writes vanish), logged a few times */
		if (m->holes_logged < 16) {
			m->holes_logged++;
			spk_log(SPK_LOG_WARN, "vCPU %u: %s of %u bytes at 0x%llx hits no device "
					      "(RIP 0x%llx)%s",
				e->vcpu, e->npf.access & SPK_ACCESS_WRITE ? "write" : "read",
				e->npf.width, (unsigned long long)e->npf.addr,
				(unsigned long long)e->pc,
				m->holes_logged == 16 ? "; not logging more of these" : "");
		}
		return SPK_ACT_CONTINUE;
	case SPK_EXIT_HYPERCALL:
		/* Linux does not speak our hypercalls */
		spk_exit_complete_read(e, SPK_HC_ENOSYS);
		return SPK_ACT_CONTINUE;
	case SPK_EXIT_CANCELLED:
		if (atomic_load(&g.stop_host) || atomic_load(&g.timed_out))
			return SPK_ACT_STOP_VM;
		return SPK_ACT_CONTINUE;
	default:
		return SPK_ACT_DEFAULT;
	}
}

static int status_of(const struct spk_run_result *res, bool *restart, const struct run_opts *o)
{
	*restart = false;
	if (atomic_load(&g.timed_out)) {
		fprintf(stderr, "sparkler: the guest ran past --timeout %llus\n",
			(unsigned long long)o->timeout);
		return SPK_STATUS_CRASH;
	}
	if (atomic_load(&g.stop_host))
		return SPK_STATUS_STOPPED;
	if (res->unhandled) {
		fprintf(stderr, "sparkler: guest crashed: %s\n", res->report);
		return SPK_STATUS_CRASH;
	}
	switch (res->kind) {
	case SPK_EXIT_SYSTEM_DOWN:
		return SPK_STATUS_OK;
	case SPK_EXIT_RESET:
		if (o->reboot) {
			fprintf(stderr, "\r\nsparkler: the guest reset: restarting it\r\n");
			*restart = true;
			return SPK_STATUS_OK;
		}
		fprintf(stderr, "sparkler: the guest reset\n");
		return SPK_STATUS_RESET;
	case SPK_EXIT_CPU_DOWN:
		fprintf(stderr, "sparkler: every vCPU stopped\n");
		return SPK_STATUS_CRASH;
	default:
		fprintf(stderr, "sparkler: the run ended with %s\n", spk_exit_name(res->kind));
		return SPK_STATUS_CRASH;
	}
}

/* ---- options ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sparkler run --kernel PATH [options]\n"
		"  --kernel PATH        bzImage or ELF vmlinux (PVH entry when it has one)\n"
		"  --initrd PATH        initial ramdisk\n"
		"  --cmdline STRING     kernel command line (default \"" DEFAULT_CMDLINE "\")\n"
		"  --cpus N             vCPUs (default 1)\n"
		"  --mem SIZE           guest RAM, K/M/G suffixes (default 512M)\n"
		"  --cpu-template NAME  host (default) or minimal\n"
		"  --serial DEST        stdout (default), none, or file:PATH\n"
		"  --reboot             restart the guest when it resets\n"
		"  --no-pvh             boot an ELF kernel through its 64-bit entry\n"
		"  --timeout SEC        stop the guest after SEC seconds (exit status 4)\n"
		"On a terminal, Ctrl-A x quits. Exit status: 0 powered off, 2 bad usage,\n"
		"3 the guest reset, 4 crash or internal error, 5 stopped from the host.\n");
}

static int parse_opts(int argc, char **argv, struct run_opts *o)
{
	static const struct option longs[] = {
		{"kernel", required_argument, NULL, 'k'}, {"initrd", required_argument, NULL, 'i'},
		{"cmdline", required_argument, NULL, 'c'}, {"cpus", required_argument, NULL, 'n'},
		{"mem", required_argument, NULL, 'm'}, {"cpu-template", required_argument, NULL, 't'},
		{"serial", required_argument, NULL, 's'}, {"reboot", no_argument, NULL, 'r'},
		{"no-pvh", no_argument, NULL, 'P'}, {"timeout", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
	};
	const char *err;
	int c;

	*o = (struct run_opts){.cmdline = DEFAULT_CMDLINE, .mem = 512ull << 20, .cpus = 1,
			       .serial = "stdout"};
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'k': o->kernel = optarg; break;
		case 'i': o->initrd = optarg; break;
		case 'c': o->cmdline = optarg; break;
		case 's': o->serial = optarg; break;
		case 'r': o->reboot = true; break;
		case 'P': o->no_pvh = true; break;
		case 'h': usage(stdout); exit(0);
		case 'n':
			if (spk_parse_uint(optarg, 1, 255, &o->cpus) < 0) {
				fprintf(stderr, "sparkler: --cpus %s: need 1 to 255\n", optarg);
				return -1;
			}
			break;
		case 'm':
			if (spk_parse_size(optarg, &o->mem, &err) < 0) {
				fprintf(stderr, "sparkler: --mem %s: %s\n", optarg, err);
				return -1;
			}
			break;
		case 't':
			if (spk_cpu_template_parse(optarg, &o->template) < 0) {
				fprintf(stderr, "sparkler: --cpu-template %s: use host or minimal\n",
					optarg);
				return -1;
			}
			break;
		case 'T':
			if (spk_parse_uint(optarg, 1, 86400 * 365, &o->timeout) < 0) {
				fprintf(stderr, "sparkler: --timeout %s: need whole seconds\n", optarg);
				return -1;
			}
			break;
		default:
			fprintf(stderr, "sparkler: run: unknown or incomplete option '%s'\n",
				argv[optind - 1]);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "sparkler: run: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (!o->kernel) {
		fprintf(stderr, "sparkler: run: --kernel is required\n");
		return -1;
	}
	if (o->mem < SPK_PC_MEM_MIN || o->mem > SPK_PC_MEM_MAX || o->mem % 4096) {
		fprintf(stderr, "sparkler: --mem must be whole pages from %llu MiB to %llu GiB\n",
			SPK_PC_MEM_MIN >> 20, SPK_PC_MEM_MAX >> 30);
		return -1;
	}
	return 0;
}

static int open_serial(const char *dest)
{
	if (strcmp(dest, "stdout") == 0)
		return STDOUT_FILENO;
	if (strcmp(dest, "none") == 0)
		return open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (strncmp(dest, "file:", 5) == 0 && dest[5])
		return open(dest + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	errno = EINVAL;
	return -1;
}

/* ---- the command ---------------------------------------------------------------- */

static int load_inputs(const struct run_opts *o, void **kernel, size_t *ks, void **initrd,
		       size_t *is)
{
	const char *err;

	int rc = spk_read_file(o->kernel, KERNEL_MAX, kernel, ks, &err);

	if (rc < 0) {
		fprintf(stderr, "sparkler: --kernel %s: %s%s\n", o->kernel, err,
			rc == -EFBIG ? " (512 MiB)" : "");
		return -1;
	}
	rc = o->initrd ? spk_read_file(o->initrd, INITRD_MAX, initrd, is, &err) : 0;
	if (rc < 0) {
		fprintf(stderr, "sparkler: --initrd %s: %s%s\n", o->initrd, err,
			rc == -EFBIG ? " (2 GiB)" : "");
		return -1;
	}
	return 0;
}

static void start_threads(const struct run_opts *o, sigset_t *set, pthread_t *sig_t)
{
	pthread_t t;
	static uint64_t timeout;

	pthread_create(sig_t, NULL, signal_main, set);
	if (strcmp(o->serial, "stdout") == 0 && pthread_create(&t, NULL, stdin_main, NULL) == 0)
		pthread_detach(t);
	timeout = o->timeout;
	if (timeout && pthread_create(&t, NULL, watchdog_main, &timeout) == 0)
		pthread_detach(t);
}

static int run_loop(const struct run_opts *o, const void *kernel, size_t ks, const void *initrd,
		    size_t is)
{
	const struct spk_run_ops ops = {.on_exit = run_on_exit};
	struct spk_run_result res;
	struct machine m;
	bool restart;
	int status;

	do {
		memset(&m, 0, sizeof(m));
		int rc = build_machine(&m, o, kernel, ks, initrd, is);
		if (rc < 0) {
			fprintf(stderr, "sparkler: %s\n", spk_last_error());
			destroy_machine(&m);
			return rc == -ENODEV ? SPK_STATUS_CRASH : SPK_STATUS_USAGE;
		}
		rc = spk_vm_run(m.vm, &ops, &m, &res);
		status = rc < 0 ? SPK_STATUS_CRASH : status_of(&res, &restart, o);
		if (rc < 0)
			fprintf(stderr, "sparkler: %s\n", spk_last_error());
		destroy_machine(&m);
	} while (status == SPK_STATUS_OK && restart && !atomic_load(&g.stop_host));
	return status;
}

int spk_cmd_run(int argc, char **argv)
{
	void *kernel = NULL, *initrd = NULL;
	size_t ks = 0, is = 0;
	struct run_opts o;
	sigset_t set;
	pthread_t sig_t;
	int status;

	clock_gettime(CLOCK_MONOTONIC, &g.t0);
	if (parse_opts(argc, argv, &o) < 0 || load_inputs(&o, &kernel, &ks, &initrd, &is) < 0) {
		free(kernel);
		return SPK_STATUS_USAGE;
	}
	g.serial_fd = open_serial(o.serial);
	if (g.serial_fd < 0) {
		fprintf(stderr, "sparkler: --serial %s: %s\n", o.serial, strerror(errno));
		free(kernel);
		free(initrd);
		return SPK_STATUS_USAGE;
	}
	/* signals go to one thread, never to a vCPU thread */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (strcmp(o.serial, "stdout") == 0)
		raw_tty();
	start_threads(&o, &set, &sig_t);

	status = run_loop(&o, kernel, ks, initrd, is);

	atomic_store(&g.done, true);
	pthread_kill(sig_t, SIGTERM); /* wake sigwait: done is set */
	pthread_join(sig_t, NULL);
	restore_tty();
	free(kernel);
	free(initrd);
	return status;
}
