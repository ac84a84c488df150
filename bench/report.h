/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The results: rows of sparkler / QEMU / limit cells, the targets from the
 * issue with met or missed, printed as Markdown and written as JSON.
 */
#ifndef SPK_BENCH_REPORT_H
#define SPK_BENCH_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#define REPORT_MAX_ROWS    24
#define REPORT_MAX_TARGETS 12

struct cell {
	bool ok;    /* a value; else text says why not */
	bool range; /* min and max are meaningful */
	double v, min, max;
	char text[40];
};

struct row {
	char name[96];
	const char *unit;
	int decimals;
	struct cell spk, qemu, limit;
	char note[2048];
};

enum target_state { TARGET_UNKNOWN = -1, TARGET_MISSED = 0, TARGET_MET = 1 };

struct target {
	char what[96];
	enum target_state state;
	char detail[200];
};

struct host_info {
	char cpu[96];
	long cores;
	char kernel[160];
	const char *kvm;
	char qemu[256];
	char date[40];
	double load_start, load_end; /* 1-minute load average before and after the run */
};

struct report {
	struct host_info host;
	bool quick;
	bool resident; /* a resident VM was held open */
	struct row rows[REPORT_MAX_ROWS];
	int n_rows;
	struct target targets[REPORT_MAX_TARGETS];
	int n_targets;
};

/* Repeated measurements of one thing. */
#define SAMPLES_MAX 64
struct samples {
	double v[SAMPLES_MAX];
	int n;
};

static inline void samples_add(struct samples *s, double v)
{
	if (s->n < SAMPLES_MAX)
		s->v[s->n++] = v;
}

/* A new row (zeroed cells read "n/a"); NULL when the table is full. */
struct row *report_row(struct report *r, const char *name, const char *unit, int decimals);

struct cell cell_value(double v);
/* median, with min and max, of n samples (sorted in place); "failed" when n is 0 */
struct cell cell_samples(double *v, int n);
struct cell cell_text(const char *text);

/* Format the note of a row (printf-like). */
void row_note(struct row *row, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* sparkler / limit and QEMU / sparkler, or 0 when a cell is missing. */
double row_ratio(const struct cell *num, const struct cell *den);

void report_target(struct report *r, enum target_state state, const char *what, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

void report_markdown(FILE *f, const struct report *r);
int report_json(const char *path, const struct report *r);

#endif
