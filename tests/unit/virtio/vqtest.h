/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the virtio unit tests: a fake guest memory (RAM at 0, a
 * read-only region after it) and a tiny driver that lays out split rings
 * and descriptors in it the way a guest would. Include after cmocka.h.
 */
#ifndef SPK_TESTS_VQTEST_H
#define SPK_TESTS_VQTEST_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/mem.h>
#include <sparkler/virtio.h>

#define VT_RAM      (1u << 20)
#define VT_ROM_GPA  VT_RAM
#define VT_ROM      (64u << 10)
#define VT_DESC     0x1000ull
#define VT_AVAIL    0x2000ull
#define VT_USED     0x3000ull
#define VT_DATA     0x10000ull /* buffers from here */
#define VT_INDIRECT 0x8000ull  /* indirect tables */

struct vt_mem {
	struct spk_mem *mem;
	uint8_t *ram, *rom;
};

static inline void vt_mem_init(struct vt_mem *m)
{
	m->ram = calloc(1, VT_RAM);
	m->rom = calloc(1, VT_ROM);
	assert_non_null(m->ram);
	assert_non_null(m->rom);
	assert_int_equal(spk_mem_new(&m->mem), 0);
	assert_int_equal(spk_mem_add(m->mem, 0, VT_RAM, SPK_MEM_RAM, m->ram, "ram"), 0);
	assert_int_equal(spk_mem_add(m->mem, VT_ROM_GPA, VT_ROM, SPK_MEM_READONLY, m->rom, "rom"),
	                 0);
}

static inline void vt_mem_fini(struct vt_mem *m)
{
	spk_mem_free(m->mem);
	free(m->ram);
	free(m->rom);
}

static inline void vt_put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static inline uint16_t vt_get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static inline uint32_t vt_get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* Descriptor i of the table at gpa. */
static inline void vt_desc(struct vt_mem *m, uint64_t table, uint16_t i, uint64_t addr,
                           uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *p = m->ram + table + 16ull * i;

	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

/* Put head in the next avail slot and publish it (queue size qsize). */
static inline void vt_avail(struct vt_mem *m, uint64_t avail, uint16_t qsize, uint16_t head)
{
	uint16_t idx = vt_get16(m->ram + avail + 2);

	vt_put16(m->ram + avail + 4 + 2 * (idx % qsize), head);
	vt_put16(m->ram + avail + 2, (uint16_t)(idx + 1));
}

static inline uint16_t vt_used_idx(struct vt_mem *m, uint64_t used)
{
	return vt_get16(m->ram + used + 2);
}

/* Used element i: id and len. */
static inline void vt_used_elem(struct vt_mem *m, uint64_t used, uint16_t qsize, uint16_t i,
                                uint32_t *id, uint32_t *len)
{
	*id = vt_get32(m->ram + used + 4 + 8 * (i % qsize));
	*len = vt_get32(m->ram + used + 8 + 8 * (i % qsize));
}

#endif
