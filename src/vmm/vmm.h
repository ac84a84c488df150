/* SPDX-License-Identifier: Apache-2.0 */
/* The sparkler program: shared helpers of its subcommands. */
#ifndef SPK_VMM_H
#define SPK_VMM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <sparkler/sparkler.h>

/* Exit statuses of the sparkler program (documented in README.md). */
enum {
	SPK_STATUS_OK = 0,       /* the guest powered off / finished with 0 */
	SPK_STATUS_GUEST = 1,    /* the guest reported failure (non-zero, assert) */
	SPK_STATUS_USAGE = 2,    /* bad command line or input: nothing started */
	SPK_STATUS_RESET = 3,    /* the guest reset (and --reboot was not given) */
	SPK_STATUS_CRASH = 4,    /* internal error, unhandled exit, timeout */
};

/* "64M", "1G", "4096", "512K": bytes, or -1 with a message in *err. */
int spk_parse_size(const char *s, uint64_t *out, const char **err);
/* A decimal unsigned number in [min, max]. */
int spk_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Print the per-exit-kind table of all vCPUs (kind, count, mean us). */
void spk_print_stats(FILE *f, struct spk_vm *vm);

int spk_cmd_sandbox(int argc, char **argv);

#endif
