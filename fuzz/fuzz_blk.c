/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for virtio-blk's request handling: arbitrary bytes are
 * a guest's descriptor table, available ring and buffers; a driver here
 * resets the device through its PCI BAR, negotiates, enables the queue at
 * fixed addresses and kicks it, and the device (sync engine, on this
 * thread) answers every chain it is given. Besides what the sanitizers
 * catch, it checks what must always hold: the image never changes size,
 * and a read-only disk's image never changes at all.
 *
 * Input: a 2-byte header, then the first bytes of guest RAM.
 *   0  bit 0: EVENT_IDX, bit 1: INDIRECT_DESC, bit 2: FLUSH negotiated;
 *      bits 3-4: which disk (0: read-write, 1: read-only, 2: read-write
 *      without fallocate, so write-zeroes writes zeros)
 *   1  queue size: 1 << (byte % 9)
 * Guest RAM: 64 KiB at 0: descriptors at 0x0, available ring at 0x1000,
 * used ring at 0x2000, anything else is buffers. The images: 64 KiB each.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sparkler/bus.h>
#include <sparkler/log.h>
#include <sparkler/mem.h>
#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/virtio.h>
#include <sparkler/virtio_blk.h>

#define RAM_SIZE   (64u << 10)
#define IMAGE_SIZE (64u << 10)
#define HDR        2
#define DESC       0x0000ull
#define AVAIL      0x1000ull
#define USED       0x2000ull
#define NDISKS     3

/* struct virtio_pci_common_cfg */
enum { GFSEL = 0x08, GF = 0x0c, STATUS = 0x14, QSEL = 0x16, QSIZE = 0x18, QENABLE = 0x1c };
enum { QDESC = 0x20, QDRV = 0x28, QDEV = 0x30 };

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct disk {
	struct spk_virtio_blk *blk;
	int fd;
	uint64_t common, notify;
};

static struct spk_mem *mem;
static uint8_t *ram;
static struct spk_bus *bus;
static struct spk_pci_host *host;
static struct disk disks[NDISKS];
static uint8_t pattern[IMAGE_SIZE], now[IMAGE_SIZE];

static void quiet(enum spk_log_level level, const char *msg, void *opaque)
{
}

static void wr(uint64_t addr, unsigned width, uint64_t v)
{
	spk_bus_write(bus, SPK_BUS_MMIO, addr, width, v, NULL);
}

/* The disk's BAR (placed by the host) and its common and notify structures. */
static void probe(struct disk *d, unsigned slot)
{
	uint64_t bar = spk_pci_host_cfg_read(host, slot, SPK_PCI_BAR0, 4) & ~0xfull;

	bar |= (uint64_t)spk_pci_host_cfg_read(host, slot, SPK_PCI_BAR0 + 4, 4) << 32;
	spk_pci_host_cfg_write(host, slot, SPK_PCI_COMMAND, 2,
	                       SPK_PCI_CMD_MEMORY | SPK_PCI_CMD_MASTER);
	for (unsigned at = spk_pci_host_cfg_read(host, slot, SPK_PCI_CAP_PTR, 1); at;
	     at = spk_pci_host_cfg_read(host, slot, at + 1, 1)) {
		unsigned type = spk_pci_host_cfg_read(host, slot, at + 3, 1);
		uint64_t off = spk_pci_host_cfg_read(host, slot, at + 8, 4);

		if (spk_pci_host_cfg_read(host, slot, at, 1) != SPK_PCI_CAP_ID_VENDOR)
			continue;
		if (type == 1)
			d->common = bar + off;
		else if (type == 2)
			d->notify = bar + off;
	}
	if (!d->common || !d->notify)
		abort();
}

static void make_disk(struct disk *d, bool ro, unsigned flags)
{
	d->fd = memfd_create("fuzz-blk", MFD_CLOEXEC);
	if (d->fd < 0 || pwrite(d->fd, pattern, IMAGE_SIZE, 0) != IMAGE_SIZE)
		abort();
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", d->fd);
	const struct spk_virtio_blk_config bc = {.pci = host,
	                                         .slot = -1,
	                                         .mem = mem,
	                                         .path = path,
	                                         .id = "fuzz",
	                                         .read_only = ro,
	                                         .engine = SPK_BLK_ENGINE_SYNC,
	                                         .test_flags = flags};
	if (spk_virtio_blk_new(&bc, &d->blk) < 0)
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	spk_log_set(quiet, NULL, SPK_LOG_ERROR);
	for (unsigned i = 0; i < IMAGE_SIZE; i++)
		pattern[i] = (uint8_t)(i * 7 + (i >> 9));
	ram = calloc(1, RAM_SIZE);
	if (!ram || spk_mem_new(&mem) || spk_mem_add(mem, 0, RAM_SIZE, SPK_MEM_RAM, ram, "ram") ||
	    spk_bus_new(&bus))
		abort();
	const struct spk_pci_host_config hc = {.bus = bus,
	                                       .ecam = SPK_PC_PCI_ECAM,
	                                       .mmio_start = SPK_PC_PCI_MMIO_START,
	                                       .mmio_size = SPK_PC_PCI_MMIO_SIZE};
	if (spk_pci_host_new(&hc, &host))
		abort();
	make_disk(&disks[0], false, 0);
	make_disk(&disks[1], true, 0);
	make_disk(&disks[2], false, SPK_BLK_TEST_NO_FALLOCATE);
	for (unsigned i = 0; i < NDISKS; i++)
		probe(&disks[i], i + 1); /* slots 1, 2, 3: the host is slot 0 */
	return 0;
}

/* Reset, negotiate, one queue at the fixed rings, DRIVER_OK. */
static void start(struct disk *d, uint8_t flags, uint16_t qsize)
{
	uint64_t f = 1ull << 32 | (flags & 1 ? 1ull << 29 : 0) | (flags & 2 ? 1ull << 28 : 0) |
	             (flags & 4 ? 1ull << 9 : 0) | 1ull << 13 | 1ull << 14;

	wr(d->common + STATUS, 1, 0);
	wr(d->common + STATUS, 1, 3);
	wr(d->common + GFSEL, 4, 0);
	wr(d->common + GF, 4, (uint32_t)f);
	wr(d->common + GFSEL, 4, 1);
	wr(d->common + GF, 4, (uint32_t)(f >> 32));
	wr(d->common + STATUS, 1, 3 | 8);
	wr(d->common + QSEL, 2, 0);
	wr(d->common + QSIZE, 2, qsize);
	wr(d->common + QDESC, 8, DESC);
	wr(d->common + QDRV, 8, AVAIL);
	wr(d->common + QDEV, 8, USED);
	wr(d->common + QENABLE, 2, 1);
	wr(d->common + STATUS, 1, 3 | 8 | 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stat sb;

	if (size < HDR)
		return 0;
	struct disk *d = &disks[(data[0] >> 3) % NDISKS];
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + HDR, size - HDR < RAM_SIZE ? size - HDR : RAM_SIZE);
	start(d, data[0], (uint16_t)(1u << (data[1] % 9)));
	wr(d->notify, 2, 0);
	wr(d->common + STATUS, 1, 0); /* a reset with whatever is left */
	if (fstat(d->fd, &sb) < 0 || sb.st_size != IMAGE_SIZE)
		abort(); /* written past the end */
	if (d == &disks[1] && (pread(d->fd, now, IMAGE_SIZE, 0) != IMAGE_SIZE ||
	                       memcmp(now, pattern, IMAGE_SIZE) != 0))
		abort(); /* a read-only image changed */
	return 0;
}
