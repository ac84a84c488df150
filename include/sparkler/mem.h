/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest memory: a list of regions, and one checked accessor. Device code
 * never turns a guest address into a host pointer by itself: every access
 * names (gpa, len) and fails if any byte is outside a region or the sum
 * wraps.
 */
#ifndef SPARKLER_MEM_H
#define SPARKLER_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum spk_mem_type {
	SPK_MEM_RAM = 0,     /* guest reads and writes */
	SPK_MEM_READONLY,    /* guest reads; guest writes exit as NPF */
	SPK_MEM_UNPOPULATED, /* declared, no backing yet: every access fails */
};

#define SPK_MEM_MAX_REGIONS 32

struct spk_mem_region {
	uint64_t gpa;
	uint64_t size;
	enum spk_mem_type type;
	uint8_t *host; /* NULL for SPK_MEM_UNPOPULATED */
	const char *name;
};

struct spk_mem;

/* Access wanted through spk_mem_ptr(). */
enum {
	SPK_MEM_R = 1u << 0,
	SPK_MEM_W = 1u << 1,
	/* Setup-time writers (loaders) may write read-only regions. */
	SPK_MEM_LOAD = 1u << 2,
};

/* A standalone memory map (a VM has its own: spk_vm_mem()). *out is the
 * caller's until spk_mem_free() (NULL: nothing). -EINVAL, -ENOMEM. */
int spk_mem_new(struct spk_mem **out);
void spk_mem_free(struct spk_mem *mem);

/*
 * Add a region. host must cover size bytes (NULL only for UNPOPULATED).
 * Refuses zero sizes, wrap-around, overlaps (naming both regions) and
 * more than SPK_MEM_MAX_REGIONS regions. The name is copied; host stays
 * the caller's and must outlive the map. Not thread-safe against
 * accessors: add regions while nothing reads the map (for a VM's map use
 * spk_vm_add_memory(), which also makes the KVM slot).
 */
int spk_mem_add(struct spk_mem *mem, uint64_t gpa, uint64_t size, enum spk_mem_type type,
		void *host, const char *name);

/* Turn an UNPOPULATED region that starts at gpa into RAM backed by host.
 * Safe while accessors run (host is published before the type). */
int spk_mem_populate(struct spk_mem *mem, uint64_t gpa, void *host);

/* The region holding gpa, or NULL (also for a NULL map). Thread-safe
 * once regions stop being added; the region lives as long as the map. */
const struct spk_mem_region *spk_mem_find(const struct spk_mem *mem, uint64_t gpa);

/* All regions, sorted by address: their count, *out the array (a NULL
 * map: 0 and NULL; out may be NULL to count). */
size_t spk_mem_regions(const struct spk_mem *mem, const struct spk_mem_region **out);

/*
 * The checked accessor. A host pointer to len bytes at gpa, or NULL when
 * len is 0, the range wraps, any byte is outside a populated region, the
 * range spans two regions, or access asks to write a read-only region
 * without SPK_MEM_LOAD (and for a NULL map). The pointer is valid while
 * the VM lives. Thread-safe; the exit path of device code.
 */
void *spk_mem_ptr(const struct spk_mem *mem, uint64_t gpa, uint64_t len, unsigned access);

/* Copy between guest and host through the accessor; may span adjacent
 * regions. 0, -EFAULT (nothing copied), -EINVAL (NULL map or buf).
 * Thread-safe (concurrent guest writes to the same bytes are the
 * guest's race). */
int spk_mem_read(const struct spk_mem *mem, uint64_t gpa, void *buf, uint64_t len);
int spk_mem_write(const struct spk_mem *mem, uint64_t gpa, const void *buf, uint64_t len);
/* Like spk_mem_write, also into read-only regions: for loaders. */
int spk_mem_load(const struct spk_mem *mem, uint64_t gpa, const void *buf, uint64_t len);

/*
 * Read a NUL-terminated string of at most max - 1 bytes at gpa into buf.
 * Returns its length, -EFAULT if a byte is outside memory, -ENAMETOOLONG
 * if no NUL came within max - 1 bytes (buf then holds the truncated text).
 */
int spk_mem_read_str(const struct spk_mem *mem, uint64_t gpa, char *buf, size_t max);

/*
 * Record that the monitor wrote [gpa, gpa + len) without the accessors
 * above: device code that writes through a pointer it kept from an
 * earlier spk_mem_ptr() (a virtqueue's used ring) calls this after each
 * write, so the VM's dirty log (spk_vm_dirty_log_fetch, snapshot.h) sees
 * the pages. spk_mem_write(), spk_mem_load() and spk_mem_ptr() with
 * SPK_MEM_W record their ranges themselves. Parts of the range outside
 * every region are ignored; nothing happens while no dirty log is on, for
 * NULL mem, len 0 or a wrapping range. Thread-safe; no message.
 */
void spk_mem_mark_dirty(const struct spk_mem *mem, uint64_t gpa, uint64_t len);

#ifdef __cplusplus
}
#endif
#endif
