// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-blk without KVM: a driver written here in C builds requests in a
 * fake guest memory and kicks the device through a real bus and PCI host;
 * the event loop (not started) is turned by hand, so io_uring completions
 * and kicks are handled here, one at a time. Every case runs with both
 * engines (io_uring and sync) on a 4 MiB image in $TMPDIR; a few run again
 * on the preadv/pwritev fallback the automatic choice takes where
 * io_uring_setup fails (a seccomp filter on the thread that creates the
 * device).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include <sparkler/evloop.h>
#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/virtio.h>
#include <sparkler/virtio_blk.h>

#include "../devices/devtest.h"
#include "../snapshot/snaptest.h"
#include "vqtest.h"

#define QS      16
#define RING    0x20000ull
#define HDRS    0x30000ull /* request k: header at HDRS + 0x100 k, status at + 0x80 */
#define DATA    0x40000ull /* data buffers: 512 KiB */
#define IMAGE   (4u << 20)
#define SECTORS (IMAGE / 512)

#define TEST_NO_URING (1u << 31) /* make_fx: io_uring_setup fails (ENOSYS) under new */

enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11, T_WZ = 13 };
enum { S_OK = 0, S_IOERR = 1, S_UNSUPP = 2 };
#define F_RO    (1ull << 5)
#define F_FLUSH (1ull << 9)
#define V1      (1ull << 32)

/* struct virtio_pci_common_cfg offsets */
enum { DFSEL = 0x00, DF = 0x04, GFSEL = 0x08, GF = 0x0c, STATUS = 0x14 };
enum { QSEL = 0x16, QSIZE_ = 0x18, QENABLE = 0x1c, QDESC = 0x20, QDRV = 0x28, QDEV = 0x30 };

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool wr;
};

struct fx {
	struct vt_mem m;
	struct spk_bus *bus;
	struct spk_pci_host *h;
	struct spk_evloop *loop;
	struct fake_irq irq;
	struct spk_virtio_blk *blk;
	struct log_capture log;
	char new_log[512]; /* the last log line of spk_virtio_blk_new (fallback fixture) */
	char path[64];
	int fd; /* the image, for checks */
	uint64_t bar, common, notify, device, isr;
	uint32_t notify_mult;
	uint16_t next_desc, nreq;
	enum spk_blk_engine engine;
};

/* ---- the bus and the driver ---- */

static uint64_t mm_rd(struct fx *f, uint64_t a, unsigned w)
{
	uint64_t v = 0;

	assert_int_equal(spk_bus_read(f->bus, SPK_BUS_MMIO, a, w, &v, NULL), 0);
	return v;
}

static void mm_wr(struct fx *f, uint64_t a, unsigned w, uint64_t v)
{
	assert_int_equal(spk_bus_write(f->bus, SPK_BUS_MMIO, a, w, v, NULL), 0);
}

static void probe(struct fx *f)
{
	unsigned slot;

	for (slot = 1; slot < 32; slot++)
		if (spk_pci_host_cfg_read(f->h, slot, 0, 4) == (0x1042u << 16 | 0x1af4))
			break;
	assert_true(slot < 32);
	assert_int_equal(spk_pci_host_cfg_read(f->h, slot, SPK_PCI_REVISION, 4) >> 8, 0x018000);
	f->bar = spk_pci_host_cfg_read(f->h, slot, SPK_PCI_BAR0, 4) & ~0xfu;
	f->bar |= (uint64_t)spk_pci_host_cfg_read(f->h, slot, SPK_PCI_BAR0 + 4, 4) << 32;
	spk_pci_host_cfg_write(f->h, slot, SPK_PCI_COMMAND, 2,
	                       SPK_PCI_CMD_MEMORY | SPK_PCI_CMD_MASTER);
	for (uint8_t at = (uint8_t)spk_pci_host_cfg_read(f->h, slot, SPK_PCI_CAP_PTR, 1); at;
	     at = (uint8_t)spk_pci_host_cfg_read(f->h, slot, at + 1u, 1)) {
		unsigned type = spk_pci_host_cfg_read(f->h, slot, at + 3u, 1);
		uint64_t off = spk_pci_host_cfg_read(f->h, slot, at + 8u, 4);

		if (spk_pci_host_cfg_read(f->h, slot, at, 1) != SPK_PCI_CAP_ID_VENDOR)
			continue;
		if (type == 1)
			f->common = f->bar + off;
		else if (type == 2) {
			f->notify = f->bar + off;
			f->notify_mult = spk_pci_host_cfg_read(f->h, slot, at + 16u, 4);
		} else if (type == 3)
			f->isr = f->bar + off;
		else if (type == 4)
			f->device = f->bar + off;
	}
	assert_true(f->common && f->notify && f->device && f->isr);
}

static uint64_t offered(struct fx *f)
{
	mm_wr(f, f->common + DFSEL, 4, 0);
	uint64_t v = mm_rd(f, f->common + DF, 4);
	mm_wr(f, f->common + DFSEL, 4, 1);
	return v | mm_rd(f, f->common + DF, 4) << 32;
}

static uint8_t status(struct fx *f)
{
	return (uint8_t)mm_rd(f, f->common + STATUS, 1);
}

/* Reset, accept these features, one queue of QS at RING, DRIVER_OK. */
static void init_dev(struct fx *f, uint64_t accept)
{
	mm_wr(f, f->common + STATUS, 1, 0);
	assert_int_equal(status(f), 0);
	memset(f->m.ram + RING, 0, 0x3000);
	f->next_desc = f->nreq = 0;
	mm_wr(f, f->common + STATUS, 1, 3);
	mm_wr(f, f->common + GFSEL, 4, 0);
	mm_wr(f, f->common + GF, 4, (uint32_t)accept);
	mm_wr(f, f->common + GFSEL, 4, 1);
	mm_wr(f, f->common + GF, 4, (uint32_t)(accept >> 32));
	mm_wr(f, f->common + STATUS, 1, 3 | 8);
	assert_true(status(f) & 8);
	mm_wr(f, f->common + QSEL, 2, 0);
	mm_wr(f, f->common + QSIZE_, 2, QS);
	mm_wr(f, f->common + QDESC, 8, RING);
	mm_wr(f, f->common + QDRV, 8, RING + 0x1000);
	mm_wr(f, f->common + QDEV, 8, RING + 0x2000);
	mm_wr(f, f->common + QENABLE, 2, 1);
	mm_wr(f, f->common + STATUS, 1, 3 | 8 | 4);
	assert_int_equal(status(f), 15);
}

static uint16_t used_idx(struct fx *f)
{
	return vt_used_idx(&f->m, RING + 0x2000);
}

/* Turn the loop until n chains were used in all (or 5 s went by). */
static void wait_used(struct fx *f, uint16_t n)
{
	for (int i = 0; i < 500 && used_idx(f) != n; i++)
		spk_evloop_run_once(f->loop, 10);
	assert_int_equal(used_idx(f), n);
}

/* Turn the loop while anything is ready. */
static void settle(struct fx *f)
{
	while (spk_evloop_run_once(f->loop, 50) > 0)
		;
}

/* Chain n buffers, publish it; no kick. */
static uint16_t publish(struct fx *f, const struct seg *s, unsigned n)
{
	uint16_t head = f->next_desc % QS;

	for (unsigned i = 0; i < n; i++) {
		uint16_t at = (uint16_t)((f->next_desc + i) % QS);
		uint16_t fl = (uint16_t)((s[i].wr ? SPK_VIRTQ_DESC_F_WRITE : 0) |
		                         (i + 1 < n ? SPK_VIRTQ_DESC_F_NEXT : 0));

		vt_desc(&f->m, RING, at, s[i].gpa, s[i].len, fl, (uint16_t)((at + 1) % QS));
	}
	f->next_desc = (uint16_t)(f->next_desc + n);
	vt_avail(&f->m, RING + 0x1000, QS, head);
	f->nreq++;
	return head;
}

static void kick(struct fx *f)
{
	mm_wr(f, f->notify, 2, 0);
}

/* Header of request k (type, sector); its status byte set to 0xee. */
static uint64_t header(struct fx *f, unsigned k, uint32_t type, uint64_t sector)
{
	uint64_t at = HDRS + 0x100ull * k;

	memset(f->m.ram + at, 0, 16);
	memcpy(f->m.ram + at, &type, 4);
	memcpy(f->m.ram + at + 8, &sector, 8);
	f->m.ram[at + 0x80] = 0xee;
	return at;
}

static uint8_t req_status(struct fx *f, unsigned k)
{
	return f->m.ram[HDRS + 0x100ull * k + 0x80];
}

/* One request: header, data (len bytes at DATA + doff, wr = device-writable), status. */
static uint8_t req(struct fx *f, uint32_t type, uint64_t sector, uint64_t doff, uint32_t len,
                   bool wr)
{
	uint64_t h = header(f, 0, type, sector);
	struct seg s[3] = {{h, 16, false}, {DATA + doff, len, wr}, {h + 0x80, 1, true}};
	uint16_t before = used_idx(f);

	if (len)
		publish(f, s, 3);
	else
		publish(f, (struct seg[]){s[0], s[2]}, 2);
	kick(f);
	wait_used(f, (uint16_t)(before + 1));
	return req_status(f, 0);
}

/* The used length of the last used element. */
static uint32_t last_used_len(struct fx *f)
{
	uint32_t id, len;

	vt_used_elem(&f->m, RING + 0x2000, QS, (uint16_t)(used_idx(f) - 1), &id, &len);
	return len;
}

/* Discard / write-zeroes ranges (sector, sectors, flags) at DATA + 0x70000. */
static uint8_t ranges(struct fx *f, uint32_t type, const uint32_t (*r)[3], unsigned n)
{
	uint8_t *p = f->m.ram + DATA + 0x70000;

	for (unsigned i = 0; i < n; i++) {
		uint64_t sector = r[i][0];

		memcpy(p + 16 * i, &sector, 8);
		memcpy(p + 16 * i + 8, &r[i][1], 4);
		memcpy(p + 16 * i + 12, &r[i][2], 4);
	}
	uint64_t h = header(f, 0, type, 0);
	const struct seg s[3] = {
	    {h, 16, false}, {DATA + 0x70000, 16 * n, false}, {h + 0x80, 1, true}};
	uint16_t before = used_idx(f);
	publish(f, s, 3);
	kick(f);
	wait_used(f, (uint16_t)(before + 1));
	return req_status(f, 0);
}

static void image_read(struct fx *f, uint64_t off, void *buf, size_t n)
{
	assert_int_equal(pread(f->fd, buf, n, (off_t)off), (ssize_t)n);
}

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 7 + (i >> 9));
}

static struct spk_virtio_blk_stats stats(struct fx *f)
{
	struct spk_virtio_blk_stats s;

	spk_virtio_blk_get_stats(f->blk, &s);
	return s;
}

/* ---- fixtures ---- */

struct new_args {
	const struct spk_virtio_blk_config *bc;
	struct spk_virtio_blk **out;
	int setup_errno; /* io_uring_setup's errno under the filter */
	int rc;
};

/*
 * spk_virtio_blk_new in a thread where io_uring_setup fails with ENOSYS, as
 * on a kernel built without io_uring: a seccomp filter on this thread only
 * (it goes with the thread; the test process keeps io_uring).
 */
static void *new_without_uring(void *p)
{
	struct new_args *a = p;
	struct sock_filter prog[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	const struct sock_fprog fp = {.len = sizeof(prog) / sizeof(prog[0]), .filter = prog};
	uint8_t params[120] = {0}; /* struct io_uring_params */

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp)) {
		a->rc = -errno;
		return NULL;
	}
	errno = 0;
	if (syscall(__NR_io_uring_setup, 4, params) < 0)
		a->setup_errno = errno;
	a->rc = spk_virtio_blk_new(a->bc, a->out);
	return NULL;
}

static struct fx *make_fx(enum spk_blk_engine engine, bool ro, unsigned flags)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint8_t *img = malloc(IMAGE);
	const char *tmp = getenv("TMPDIR");

	assert_non_null(f);
	assert_non_null(img);
	snprintf(f->path, sizeof(f->path), "%s/blk-unit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	f->fd = mkstemp(f->path);
	assert_true(f->fd >= 0);
	for (uint64_t i = 0; i < IMAGE; i++)
		img[i] = pattern(i);
	assert_int_equal(pwrite(f->fd, img, IMAGE, 0), IMAGE);
	free(img);
	vt_mem_init(&f->m);
	assert_int_equal(spk_bus_new(&f->bus), 0);
	const struct spk_pci_host_config hc = {
	    .bus = f->bus,
	    .ecam = SPK_PC_PCI_ECAM,
	    .mmio_start = SPK_PC_PCI_MMIO_START,
	    .mmio_size = SPK_PC_PCI_MMIO_SIZE,
	    .intx = fake_line(&f->irq, 16),
	};
	assert_int_equal(spk_pci_host_new(&hc, &f->h), 0);
	assert_int_equal(spk_evloop_new("blk-test", &f->loop), 0);
	const struct spk_virtio_blk_config bc = {.pci = f->h,
	                                         .slot = -1,
	                                         .mem = f->m.mem,
	                                         .loop = f->loop,
	                                         .path = f->path,
	                                         .id = "drive0",
	                                         .read_only = ro,
	                                         .engine = engine,
	                                         .test_flags = flags & ~TEST_NO_URING};
	if (flags & TEST_NO_URING) {
		/* AUTO with an event loop but no io_uring: preadv/pwritev, and a line saying so */
		struct new_args a = {.bc = &bc, .out = &f->blk};
		pthread_t t;

		log_capture_start(&f->log);
		assert_int_equal(pthread_create(&t, NULL, new_without_uring, &a), 0);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(a.rc, 0);
		assert_int_equal(a.setup_errno, ENOSYS);
		assert_int_equal(f->log.warnings, 0); /* an INFO line, not a warning */
		snprintf(f->new_log, sizeof(f->new_log), "%s", f->log.last);
		engine = SPK_BLK_ENGINE_SYNC; /* what the device must end up with */
	} else {
		assert_int_equal(spk_virtio_blk_new(&bc, &f->blk), 0);
	}
	f->engine = engine;
	probe(f);
	log_capture_start(&f->log);
	return f;
}

static int setup_uring(void **state)
{
	*state = make_fx(SPK_BLK_ENGINE_IO_URING, false, 0);
	return 0;
}

static int setup_sync(void **state)
{
	*state = make_fx(SPK_BLK_ENGINE_SYNC, false, 0);
	return 0;
}

static int setup_uring_ro(void **state)
{
	*state = make_fx(SPK_BLK_ENGINE_IO_URING, true, 0);
	return 0;
}

static int setup_sync_ro(void **state)
{
	*state = make_fx(SPK_BLK_ENGINE_SYNC, true, 0);
	return 0;
}

static int setup_uring_nofalloc(void **state)
{
	*state = make_fx(SPK_BLK_ENGINE_IO_URING, false, SPK_BLK_TEST_NO_FALLOCATE);
	return 0;
}

static int setup_sync_nofalloc(void **state)
{
	*state = make_fx(SPK_BLK_ENGINE_SYNC, false, SPK_BLK_TEST_NO_FALLOCATE);
	return 0;
}

static int setup_fallback(void **state)
{
	*state = make_fx(SPK_BLK_ENGINE_AUTO, false, TEST_NO_URING);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	log_capture_stop();
	spk_virtio_blk_free(f->blk);
	spk_evloop_free(f->loop);
	spk_pci_host_free(f->h);
	spk_bus_free(f->bus);
	vt_mem_fini(&f->m);
	close(f->fd);
	unlink(f->path);
	free(f);
	return 0;
}

/* ---- tests ---- */

static void test_identity(void **state)
{
	struct fx *f = *state;
	uint64_t feat = offered(f);

	assert_string_equal(spk_virtio_blk_engine_name(f->blk),
	                    f->engine == SPK_BLK_ENGINE_SYNC ? "sync" : "io_uring");
	assert_int_equal(spk_virtio_blk_size(f->blk), IMAGE);
	/* SEG_MAX, BLK_SIZE, FLUSH, TOPOLOGY, DISCARD, WRITE_ZEROES; VERSION_1 ... */
	assert_int_equal(feat & 0xffffff,
	                 (1u << 2) | (1u << 6) | (1u << 9) | (1u << 10) | (1u << 13) | (1u << 14));
	assert_true(feat & V1);
	assert_int_equal(mm_rd(f, f->device + 0, 8), SECTORS);   /* capacity */
	assert_int_equal(mm_rd(f, f->device + 12, 4), 254);      /* seg_max */
	assert_int_equal(mm_rd(f, f->device + 20, 4), 512);      /* blk_size */
	assert_int_equal(mm_rd(f, f->device + 36, 4), 1u << 22); /* max_discard_sectors */
	assert_int_equal(mm_rd(f, f->device + 40, 4), 16);       /* max_discard_seg */
	assert_int_equal(mm_rd(f, f->device + 48, 4), 1u << 17); /* max_write_zeroes_sectors */
	assert_int_equal(mm_rd(f, f->device + 56, 1), 1);        /* write_zeroes_may_unmap */
	assert_int_equal(mm_rd(f, f->device + 60, 4), 0);        /* past the config */
}

static void test_read_write(void **state)
{
	struct fx *f = *state;
	uint8_t buf[3 * 512];

	init_dev(f, V1 | F_FLUSH);
	/* read 3 sectors from sector 5: the image's bytes */
	assert_int_equal(req(f, T_IN, 5, 0, 3 * 512, true), S_OK);
	assert_int_equal(last_used_len(f), 3 * 512 + 1);
	for (unsigned i = 0; i < 3 * 512; i++)
		assert_int_equal(f->m.ram[DATA + i], pattern(5 * 512 + i));
	/* write them back to sector 100, split over two buffers */
	uint64_t h = header(f, 0, T_OUT, 100);
	const struct seg s[4] = {{h, 16, false},
	                         {DATA, 1000, false},
	                         {DATA + 1000, 3 * 512 - 1000, false},
	                         {h + 0x80, 1, true}};
	publish(f, s, 4);
	kick(f);
	wait_used(f, 2);
	assert_int_equal(req_status(f, 0), S_OK);
	assert_int_equal(last_used_len(f), 1);
	image_read(f, 100 * 512, buf, sizeof(buf));
	for (unsigned i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], pattern(5 * 512 + i));
	/* the last sector, and an empty read */
	assert_int_equal(req(f, T_IN, SECTORS - 1, 0, 512, true), S_OK);
	assert_int_equal(req(f, T_IN, 7, 0, 0, true), S_OK);
	struct spk_virtio_blk_stats st = stats(f);
	assert_int_equal(st.reads, 3);
	assert_int_equal(st.writes, 1);
	assert_int_equal(st.bytes_read, 4 * 512);
	assert_int_equal(st.bytes_written, 3 * 512);
	assert_int_equal(st.syncs, 0); /* FLUSH negotiated: writeback */
	assert_int_equal(f->log.warnings, 0);
}

/* Several requests in flight at once, answered in any order. */
static void test_many_in_flight(void **state)
{
	struct fx *f = *state;
	uint16_t heads[5];

	init_dev(f, V1 | F_FLUSH);
	for (unsigned k = 0; k < 5; k++) {
		uint64_t h = header(f, k, T_IN, 64ull * k);
		const struct seg s[3] = {
		    {h, 16, false}, {DATA + 0x8000ull * k, 0x8000, true}, {h + 0x80, 1, true}};
		heads[k] = publish(f, s, 3);
	}
	kick(f);
	wait_used(f, 5);
	for (unsigned k = 0; k < 5; k++) {
		assert_int_equal(req_status(f, k), S_OK);
		assert_int_equal(f->m.ram[DATA + 0x8000ull * k + 0x7fff],
		                 pattern(64 * 512 * k + 0x7fff));
	}
	(void)heads;
	assert_int_equal(stats(f).reads, 5);
}

/* k reads of 4 KiB, published and kicked at once. */
static void reads(struct fx *f, unsigned from, unsigned k)
{
	for (unsigned i = from; i < from + k; i++) {
		uint64_t h = header(f, i, T_IN, 8ull * i);
		const struct seg s[3] = {
		    {h, 16, false}, {DATA + 0x1000ull * i, 0x1000, true}, {h + 0x80, 1, true}};
		publish(f, s, 3);
	}
	kick(f);
}

/* Turn the loop a few times, whatever happens. */
static void turn(struct fx *f)
{
	for (int i = 0; i < 20; i++)
		spk_evloop_run_once(f->loop, 5);
}

/* A rate limit: what the buckets hold goes through, the rest waits in the
 * queue (no request is failed); a new limit (Firecracker's PATCH) lets it
 * go on; the refill timer does the rest. Nothing here depends on speed:
 * the first limit refills in a day. */
static void test_rate_limit(void **state)
{
	struct fx *f = *state;
	const struct spk_rate_limit slow = {.ops = {2, 1, 24ull * 3600 * 1000}};
	const struct spk_rate_limit fast = {.bandwidth = {0x2000, 0, 20}};
	const struct spk_rate_limit bad[] = {
	    {.ops = {5, 0, 0}},
	    {.bandwidth = {1, 0, SPK_RATE_REFILL_MAX_MS + 1}},
	    {.bandwidth = {(uint64_t)INT64_MAX + 1, 0, 10}},
	};
	struct spk_virtio_blk_stats st;

	init_dev(f, V1 | F_FLUSH);
	assert_int_equal(spk_virtio_blk_set_rate_limit(f->blk, &slow), 0);
	reads(f, 0, 5); /* 15 descriptors of the 16 */
	turn(f);
	assert_int_equal(used_idx(f), 3); /* 2 in the bucket and the one-time burst of 1 */
	st = stats(f);
	assert_int_equal(st.rate.ops, 3);
	assert_int_equal(st.rate.bytes, 3 * 0x1000);
	assert_true(st.rate.throttled >= 1);
	for (unsigned i = 3; i < 5; i++)
		assert_int_equal(req_status(f, i), 0xee); /* waiting, untouched */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(spk_virtio_blk_set_rate_limit(f->blk, &bad[i]), -EINVAL);
	assert_int_equal(spk_virtio_blk_set_rate_limit(f->blk, NULL), -EINVAL);
	assert_int_equal(spk_virtio_blk_set_rate_limit(NULL, &fast), -EINVAL);
	turn(f);
	assert_int_equal(used_idx(f), 3); /* the refused limits changed nothing */
	/* 8 KiB refilled every 20 ms: the two waiting reads go at once */
	assert_int_equal(spk_virtio_blk_set_rate_limit(f->blk, &fast), 0);
	wait_used(f, 5);
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(req_status(f, i), S_OK);
		assert_int_equal(f->m.ram[DATA + 0x1000ull * i + 0xfff], pattern(8 * 512 * i + 0xfff));
	}
	st = stats(f);
	assert_int_equal(st.rate.ops, 5);
	assert_int_equal(st.reads, 5);
	/* the bucket is empty now: four more reads (16 KiB) need refills,
	 * which the timer on the loop brings */
	reads(f, 5, 4);
	wait_used(f, 9);
	assert_int_equal(stats(f).rate.bytes, 9 * 0x1000);
	/* no limit at all again */
	assert_int_equal(spk_virtio_blk_set_rate_limit(f->blk, &(struct spk_rate_limit){0}), 0);
	reads(f, 9, 5);
	wait_used(f, 14);
}

static void test_beyond_the_end(void **state)
{
	struct fx *f = *state;
	uint8_t last[512];

	init_dev(f, V1 | F_FLUSH);
	image_read(f, IMAGE - 512, last, sizeof(last));
	assert_int_equal(req(f, T_IN, SECTORS, 0, 512, true), S_IOERR);
	assert_int_equal(last_used_len(f), 1);
	assert_int_equal(req(f, T_IN, SECTORS - 1, 0, 1024, true), S_IOERR); /* spans the end */
	assert_int_equal(req(f, T_IN, 1ull << 63, 0, 512, true), S_IOERR);
	assert_int_equal(req(f, T_IN, 0x0080000000000001ull, 0, 512, true),
	                 S_IOERR); /* *512 wraps */
	assert_int_equal(req(f, T_IN, UINT64_MAX, 0, 512, true), S_IOERR);
	memset(f->m.ram + DATA, 0xab, 1024);
	assert_int_equal(req(f, T_OUT, SECTORS - 1, 0, 1024, false), S_IOERR);
	assert_int_equal(req(f, T_OUT, SECTORS, 0, 512, false), S_IOERR);
	struct stat sb;
	assert_int_equal(fstat(f->fd, &sb), 0);
	assert_int_equal(sb.st_size, IMAGE);
	uint8_t now[512];
	image_read(f, IMAGE - 512, now, sizeof(now));
	assert_memory_equal(now, last, sizeof(now));
	assert_int_equal(stats(f).ioerr, 7);
	assert_int_equal(f->log.warnings, 0);
}

static void test_bad_requests(void **state)
{
	struct fx *f = *state;

	init_dev(f, V1 | F_FLUSH);
	assert_int_equal(req(f, T_IN, 0, 0, 100, true), S_IOERR);   /* not whole sectors */
	assert_int_equal(req(f, T_OUT, 0, 0, 513, false), S_IOERR); /* not whole sectors */
	assert_int_equal(req(f, T_IN, 0, 0, 512, false), S_IOERR);  /* data the device reads */
	assert_int_equal(req(f, T_OUT, 0, 0, 512, true), S_IOERR);  /* data the device writes */
	assert_int_equal(req(f, 10, 0, 0, 512, true), S_UNSUPP);    /* GET_LIFETIME */
	assert_int_equal(req(f, 0x12345678, 0, 0, 0, true), S_UNSUPP);
	assert_int_equal(req(f, 14, 0, 0, 0, true), S_UNSUPP); /* SECURE_ERASE */
	/* the image is untouched */
	uint8_t b[600];
	image_read(f, 0, b, sizeof(b));
	for (unsigned i = 0; i < sizeof(b); i++)
		assert_int_equal(b[i], pattern(i));
	assert_int_equal(f->log.warnings, 0);
	assert_false(status(f) & SPK_VIRTIO_S_NEEDS_RESET);
}

/* A driver that cannot be answered: the device needs a reset. */
static void broken(struct fx *f, const struct seg *s, unsigned n, const char *why)
{
	init_dev(f, V1 | F_FLUSH);
	unsigned before = f->log.warnings;
	publish(f, s, n);
	kick(f);
	settle(f);
	assert_true(status(f) & SPK_VIRTIO_S_NEEDS_RESET);
	assert_int_equal(used_idx(f), 0);
	assert_int_equal(f->log.warnings, before + 1);
	assert_non_null(strstr(f->log.last, "virtio-blk (00:"));
	assert_non_null(strstr(f->log.last, why));
	/* a reset brings it back */
	init_dev(f, V1 | F_FLUSH);
	assert_int_equal(req(f, T_IN, 1, 0, 512, true), S_OK);
}

static void test_broken_driver(void **state)
{
	struct fx *f = *state;
	uint64_t h = header(f, 0, T_IN, 0);

	broken(f, (struct seg[]){{h, 8, false}, {DATA, 512, true}, {h + 0x80, 1, true}}, 3,
	       "a header of 8 bytes");
	broken(f, (struct seg[]){{h, 16, false}, {DATA, 512, false}}, 2,
	       "no writable byte for the status");
	broken(f, (struct seg[]){{DATA, 512, true}}, 1, "a header of 0 bytes");
}

static void test_flush(void **state)
{
	struct fx *f = *state;

	init_dev(f, V1 | F_FLUSH);
	assert_int_equal(req(f, T_OUT, 3, 0, 512, false), S_OK);
	assert_int_equal(stats(f).syncs, 0);
	assert_int_equal(req(f, T_FLUSH, 0, 0, 0, true), S_OK);
	assert_int_equal(stats(f).syncs, 1);
	assert_int_equal(stats(f).flushes, 1);
	/* without FLUSH the disk is write-through: a sync after every write */
	init_dev(f, V1);
	assert_int_equal(req(f, T_OUT, 3, 0, 512, false), S_OK);
	assert_int_equal(req(f, T_OUT, 4, 0, 1024, false), S_OK);
	assert_int_equal(stats(f).syncs, 3);
	assert_int_equal(req(f, T_IN, 4, 0, 512, true), S_OK);
	assert_int_equal(stats(f).syncs, 3);
}

static void test_get_id(void **state)
{
	struct fx *f = *state;

	init_dev(f, V1 | F_FLUSH);
	memset(f->m.ram + DATA, 0x55, 64);
	assert_int_equal(req(f, T_GET_ID, 0, 0, 20, true), S_OK);
	assert_int_equal(last_used_len(f), 21);
	assert_memory_equal(f->m.ram + DATA, "drive0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
	assert_int_equal(f->m.ram[DATA + 20], 0x55);
	assert_int_equal(req(f, T_GET_ID, 0, 0, 10, true), S_IOERR); /* too short */
	assert_int_equal(req(f, T_GET_ID, 0, 0, 0, true), S_IOERR);
	assert_int_equal(stats(f).get_ids, 1);
}

static bool zero(struct fx *f, uint64_t off, size_t n)
{
	uint8_t b[8192];

	assert_true(n <= sizeof(b));
	image_read(f, off, b, n);
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static bool intact(struct fx *f, uint64_t off, size_t n)
{
	uint8_t b[8192];

	assert_true(n <= sizeof(b));
	image_read(f, off, b, n);
	for (size_t i = 0; i < n; i++)
		if (b[i] != pattern(off + i))
			return false;
	return true;
}

static void test_discard_write_zeroes(void **state)
{
	struct fx *f = *state;

	init_dev(f, V1 | F_FLUSH);
	/* two ranges of write-zeroes, one with unmap */
	const uint32_t wz[2][3] = {{16, 8, 0}, {40, 3, 1}};
	assert_int_equal(ranges(f, T_WZ, wz, 2), S_OK);
	assert_true(intact(f, 15 * 512, 512));
	assert_true(zero(f, 16 * 512, 8 * 512));
	assert_true(intact(f, 24 * 512, 512));
	assert_true(zero(f, 40 * 512, 3 * 512));
	assert_true(intact(f, 43 * 512, 512));
	/* discard: the image keeps its size */
	const uint32_t d[1][3] = {{256, 16, 0}};
	assert_int_equal(ranges(f, T_DISCARD, d, 1), S_OK);
	struct stat sb;
	assert_int_equal(fstat(f->fd, &sb), 0);
	assert_int_equal(sb.st_size, IMAGE);
	assert_true(intact(f, 255 * 512, 512));
	assert_true(intact(f, 272 * 512, 512));
	struct spk_virtio_blk_stats st = stats(f);
	assert_int_equal(st.write_zeroes, 1);
	assert_int_equal(st.discards, 1);
	assert_int_equal(st.zero_fill, 0);
	assert_true(zero(f, 256 * 512, 16 * 512)); /* the hole reads as zeros */
}

static void test_bad_ranges(void **state)
{
	struct fx *f = *state;

	init_dev(f, V1 | F_FLUSH);
	assert_int_equal(ranges(f, T_DISCARD, (const uint32_t[][3]){{0, 8, 1}}, 1), S_UNSUPP);
	assert_int_equal(ranges(f, T_WZ, (const uint32_t[][3]){{0, 8, 2}}, 1), S_UNSUPP);
	assert_int_equal(ranges(f, T_WZ, (const uint32_t[][3]){{SECTORS - 4, 8, 0}}, 1), S_IOERR);
	assert_int_equal(ranges(f, T_DISCARD, (const uint32_t[][3]){{SECTORS, 1, 0}}, 1), S_IOERR);
	assert_int_equal(ranges(f, T_WZ, (const uint32_t[][3]){{0, (1u << 17) + 1, 0}}, 1),
	                 S_IOERR);
	assert_int_equal(
	    ranges(f, T_DISCARD, (const uint32_t[][3]){{0, 8, 0}, {UINT32_MAX, UINT32_MAX, 0}}, 2),
	    S_IOERR);
	uint32_t many[17][3] = {{0}};
	for (unsigned i = 0; i < 17; i++)
		many[i][0] = i, many[i][1] = 1;
	assert_int_equal(ranges(f, T_DISCARD, many, 17), S_IOERR); /* more than max_discard_seg */
	assert_int_equal(req(f, T_DISCARD, 0, 0x70000, 20, false), S_IOERR); /* not 16-byte units */
	assert_int_equal(req(f, T_WZ, 0, 0, 0, false), S_IOERR);             /* no range */
	assert_true(intact(f, 0, 8192));
	assert_int_equal(f->log.warnings, 0);
}

static void test_zero_fill(void **state)
{
	struct fx *f = *state;

	init_dev(f, V1 | F_FLUSH);
	/* 2.5 MiB of zeros are written in 1 MiB pieces; then a range with unmap */
	const uint32_t wz[2][3] = {{1, 5000, 0}, {6000, 7, 1}};
	assert_int_equal(ranges(f, T_WZ, wz, 2), S_OK);
	assert_true(intact(f, 0, 512));
	for (unsigned s = 1; s < 5001; s += 16)
		assert_true(zero(f, s * 512ull, 512));
	assert_true(zero(f, 5000 * 512ull, 512));
	assert_true(intact(f, 5001 * 512, 512));
	assert_true(zero(f, 6000 * 512, 7 * 512));
	assert_true(intact(f, 6007 * 512, 512));
	assert_int_equal(stats(f).zero_fill, 2);
	/* a discard the image cannot take is a hint: nothing changes */
	assert_int_equal(ranges(f, T_DISCARD, (const uint32_t[][3]){{7000, 8, 0}}, 1), S_OK);
	assert_true(intact(f, 7000 * 512, 8 * 512));
}

static void test_read_only(void **state)
{
	struct fx *f = *state;

	assert_true(offered(f) & F_RO);
	init_dev(f, V1 | F_FLUSH | F_RO);
	assert_int_equal(req(f, T_IN, 2, 0, 512, true), S_OK);
	assert_int_equal(f->m.ram[DATA + 7], pattern(2 * 512 + 7));
	memset(f->m.ram + DATA, 0, 512);
	assert_int_equal(req(f, T_OUT, 2, 0, 512, false), S_IOERR);
	assert_int_equal(ranges(f, T_DISCARD, (const uint32_t[][3]){{0, 8, 0}}, 1), S_IOERR);
	assert_int_equal(ranges(f, T_WZ, (const uint32_t[][3]){{0, 8, 0}}, 1), S_IOERR);
	assert_int_equal(ranges(f, T_WZ, (const uint32_t[][3]){{0, 8, 1}}, 1), S_IOERR);
	assert_int_equal(req(f, T_FLUSH, 0, 0, 0, true), S_OK);
	assert_true(intact(f, 0, 8192));
	assert_int_equal(stats(f).ioerr, 4);
}

/* A reset with requests in flight: they finish before status reads 0, and are not answered. */
static void test_reset_in_flight(void **state)
{
	struct fx *f = *state;

	init_dev(f, V1 | F_FLUSH);
	for (unsigned k = 0; k < 4; k++) {
		uint64_t h = header(f, k, T_IN, 8ull * k);
		const struct seg s[3] = {
		    {h, 16, false}, {DATA + 0x10000ull * k, 0x10000, true}, {h + 0x80, 1, true}};
		publish(f, s, 3);
	}
	kick(f);
	spk_evloop_run_once(f->loop, 100); /* the kick: requests submitted, not reaped */
	mm_wr(f, f->common + STATUS, 1, 0);
	assert_int_equal(status(f), 0);
	settle(f);
	assert_true(used_idx(f) <= 4);
	uint16_t done = used_idx(f);
	init_dev(f, V1 | F_FLUSH);
	assert_int_equal(req(f, T_IN, 1, 0, 512, true), S_OK);
	assert_int_equal(used_idx(f), 1);
	(void)done;
}

static void test_refused_images(void **state)
{
	struct fx *f = *state;
	struct spk_virtio_blk *b = NULL;
	char odd[64];
	const char *tmp = getenv("TMPDIR");

	snprintf(odd, sizeof(odd), "%s/blk-odd-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(odd);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1000), 0);
	close(fd);
	struct spk_virtio_blk_config bc = {
	    .pci = f->h, .slot = -1, .mem = f->m.mem, .path = odd, .id = "drive7"};
	assert_int_equal(spk_virtio_blk_new(&bc, &b), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "drive7"));
	assert_non_null(strstr(spk_last_error(), "1000 bytes, not a multiple of 512"));
	unlink(odd);
	bc.path = "/nonexistent/disk.img";
	assert_int_equal(spk_virtio_blk_new(&bc, &b), -ENOENT);
	assert_non_null(strstr(spk_last_error(), "/nonexistent/disk.img"));
	bc.path = "/";
	assert_true(spk_virtio_blk_new(&bc, &b) < 0); /* a directory */
	bc.read_only = true;
	assert_int_equal(spk_virtio_blk_new(&bc, &b), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "not a regular file or block device"));
	bc.read_only = false;
	bc.path = f->path;
	bc.engine = SPK_BLK_ENGINE_IO_URING; /* no loop */
	assert_true(spk_virtio_blk_new(&bc, &b) < 0);
	assert_non_null(strstr(spk_last_error(), "needs an event loop"));
	bc.engine = SPK_BLK_ENGINE_AUTO; /* without a loop: sync */
	assert_int_equal(spk_virtio_blk_new(&bc, &b), 0);
	assert_string_equal(spk_virtio_blk_engine_name(b), "sync");
	spk_virtio_blk_free(b);
}

/* Write a size-byte image whose byte i is ~pattern(i); its path in path. */
static void other_image(char *path, size_t len, off_t size)
{
	const char *tmp = getenv("TMPDIR");
	uint8_t *img = malloc((size_t)size);

	assert_non_null(img);
	snprintf(path, len, "%s/blk-swap-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	for (off_t i = 0; i < size; i++)
		img[i] = (uint8_t)~pattern((uint64_t)i);
	assert_int_equal(pwrite(fd, img, (size_t)size, 0), size);
	free(img);
	close(fd);
}

/*
 * PATCH /drives with a new path_on_host after boot: requests in flight
 * finish on the old file, then the disk is the new file (data, capacity,
 * bounds), with a new config generation and a config interrupt; a file
 * that does not open or whose size is not a multiple of 512 changes
 * nothing.
 */
static void test_swap(void **state)
{
	struct fx *f = *state;
	const off_t new_size = 1 << 20;
	char other[64], odd[80];
	uint8_t buf[512];

	init_dev(f, V1 | F_FLUSH);
	/* four 64 KiB reads in flight on the old image (io_uring: submitted, not reaped) */
	for (unsigned k = 0; k < 4; k++) {
		uint64_t h = header(f, k, T_IN, 128ull * k);
		const struct seg s[3] = {
		    {h, 16, false}, {DATA + 0x10000ull * k, 0x10000, true}, {h + 0x80, 1, true}};
		publish(f, s, 3);
	}
	kick(f);
	spk_evloop_run_once(f->loop, 100);
	(void)mm_rd(f, f->isr, 1); /* clears the ISR */
	uint8_t gen = (uint8_t)mm_rd(f, f->common + 0x15, 1);
	f->irq.level = false;

	other_image(other, sizeof(other), new_size);
	assert_int_equal(spk_virtio_blk_swap(f->blk, other), 0);
	/* the reads in flight were answered from the old file */
	assert_int_equal(used_idx(f), 4);
	for (unsigned k = 0; k < 4; k++) {
		assert_int_equal(req_status(f, k), S_OK);
		for (uint64_t i = 0; i < 0x10000; i += 0x1001)
			assert_int_equal(f->m.ram[DATA + 0x10000ull * k + i],
			                 pattern(128 * 512 * k + i));
	}
	/* the new capacity, a new generation, a config interrupt (ISR bit 1) */
	assert_int_equal(spk_virtio_blk_size(f->blk), new_size);
	assert_int_equal(mm_rd(f, f->device + 0, 8), new_size / 512);
	assert_int_equal((uint8_t)mm_rd(f, f->common + 0x15, 1), (uint8_t)(gen + 1));
	assert_true(f->irq.level);
	assert_int_equal(mm_rd(f, f->isr, 1) & 2, 2);
	/* reads and writes reach the new file, within its bounds */
	assert_int_equal(req(f, T_IN, 5, 0, 512, true), S_OK);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(f->m.ram[DATA + i], (uint8_t)~pattern(5 * 512 + i));
	assert_int_equal(req(f, T_IN, new_size / 512 - 1, 0, 512, true), S_OK);
	assert_int_equal(req(f, T_IN, new_size / 512, 0, 512, true), S_IOERR);
	memset(f->m.ram + DATA, 0x3c, 512);
	assert_int_equal(req(f, T_OUT, 9, 0, 512, false), S_OK);
	int nfd = open(other, O_RDONLY);
	assert_true(nfd >= 0);
	assert_int_equal(pread(nfd, buf, 512, 9 * 512), 512);
	close(nfd);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(buf[i], 0x3c);
	image_read(f, 9 * 512, buf, 512); /* the old file is untouched */
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(buf[i], pattern(9 * 512 + i));

	/* refused: no file, a size that is not a multiple of 512; nothing changes */
	gen = (uint8_t)mm_rd(f, f->common + 0x15, 1);
	assert_int_equal(spk_virtio_blk_swap(f->blk, "/nonexistent/disk.img"), -ENOENT);
	assert_non_null(strstr(spk_last_error(), "/nonexistent/disk.img"));
	snprintf(odd, sizeof(odd), "%s.odd", other);
	int ofd = open(odd, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(ofd >= 0);
	assert_int_equal(ftruncate(ofd, 4097), 0);
	close(ofd);
	assert_int_equal(spk_virtio_blk_swap(f->blk, odd), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "4097 bytes, not a multiple of 512"));
	assert_non_null(strstr(spk_last_error(), "drive0"));
	assert_true(spk_virtio_blk_swap(f->blk, "/") < 0); /* a directory */
	assert_int_equal(spk_virtio_blk_swap(NULL, other), -EINVAL);
	assert_int_equal(mm_rd(f, f->device + 0, 8), new_size / 512);
	assert_int_equal((uint8_t)mm_rd(f, f->common + 0x15, 1), gen);
	assert_int_equal(req(f, T_IN, 5, 0, 512, true), S_OK);
	assert_int_equal(f->m.ram[DATA + 7], (uint8_t)~pattern(5 * 512 + 7));
	unlink(odd);
	unlink(other);
	assert_int_equal(f->log.warnings, 0);
}

/*
 * AUTO with an event loop on a kernel where io_uring_setup fails: the device
 * falls back to preadv/pwritev, says so in one INFO line, and works (the
 * read/write, many-in-flight and flush cases run on it after this one).
 */
static void test_fallback(void **state)
{
	struct fx *f = *state;

	assert_string_equal(spk_virtio_blk_engine_name(f->blk), "sync");
	assert_string_equal(f->new_log, "virtio-blk drive0: io_uring is not available (Function "
	                                "not implemented): preadv/pwritev");
}

/* Snapshot: the device state loads into a device on a disk of the same
 * size and the restored device answers; another size or mode is refused. */
static void test_snapshot(void **state)
{
	struct fx *f = *state, *g = make_fx(f->engine, false, 0), *ro;
	struct spk_virtio *vf = spk_virtio_blk_dev(f->blk), *vg = spk_virtio_blk_dev(g->blk);

	init_dev(f, V1 | F_FLUSH);
	assert_int_equal(req(f, T_IN, 5, 0, 512, true), S_OK);
	memcpy(g->m.ram, f->m.ram, VT_RAM); /* guest memory first */
	round_trip("vda", spk_virtio_state_ops(vf), vf, vg);
	assert_int_equal(status(g), status(f));
	/* the restored device goes on where the old one was */
	assert_int_equal(req(g, T_IN, 9, 0, 512, true), S_OK);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(g->m.ram[DATA + i], pattern(9 * 512 + i));
	assert_int_equal(req(f, T_IN, 9, 0, 512, true), S_OK);
	assert_int_equal(used_idx(g), used_idx(f));

	const struct patch bad[] = {
	    {"capacity", SPK_SNAP_U64, SECTORS + 1, NULL, 0, "this disk has"},
	    {"read_only", SPK_SNAP_U8, 1, NULL, 0, "this disk is writable"},
	    {"writeback", SPK_SNAP_U8, 2, NULL, 0, "2 is more than 1"},
	};
	hostile("vda", spk_virtio_state_ops(vg), vg, bad, sizeof(bad) / sizeof(bad[0]));
	/* a read-only disk does not take a writable disk's state */
	ro = make_fx(f->engine, true, 0);
	memcpy(ro->m.ram, f->m.ram, VT_RAM);
	void *bytes;
	size_t len;
	struct spk_snap_file *sf = save_one("vda", spk_virtio_state_ops(vf), vf, &bytes, &len);
	struct spk_virtio *vr = spk_virtio_blk_dev(ro->blk);
	assert_int_equal(spk_snap_load_device(sf, "vda", spk_virtio_state_ops(vr), vr), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "field 'read_only'"));
	assert_int_equal(spk_virtio_status(vr), 0);
	spk_snap_close(sf);
	free(bytes);
	teardown((void **)&ro);
	teardown((void **)&g);
	log_capture_start(&f->log);
}

int main(void)
{
#define BOTH(fn)                                                                                   \
	cmocka_unit_test_setup_teardown(fn, setup_uring, teardown),                                \
	    cmocka_unit_test_setup_teardown(fn, setup_sync, teardown)
	const struct CMUnitTest tests[] = {
	    BOTH(test_identity),
	    BOTH(test_read_write),
	    BOTH(test_many_in_flight),
	    BOTH(test_rate_limit),
	    BOTH(test_beyond_the_end),
	    BOTH(test_bad_requests),
	    BOTH(test_broken_driver),
	    BOTH(test_flush),
	    BOTH(test_get_id),
	    BOTH(test_discard_write_zeroes),
	    BOTH(test_bad_ranges),
	    BOTH(test_reset_in_flight),
	    BOTH(test_swap),
	    BOTH(test_snapshot),
	    cmocka_unit_test_setup_teardown(test_zero_fill, setup_uring_nofalloc, teardown),
	    cmocka_unit_test_setup_teardown(test_zero_fill, setup_sync_nofalloc, teardown),
	    cmocka_unit_test_setup_teardown(test_read_only, setup_uring_ro, teardown),
	    cmocka_unit_test_setup_teardown(test_read_only, setup_sync_ro, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_images, setup_sync, teardown),
	    cmocka_unit_test_setup_teardown(test_fallback, setup_fallback, teardown),
	    cmocka_unit_test_setup_teardown(test_identity, setup_fallback, teardown),
	    cmocka_unit_test_setup_teardown(test_read_write, setup_fallback, teardown),
	    cmocka_unit_test_setup_teardown(test_many_in_flight, setup_fallback, teardown),
	    cmocka_unit_test_setup_teardown(test_flush, setup_fallback, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
