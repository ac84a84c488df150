// SPDX-License-Identifier: Apache-2.0
/*
 * The flattened device tree writer (sparkler/fdt.h).
 *
 * A DTB is a header, a memory reservation block (address/size pairs of
 * 64 bits ending with a zero pair), the structure block (32-bit tokens:
 * BEGIN_NODE with the NUL-terminated name padded to 4 bytes, PROP with the
 * value's length, the name's offset in the strings block and the value
 * padded to 4 bytes, END_NODE, and END last) and the strings block (the
 * property names, each once). Everything is big-endian. Reference: the
 * Devicetree Specification v0.4, chapter 5 ("Flattened Devicetree (DTB)
 * Format"), and chapter 2 for the names.
 *
 * The structure and strings blocks are built in two buffers of the blob's
 * maximum size; before each addition the size of the whole blob as it
 * would then be is checked against that maximum, so a refusal comes at the
 * call that would overflow, and the buffers cannot be written past.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/fdt.h>

#include "core/internal.h"

#define FDT_BEGIN_NODE 1u
#define FDT_END_NODE   2u
#define FDT_PROP       3u
#define FDT_END        9u
#define FDT_LAST_COMP  16

#define NAME_MAX_NODE 31 /* node-name, and unit-address, each (spec 2.2.1) */
#define NAME_MAX_PROP 31 /* property names (spec 2.2.4) */

struct level {
	size_t props;   /* offset in the structure block of this node's first property */
	bool has_child; /* a child node began: no more properties here */
};

struct spk_fdt {
	size_t max;
	uint8_t *dt; /* structure block, without the END token */
	size_t dt_len;
	char *str; /* strings block */
	size_t str_len;
	uint64_t rsv[SPK_FDT_MAX_RSV][2];
	size_t n_rsv;
	struct level stack[SPK_FDT_MAX_DEPTH + 1]; /* [0] is the root */
	int depth;                                 /* open nodes; 0 before the root and after it */
	bool root_done;
	uint32_t next_phandle;
	int error;     /* sticky */
	uint8_t *blob; /* after finish */
	size_t blob_len;
};

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void be64(uint8_t *p, uint64_t v)
{
	be32(p, (uint32_t)(v >> 32));
	be32(p + 4, (uint32_t)v);
}

static uint32_t rd_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

/* The blob's size with the structure and strings blocks at these lengths
 * (the END token and the reservation terminator included). */
static size_t blob_size(const struct spk_fdt *f, size_t dt_len, size_t str_len)
{
	return SPK_FDT_HEADER + (f->n_rsv + 1) * 16 + dt_len + 4 + str_len;
}

/* Record the first error; every later call returns it. */
static int fdt_err(struct spk_fdt *f, int err)
{
	if (f && !f->error)
		f->error = err;
	return err;
}

/* The common entry check: a writer, no earlier error, not finished. */
static int usable(struct spk_fdt *f, const char *what)
{
	if (!f)
		return spk_fail(EINVAL, "fdt: %s: no writer", what);
	if (f->error)
		return f->error;
	if (f->blob)
		return fdt_err(f, spk_fail(EINVAL, "fdt: %s after the blob was finished", what));
	return 0;
}

/* Room for add_dt more structure bytes and add_str more string bytes;
 * each addend is at most max, so the sums cannot wrap. */
static int room(struct spk_fdt *f, size_t add_dt, size_t add_str, const char *what)
{
	size_t need;

	if (add_dt > f->max || add_str > f->max)
		return fdt_err(f,
		               spk_fail(E2BIG, "fdt: %s: %zu bytes do not fit in a %zu-byte tree",
		                        what, add_dt > add_str ? add_dt : add_str, f->max));
	need = blob_size(f, f->dt_len + add_dt, f->str_len + add_str);
	if (need > f->max)
		return fdt_err(f, spk_fail(E2BIG,
		                           "fdt: %s: the tree would need %zu bytes, more than "
		                           "the %zu allowed",
		                           what, need, f->max));
	return 0;
}

static bool node_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == ',' || c == '.' || c == '_' || c == '+' || c == '-';
}

static bool prop_char(char c)
{
	return node_char(c) || c == '?' || c == '#';
}

/* node-name[@unit-address]: 1-31 characters each, of the spec's set. */
static bool node_name_ok(const char *name)
{
	const char *at = strchr(name, '@');
	size_t base = at ? (size_t)(at - name) : strlen(name);

	if (base < 1 || base > NAME_MAX_NODE)
		return false;
	for (size_t i = 0; i < base; i++)
		if (!node_char(name[i]))
			return false;
	if (!at)
		return true;
	at++;
	if (!*at || strlen(at) > NAME_MAX_NODE)
		return false;
	for (; *at; at++)
		if (!node_char(*at))
			return false;
	return true;
}

static bool prop_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > NAME_MAX_PROP)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!prop_char(name[i]))
			return false;
	return true;
}

int spk_fdt_new(size_t max_size, struct spk_fdt **out)
{
	struct spk_fdt *f;

	if (!out)
		return spk_fail(EINVAL, "fdt: no place for the writer");
	*out = NULL;
	if (max_size < SPK_FDT_HEADER + 16 || max_size > SPK_FDT_MAX_SIZE)
		return spk_fail(EINVAL, "fdt: a tree of %zu bytes: the size must be %d..%u",
		                max_size, SPK_FDT_HEADER + 16, SPK_FDT_MAX_SIZE);
	f = calloc(1, sizeof(*f));
	if (!f)
		return spk_fail(ENOMEM, "fdt: out of memory");
	f->max = max_size;
	f->dt = malloc(max_size);
	f->str = malloc(max_size);
	if (!f->dt || !f->str) {
		spk_fdt_free(f);
		return spk_fail(ENOMEM, "fdt: out of memory for a %zu-byte tree", max_size);
	}
	f->next_phandle = 1;
	*out = f;
	return 0;
}

void spk_fdt_free(struct spk_fdt *f)
{
	if (!f)
		return;
	free(f->dt);
	free(f->str);
	free(f->blob);
	free(f);
}

int spk_fdt_reserve(struct spk_fdt *f, uint64_t addr, uint64_t size)
{
	int rc = usable(f, "memreserve");

	if (rc)
		return rc;
	if (!size || addr + size < addr)
		return fdt_err(f, spk_fail(EINVAL, "fdt: memreserve 0x%llx+0x%llx: %s",
		                           (unsigned long long)addr, (unsigned long long)size,
		                           size ? "wraps" : "empty"));
	if (f->n_rsv >= SPK_FDT_MAX_RSV)
		return fdt_err(
		    f, spk_fail(E2BIG, "fdt: more than %d memory reservations", SPK_FDT_MAX_RSV));
	/* one more 16-byte entry */
	if (blob_size(f, f->dt_len, f->str_len) + 16 > f->max)
		return fdt_err(f, spk_fail(E2BIG,
		                           "fdt: memreserve: the tree would need %zu bytes, "
		                           "more than the %zu allowed",
		                           blob_size(f, f->dt_len, f->str_len) + 16, f->max));
	f->rsv[f->n_rsv][0] = addr;
	f->rsv[f->n_rsv][1] = size;
	f->n_rsv++;
	return 0;
}

int spk_fdt_begin_node(struct spk_fdt *f, const char *name)
{
	size_t len, need;
	int rc = usable(f, "begin node");

	if (rc)
		return rc;
	if (!name)
		return fdt_err(f, spk_fail(EINVAL, "fdt: begin node: no name"));
	if (f->depth == 0 && (f->root_done || *name))
		return fdt_err(f,
		               spk_fail(EINVAL, "fdt: node \"%s\": %s", name,
		                        f->root_done ? "the root node is closed"
		                                     : "the first node must be the root (\"\")"));
	if (f->depth > 0 && !node_name_ok(name))
		return fdt_err(f,
		               spk_fail(EINVAL,
		                        "fdt: bad node name \"%.64s\" (1-31 of [0-9a-zA-Z,._+-], "
		                        "optionally @ and a unit address)",
		                        name));
	if (f->depth > SPK_FDT_MAX_DEPTH)
		return fdt_err(f, spk_fail(E2BIG, "fdt: node \"%s\": more than %d levels", name,
		                           SPK_FDT_MAX_DEPTH));
	len = strlen(name) + 1;
	need = 4 + pad4(len);
	if ((rc = room(f, need, 0, "node")))
		return rc;
	be32(f->dt + f->dt_len, FDT_BEGIN_NODE);
	memset(f->dt + f->dt_len + 4, 0, pad4(len));
	memcpy(f->dt + f->dt_len + 4, name, len);
	f->dt_len += need;
	if (f->depth > 0)
		f->stack[f->depth - 1].has_child = true;
	f->stack[f->depth].props = f->dt_len;
	f->stack[f->depth].has_child = false;
	f->depth++;
	return 0;
}

int spk_fdt_end_node(struct spk_fdt *f)
{
	int rc = usable(f, "end node");

	if (rc)
		return rc;
	if (f->depth == 0)
		return fdt_err(f, spk_fail(EINVAL, "fdt: end node: no node is open"));
	if ((rc = room(f, 4, 0, "end node")))
		return rc;
	be32(f->dt + f->dt_len, FDT_END_NODE);
	f->dt_len += 4;
	f->depth--;
	if (f->depth == 0)
		f->root_done = true;
	return 0;
}

/* The offset of name in the strings block, or -1. */
static long find_string(const struct spk_fdt *f, const char *name)
{
	size_t len = strlen(name) + 1;

	for (size_t off = 0; off < f->str_len;) {
		size_t here = strlen(f->str + off) + 1; /* every entry ends with its NUL */

		if (here == len && !memcmp(f->str + off, name, len))
			return (long)off;
		off += here;
	}
	return -1;
}

/* Whether the open node already has a property whose name is at nameoff:
 * its properties are the PROP records from its first one to the end. */
static bool has_prop(const struct spk_fdt *f, uint32_t nameoff)
{
	size_t off = f->stack[f->depth - 1].props;

	while (off + 12 <= f->dt_len) {
		uint32_t len = rd_be32(f->dt + off + 4);

		if (rd_be32(f->dt + off) != FDT_PROP) /* cannot happen: children come after */
			break;
		if (rd_be32(f->dt + off + 8) == nameoff)
			return true;
		off += 12 + pad4(len);
	}
	return false;
}

int spk_fdt_prop(struct spk_fdt *f, const char *name, const void *data, size_t len)
{
	long nameoff;
	size_t add_str = 0;
	int rc = usable(f, "property");

	if (rc)
		return rc;
	if (!name || !prop_name_ok(name))
		return fdt_err(f, spk_fail(EINVAL,
		                           "fdt: bad property name \"%.64s\" (1-31 of "
		                           "[0-9a-zA-Z,._+?#-])",
		                           name ? name : "(null)"));
	if (len && !data)
		return fdt_err(
		    f, spk_fail(EINVAL, "fdt: property %s: %zu bytes of no data", name, len));
	if (f->depth == 0)
		return fdt_err(f, spk_fail(EINVAL, "fdt: property %s outside a node", name));
	if (f->stack[f->depth - 1].has_child)
		return fdt_err(f, spk_fail(EINVAL, "fdt: property %s after a child node", name));
	if (len > f->max)
		return fdt_err(f, spk_fail(E2BIG,
		                           "fdt: property %s: %zu bytes do not fit in a "
		                           "%zu-byte tree",
		                           name, len, f->max));
	nameoff = find_string(f, name);
	if (nameoff >= 0 && has_prop(f, (uint32_t)nameoff))
		return fdt_err(f, spk_fail(EINVAL, "fdt: property %s twice in one node", name));
	if (nameoff < 0)
		add_str = strlen(name) + 1;
	if ((rc = room(f, 12 + pad4(len), add_str, name)))
		return rc;
	if (nameoff < 0) {
		nameoff = (long)f->str_len;
		memcpy(f->str + f->str_len, name, add_str);
		f->str_len += add_str;
	}
	be32(f->dt + f->dt_len, FDT_PROP);
	be32(f->dt + f->dt_len + 4, (uint32_t)len);
	be32(f->dt + f->dt_len + 8, (uint32_t)nameoff);
	memset(f->dt + f->dt_len + 12, 0, pad4(len));
	if (len)
		memcpy(f->dt + f->dt_len + 12, data, len);
	f->dt_len += 12 + pad4(len);
	return 0;
}

int spk_fdt_prop_empty(struct spk_fdt *f, const char *name)
{
	return spk_fdt_prop(f, name, NULL, 0);
}

int spk_fdt_prop_u32(struct spk_fdt *f, const char *name, uint32_t value)
{
	uint8_t b[4];

	be32(b, value);
	return spk_fdt_prop(f, name, b, sizeof(b));
}

int spk_fdt_prop_u64(struct spk_fdt *f, const char *name, uint64_t value)
{
	uint8_t b[8];

	be64(b, value);
	return spk_fdt_prop(f, name, b, sizeof(b));
}

/* Values of many cells are staged on the heap: n is the caller's. */
static int prop_staged(struct spk_fdt *f, const char *name, const uint32_t *cells, size_t n)
{
	uint8_t *b;
	int rc;

	if (n > f->max / 4)
		return fdt_err(f, spk_fail(E2BIG,
		                           "fdt: property %s: %zu cells do not fit in a "
		                           "%zu-byte tree",
		                           name ? name : "(null)", n, f->max));
	b = malloc(n ? n * 4 : 1);
	if (!b)
		return fdt_err(f, spk_fail(ENOMEM, "fdt: out of memory"));
	for (size_t i = 0; i < n; i++)
		be32(b + 4 * i, cells[i]);
	rc = spk_fdt_prop(f, name, b, n * 4);
	free(b);
	return rc;
}

int spk_fdt_prop_cells(struct spk_fdt *f, const char *name, const uint32_t *cells, size_t n)
{
	int rc = usable(f, "property");

	if (rc)
		return rc;
	if (n && !cells)
		return fdt_err(
		    f, spk_fail(EINVAL, "fdt: property %s: no cells", name ? name : "(null)"));
	return prop_staged(f, name, cells, n);
}

int spk_fdt_prop_string(struct spk_fdt *f, const char *name, const char *s)
{
	int rc = usable(f, "property");

	if (rc)
		return rc;
	if (!s)
		return fdt_err(
		    f, spk_fail(EINVAL, "fdt: property %s: no string", name ? name : "(null)"));
	return spk_fdt_prop(f, name, s, strlen(s) + 1);
}

int spk_fdt_prop_strings(struct spk_fdt *f, const char *name, const char *const *list, size_t n)
{
	size_t total = 0;
	char *b, *p;
	int rc = usable(f, "property");

	if (rc)
		return rc;
	if (!list || !n)
		return fdt_err(
		    f, spk_fail(EINVAL, "fdt: property %s: no strings", name ? name : "(null)"));
	for (size_t i = 0; i < n; i++) {
		size_t len;

		if (!list[i] || !*list[i])
			return fdt_err(f, spk_fail(EINVAL, "fdt: property %s: string %zu is %s",
			                           name ? name : "(null)", i,
			                           list[i] ? "empty" : "NULL"));
		len = strnlen(list[i], f->max + 1) + 1;
		if (len > f->max || total + len > f->max)
			return fdt_err(f, spk_fail(E2BIG,
			                           "fdt: property %s: the strings do not fit "
			                           "in a %zu-byte tree",
			                           name ? name : "(null)", f->max));
		total += len;
	}
	b = malloc(total);
	if (!b)
		return fdt_err(f, spk_fail(ENOMEM, "fdt: out of memory"));
	p = b;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(list[i]) + 1;

		memcpy(p, list[i], len);
		p += len;
	}
	rc = spk_fdt_prop(f, name, b, total);
	free(b);
	return rc;
}

int spk_fdt_prop_reg(struct spk_fdt *f, const char *name, const uint64_t *pairs, size_t n,
                     unsigned addr_cells, unsigned size_cells)
{
	uint32_t *cells;
	size_t per, k = 0;
	int rc = usable(f, "property");

	if (rc)
		return rc;
	if (!name)
		name = "(null)";
	if (addr_cells < 1 || addr_cells > 2 || size_cells > 2)
		return fdt_err(f, spk_fail(EINVAL,
		                           "fdt: property %s: %u address and %u size cells "
		                           "(1-2 and 0-2)",
		                           name, addr_cells, size_cells));
	if (!pairs || !n)
		return fdt_err(
		    f, spk_fail(EINVAL, "fdt: property %s: no (address, size) pairs", name));
	per = addr_cells + size_cells;
	if (n > f->max / (4 * per))
		return fdt_err(f, spk_fail(E2BIG,
		                           "fdt: property %s: %zu pairs do not fit in a "
		                           "%zu-byte tree",
		                           name, n, f->max));
	cells = malloc(n * per * sizeof(*cells));
	if (!cells)
		return fdt_err(f, spk_fail(ENOMEM, "fdt: out of memory"));
	for (size_t i = 0; i < n; i++) {
		uint64_t v[2] = {pairs[2 * i], pairs[2 * i + 1]};
		unsigned nc[2] = {addr_cells, size_cells};

		for (int j = 0; j < 2; j++) {
			if (nc[j] == 0) {
				if (v[j]) {
					free(cells);
					return fdt_err(f, spk_fail(EINVAL,
					                           "fdt: property %s: size 0x%llx "
					                           "with no size cells",
					                           name, (unsigned long long)v[j]));
				}
				continue;
			}
			if (nc[j] == 1 && v[j] > UINT32_MAX) {
				free(cells);
				return fdt_err(f, spk_fail(EINVAL,
				                           "fdt: property %s: 0x%llx does not fit "
				                           "one cell",
				                           name, (unsigned long long)v[j]));
			}
			if (nc[j] == 2)
				cells[k++] = (uint32_t)(v[j] >> 32);
			cells[k++] = (uint32_t)v[j];
		}
	}
	rc = prop_staged(f, name, cells, k);
	free(cells);
	return rc;
}

uint32_t spk_fdt_phandle(struct spk_fdt *f)
{
	if (usable(f, "phandle"))
		return 0;
	/* 0 and 0xffffffff are not phandles (spec 2.3.3) */
	if (f->next_phandle == UINT32_MAX) {
		fdt_err(f, spk_fail(E2BIG, "fdt: out of phandles"));
		return 0;
	}
	return f->next_phandle++;
}

int spk_fdt_finish(struct spk_fdt *f, uint32_t boot_cpu, const void **blob, size_t *size)
{
	size_t total, off_rsv, off_dt, off_str;
	uint8_t *b;

	if (!f || !blob || !size)
		return spk_fail(EINVAL, "fdt: finish: no %s", !f ? "writer" : "place for the blob");
	if (f->error)
		return f->error;
	if (f->blob) {
		*blob = f->blob;
		*size = f->blob_len;
		return 0;
	}
	if (!f->root_done || f->depth)
		return fdt_err(f, spk_fail(EINVAL, "fdt: finish: %s",
		                           f->depth ? "a node is still open" : "no root node"));
	total = blob_size(f, f->dt_len, f->str_len);
	if (total > f->max) /* room() checked each step; kept as the invariant */
		return fdt_err(f, spk_fail(E2BIG,
		                           "fdt: the tree needs %zu bytes, more than the %zu "
		                           "allowed",
		                           total, f->max));
	b = calloc(1, total);
	if (!b)
		return fdt_err(f, spk_fail(ENOMEM, "fdt: out of memory"));
	off_rsv = SPK_FDT_HEADER;
	off_dt = off_rsv + (f->n_rsv + 1) * 16;
	off_str = off_dt + f->dt_len + 4;
	be32(b + 0, SPK_FDT_MAGIC);
	be32(b + 4, (uint32_t)total);
	be32(b + 8, (uint32_t)off_dt);
	be32(b + 12, (uint32_t)off_str);
	be32(b + 16, (uint32_t)off_rsv);
	be32(b + 20, SPK_FDT_VERSION);
	be32(b + 24, FDT_LAST_COMP);
	be32(b + 28, boot_cpu);
	be32(b + 32, (uint32_t)f->str_len);
	be32(b + 36, (uint32_t)(f->dt_len + 4));
	for (size_t i = 0; i < f->n_rsv; i++) {
		be64(b + off_rsv + 16 * i, f->rsv[i][0]);
		be64(b + off_rsv + 16 * i + 8, f->rsv[i][1]);
	}
	memcpy(b + off_dt, f->dt, f->dt_len);
	be32(b + off_dt + f->dt_len, FDT_END);
	memcpy(b + off_str, f->str, f->str_len);
	f->blob = b;
	f->blob_len = total;
	*blob = b;
	*size = total;
	return 0;
}
