/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `sparkler sandbox GUEST.elf`: run a small guest-SDK program that talks
 * to the host only through hypercalls, a debug port (x86-64) and a
 * read-only info device (0xfeb00000 on x86-64, 0x0b000000 on arm64).
 * Deny by default: any other exit ends the run with a report.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmm/gdb/gdb.h"
#include "vmm/confine/seccomp_policy.h"
#include "vmm/vmm.h"

#define SB_TABLES 0x10000ull
#define SB_MAP (4ull << 30)
#define SB_LOAD_MIN 0x100000ull   /* programs load from 1 MiB up */
#define SB_DEBUG_PORT 0xe9        /* bochs-style debug console */
#ifdef __aarch64__
#define SB_A64_RAM   0x40000000ull /* arm64: RAM from 1 GiB (guest/arm64/guest.ld) */
#define SB_INFO_BASE 0x0b000000ull /* the read-only info device, below RAM */
#else
#define SB_INFO_BASE 0xfeb00000ull /* the read-only info device */
#endif
#define SB_INFO_MAGIC 0x58424e5350534b53ull /* "SKSPSNBX" */
#define SB_MAX_IMAGE (256ull << 20)

struct sandbox {
	struct spk_vm *vm;
	uint32_t cpus;
	uint64_t mem;
	struct timespec t0;
	atomic_int status;      /* SPK_STATUS_* decided by the guest */
	atomic_bool timed_out;
	atomic_bool killed; /* by gdb */
	int console_fd;
	struct spk_gdb *gdb;
};

/* ---- devices ---------------------------------------------------------- */

#ifndef __aarch64__ /* no ports on arm64 */
static void debug_port_write(void *opaque, uint64_t off, unsigned width, uint64_t value,
			     const struct spk_bus_access *who)
{
	struct sandbox *sb = opaque;
	char c = (char)value;

	if (write(sb->console_fd, &c, 1) < 0) {
		/* the console is gone: nothing to tell the guest */
	}
}

static const struct spk_bus_ops debug_port_ops = {NULL, debug_port_write};
#endif

static uint64_t info_read(void *opaque, uint64_t off, unsigned width,
			  const struct spk_bus_access *who)
{
	struct sandbox *sb = opaque;
	struct timespec now;
	uint64_t v;

	switch (off & ~7ull) {
	case 0x00:
		v = SB_INFO_MAGIC;
		break;
	case 0x08:
		v = sb->cpus;
		break;
	case 0x10:
		clock_gettime(CLOCK_MONOTONIC, &now);
		v = (uint64_t)(now.tv_sec - sb->t0.tv_sec) * 1000000000ull + (uint64_t)now.tv_nsec -
		    (uint64_t)sb->t0.tv_nsec;
		break;
	case 0x18:
		v = sb->mem;
		break;
	default:
		return 0;
	}
	return v >> (8 * (off & 7)); /* narrower reads see the right bytes */
}

static const struct spk_bus_ops info_ops = {info_read, NULL};

/* ---- exits the library left to us ------------------------------------------ */

static enum spk_action on_ucall(struct sandbox *sb, struct spk_vcpu *vcpu, struct spk_exit *e)
{
	struct spk_ucall uc;

	if (spk_ucall_decode(vcpu, e, &uc) < 0)
		return SPK_ACT_DEFAULT;
	switch (uc.type) {
	case SPK_UCALL_DONE:
		/*
		 * main() returned: keep its status and let the guest go on to
		 * power off (the SDK's SYSTEM_OFF right after DONE), so that the
		 * run ends on SYSTEM_DOWN like any guest that powers off. A guest
		 * that never does is stopped by --timeout, as any hung guest.
		 */
		atomic_store(&sb->status, uc.args[0] ? SPK_STATUS_GUEST : SPK_STATUS_OK);
		if (uc.args[0])
			fprintf(stderr, "sparkler: guest finished with status %lld\n",
				(long long)uc.args[0]);
		return SPK_ACT_CONTINUE;
	case SPK_UCALL_ASSERT:
		fprintf(stderr, "sparkler: guest assertion failed on vCPU %u: %s at %s:%llu "
				"(0x%llx vs 0x%llx)\n",
			e->vcpu, uc.expr, uc.file, (unsigned long long)uc.line,
			(unsigned long long)uc.args[3], (unsigned long long)uc.args[4]);
		atomic_store(&sb->status, SPK_STATUS_GUEST);
		return SPK_ACT_STOP_VM;
	case SPK_UCALL_PRINT:
		fprintf(stderr, "guest: %s\n", uc.expr);
		return SPK_ACT_CONTINUE;
	case SPK_UCALL_SYNC:
		return SPK_ACT_CONTINUE;
	default:
		spk_exit_complete_read(e, SPK_HC_EINVAL);
		return SPK_ACT_CONTINUE;
	}
}

static enum spk_action sandbox_on_exit(struct spk_vcpu *vcpu, struct spk_exit *e, void *opaque)
{
	struct sandbox *sb = opaque;
	enum spk_action act = spk_gdb_on_exit(sb->gdb, vcpu, e);

	if (act != SPK_ACT_DEFAULT)
		return act;
	if (e->kind == SPK_EXIT_HYPERCALL && e->hypercall.nr == SPK_HC_UCALL)
		return on_ucall(sb, vcpu, e);
	if (e->kind == SPK_EXIT_CANCELLED && atomic_load(&sb->timed_out))
		return SPK_ACT_STOP_VM;
	return SPK_ACT_DEFAULT;
}

/* ---- setup ------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: sparkler sandbox [options] GUEST.elf\n"
		   "  --mem SIZE       guest RAM (default 32M; K, M, G suffixes)\n"
		   "  --cpus N         vCPUs the guest may start (default 2)\n"
		   "  --stats          print a table of exits when the guest is done\n"
		   "  --strict         an access to no device is fatal, not a fault\n"
		   "  --timeout SEC    stop the guest after SEC seconds (exit status 4)\n"
		   "  --no-seccomp     run without system call filters (debugging only)\n"
		   "  --gdb ADDR       serve gdb on tcp:[HOST:]PORT or unix:PATH; the guest\n"
		   "                   waits for it before its first instruction\n"
		   "  --gdb-no-wait    with --gdb: start at once, gdb may attach later\n");
}

struct sb_opts {
	uint64_t mem, cpus, timeout;
	bool stats, strict, gdb_no_wait;
	const char *guest, *gdb;
};

static int parse(int argc, char **argv, struct sb_opts *o)
{
	static const struct option longs[] = {
		{"mem", required_argument, NULL, 'm'},  {"cpus", required_argument, NULL, 'c'},
		{"stats", no_argument, NULL, 's'},      {"strict", no_argument, NULL, 'S'},
		{"no-seccomp", no_argument, NULL, 'N'},
		{"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
		{"gdb", required_argument, NULL, 'g'},  {"gdb-no-wait", no_argument, NULL, 'G'},
		{NULL, 0, NULL, 0},
	};
	const char *err;
	int c;

	*o = (struct sb_opts){.mem = 32ull << 20, .cpus = 2};
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (spk_parse_size(optarg, &o->mem, &err) < 0) {
				fprintf(stderr, "sparkler: --mem %s: %s\n", optarg, err);
				return -1;
			}
			break;
		case 'c':
			if (spk_parse_uint(optarg, 1, 64, &o->cpus) < 0) {
				fprintf(stderr, "sparkler: --cpus %s: need 1 to 64\n", optarg);
				return -1;
			}
			break;
		case 't':
			if (spk_parse_uint(optarg, 1, 86400, &o->timeout) < 0) {
				fprintf(stderr, "sparkler: --timeout %s: need 1 to 86400 s\n", optarg);
				return -1;
			}
			break;
		case 's':
			o->stats = true;
			break;
		case 'N':
			spk_seccomp_enabled = false;
			break;
		case 'S':
			o->strict = true;
			break;
		case 'g':
			o->gdb = optarg;
			break;
		case 'G':
			o->gdb_no_wait = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "sparkler: sandbox needs exactly one guest program\n");
		usage(stderr);
		return -1;
	}
	o->guest = argv[optind];
	char why[256];
	if (o->gdb && spk_gdb_check_listen(o->gdb, why, sizeof(why)) < 0) {
		fprintf(stderr, "sparkler: %s\n", why);
		return -1;
	}
	if (o->gdb_no_wait && !o->gdb) {
		fprintf(stderr, "sparkler: --gdb-no-wait needs --gdb\n");
		return -1;
	}
	if (o->mem < (4ull << 20) || o->mem > (64ull << 30) || o->mem % 4096) {
		fprintf(stderr, "sparkler: --mem must be 4M to 64G in whole pages\n");
		return -1;
	}
	return 0;
}

#ifdef __aarch64__
/*
 * arm64: RAM from SB_A64_RAM (where the guest SDK's programs load), the
 * in-kernel GICv3 (the timer and interrupts work), vCPU 0 at the entry
 * point in EL1h, interrupts masked, MMU off (arm64.h); the others wait
 * for PSCI CPU_ON. No ports: the info device is the only device.
 */
static int setup_arch(struct sandbox *sb, const struct sb_opts *o)
{
	struct spk_vm_config cfg = {.max_vcpus = (uint32_t)o->cpus,
	                            .console_fd = sb->console_fd,
	                            .irqchip = SPK_IRQCHIP_KERNEL};
	struct spk_elf_info elf;
	struct spk_arm64_regs regs = {.pstate = SPK_ARM64_PSTATE_EL1H_MASKED};
	struct spk_vcpu *vcpu;
	int rc;

	if ((rc = spk_vm_create(&cfg, &sb->vm)) < 0 ||
	    (rc = spk_vm_add_memory(sb->vm, SB_A64_RAM, o->mem, SPK_MEM_RAM, "ram", NULL)) < 0)
		return rc;
	if ((rc = spk_elf_load_file(spk_vm_mem(sb->vm), o->guest, SB_MAX_IMAGE, &elf)) < 0)
		return rc;
	regs.pc = elf.entry;
	if ((rc = spk_vcpu_create(sb->vm, 0, &vcpu)) < 0 ||
	    (rc = spk_vcpu_set_arm64_regs(vcpu, &regs)) < 0 || (rc = spk_vcpu_ready(vcpu)) < 0)
		return rc;
	return 0;
}
#else
/*
 * x86-64: RAM from 0, long mode with the page tables below 1 MiB, vCPU 0
 * at the entry point at CPL0; the debug port.
 */
static int setup_arch(struct sandbox *sb, const struct sb_opts *o)
{
	struct spk_vm_config cfg = {.max_vcpus = (uint32_t)o->cpus, .console_fd = sb->console_fd};
	struct spk_x86_long_mode lm;
	struct spk_elf_info elf;
	struct spk_vcpu *vcpu;
	int rc;

	if ((rc = spk_vm_create(&cfg, &sb->vm)) < 0 ||
	    (rc = spk_vm_add_memory(sb->vm, 0, o->mem, SPK_MEM_RAM, "ram", NULL)) < 0)
		return rc;
	if ((rc = spk_elf_load_file(spk_vm_mem(sb->vm), o->guest, SB_MAX_IMAGE, &elf)) < 0)
		return rc;
	if (elf.lowest < SB_LOAD_MIN) {
		fprintf(stderr,
		        "sparkler: %s loads at 0x%llx, below 1 MiB where the sandbox keeps "
		        "its page tables\n",
		        o->guest, (unsigned long long)elf.lowest);
		return -ENOEXEC;
	}
	/* The program starts at CPL0 and owns these tables: which ports its
	 * own CPL3 code may use is its business (the guest SDK closes them
	 * all and opens what the program asks for, guest_user_allow_ports). */
	if ((rc = spk_x86_build_long_mode(spk_vm_mem(sb->vm), SB_TABLES, SB_MAP, &lm)) < 0 ||
	    (rc = spk_x86_long_mode_allow_ports(spk_vm_mem(sb->vm), &lm, 0, 0x10000)) < 0 ||
	    (rc = spk_vcpu_create(sb->vm, 0, &vcpu)) < 0)
		return rc;
	const struct spk_x86_entry entry = {.rip = elf.entry, .cpl = 0};
	if ((rc = spk_x86_vcpu_enter_long_mode(vcpu, &lm, &entry)) < 0)
		return rc;
	return spk_bus_register(spk_vm_bus(sb->vm), SPK_BUS_PIO, SB_DEBUG_PORT, 1, "debug-port",
	                        &debug_port_ops, sb, 0);
}
#endif

static int setup(struct sandbox *sb, const struct sb_opts *o)
{
	struct spk_bus *bus;
	int rc;

	if ((rc = setup_arch(sb, o)) < 0)
		return rc;
	bus = spk_vm_bus(sb->vm);
	if ((rc = spk_bus_register(bus, SPK_BUS_MMIO, SB_INFO_BASE, 0x1000, "sandbox-info",
	                           &info_ops, sb, SPK_BUS_LOCKLESS)) < 0)
		return rc;
	if (o->strict)
		spk_bus_set_miss_policy(bus, SPK_BUS_MMIO, SPK_MISS_FATAL);
	return 0;
}

/* --timeout: mark the run timed out and kick every vCPU. */
static void timeout_fire(void *ctx)
{
	struct sandbox *sb = ctx;

	atomic_store(&sb->timed_out, true);
	spk_kick_all(sb->vm);
}

static int status_of(struct sandbox *sb, const struct spk_run_result *res)
{
	if (atomic_load(&sb->killed)) {
		fprintf(stderr, "sparkler: the guest was killed from gdb\n");
		return SPK_STATUS_STOPPED;
	}
	if (atomic_load(&sb->timed_out)) {
		fprintf(stderr, "sparkler: the guest ran past its --timeout\n");
		return SPK_STATUS_CRASH;
	}
	if (res->unhandled) {
		fprintf(stderr, "sparkler: %s\n", res->report);
		return SPK_STATUS_CRASH;
	}
	switch (res->kind) {
	case SPK_EXIT_RESET:
		fprintf(stderr, "sparkler: the guest reset (%s)\n",
			res->exit.reset.source == SPK_SOURCE_TRIPLE_FAULT ? "triple fault"
									  : "reset request");
		return SPK_STATUS_RESET;
	case SPK_EXIT_SYSTEM_DOWN:
	case SPK_EXIT_CPU_DOWN:
		return atomic_load(&sb->status);
	default:
		return atomic_load(&sb->status);
	}
}

/* gdb's kill: the paused run ends on a stop request. */
static void gdb_kill(void *opaque)
{
	struct sandbox *sb = opaque;

	atomic_store(&sb->killed, true);
	spk_vm_request_stop(sb->vm, SPK_EXIT_SYSTEM_DOWN);
}

static int start_gdb(struct sandbox *sb, const struct sb_opts *o)
{
	const struct spk_gdb_config gc = {.listen = o->gdb, .no_wait = o->gdb_no_wait,
					  .kill = gdb_kill, .opaque = sb};
	char err[256];

	if (!o->gdb)
		return 0;
	if (spk_gdb_start(&gc, &sb->gdb, err, sizeof(err)) < 0) {
		fprintf(stderr, "sparkler: %s\n", err);
		return -1;
	}
	return 0;
}

/* Each vCPU thread filters itself before the guest's first instruction. */
static void sandbox_vcpu_seccomp(struct spk_vcpu *vcpu, void *opaque)
{
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", spk_vcpu_id(vcpu));
	spk_seccomp_install_or_die(SPK_SECCOMP_VCPU, name);
}

int spk_cmd_sandbox(int argc, char **argv)
{
	struct sandbox sb = {.status = SPK_STATUS_OK, .console_fd = STDOUT_FILENO};
	struct spk_run_ops ops = {.on_exit = sandbox_on_exit, .thread_start = sandbox_vcpu_seccomp};
	struct spk_run_result res;
	struct sb_opts o;
	struct spk_watchdog *wd = NULL;
	int rc, status;

	clock_gettime(CLOCK_MONOTONIC, &sb.t0);
	if (parse(argc, argv, &o) < 0)
		return SPK_STATUS_USAGE;
	spk_seccomp_warn_if_off();
	sb.cpus = (uint32_t)o.cpus;
	sb.mem = o.mem;
	rc = setup(&sb, &o);
	if (rc < 0) {
		if (*spk_last_error())
			fprintf(stderr, "sparkler: %s\n", spk_last_error());
		spk_vm_destroy(sb.vm);
		return rc == -ENODEV ? SPK_STATUS_CRASH : SPK_STATUS_USAGE;
	}
	if (start_gdb(&sb, &o) < 0) {
		spk_vm_destroy(sb.vm);
		return SPK_STATUS_USAGE;
	}
	ops.start_paused = spk_gdb_vm_start(sb.gdb, sb.vm);
	if (spk_watchdog_start(o.timeout, timeout_fire, &sb, &wd) < 0)
		fprintf(stderr, "sparkler: no thread for --timeout: the guest runs without one\n");

	rc = spk_vm_run(sb.vm, &ops, &sb, &res);
	status = rc < 0 ? SPK_STATUS_CRASH : status_of(&sb, &res);
	if (rc < 0)
		fprintf(stderr, "sparkler: %s\n", spk_last_error());
	spk_gdb_vm_end(sb.gdb, status, true);
	spk_gdb_free(sb.gdb);

	spk_watchdog_stop(wd);
	if (o.stats) {
		spk_print_stats(stderr, sb.vm);
		spk_print_assist_stats(stderr, sb.vm);
	}
	spk_vm_destroy(sb.vm);
	return status;
}
