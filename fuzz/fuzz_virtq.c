/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the split virtqueue: arbitrary bytes are a guest's
 * ring setup and memory, and the device side pops every chain it is
 * given, copies through it both ways, maps it to iovecs and hands it
 * back, as a device would. It asserts only what must always hold of a
 * chain the walker accepted; the sanitizers catch any access outside the
 * fake guest memory or the chain's own arrays.
 *
 * Input: an 8-byte header, then the first bytes of guest RAM.
 *   0     bit 0: EVENT_IDX, bit 1: INDIRECT_DESC negotiated
 *   1     queue size: 1 << (byte % 9), or the byte itself when bit 7 is set
 *         (sizes that are not powers of two must be refused)
 *   2..7  descriptor table, available ring, used ring: 16-bit guest addresses
 *
 * Guest memory: 64 KiB of RAM at 0, 4 KiB read-only after it, an
 * unpopulated 4 KiB after a gap: buffers may point at all of them.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/log.h>
#include <sparkler/mem.h>
#include <sparkler/virtio.h>

#define RAM_SIZE  (64u << 10)
#define ROM_SIZE  4096u
#define HOLE_GPA  (128u << 10)
#define HOLE_SIZE 4096u
#define HDR       8
#define MAX_POPS  64
#define SCRATCH   (8u << 10)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct spk_mem *mem;
static uint8_t *ram, *rom;
static struct spk_virtq q;
static uint8_t scratch[SCRATCH];

static void quiet(enum spk_log_level level, const char *msg, void *opaque)
{
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	ram = calloc(1, RAM_SIZE);
	rom = calloc(1, ROM_SIZE);
	spk_log_set(quiet, NULL, SPK_LOG_ERROR);
	if (!ram || !rom || spk_mem_new(&mem) ||
	    spk_mem_add(mem, 0, RAM_SIZE, SPK_MEM_RAM, ram, "ram") ||
	    spk_mem_add(mem, RAM_SIZE, ROM_SIZE, SPK_MEM_READONLY, rom, "rom") ||
	    spk_mem_add(mem, HOLE_GPA, HOLE_SIZE, SPK_MEM_UNPOPULATED, NULL, "hole") ||
	    spk_virtq_init(&q, 0, 256))
		abort(); /* a broken harness, not a finding */
	return 0;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* What must hold of every chain the walker hands out. */
static void check_chain(const struct spk_virtq_chain *c)
{
	uint64_t out = 0, in = 0;

	if (c->n == 0 || c->n > q.size || c->n_out > c->n || c->head >= q.size)
		abort();
	for (uint32_t i = 0; i < c->n; i++) {
		if (c->buf[i].write != (i >= c->n_out))
			abort(); /* readable first, then writable */
		if (c->buf[i].write)
			in += c->buf[i].len;
		else
			out += c->buf[i].len;
	}
	if (out != c->out_len || in != c->in_len)
		abort();
}

/* Use the chain the way devices do. */
static void use_chain(const struct spk_virtq_chain *c)
{
	struct iovec iov[16];

	check_chain(c);
	if (spk_virtq_read(mem, c, 0, scratch, SCRATCH) < 0 ||
	    spk_virtq_read(mem, c, c->out_len / 2, scratch, 7) < 0 ||
	    spk_virtq_write(mem, c, 0, scratch, SCRATCH) < 0 ||
	    spk_virtq_write(mem, c, c->in_len / 3, scratch, 3) < 0)
		abort(); /* every buffer was checked: copies cannot fail */
	spk_virtq_iov(mem, c, false, 0, UINT64_MAX, iov, 16);
	spk_virtq_iov(mem, c, true, 1, c->in_len, iov, 16);
	spk_virtq_push(&q, c, c->in_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spk_virtq_chain c;

	if (size < HDR)
		return 0;
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + HDR, size - HDR < RAM_SIZE ? size - HDR : RAM_SIZE);
	spk_virtq_reset(&q);
	q.size = data[1] & 0x80 ? data[1] : (uint16_t)(1u << (data[1] % 9));
	q.desc = get16(data + 2);
	q.avail = get16(data + 4);
	q.used = get16(data + 6);
	if (spk_virtq_start(&q, mem, data[0] & 1, data[0] & 2) < 0)
		return 0;
	for (int i = 0; i < MAX_POPS; i++) {
		int rc = spk_virtq_pop(&q, &c);

		if (rc <= 0)
			break;
		use_chain(&c);
		spk_virtq_need_interrupt(&q);
	}
	spk_virtq_has_work(&q);
	return 0;
}
