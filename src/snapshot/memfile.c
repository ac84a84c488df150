// SPDX-License-Identifier: Apache-2.0
/*
 * Guest memory files.
 *
 * A memory file holds the populated regions of a guest's memory (RAM and
 * READONLY) one after another, each at a page-aligned offset. Pages that
 * are all zeros (never touched, or zeroed) are not written: the file is
 * created at its full size with ftruncate and only the other pages are
 * written, so they stay holes. The state file's MEMORY section says where
 * each region is; it is checked (spk_snap_mem_layout) before any of it is
 * used.
 *
 * Restoring maps each region of the file MAP_PRIVATE over the region's
 * existing host memory, at the same address, so KVM's memory slots (which
 * name host addresses) need no change: pages are read from the file on
 * the guest's first touch, and the guest's writes go to private copies,
 * never to the file. The new mappings are all made first (anywhere) and
 * moved into place with mremap only when every one succeeded, so a
 * failure leaves the guest's memory as it was.
 *
 * Diff files and in-place reset take a dirty-page set, filled from KVM's
 * dirty log by src/kvm/dirty.c (spk_vm_dirty_log_fetch); here the pages a
 * set names are written, applied and copied back.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sparkler/snapshot.h>

#include "core/internal.h"
#include "snapshot/snap_internal.h"

#define PAGE 4096ull

static uint64_t pages_of(uint64_t size)
{
	return size / PAGE + (size % PAGE != 0);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	const uint64_t *q = (const uint64_t *)p;

	/* host regions are page-aligned, n a multiple of 8 except at a region's tail */
	for (size_t i = 0; i < n / 8; i++)
		if (q[i])
			return false;
	for (size_t i = n / 8 * 8; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static bool bit(const uint64_t *bits, uint64_t i)
{
	return bits[i / 64] >> (i % 64) & 1;
}

/* ---- dirty sets ---- */

static int dirty_alloc(struct spk_snap_dirty *d, size_t i, uint64_t gpa, uint64_t size)
{
	d->region[i].gpa = gpa;
	d->region[i].pages = pages_of(size);
	d->region[i].bits = calloc(d->region[i].pages / 64 + 1, 8);
	return d->region[i].bits ? 0 : -ENOMEM;
}

int spk_snap_dirty_new(const struct spk_mem *mem, struct spk_snap_dirty **out)
{
	const struct spk_mem_region *r;
	struct spk_snap_dirty *d;
	size_t n;

	if (!mem || !out)
		return spk_fail(EINVAL, "snapshot: dirty set: no memory or out pointer");
	n = spk_mem_regions(mem, &r);
	d = calloc(1, sizeof(*d));
	if (!d)
		return spk_fail(ENOMEM, "snapshot: out of memory");
	for (size_t i = 0; i < n; i++) {
		if (r[i].type == SPK_MEM_UNPOPULATED)
			continue;
		if (dirty_alloc(d, d->n_regions++, r[i].gpa, r[i].size) < 0) {
			spk_snap_dirty_free(d);
			return spk_fail(ENOMEM, "snapshot: out of memory");
		}
	}
	*out = d;
	return 0;
}

void spk_snap_dirty_free(struct spk_snap_dirty *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_regions; i++)
		free(d->region[i].bits);
	free(d);
}

int spk_snap_dirty_mark(struct spk_snap_dirty *d, uint64_t gpa, uint64_t len)
{
	if (!d || len == 0 || gpa + len < gpa)
		return spk_fail(EINVAL, "snapshot: dirty set: bad range 0x%" PRIx64 "+0x%" PRIx64,
		                gpa, len);
	for (size_t i = 0; i < d->n_regions; i++) {
		uint64_t base = d->region[i].gpa, end = base + d->region[i].pages * PAGE;

		if (gpa < base || gpa + len > end)
			continue;
		for (uint64_t p = (gpa - base) / PAGE; p <= (gpa + len - 1 - base) / PAGE; p++)
			d->region[i].bits[p / 64] |= 1ull << (p % 64);
		return 0;
	}
	return spk_fail(EINVAL,
	                "snapshot: dirty set: 0x%" PRIx64 "+0x%" PRIx64 " is not inside one region",
	                gpa, len);
}

uint64_t spk_snap_dirty_count(const struct spk_snap_dirty *d)
{
	uint64_t n = 0;

	if (!d)
		spk_fail(EINVAL, "snapshot: dirty_count needs a bitmap");
	for (size_t i = 0; d && i < d->n_regions; i++)
		for (uint64_t w = 0; w <= d->region[i].pages / 64; w++)
			n += (uint64_t)__builtin_popcountll(d->region[i].bits[w]);
	return n;
}

/* ---- saving ---- */

/* Write region r's pages (those in bits, or all when bits is NULL) that are not zero. */
static int write_region(int fd, const char *path, const struct spk_mem_region *r, uint64_t off,
                        const uint64_t *bits)
{
	uint64_t pages = pages_of(r->size), run = 0, start = 0;

	for (uint64_t p = 0; p <= pages; p++) {
		bool keep = false;

		if (p < pages) {
			uint64_t n = p + 1 == pages ? r->size - p * PAGE : PAGE;

			keep = (!bits || bit(bits, p)) && !all_zero(r->host + p * PAGE, n);
		}
		if (keep) {
			if (!run)
				start = p;
			run++;
			continue;
		}
		if (run) {
			uint64_t a = start * PAGE,
			         n = (start + run) * PAGE > r->size ? r->size - a : run * PAGE;
			int rc = spk_snap_pio(fd, r->host + a, n, off + a, true, path);

			if (rc)
				return rc;
			run = 0;
		}
	}
	return 0;
}

static void put_name(struct spk_snap_writer *w, const char *field, const char *name)
{
	char clean[SPK_SNAP_NAME_MAX];

	snprintf(clean, sizeof(clean), "%s", name ? name : "");
	for (char *c = clean; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
	spk_snap_put_str(w, field, clean);
}

static int mem_save(struct spk_snap_writer *w, const struct spk_mem *mem,
                    const struct spk_snap_dirty *dirty, const char *path, unsigned flags)
{
	const struct spk_mem_region *r;
	uint64_t offs[SPK_MEM_MAX_REGIONS], total = 0;
	size_t n, k = 0;
	char field[48];
	int fd, rc = 0;

	if (!w || !mem || !path)
		return spk_fail(EINVAL, "snapshot: memory: no writer, memory or file name");
	if ((rc = spk_snap_writer_error(w)))
		return rc;
	n = spk_mem_regions(mem, &r);
	for (size_t i = 0; i < n; i++) {
		if (r[i].type == SPK_MEM_UNPOPULATED)
			continue;
		if (r[i].gpa % PAGE || r[i].size % PAGE || (uintptr_t)r[i].host % PAGE)
			return spk_fail(EINVAL, "snapshot: memory: region %s is not page-aligned",
			                r[i].name);
		if (dirty && (k >= dirty->n_regions || dirty->region[k].gpa != r[i].gpa ||
		              dirty->region[k].pages != pages_of(r[i].size)))
			return spk_fail(EINVAL,
			                "snapshot: memory: the dirty set does not match region %s",
			                r[i].name);
		offs[i] = total;
		total += pages_of(r[i].size) * PAGE;
		k++;
	}
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return spk_fail(errno, "snapshot: %s: %s", path, strerror(errno));
	if (ftruncate(fd, (off_t)total) < 0) {
		rc = spk_fail(errno, "snapshot: %s: %s", path, strerror(errno));
		goto out;
	}
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (r[i].type == SPK_MEM_UNPOPULATED)
			continue;
		rc = write_region(fd, path, &r[i], offs[i], dirty ? dirty->region[k].bits : NULL);
		if (rc)
			goto out;
		k++;
	}
	if ((flags & SPK_SNAP_MEM_FSYNC) && (rc = spk_snap_fsync(fd, path)))
		goto out;
	spk_snap_section_begin(w, SPK_SNAP_SEC_MEMORY);
	spk_snap_put_str(w, "file", path);
	spk_snap_put_u64(w, "file_size", total);
	spk_snap_put_u8(w, "diff", dirty != NULL);
	spk_snap_put_u32(w, "regions", (uint32_t)k);
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (r[i].type == SPK_MEM_UNPOPULATED)
			continue;
		snprintf(field, sizeof(field), "r%zu.gpa", k);
		spk_snap_put_u64(w, field, r[i].gpa);
		snprintf(field, sizeof(field), "r%zu.size", k);
		spk_snap_put_u64(w, field, r[i].size);
		snprintf(field, sizeof(field), "r%zu.offset", k);
		spk_snap_put_u64(w, field, offs[i]);
		snprintf(field, sizeof(field), "r%zu.type", k);
		spk_snap_put_u8(w, field, (uint8_t)r[i].type);
		snprintf(field, sizeof(field), "r%zu.name", k);
		put_name(w, field, r[i].name);
		if (dirty) {
			snprintf(field, sizeof(field), "r%zu.dirty", k);
			spk_snap_put_bytes(w, field, dirty->region[k].bits,
			                   (dirty->region[k].pages / 64 + 1) * 8);
		}
		k++;
	}
	rc = spk_snap_section_end(w);
out:
	close(fd);
	return rc;
}

int spk_snap_mem_save(struct spk_snap_writer *w, const struct spk_mem *mem, const char *path,
                      unsigned flags)
{
	return mem_save(w, mem, NULL, path, flags);
}

int spk_snap_mem_save_diff(struct spk_snap_writer *w, const struct spk_mem *mem,
                           const struct spk_snap_dirty *dirty, const char *path, unsigned flags)
{
	if (!dirty)
		return spk_fail(EINVAL, "snapshot: memory: a diff needs a dirty set");
	return mem_save(w, mem, dirty, path, flags);
}

/* ---- the layout ---- */

static int layout_region(struct spk_snap_reader *r, struct spk_snap_mem_layout *l, size_t k)
{
	char f[5][48];
	uint64_t type, prev_end = 0, prev_off_end = 0;
	int rc;

	snprintf(f[0], sizeof(f[0]), "r%zu.gpa", k);
	snprintf(f[1], sizeof(f[1]), "r%zu.size", k);
	snprintf(f[2], sizeof(f[2]), "r%zu.offset", k);
	snprintf(f[3], sizeof(f[3]), "r%zu.type", k);
	snprintf(f[4], sizeof(f[4]), "r%zu.name", k);
	if ((rc = spk_snap_get_u64(r, f[0], &l->region[k].gpa)) ||
	    (rc = spk_snap_get_u64(r, f[1], &l->region[k].size)) ||
	    (rc = spk_snap_get_u64(r, f[2], &l->region[k].offset)) ||
	    (rc = spk_snap_get_max(r, f[3], SPK_MEM_READONLY, &type)) ||
	    (rc = spk_snap_get_str(r, f[4], l->region[k].name, sizeof(l->region[k].name))))
		return rc;
	l->region[k].type = (enum spk_mem_type)type;
	if (k) {
		prev_end = l->region[k - 1].gpa + l->region[k - 1].size;
		prev_off_end = l->region[k - 1].offset + pages_of(l->region[k - 1].size) * PAGE;
	}
	if (l->region[k].gpa % PAGE)
		return spk_snap_bad(r, f[0], "0x%" PRIx64 " is not page-aligned", l->region[k].gpa);
	if (k && l->region[k].gpa < prev_end)
		return spk_snap_bad(r, f[0], "0x%" PRIx64 " overlaps or precedes region %zu",
		                    l->region[k].gpa, k - 1);
	if (l->region[k].size == 0 || l->region[k].size % PAGE ||
	    l->region[k].gpa + l->region[k].size < l->region[k].gpa)
		return spk_snap_bad(r, f[1], "0x%" PRIx64 " is zero, not page-aligned or wraps",
		                    l->region[k].size);
	if (l->region[k].offset % PAGE || l->region[k].offset < prev_off_end ||
	    l->region[k].offset > l->file_size ||
	    l->region[k].size > l->file_size - l->region[k].offset)
		return spk_snap_bad(r, f[2],
		                    "0x%" PRIx64 " (+0x%" PRIx64
		                    ") is not page-aligned, overlaps region %zu or passes the "
		                    "file's 0x%" PRIx64 " bytes",
		                    l->region[k].offset, l->region[k].size, k ? k - 1 : 0,
		                    l->file_size);
	if (l->diff) {
		const void *p;
		size_t len, want;

		snprintf(f[0], sizeof(f[0]), "r%zu.dirty", k);
		if ((rc = spk_snap_get_blob(r, f[0], &p, &len)))
			return rc;
		want = (size_t)(l->region[k].size / PAGE / 64 + 1) * 8;
		if (len != want)
			return spk_snap_bad(r, f[0],
			                    "%zu bytes, %zu for 0x%" PRIx64 " bytes of memory", len,
			                    want, l->region[k].size);
		if (dirty_alloc(l->dirty, k, l->region[k].gpa, l->region[k].size) < 0)
			return spk_fail(ENOMEM, "snapshot: out of memory");
		l->dirty->n_regions = k + 1;
		memcpy(l->dirty->region[k].bits, p, len);
	}
	return 0;
}

int spk_snap_mem_layout(const struct spk_snap_file *f, struct spk_snap_mem_layout *l)
{
	struct spk_snap_section_info si;
	struct spk_snap_reader *r = NULL;
	uint64_t v;
	size_t i, n = spk_snap_file_sections(f);
	int rc;

	if (!f || !l)
		return spk_fail(EINVAL, "snapshot: memory: no file or layout");
	memset(l, 0, sizeof(*l));
	for (i = 0; i < n; i++)
		if (spk_snap_file_section(f, i, &si) == 0 && si.type == SPK_SNAP_SEC_MEMORY)
			break;
	if (i == n)
		return spk_fail(ENOENT, "snapshot: no memory section");
	if ((rc = spk_snap_reader_new(f, i, &r)))
		return rc;
	if ((rc = spk_snap_get_str(r, "file", l->file, sizeof(l->file))) ||
	    (rc = spk_snap_get_u64(r, "file_size", &l->file_size)) ||
	    (rc = spk_snap_get_max(r, "diff", 1, &v)))
		goto out;
	l->diff = v;
	if ((rc = spk_snap_get_max(r, "regions", SPK_MEM_MAX_REGIONS, &v)))
		goto out;
	l->n_regions = (size_t)v;
	if (l->file_size % PAGE) {
		rc =
		    spk_snap_bad(r, "file_size", "0x%" PRIx64 " is not page-aligned", l->file_size);
		goto out;
	}
	if (l->diff && !(l->dirty = calloc(1, sizeof(*l->dirty)))) {
		rc = spk_fail(ENOMEM, "snapshot: out of memory");
		goto out;
	}
	for (size_t k = 0; k < l->n_regions; k++)
		if ((rc = layout_region(r, l, k)))
			goto out;
	rc = spk_snap_reader_done(r);
out:
	spk_snap_reader_free(r);
	if (rc)
		spk_snap_mem_layout_fini(l);
	return rc;
}

void spk_snap_mem_layout_fini(struct spk_snap_mem_layout *l)
{
	if (!l)
		return;
	spk_snap_dirty_free(l->dirty);
	l->dirty = NULL;
}

/* ---- loading ---- */

/* The populated regions of mem, matched one to one with l's (fd < 0: no
 * memory file to check). */
int spk_snap_mem_match(const struct spk_snap_mem_layout *l, int fd, const struct spk_mem *mem,
                       const struct spk_mem_region **out)
{
	const struct spk_mem_region *r;
	struct stat st = {0};
	size_t n = spk_mem_regions(mem, &r), k = 0;

	if (fd >= 0 && fstat(fd, &st) < 0)
		return spk_fail(errno, "snapshot: memory file: %s", strerror(errno));
	if (fd >= 0 && (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != l->file_size))
		return spk_fail(EINVAL,
		                "snapshot: memory file %s: %lld bytes, the memory section says "
		                "%" PRIu64 " (field 'file_size')",
		                l->file, (long long)st.st_size, l->file_size);
	for (size_t i = 0; i < n; i++) {
		if (r[i].type == SPK_MEM_UNPOPULATED)
			continue;
		if (k >= l->n_regions)
			return spk_fail(EINVAL,
			                "snapshot: memory: region %s at 0x%" PRIx64
			                " is not in the snapshot (field 'regions': %zu)",
			                r[i].name, r[i].gpa, l->n_regions);
		if (r[i].gpa != l->region[k].gpa || r[i].size != l->region[k].size ||
		    r[i].type != l->region[k].type)
			return spk_fail(EINVAL,
			                "snapshot: memory: region %zu (field 'r%zu'): 0x%" PRIx64
			                "+0x%" PRIx64 " type %d in the snapshot, 0x%" PRIx64
			                "+0x%" PRIx64 " type %d in this VM",
			                k, k, l->region[k].gpa, l->region[k].size,
			                l->region[k].type, r[i].gpa, r[i].size, r[i].type);
		if ((uintptr_t)r[i].host % PAGE)
			return spk_fail(
			    EINVAL, "snapshot: memory: region %s is not page-aligned in the host",
			    r[i].name);
		out[k++] = &r[i];
	}
	if (k != l->n_regions)
		return spk_fail(EINVAL,
		                "snapshot: memory: the snapshot has %zu regions (field 'regions'), "
		                "this VM %zu",
		                l->n_regions, k);
	return 0;
}

int spk_snap_mem_restore(const struct spk_snap_mem_layout *l, int fd, const struct spk_mem *mem)
{
	const struct spk_mem_region *r[SPK_MEM_MAX_REGIONS];
	void *maps[SPK_MEM_MAX_REGIONS] = {0};
	int rc;

	if (!l || !mem || fd < 0)
		return spk_fail(EINVAL, "snapshot: memory: no layout, memory or file");
	if (l->diff)
		return spk_fail(EINVAL,
		                "snapshot: memory: %s is a diff (field 'diff'): apply it over "
		                "its base",
		                l->file);
	if ((rc = spk_snap_mem_match(l, fd, mem, r)))
		return rc;
	for (size_t k = 0; k < l->n_regions; k++) {
		maps[k] = mmap(NULL, l->region[k].size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd,
		               (off_t)l->region[k].offset);
		if (maps[k] == MAP_FAILED) {
			maps[k] = NULL;
			rc = spk_fail(errno, "snapshot: memory: mapping region %s: %s",
			              l->region[k].name, strerror(errno));
			goto undo;
		}
	}
	/* every mapping exists: move them over the regions (cannot fail for
	 * private mappings of the same size onto existing page-aligned ones,
	 * short of running out of kernel memory) */
	for (size_t k = 0; k < l->n_regions; k++) {
		void *at = mremap(maps[k], l->region[k].size, l->region[k].size,
		                  MREMAP_MAYMOVE | MREMAP_FIXED, r[k]->host);

		if (at == MAP_FAILED) {
			rc = spk_fail(errno, "snapshot: memory: placing region %s: %s",
			              l->region[k].name, strerror(errno));
			goto undo;
		}
		maps[k] = NULL;
	}
	return 0;
undo:
	for (size_t k = 0; k < l->n_regions; k++)
		if (maps[k])
			munmap(maps[k], l->region[k].size);
	return rc;
}

/* Copy the pages set in bits from region k of the file into host. */
static int copy_pages(const struct spk_snap_mem_layout *l, int fd, size_t k, uint8_t *host,
                      const uint64_t *bits)
{
	uint64_t pages = l->region[k].size / PAGE, run = 0, start = 0;

	for (uint64_t p = 0; p <= pages; p++) {
		if (p < pages && bit(bits, p)) {
			if (!run)
				start = p;
			run++;
			continue;
		}
		if (run) {
			int rc = spk_snap_pio(fd, host + start * PAGE, run * PAGE,
			                      l->region[k].offset + start * PAGE, false, l->file);

			if (rc)
				return rc;
			run = 0;
		}
	}
	return 0;
}

static int copy_set(const struct spk_snap_mem_layout *l, int fd, const struct spk_mem *mem,
                    const struct spk_snap_dirty *d)
{
	const struct spk_mem_region *r[SPK_MEM_MAX_REGIONS] = {0};
	int rc;

	if ((rc = spk_snap_mem_match(l, fd, mem, r)))
		return rc;
	if (d->n_regions != l->n_regions)
		return spk_fail(EINVAL,
		                "snapshot: memory: the dirty set has %zu regions, the file %zu",
		                d->n_regions, l->n_regions);
	for (size_t k = 0; k < l->n_regions; k++)
		if (d->region[k].gpa != l->region[k].gpa ||
		    d->region[k].pages != l->region[k].size / PAGE)
			return spk_fail(EINVAL,
			                "snapshot: memory: the dirty set's region %zu is not the "
			                "file's",
			                k);
	for (size_t k = 0; k < l->n_regions; k++)
		if (!r[k] || (rc = copy_pages(l, fd, k, r[k]->host, d->region[k].bits)))
			return r[k] ? rc : -EINVAL;
	return 0;
}

int spk_snap_mem_apply_diff(const struct spk_snap_mem_layout *l, int fd, const struct spk_mem *mem)
{
	if (!l || !mem || fd < 0)
		return spk_fail(EINVAL, "snapshot: memory: no layout, memory or file");
	if (!l->diff || !l->dirty)
		return spk_fail(EINVAL, "snapshot: memory: %s is not a diff (field 'diff')",
		                l->file);
	return copy_set(l, fd, mem, l->dirty);
}

int spk_snap_mem_reset(const struct spk_snap_mem_layout *l, int fd, const struct spk_mem *mem,
                       const struct spk_snap_dirty *dirty)
{
	if (!l || !mem || fd < 0 || !dirty)
		return spk_fail(EINVAL, "snapshot: memory: no layout, memory, file or dirty set");
	if (l->diff)
		return spk_fail(EINVAL,
		                "snapshot: memory: reset needs a full memory file, %s is a diff",
		                l->file);
	return copy_set(l, fd, mem, dirty);
}
