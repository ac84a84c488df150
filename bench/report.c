/* SPDX-License-Identifier: Apache-2.0 */
/* The benchmark report: Markdown for people, JSON for tools (see report.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

struct row *report_row(struct report *r, const char *name, const char *unit, int decimals)
{
	if (r->n_rows == REPORT_MAX_ROWS)
		return NULL;
	struct row *row = &r->rows[r->n_rows++];
	*row = (struct row){.unit = unit, .decimals = decimals};
	snprintf(row->name, sizeof(row->name), "%s", name);
	return row;
}

struct cell cell_value(double v)
{
	return (struct cell){.ok = true, .v = v};
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct cell cell_samples(double *v, int n)
{
	if (n <= 0)
		return cell_text("failed");
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return (struct cell){.ok = true, .range = n > 1, .v = med, .min = v[0], .max = v[n - 1]};
}

struct cell cell_text(const char *text)
{
	struct cell c = {.ok = false};

	snprintf(c.text, sizeof(c.text), "%s", text);
	return c;
}

void row_note(struct row *row, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(row->note, sizeof(row->note), fmt, ap);
	va_end(ap);
}

double row_ratio(const struct cell *num, const struct cell *den)
{
	if (!num->ok || !den->ok || den->v == 0)
		return 0;
	return num->v / den->v;
}

void report_target(struct report *r, enum target_state state, const char *what, const char *fmt,
                   ...)
{
	va_list ap;

	if (r->n_targets == REPORT_MAX_TARGETS)
		return;
	struct target *t = &r->targets[r->n_targets++];
	t->state = state;
	snprintf(t->what, sizeof(t->what), "%s", what);
	va_start(ap, fmt);
	vsnprintf(t->detail, sizeof(t->detail), fmt, ap);
	va_end(ap);
}

/* ---- Markdown -------------------------------------------------------------- */

static void md_cell(FILE *f, const struct cell *c, int decimals)
{
	if (!c->ok)
		fprintf(f, " %s |", c->text[0] ? c->text : "n/a");
	else if (c->range)
		fprintf(f, " %.*f (%.*f–%.*f) |", decimals, c->v, decimals, c->min, decimals,
		        c->max);
	else
		fprintf(f, " %.*f |", decimals, c->v);
}

static void md_ratio(FILE *f, double ratio)
{
	if (ratio > 0)
		fprintf(f, " %.2fx |", ratio);
	else
		fprintf(f, " – |");
}

static const char *target_word(enum target_state s)
{
	return s == TARGET_MET ? "met" : s == TARGET_MISSED ? "**missed**" : "not measured";
}

void report_markdown(FILE *f, const struct report *r)
{
	const struct host_info *h = &r->host;

	fprintf(f, "Measured %s on %s (%ld cores), %s, KVM: %s, QEMU: %s%s.\n\n", h->date, h->cpu,
	        h->cores, h->kernel, h->kvm, h->qemu,
	        r->quick ? " (--quick: fewer iterations)" : "");
	fprintf(f,
	        "Load average (1 min) %.2f before the run, %.2f after it (the benchmark's own "
	        "load included): other work on the machine shows up in the numbers.\n\n",
	        h->load_start, h->load_end);
	if (r->resident)
		fprintf(
		    f,
		    "A resident VM (one idle vCPU, no in-kernel irqchip) stayed open during the "
		    "run, as on a host that runs VMs: without it every short-lived VM flips a KVM "
		    "static key, which patches kernel text on every CPU (`--no-resident` "
		    "measures that).\n\n");
	fprintf(f, "| benchmark | sparkler | QEMU | limit (bare KVM) | sparkler ÷ limit | "
	           "QEMU ÷ sparkler |\n");
	fprintf(f, "| --- | --: | --: | --: | --: | --: |\n");
	for (int i = 0; i < r->n_rows; i++) {
		const struct row *row = &r->rows[i];

		fprintf(f, "| %s, %s [%d] |", row->name, row->unit, i + 1);
		md_cell(f, &row->spk, row->decimals);
		md_cell(f, &row->qemu, row->decimals);
		md_cell(f, &row->limit, row->decimals);
		md_ratio(f, row_ratio(&row->spk, &row->limit));
		md_ratio(f, row_ratio(&row->qemu, &row->spk));
		fputc('\n', f);
	}
	fprintf(f, "\nCells with a range are median (min–max).\n\n");
	for (int i = 0; i < r->n_rows; i++)
		fprintf(f, "[%d] %s\n\n", i + 1, r->rows[i].note);
	fprintf(f, "Targets (from the issue):\n\n");
	for (int i = 0; i < r->n_targets; i++)
		fprintf(f, "- %s: %s; %s\n", r->targets[i].what, target_word(r->targets[i].state),
		        r->targets[i].detail);
}

/* ---- JSON ------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_cell(FILE *f, const char *key, const struct cell *c)
{
	fprintf(f, "      \"%s\": ", key);
	if (!c->ok) {
		fprintf(f, "{\"value\": null, \"why\": ");
		json_str(f, c->text[0] ? c->text : "n/a");
		fprintf(f, "}");
	} else if (c->range) {
		fprintf(f, "{\"median\": %.6g, \"min\": %.6g, \"max\": %.6g}", c->v, c->min,
		        c->max);
	} else {
		fprintf(f, "{\"value\": %.6g}", c->v);
	}
	fprintf(f, ",\n");
}

/* The table's ratio columns (of the medians); null where a cell is missing. */
static void json_ratio(FILE *f, const char *key, double ratio)
{
	if (ratio > 0)
		fprintf(f, "      \"%s\": %.6g,\n", key, ratio);
	else
		fprintf(f, "      \"%s\": null,\n", key);
}

static void json_row(FILE *f, const struct row *row, bool last)
{
	fprintf(f, "    {\n      \"name\": ");
	json_str(f, row->name);
	fprintf(f, ",\n      \"unit\": ");
	json_str(f, row->unit);
	fprintf(f, ",\n");
	json_cell(f, "sparkler", &row->spk);
	json_cell(f, "qemu", &row->qemu);
	json_cell(f, "limit", &row->limit);
	json_ratio(f, "sparkler_per_limit", row_ratio(&row->spk, &row->limit));
	json_ratio(f, "qemu_per_sparkler", row_ratio(&row->qemu, &row->spk));
	fprintf(f, "      \"note\": ");
	json_str(f, row->note);
	fprintf(f, "\n    }%s\n", last ? "" : ",");
}

static void json_host(FILE *f, const struct host_info *h)
{
	fprintf(f, "  \"date\": ");
	json_str(f, h->date);
	fprintf(f, ",\n  \"host\": {\"cpu\": ");
	json_str(f, h->cpu);
	fprintf(f, ", \"cores\": %ld, \"kernel\": ", h->cores);
	json_str(f, h->kernel);
	fprintf(f, ", \"kvm\": ");
	json_str(f, h->kvm);
	fprintf(f, ", \"qemu\": ");
	json_str(f, h->qemu);
	fprintf(f, ", \"load_start\": %.2f, \"load_end\": %.2f},\n", h->load_start, h->load_end);
}

int report_json(const char *path, const struct report *r)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fprintf(f, "{\n");
	json_host(f, &r->host);
	fprintf(f, "  \"quick\": %s,\n  \"resident_vm\": %s,\n  \"rows\": [\n",
	        r->quick ? "true" : "false", r->resident ? "true" : "false");
	for (int i = 0; i < r->n_rows; i++)
		json_row(f, &r->rows[i], i == r->n_rows - 1);
	fprintf(f, "  ],\n  \"targets\": [\n");
	for (int i = 0; i < r->n_targets; i++) {
		const struct target *t = &r->targets[i];

		fprintf(f, "    {\"target\": ");
		json_str(f, t->what);
		fprintf(f, ", \"met\": %s, \"detail\": ",
		        t->state == TARGET_UNKNOWN ? "null"
		        : t->state == TARGET_MET   ? "true"
		                                   : "false");
		json_str(f, t->detail);
		fprintf(f, "}%s\n", i == r->n_targets - 1 ? "" : ",");
	}
	fprintf(f, "  ]\n}\n");
	return fclose(f) == 0 ? 0 : -errno;
}
