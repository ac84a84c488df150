/* SPDX-License-Identifier: Apache-2.0 */
/* sparkler-bench: what the benchmark sections share. */
#ifndef SPK_BENCH_BENCH_H
#define SPK_BENCH_BENCH_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "report.h"

enum {
	SECTION_EXITS = 1u << 0,
	SECTION_STARTUP = 1u << 1,
	SECTION_MEMORY = 1u << 2,
	SECTION_CHURN = 1u << 3,
	SECTION_BLK = 1u << 4,
	SECTION_LINUX = 1u << 5,
	SECTION_FN = 1u << 6,
	SECTION_SNAP = 1u << 7,
};

struct bench_opts {
	bool quick;
	bool resident;        /* hold a resident VM open while measuring */
	unsigned sections;    /* SECTION_* to run */
	const char *out_dir;  /* results.json, the guest images, child logs */
	const char *sparkler; /* the sparkler program */
	const char *bare;     /* sparkler-bench-bare */
	char qemu[PATH_MAX];  /* qemu-system-x86_64, "" when not installed */
};

/* out_dir/name into buf (PATH_MAX bytes). */
void bench_path(const struct bench_opts *o, const char *name, char *buf);

/* Where a child's stderr goes; shown when the child fails. */
void bench_log_path(const struct bench_opts *o, char *buf);

/* Say on stderr that a child failed, with the tail of its log. */
void bench_child_failed(const struct bench_opts *o, const char *who, int status);

/*
 * The QEMU command line of the brief for a -bios image and mem_mib of RAM,
 * plus isa-debugcon on port 0xe9 to stdout. argv needs QEMU_ARGC slots.
 */
#define QEMU_ARGC 24
void qemu_argv(const struct bench_opts *o, const char *bios, const char *mem_mib,
               char *argv[QEMU_ARGC]);

void bench_exits(const struct bench_opts *o, struct report *r);
void bench_startup(const struct bench_opts *o, struct report *r);
void bench_memory(const struct bench_opts *o, struct report *r);
void bench_churn(const struct bench_opts *o, struct report *r);
void bench_blk(const struct bench_opts *o, struct report *r);
void bench_linux(const struct bench_opts *o, struct report *r);
void bench_fn(const struct bench_opts *o, struct report *r);

/* CLOCK_MONOTONIC in microseconds. */
double bench_now_us(void);
/* qsort's comparison of doubles. */
int bench_cmp_double(const void *a, const void *b);
void bench_snap(const struct bench_opts *o, struct report *r);

#endif
