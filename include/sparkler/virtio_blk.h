/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk (virtio 1.2 section 5.2) over a raw image: a regular file or
 * a block device whose size is a multiple of 512 bytes. One request
 * queue; IN, OUT, FLUSH, GET_ID, DISCARD and WRITE_ZEROES.
 *
 * I/O goes through io_uring when the kernel allows it (completions come
 * back on the event loop through an eventfd), else through preadv,
 * pwritev, fdatasync and fallocate called on the event loop thread, a
 * bounded batch per turn. Either way no vCPU thread ever waits for the
 * disk, except for a device reset, which waits for the requests in flight
 * (the driver may reuse their buffers once it reads status 0 back).
 *
 * Every request is checked against the image at both ends (sector and
 * length, without overflow); a read-only disk is opened O_RDONLY and
 * answers writes, discards and write-zeroes with VIRTIO_BLK_S_IOERR.
 */
#ifndef SPARKLER_VIRTIO_BLK_H
#define SPARKLER_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include <sparkler/ratelimit.h>
#include <sparkler/virtio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum spk_blk_engine {
	SPK_BLK_ENGINE_AUTO = 0, /* io_uring when the kernel allows it, else sync */
	SPK_BLK_ENGINE_IO_URING, /* io_uring, or spk_virtio_blk_new fails */
	SPK_BLK_ENGINE_SYNC,     /* preadv/pwritev on the event loop thread */
};

/* Test hooks (0 in production). */
#define SPK_BLK_TEST_NO_FALLOCATE 1u /* act as if fallocate were unsupported */

struct spk_virtio_blk_config {
	struct spk_pci_host *pci;
	int slot; /* -1: the first free */
	struct spk_mem *mem;
	struct spk_evloop *loop; /* io_uring needs one; NULL: sync, on the notifying thread */
	const char *path;        /* the image */
	const char *id;          /* the drive's name: GET_ID's serial (20 bytes) and messages */
	bool read_only;
	enum spk_blk_engine engine;
	struct spk_rate_limit rate_limit; /* all zero: none (sparkler/ratelimit.h) */
	unsigned test_flags; /* SPK_BLK_TEST_* */
};

/*
 * The contract (the library's rules: vcpu.h). NULL device or pointer
 * arguments are refused with a message: -EINVAL, a NULL or zero return,
 * or (get_stats) nothing done and *out zeroed. Every call here is
 * thread-safe (the device's lock) and none is signal-safe.
 *
 * Open the image and make the device, any time before the VM runs; cfg is
 * copied (pci, mem and loop are borrowed and must outlive the device).
 * 0 and *out (the caller owns it), or -errno with spk_last_error() naming
 * the drive and what is wrong (a missing file, a size that is not a
 * multiple of 512, io_uring refused when it was required), *out untouched.
 */
struct spk_virtio_blk;
int spk_virtio_blk_new(const struct spk_virtio_blk_config *cfg, struct spk_virtio_blk **out);
/* After the loop stopped and no vCPU runs: waits for requests in flight,
 * closes the image. Takes NULL. */
void spk_virtio_blk_free(struct spk_virtio_blk *b);
/* Its virtio device (owned by b, valid until spk_virtio_blk_free). */
struct spk_virtio *spk_virtio_blk_dev(struct spk_virtio_blk *b);
/* "io_uring" or "sync" (static strings). */
const char *spk_virtio_blk_engine_name(const struct spk_virtio_blk *b);
/*
 * Put the image at path behind the disk (Firecracker's PATCH /drives with a
 * new path_on_host), opened as the device was (read-only or not). The new
 * file is opened and checked first: one that cannot be opened or whose
 * size is not a multiple of 512 is refused and the old one stays. Then,
 * under the device lock, requests in flight finish on the old file (-EBUSY
 * and no change if they take over 5 s), the fd and capacity change, the
 * config generation moves and the driver gets a config-change interrupt;
 * the old file is closed. Call from a thread that may use io_uring (not a
 * vCPU thread). 0, or -EINVAL (NULL b or path), -EBUSY, or the open's
 * -errno, with a message.
 */
int spk_virtio_blk_swap(struct spk_virtio_blk *b, const char *path);
/* The image size in bytes (the new one once a swap returned); NULL: 0. */
uint64_t spk_virtio_blk_size(const struct spk_virtio_blk *b);

/* What the device did so far (requests counted when answered). */
struct spk_virtio_blk_stats {
	uint64_t reads, writes, flushes, get_ids, discards, write_zeroes; /* answered OK */
	uint64_t bytes_read, bytes_written;
	uint64_t ioerr, unsupp; /* answered VIRTIO_BLK_S_IOERR / _UNSUPP */
	uint64_t syncs;         /* fdatasync calls made (flushes, write-through) */
	uint64_t zero_fill;     /* ranges zeroed by writing zeros (no fallocate) */
	uint32_t inflight_max;  /* most requests in flight at once */
	struct spk_rate_limit_stats rate; /* every request counts, throttled or not */
};
/* Change the rate limit while the device runs (Firecracker's PATCH): the
 * buckets start full again; requests waiting for a refill go on. 0 or
 * -EINVAL (a bad limit, or a limit on a device without an event loop). */
int spk_virtio_blk_set_rate_limit(struct spk_virtio_blk *b, const struct spk_rate_limit *l);

/* Copy the counters so far into *out (one consistent moment). */
void spk_virtio_blk_get_stats(struct spk_virtio_blk *b, struct spk_virtio_blk_stats *out);

#ifdef __cplusplus
}
#endif
#endif
