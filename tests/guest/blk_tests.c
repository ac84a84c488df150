/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest tests of virtio-blk: the guest program t_virtio_blk drives the
 * device through the guest SDK's virtio-PCI driver at CPL3, in a VM with
 * KVM's irqchip, the PCI host and an event loop thread; the host checks
 * the image file and the device's counters. Usage: blk_tests CASE. Exit
 * status 77 (skip) where /dev/kvm is not usable.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sparkler/evloop.h>
#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/virtio.h>
#include <sparkler/virtio_blk.h>

#include "harness.h"

#define IMAGE     (16ull << 20)
#define TOTAL     (8ull << 20) /* what the guest writes (guest/tests/virtio_blk.c) */

/* The guest's cases. */
enum {
	CASE_RW = 1,
	CASE_VERIFY,
	CASE_RO,
	CASE_FLUSH,
	CASE_GET_ID,
	CASE_DISCARD,
	CASE_BEYOND,
	CASE_HOSTILE,
};

struct bt {
	struct th t;
	struct spk_evloop *loop;
	struct spk_pci_host *pci;
	struct spk_virtio_blk *blk;
	struct th_log log;
};

static char image[256];

static void bt_setup(struct bt *b, bool ro, enum spk_blk_engine engine)
{
	const struct th_opts o = {.irqchip = SPK_IRQCHIP_KERNEL};

	memset(b, 0, sizeof(*b));
	th_log_capture(&b->log, SPK_LOG_WARN);
	th_setup(&b->t, "t_virtio_blk", &o);
	CHECK_OK(spk_evloop_new("virtio", &b->loop));
	const struct spk_pci_host_config hc = spk_pc_pci_host_config(b->t.vm);
	CHECK_OK(spk_pci_host_new(&hc, &b->pci));
	const struct spk_virtio_blk_config bc = {.pci = b->pci,
	                                         .slot = -1,
	                                         .mem = spk_vm_mem(b->t.vm),
	                                         .loop = b->loop,
	                                         .path = image,
	                                         .id = "drive0",
	                                         .read_only = ro,
	                                         .engine = engine};
	CHECK_OK(spk_virtio_blk_new(&bc, &b->blk));
	CHECK_OK(spk_evloop_start(b->loop));
	printf("engine: %s\n", spk_virtio_blk_engine_name(b->blk));
}

static void bt_teardown(struct bt *b)
{
	spk_evloop_stop(b->loop);
	spk_virtio_blk_free(b->blk);
	spk_pci_host_free(b->pci);
	spk_evloop_free(b->loop);
	th_teardown(&b->t);
	th_log_stop(&b->log);
}

/* Run to the guest's SYNC stage; answer it with value; what the guest sent. */
static uint64_t sync_at(struct bt *b, uint64_t stage, uint64_t answer)
{
	struct spk_exit e;

	th_run(&b->t, &e);
	struct spk_ucall uc = th_expect_ucall(&b->t, &e, SPK_UCALL_SYNC);
	CHECK_EQ(uc.args[0], stage);
	CHECK_OK(spk_exit_complete_read(&e, answer));
	return uc.args[1];
}

/* Start the guest on a case with the pattern's seed. */
static void start(struct bt *b, uint64_t which, uint64_t seed)
{
	sync_at(b, 1, which);
	sync_at(b, 2, seed);
}

static struct spk_virtio_blk_stats stats(struct bt *b)
{
	struct spk_virtio_blk_stats s;

	spk_virtio_blk_get_stats(b->blk, &s);
	return s;
}

/* ---- the image ---------------------------------------------------------------------- */

/* The guest's pattern (guest/tests/virtio_blk.c). */
static uint64_t word_at(uint64_t seed, uint64_t off)
{
	uint64_t z = seed + off * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void make_image(uint64_t size, uint64_t seed, uint64_t pattern_bytes)
{
	const char *tmp = getenv("TMPDIR");
	uint64_t w;
	int fd;

	snprintf(image, sizeof(image), "%s/blk-guest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	CHECK((fd = mkstemp(image)) >= 0, "mkstemp: %s", strerror(errno));
	CHECK(ftruncate(fd, (off_t)size) == 0, "ftruncate");
	for (uint64_t off = 0; off < pattern_bytes; off += 8) {
		w = word_at(seed, off);
		CHECK(pwrite(fd, &w, 8, (off_t)off) == 8, "pwrite");
	}
	close(fd);
}

/* Does [off, off + n) of the image hold the pattern (or zeros, seed 0)? */
static bool image_has(uint64_t seed, uint64_t off, uint64_t n)
{
	static uint64_t buf[1 << 16];
	int fd = open(image, O_RDONLY | O_CLOEXEC);
	bool ok = fd >= 0;

	for (uint64_t at = off; ok && at < off + n; at += sizeof(buf)) {
		uint64_t len = off + n - at < sizeof(buf) ? off + n - at : sizeof(buf);

		ok = pread(fd, buf, len, (off_t)at) == (ssize_t)len;
		for (uint64_t i = 0; ok && i < len / 8; i++)
			ok = buf[i] == (seed ? word_at(seed, at + 8 * i) : 0);
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

static uint64_t image_size(void)
{
	struct stat sb;

	CHECK(stat(image, &sb) == 0, "stat %s", image);
	return (uint64_t)sb.st_size;
}

/* ---- cases ------------------------------------------------------------------------ */

static void rw_then_verify(enum spk_blk_engine engine)
{
	const uint64_t seed = 0x5eed0001;
	struct bt b;

	make_image(IMAGE, 0, 0);
	bt_setup(&b, false, engine);
	start(&b, CASE_RW, seed);
	CHECK_EQ(sync_at(&b, 3, 0), IMAGE / 512); /* the capacity the guest read */
	th_run_to_done(&b.t);
	struct spk_virtio_blk_stats s = stats(&b);
	printf("reads %llu (%llu bytes), writes %llu (%llu bytes), %u in flight at most\n",
	       (unsigned long long)s.reads, (unsigned long long)s.bytes_read,
	       (unsigned long long)s.writes, (unsigned long long)s.bytes_written, s.inflight_max);
	CHECK_EQ(s.bytes_written, TOTAL);
	CHECK_EQ(s.bytes_read, TOTAL);
	CHECK_EQ(s.writes, TOTAL / (256 << 10));
	CHECK_EQ(s.flushes, 1);
	CHECK_EQ(s.ioerr + s.unsupp, 0);
	if (engine != SPK_BLK_ENGINE_SYNC)
		CHECK(s.inflight_max > 1, "requests overlapped: %u", s.inflight_max);
	CHECK(b.log.n == 0, "no warnings: %s", b.log.line[0]);
	bt_teardown(&b);
	CHECK(image_has(seed, 0, TOTAL), "the image holds what the guest wrote");
	CHECK(image_has(0, TOTAL, IMAGE - TOTAL), "and nothing past it");
	CHECK_EQ(image_size(), IMAGE);

	/* a new VM on the same image reads it back */
	bt_setup(&b, false, engine);
	start(&b, CASE_VERIFY, seed);
	th_run_to_done(&b.t);
	CHECK_EQ(stats(&b).bytes_read, TOTAL);
	bt_teardown(&b);
	unlink(image);
}

static void case_rw(void)
{
	rw_then_verify(SPK_BLK_ENGINE_IO_URING);
}

static void case_rw_sync(void)
{
	rw_then_verify(SPK_BLK_ENGINE_SYNC);
}

static void read_only(enum spk_blk_engine engine)
{
	const uint64_t seed = 0x5eed0002;
	struct bt b;

	make_image(IMAGE, seed, 1 << 20);
	chmod(image, 0444); /* opened O_RDONLY: root could write it, the device does not */
	bt_setup(&b, true, engine);
	start(&b, CASE_RO, seed);
	th_run_to_done(&b.t);
	struct spk_virtio_blk_stats s = stats(&b);
	CHECK_EQ(s.ioerr, 4);
	CHECK_EQ(s.writes + s.discards + s.write_zeroes, 0);
	CHECK_EQ(s.reads, 2);
	bt_teardown(&b);
	CHECK(image_has(seed, 0, 1 << 20), "the image is untouched");
	unlink(image);
}

static void case_ro(void)
{
	read_only(SPK_BLK_ENGINE_IO_URING);
}

static void case_ro_sync(void)
{
	read_only(SPK_BLK_ENGINE_SYNC);
}

static void case_flush(void)
{
	struct bt b;

	make_image(IMAGE, 0, 0);
	bt_setup(&b, false, SPK_BLK_ENGINE_AUTO);
	start(&b, CASE_FLUSH, 7);
	sync_at(&b, 3, 0);
	CHECK_EQ(stats(&b).syncs, 0); /* FLUSH negotiated: a write alone does not sync */
	sync_at(&b, 4, 0);
	CHECK_EQ(stats(&b).syncs, 1); /* the flush */
	CHECK_EQ(stats(&b).flushes, 1);
	sync_at(&b, 5, 0);
	CHECK_EQ(stats(&b).syncs, 3); /* write-through without FLUSH */
	th_run_to_done(&b.t);
	bt_teardown(&b);
	unlink(image);
}

static void case_get_id(void)
{
	struct bt b;

	make_image(IMAGE, 0, 0);
	bt_setup(&b, false, SPK_BLK_ENGINE_AUTO);
	start(&b, CASE_GET_ID, 7);
	th_run_to_done(&b.t);
	CHECK_EQ(stats(&b).get_ids, 1);
	CHECK_EQ(stats(&b).ioerr, 1);
	bt_teardown(&b);
	unlink(image);
}

static void discard(enum spk_blk_engine engine)
{
	const uint64_t seed = 0x5eed0003;
	struct bt b;

	make_image(IMAGE, 0, 0);
	bt_setup(&b, false, engine);
	start(&b, CASE_DISCARD, seed);
	th_run_to_done(&b.t);
	struct spk_virtio_blk_stats s = stats(&b);
	CHECK_EQ(s.write_zeroes, 1);
	CHECK_EQ(s.discards, 1);
	CHECK_EQ(s.unsupp, 1);
	CHECK_EQ(s.ioerr, 1);
	bt_teardown(&b);
	CHECK(image_has(seed, 0, 8 * 512), "sectors 0-7 kept");
	CHECK(image_has(0, 8 * 512, 16 * 512), "sectors 8-23 zeroed");
	CHECK(image_has(seed, 24 * 512, 8 * 512), "sectors 24-31 kept");
	CHECK(image_has(0, 32 * 512, 8 * 512), "sectors 32-39 discarded (a hole)");
	CHECK(image_has(seed, 40 * 512, 24 * 512), "sectors 40-63 kept");
	CHECK_EQ(image_size(), IMAGE);
	unlink(image);
}

static void case_discard(void)
{
	discard(SPK_BLK_ENGINE_IO_URING);
}

static void case_discard_sync(void)
{
	discard(SPK_BLK_ENGINE_SYNC);
}

static void case_beyond(void)
{
	const uint64_t seed = 0x5eed0004;
	struct bt b;

	make_image(IMAGE, seed, IMAGE);
	bt_setup(&b, false, SPK_BLK_ENGINE_AUTO);
	start(&b, CASE_BEYOND, seed);
	th_run_to_done(&b.t);
	CHECK_EQ(stats(&b).ioerr, 7);
	CHECK_EQ(stats(&b).reads, 1);
	bt_teardown(&b);
	CHECK_EQ(image_size(), IMAGE);
	CHECK(image_has(seed, IMAGE - 4096, 4096), "the last sectors are untouched");
	unlink(image);
}

static unsigned log_count(struct bt *b, const char *what)
{
	return th_log_count(&b->log, (const char *const[]){"virtio-blk (00:0", "queue 0", what,
	                                                   "needs reset", NULL});
}

static void hostile(enum spk_blk_engine engine)
{
	struct bt b;

	make_image(IMAGE, 0, 0);
	bt_setup(&b, false, engine);
	start(&b, CASE_HOSTILE, 7);
	th_run_to_done(&b.t);
	struct spk_virtio_blk_stats s = stats(&b);
	CHECK_EQ(s.ioerr, 4);
	CHECK_EQ(s.unsupp, 1);
	CHECK_EQ(s.reads, 3); /* one after each reset */
	for (unsigned i = 0; i < b.log.n; i++)
		printf("logged: %s\n", b.log.line[i]);
	CHECK(b.log.n == 3, "three log lines, got %u", b.log.n);
	CHECK_EQ(log_count(&b, "a header of 8 bytes, need 16"), 1);
	CHECK_EQ(log_count(&b, "no writable byte for the status"), 1);
	CHECK_EQ(log_count(&b, "a header of 0 bytes, need 16"), 1);
	bt_teardown(&b);
	CHECK(image_has(0, 0, 1 << 20), "nothing was written");
	unlink(image);
}

static void case_hostile(void)
{
	hostile(SPK_BLK_ENGINE_IO_URING);
}

static void case_hostile_sync(void)
{
	hostile(SPK_BLK_ENGINE_SYNC);
}

/* ------------------------------------------------------------------------------------ */

static const struct th_case cases[] = {
    {"rw", case_rw},
    {"rw_sync", case_rw_sync},
    {"ro", case_ro},
    {"ro_sync", case_ro_sync},
    {"flush", case_flush},
    {"get_id", case_get_id},
    {"discard", case_discard},
    {"discard_sync", case_discard_sync},
    {"beyond", case_beyond},
    {"hostile", case_hostile},
    {"hostile_sync", case_hostile_sync},
};

int main(int argc, char **argv)
{
	return th_main(argc, argv, cases, SPK_ARRAY_SIZE_T(cases));
}
