/* SPDX-License-Identifier: Apache-2.0 */
/* The sparkler program: shared helpers of its subcommands. */
#ifndef SPK_VMM_H
#define SPK_VMM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <sparkler/sparkler.h>

/* Exit statuses of the sparkler program (documented in README.md). */
enum {
	SPK_STATUS_OK = 0,       /* the guest powered off / finished with 0 */
	SPK_STATUS_GUEST = 1,    /* the guest reported failure (non-zero, assert) */
	SPK_STATUS_USAGE = 2,    /* bad command line or input: nothing started */
	SPK_STATUS_RESET = 3,    /* the guest reset (and --reboot was not given) */
	SPK_STATUS_CRASH = 4,    /* internal error, unhandled exit, timeout */
	SPK_STATUS_STOPPED = 5,  /* stopped from the host: a signal, Ctrl-A x */
};

/* "64M", "1G", "4096", "512K": bytes, or -1 with a message in *err. */
int spk_parse_size(const char *s, uint64_t *out, const char **err);
/* A decimal unsigned number in [min, max]. */
int spk_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Print the per-exit-kind table of all vCPUs (kind, count, mean us). */
void spk_print_stats(FILE *f, struct spk_vm *vm);
/* The instruction assists (sparkler/assist.h): a table for --stats, and one
 * log line with the totals (nothing when none ran). */
void spk_print_assist_stats(FILE *f, struct spk_vm *vm);
void spk_log_assist_totals(struct spk_vm *vm);

/* When the process started (main() sets it): the boot timer counts from it. */
extern struct timespec spk_process_start;

int spk_cmd_sandbox(int argc, char **argv);
int spk_cmd_call(int argc, char **argv); /* call.c: a function guest's export (fn.h) */
int spk_cmd_run(int argc, char **argv);
int spk_cmd_api(int argc, char **argv);

/* CPUID policy (cpuid.c), the spk_vm_config.cpuid_policy of `run`. */
enum spk_cpu_template {
	SPK_CPU_TEMPLATE_HOST = 0, /* what KVM supports */
	SPK_CPU_TEMPLATE_MINIMAL,  /* no AVX-512, TSX, SGX, MPX, PKU, AMX, power mgmt */
};
struct spk_cpu_policy {
	uint32_t ncpus;
	enum spk_cpu_template template;
	bool clear_cx16; /* PVM hosts cannot emulate cmpxchg16b at CPL0 */
};
int spk_cpuid_policy(void *opaque, uint32_t vcpu_id, struct spk_cpuid_entry *e, uint32_t *n,
		     uint32_t cap);
int spk_cpu_template_parse(const char *s, enum spk_cpu_template *t);

/*
 * The kernel options a stock Linux needs on a PVM host (see cpuid.c): the
 * command line with those it lacks appended (before a " -- " that starts
 * init's arguments), in *out (malloc'd, the caller frees). An option counts
 * as present when a word has its name (before any '='). added (may be
 * NULL) gets the ones added, space-separated, "" for none. 0, -ENOMEM, or
 * -E2BIG when the result would pass the kernel's 2048 bytes (*out NULL).
 */
int spk_pvm_cmdline(const char *cmdline, char **out, char *added, size_t added_len);

/*
 * A watchdog: calls fire(ctx) once, on its own thread, after seconds,
 * unless stopped first. spk_watchdog_stop() joins it (fire has either run
 * or never will); both accept NULL (no timeout). -errno if no thread.
 */
struct spk_watchdog;
int spk_watchdog_start(uint64_t seconds, void (*fire)(void *ctx), void *ctx,
		       struct spk_watchdog **out);
void spk_watchdog_stop(struct spk_watchdog *w);

/* Kick every vCPU of vm (spk_vcpu_kick): each run returns CANCELLED. */
void spk_kick_all(struct spk_vm *vm);

/*
 * A listening Unix stream socket at path that appears only once it
 * accepts connections: bound under a temporary name in the same
 * directory, listen(2)ed, then renamed into place, so a client that waits
 * for the file and connects at once is never refused (Firecracker users'
 * scripts do exactly that). flags go to socket(2) with SOCK_STREAM (e.g.
 * SOCK_NONBLOCK); SOCK_CLOEXEC is always set. The caller has removed any
 * stale file at path: an existing path is not replaced (-EEXIST). The fd,
 * or -errno with a message (without the path) in err.
 */
int spk_listen_unix(const char *path, int flags, int backlog, char *err, size_t errlen);

/* Read a whole file of at most max bytes: 0, or -errno with *err set. */
int spk_read_file(const char *path, uint64_t max, void **data, size_t *size, const char **err);

#endif
