// SPDX-License-Identifier: Apache-2.0
/*
 * Guest memory regions and the checked accessor (compare Solo5's
 * HVT_CHECKED_GPA_P and rust-vmm's vm-memory). Every guest address is
 * checked at both ends; region ends are computed as gpa + size - 1 so that
 * a region ending exactly at 2^64 is representable, and every sum of a
 * guest-supplied address and length is checked for wrap-around.
 *
 * Regions are added while the VM is set up, never concurrently with
 * accesses. spk_mem_populate() may run while vCPUs access memory: it
 * publishes the host pointer before the type that makes it usable.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/mem.h>

#include "core/internal.h"

#define MEM_NAME_MAX 32

#define PAGE_SHIFT 12

struct spk_mem {
	size_t n;
	/* Sorted by gpa, never overlapping; names[i] belongs to regions[i]. */
	struct spk_mem_region regions[SPK_MEM_MAX_REGIONS];
	char names[SPK_MEM_MAX_REGIONS][MEM_NAME_MAX];
	/*
	 * The monitor's own writes, for the dirty log (spk_vm_dirty_log_*):
	 * one bit per 4 KiB page of regions[i] in written[i], set while track
	 * is on by every write through this map (atomic ORs: any thread),
	 * taken and cleared by spk_mem_written_take(). Allocated with the
	 * region and freed with it, so a writer never sees a freed bitmap.
	 */
	bool track;
	uint64_t *written[SPK_MEM_MAX_REGIONS];
};

static uint64_t region_last(const struct spk_mem_region *r)
{
	return r->gpa + (r->size - 1);
}

static enum spk_mem_type region_type(const struct spk_mem_region *r)
{
	/* Pairs with the release store in spk_mem_populate(). */
	return __atomic_load_n(&r->type, __ATOMIC_ACQUIRE);
}

int spk_mem_new(struct spk_mem **out)
{
	struct spk_mem *mem;

	if (!out)
		return spk_fail(EINVAL, "mem: new without an out pointer");
	mem = calloc(1, sizeof(*mem));
	if (!mem)
		return spk_fail(ENOMEM, "mem: out of memory for the region table");
	*out = mem;
	return 0;
}

void spk_mem_free(struct spk_mem *mem)
{
	for (size_t i = 0; mem && i < mem->n; i++)
		free(mem->written[i]);
	free(mem);
}

static uint64_t bitmap_words(uint64_t size)
{
	return ((size + 4095) >> PAGE_SHIFT) / 64 + 1;
}

/* Index of the region holding gpa, or -1. Binary search. */
static int find_index(const struct spk_mem *mem, uint64_t gpa)
{
	size_t lo = 0, hi = mem->n;

	/* Find the first region starting above gpa; the one before may hold it. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (mem->regions[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || gpa > region_last(&mem->regions[lo - 1]))
		return -1;
	return (int)(lo - 1);
}

/* Index at which a region starting at gpa keeps the table sorted. */
static size_t insert_index(const struct spk_mem *mem, uint64_t gpa)
{
	size_t i = 0;

	while (i < mem->n && mem->regions[i].gpa < gpa)
		i++;
	return i;
}

static int check_overlap(const struct spk_mem *mem, uint64_t gpa, uint64_t last, const char *name)
{
	for (size_t i = 0; i < mem->n; i++) {
		const struct spk_mem_region *r = &mem->regions[i];

		if (gpa <= region_last(r) && r->gpa <= last)
			return spk_fail(EEXIST,
			                "mem: region \"%s\" at 0x%" PRIx64 "+0x%" PRIx64
			                " overlaps region \"%s\" at 0x%" PRIx64 "+0x%" PRIx64,
			                name, gpa, last - gpa + 1, r->name, r->gpa, r->size);
	}
	return 0;
}

static int check_new_region(const struct spk_mem *mem, uint64_t gpa, uint64_t size,
                            enum spk_mem_type type, void *host, const char *name)
{
	uint64_t last = 0;

	if (size == 0)
		return spk_fail(EINVAL, "mem: region \"%s\" at 0x%" PRIx64 " has size 0", name,
		                gpa);
	if (!spk_add_ok(gpa, size - 1, &last))
		return spk_fail(EINVAL, "mem: region \"%s\" at 0x%" PRIx64 "+0x%" PRIx64 " wraps",
		                name, gpa, size);
	switch (type) {
	case SPK_MEM_RAM:
	case SPK_MEM_READONLY:
		if (!host)
			return spk_fail(EINVAL,
			                "mem: region \"%s\" at 0x%" PRIx64 "+0x%" PRIx64
			                " has no host memory",
			                name, gpa, size);
		break;
	case SPK_MEM_UNPOPULATED:
		if (host)
			return spk_fail(EINVAL,
			                "mem: unpopulated region \"%s\" at 0x%" PRIx64 "+0x%" PRIx64
			                " must not have host memory",
			                name, gpa, size);
		break;
	default:
		return spk_fail(
		    EINVAL, "mem: region \"%s\" at 0x%" PRIx64 "+0x%" PRIx64 " has unknown type %d",
		    name, gpa, size, (int)type);
	}
	if (mem->n >= SPK_MEM_MAX_REGIONS)
		return spk_fail(
		    ENOSPC, "mem: region \"%s\" at 0x%" PRIx64 "+0x%" PRIx64 ": already %d regions",
		    name, gpa, size, SPK_MEM_MAX_REGIONS);
	return check_overlap(mem, gpa, last, name);
}

/* regions[i].name points into names[i]: restore that after a shift. */
static void relink_names(struct spk_mem *mem)
{
	for (size_t i = 0; i < mem->n; i++)
		mem->regions[i].name = mem->names[i];
}

int spk_mem_add(struct spk_mem *mem, uint64_t gpa, uint64_t size, enum spk_mem_type type,
                void *host, const char *name)
{
	uint64_t *written;
	size_t i;
	int rc;

	if (!mem)
		return spk_fail(EINVAL, "mem: add without a memory map");
	if (!name)
		name = "unnamed";
	rc = check_new_region(mem, gpa, size, type, host, name);
	if (rc)
		return rc;
	written = calloc(bitmap_words(size), sizeof(*written));
	if (!written)
		return spk_fail(ENOMEM, "mem: region \"%s\": out of memory for its dirty bitmap",
		                name);
	i = insert_index(mem, gpa);
	memmove(&mem->regions[i + 1], &mem->regions[i], (mem->n - i) * sizeof(mem->regions[0]));
	memmove(&mem->names[i + 1], &mem->names[i], (mem->n - i) * sizeof(mem->names[0]));
	memmove(&mem->written[i + 1], &mem->written[i], (mem->n - i) * sizeof(mem->written[0]));
	mem->written[i] = written;
	mem->n++;
	mem->regions[i] = (struct spk_mem_region){
	    .gpa = gpa,
	    .size = size,
	    .type = type,
	    .host = host,
	};
	/* Truncate long names: they are for messages only. */
	snprintf(mem->names[i], sizeof(mem->names[i]), "%s", name);
	relink_names(mem);
	return 0;
}

int spk_mem_remove(struct spk_mem *mem, uint64_t gpa)
{
	int i = mem ? find_index(mem, gpa) : -1;

	if (i < 0 || mem->regions[i].gpa != gpa)
		return -ENOENT;
	free(mem->written[i]);
	memmove(&mem->written[i], &mem->written[i + 1],
	        (mem->n - (size_t)i - 1) * sizeof(mem->written[0]));
	memmove(&mem->regions[i], &mem->regions[i + 1],
	        (mem->n - (size_t)i - 1) * sizeof(mem->regions[0]));
	memmove(&mem->names[i], &mem->names[i + 1],
	        (mem->n - (size_t)i - 1) * sizeof(mem->names[0]));
	mem->n--;
	relink_names(mem);
	return 0;
}

int spk_mem_populate(struct spk_mem *mem, uint64_t gpa, void *host)
{
	struct spk_mem_region *r;
	int i;

	if (!mem || !host)
		return spk_fail(EINVAL, "mem: populate 0x%" PRIx64 " without %s", gpa,
		                mem ? "host memory" : "a memory map");
	i = find_index(mem, gpa);
	if (i < 0 || mem->regions[i].gpa != gpa)
		return spk_fail(ENOENT, "mem: populate: no region starts at 0x%" PRIx64, gpa);
	r = &mem->regions[i];
	if (region_type(r) != SPK_MEM_UNPOPULATED)
		return spk_fail(EINVAL,
		                "mem: populate: region \"%s\" at 0x%" PRIx64 "+0x%" PRIx64
		                " is already populated",
		                r->name, r->gpa, r->size);
	/* host first: a reader that sees RAM must also see the pointer. */
	r->host = host;
	__atomic_store_n(&r->type, SPK_MEM_RAM, __ATOMIC_RELEASE);
	return 0;
}

const struct spk_mem_region *spk_mem_find(const struct spk_mem *mem, uint64_t gpa)
{
	int i;

	if (!mem)
		return NULL;
	i = find_index(mem, gpa);
	return i < 0 ? NULL : &mem->regions[i];
}

size_t spk_mem_regions(const struct spk_mem *mem, const struct spk_mem_region **out)
{
	if (out)
		*out = mem ? mem->regions : NULL;
	return mem ? mem->n : 0;
}

/* ---- the monitor's writes, for the dirty log ---- */

/* Mark the pages of [gpa, gpa + len) inside region i (the caller clipped it). */
static void mark_region(const struct spk_mem *mem, int i, uint64_t gpa, uint64_t len)
{
	const struct spk_mem_region *r = &mem->regions[i];
	uint64_t first = (gpa - r->gpa) >> PAGE_SHIFT;
	uint64_t last = (gpa - r->gpa + (len - 1)) >> PAGE_SHIFT;

	for (uint64_t p = first; p <= last; p++)
		__atomic_fetch_or(&mem->written[i][p / 64], 1ull << (p % 64), __ATOMIC_RELAXED);
}

void spk_mem_mark_dirty(const struct spk_mem *mem, uint64_t gpa, uint64_t len)
{
	uint64_t last = 0;
	int i;

	if (!mem || !__atomic_load_n(&mem->track, __ATOMIC_ACQUIRE) || len == 0 ||
	    !spk_add_ok(gpa, len - 1, &last))
		return;
	/* every region the range touches, holes between them skipped: from
	 * the one holding gpa, or else the first one above it */
	i = find_index(mem, gpa);
	if (i < 0)
		i = (int)insert_index(mem, gpa);
	for (; (size_t)i < mem->n && mem->regions[i].gpa <= last; i++) {
		const struct spk_mem_region *r = &mem->regions[i];
		uint64_t from = gpa > r->gpa ? gpa : r->gpa;
		uint64_t to = last < region_last(r) ? last : region_last(r);

		mark_region(mem, i, from, to - from + 1);
	}
}

void spk_mem_track(struct spk_mem *mem, bool on)
{
	if (!mem)
		return;
	if (on) /* word by word: writers may be marking meanwhile */
		for (size_t i = 0; i < mem->n; i++)
			for (uint64_t w = 0; w < bitmap_words(mem->regions[i].size); w++)
				__atomic_store_n(&mem->written[i][w], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&mem->track, on, __ATOMIC_RELEASE);
}

int spk_mem_written_take(struct spk_mem *mem, uint64_t gpa, uint64_t *bits, uint64_t pages)
{
	int i = mem ? find_index(mem, gpa) : -1;

	if (i < 0 || mem->regions[i].gpa != gpa ||
	    (mem->regions[i].size + 4095) >> PAGE_SHIFT != pages)
		return -ENOENT;
	for (uint64_t w = 0; w < bitmap_words(mem->regions[i].size); w++)
		bits[w] |= __atomic_exchange_n(&mem->written[i][w], 0, __ATOMIC_ACQ_REL);
	return 0;
}

/* ---- the checked accessor ---- */

/* Why region r refuses an access, or NULL if it allows it. */
static const char *region_refuses(const struct spk_mem_region *r, unsigned access)
{
	switch (region_type(r)) {
	case SPK_MEM_RAM:
		return NULL;
	case SPK_MEM_READONLY:
		if ((access & SPK_MEM_W) && !(access & SPK_MEM_LOAD))
			return "is read-only";
		return NULL;
	case SPK_MEM_UNPOPULATED:
		return "is not populated";
	}
	return "has an unknown type";
}

/* The last byte of [gpa, gpa + len), or fail: len 0 or a wrapping sum. */
static int range_last(uint64_t gpa, uint64_t len, uint64_t *last)
{
	if (len == 0)
		return spk_fail(EFAULT, "mem: empty access at 0x%" PRIx64, gpa);
	if (!spk_add_ok(gpa, len - 1, last))
		return spk_fail(EFAULT, "mem: access at 0x%" PRIx64 "+0x%" PRIx64 " wraps", gpa,
		                len);
	return 0;
}

/*
 * Check that every byte of [gpa, gpa + len) lies in populated regions that
 * allow access, each region starting right where the previous one ends.
 * 0, or -EFAULT with the reason recorded.
 */
static int check_span(const struct spk_mem *mem, uint64_t gpa, uint64_t len, unsigned access)
{
	uint64_t last = 0, cur = gpa;
	int i;

	if (range_last(gpa, len, &last))
		return -EFAULT;
	i = find_index(mem, gpa);
	while (i >= 0) {
		const struct spk_mem_region *r = &mem->regions[i];
		const char *why = region_refuses(r, access);

		if (why)
			return spk_fail(
			    EFAULT, "mem: access at 0x%" PRIx64 "+0x%" PRIx64 ": region \"%s\" %s",
			    gpa, len, r->name, why);
		if (region_last(r) >= last)
			return 0;
		/* No wrap: this region ends below last. */
		cur = region_last(r) + 1;
		i = (size_t)i + 1 < mem->n && mem->regions[i + 1].gpa == cur ? i + 1 : -1;
	}
	return spk_fail(
	    EFAULT, "mem: access at 0x%" PRIx64 "+0x%" PRIx64 " leaves guest memory at 0x%" PRIx64,
	    gpa, len, cur);
}

/* Copy across the regions of a span check_span() accepted. */
static void copy_span(const struct spk_mem *mem, uint64_t gpa, void *buf, uint64_t len,
                      bool to_guest)
{
	uint8_t *p = buf;
	int i = find_index(mem, gpa);

	while (len > 0) {
		const struct spk_mem_region *r = &mem->regions[i++];
		uint64_t off = gpa - r->gpa;
		uint64_t chunk = len < r->size - off ? len : r->size - off;

		if (to_guest)
			memcpy(r->host + off, p, chunk);
		else
			memcpy(p, r->host + off, chunk);
		p += chunk;
		len -= chunk;
		gpa += chunk; /* wraps to 0 only after the last byte of memory */
	}
}

static int mem_copy(const struct spk_mem *mem, uint64_t gpa, void *buf, uint64_t len,
                    unsigned access)
{
	int rc;

	if (!mem || !buf)
		return spk_fail(EINVAL, "mem: access at 0x%" PRIx64 "+0x%" PRIx64 " without %s",
		                gpa, len, mem ? "a buffer" : "a memory map");
	rc = check_span(mem, gpa, len, access);
	if (rc)
		return rc;
	copy_span(mem, gpa, buf, len, access != SPK_MEM_R);
	if (access != SPK_MEM_R)
		spk_mem_mark_dirty(mem, gpa, len);
	return 0;
}

int spk_mem_read(const struct spk_mem *mem, uint64_t gpa, void *buf, uint64_t len)
{
	return mem_copy(mem, gpa, buf, len, SPK_MEM_R);
}

int spk_mem_write(const struct spk_mem *mem, uint64_t gpa, const void *buf, uint64_t len)
{
	/* buf is only read: copy_span() copies towards the guest. */
	return mem_copy(mem, gpa, (void *)buf, len, SPK_MEM_W);
}

int spk_mem_load(const struct spk_mem *mem, uint64_t gpa, const void *buf, uint64_t len)
{
	return mem_copy(mem, gpa, (void *)buf, len, SPK_MEM_W | SPK_MEM_LOAD);
}

void *spk_mem_ptr(const struct spk_mem *mem, uint64_t gpa, uint64_t len, unsigned access)
{
	const struct spk_mem_region *r;
	uint64_t last = 0;
	const char *why;
	int i;

	if (!mem) {
		spk_fail(EINVAL, "mem: access at 0x%" PRIx64 " without a memory map", gpa);
		return NULL;
	}
	if (access & ~(unsigned)(SPK_MEM_R | SPK_MEM_W | SPK_MEM_LOAD)) {
		spk_fail(EINVAL, "mem: access at 0x%" PRIx64 "+0x%" PRIx64 " with bad flags 0x%x",
		         gpa, len, access);
		return NULL;
	}
	if (range_last(gpa, len, &last))
		return NULL;
	i = find_index(mem, gpa);
	if (i < 0) {
		spk_fail(EFAULT,
		         "mem: access at 0x%" PRIx64 "+0x%" PRIx64 " is outside guest memory", gpa,
		         len);
		return NULL;
	}
	r = &mem->regions[i];
	if (last > region_last(r)) {
		spk_fail(EFAULT,
		         "mem: access at 0x%" PRIx64 "+0x%" PRIx64
		         " runs past the end of region \"%s\"",
		         gpa, len, r->name);
		return NULL;
	}
	why = region_refuses(r, access);
	if (why) {
		spk_fail(EFAULT, "mem: access at 0x%" PRIx64 "+0x%" PRIx64 ": region \"%s\" %s",
		         gpa, len, r->name, why);
		return NULL;
	}
	if ((access & SPK_MEM_W) && __atomic_load_n(&mem->track, __ATOMIC_RELAXED))
		mark_region(mem, i, gpa, len);
	return r->host + (gpa - r->gpa);
}

/*
 * Copy up to room bytes of the region holding cur into dst; *copied says
 * how many. -EFAULT if cur is not readable memory.
 */
static int str_chunk(const struct spk_mem *mem, uint64_t gpa, uint64_t cur, char *dst, size_t room,
                     size_t *copied)
{
	const struct spk_mem_region *r = NULL;
	const char *why = "is outside guest memory";
	uint64_t off, chunk;
	int i = find_index(mem, cur);

	if (i >= 0) {
		r = &mem->regions[i];
		why = region_refuses(r, SPK_MEM_R);
	}
	if (why || !r)
		return spk_fail(EFAULT, "mem: string at 0x%" PRIx64 ": byte at 0x%" PRIx64 " %s",
		                gpa, cur, why);
	off = cur - r->gpa;
	chunk = room < r->size - off ? room : r->size - off;
	memcpy(dst, r->host + off, chunk);
	*copied = chunk;
	return 0;
}

/*
 * The string and its NUL must fit in buf: at most max bytes are read from
 * the guest (offsets 0 to max - 1), never more. The bytes are copied
 * first and searched in buf, so a guest rewriting its memory meanwhile
 * cannot make the length and the copy disagree.
 */
int spk_mem_read_str(const struct spk_mem *mem, uint64_t gpa, char *buf, size_t max)
{
	size_t limit, done = 0, chunk = 0;
	uint64_t cur = gpa;
	char *nul;
	int rc;

	if (!mem || !buf || max == 0)
		return spk_fail(EINVAL, "mem: string at 0x%" PRIx64 " without %s", gpa,
		                !mem   ? "a memory map"
		                : !buf ? "a buffer"
		                       : "room for the NUL");
	/* The length comes back as an int. */
	limit = max < (size_t)INT_MAX ? max : (size_t)INT_MAX;
	while (done < limit) {
		rc = str_chunk(mem, gpa, cur, buf + done, limit - done, &chunk);
		if (rc) {
			buf[done] = '\0';
			return rc;
		}
		nul = memchr(buf + done, '\0', chunk);
		if (nul)
			return (int)(nul - buf);
		done += chunk;
		if (done < limit && !spk_add_ok(cur, chunk, &cur)) {
			buf[done] = '\0';
			return spk_fail(EFAULT,
			                "mem: string at 0x%" PRIx64
			                " runs past the top of the address space",
			                gpa);
		}
	}
	buf[limit - 1] = '\0';
	return spk_fail(ENAMETOOLONG, "mem: string at 0x%" PRIx64 " has no NUL within %zu bytes",
	                gpa, limit);
}
