/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk (virtio 1.2 section 5.2) over a raw image; see virtio_blk.h.
 *
 * A request is a chain: a 16-byte header (type, reserved, sector) the
 * device reads, the data, and one status byte the device writes, the last
 * writable byte. Each popped chain takes a request slot, which keeps what
 * the chain's buffers turn into (host iovecs, the status byte's address):
 * the chain itself belongs to the queue only until the next pop. A
 * request runs as a sequence of operations on the image (read, write,
 * fdatasync, fallocate); op_done() looks at how one ended and prepares the
 * next or answers the request. The io_uring engine hands each operation to
 * the kernel and continues when its completion arrives on the event loop;
 * the sync engine runs them one after the other right away.
 *
 * The guest decides almost everything here, so: the header and the
 * status byte must exist (else the driver is broken: NEEDS_RESET); data
 * must go in the direction the type says, in whole sectors, inside the
 * image at both ends (else IOERR); in-flight requests are bounded by the
 * slots, and the sync engine does a bounded batch per turn of the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/snapshot.h>
#include <sparkler/virtio.h>
#include <sparkler/virtio_blk.h>

#include "core/internal.h"
#include "virtio/ratelimit.h"

#define BLK_QUEUE_SIZE 256
#define BLK_SLOTS      BLK_QUEUE_SIZE /* requests in flight at most */
#define BLK_CLASS      0x018000       /* mass storage, other */
#define SECTOR         512ull
#define HDR_LEN        16
#define ID_BYTES       20
#define SEG_MAX        (BLK_QUEUE_SIZE - 2) /* data buffers a chain can have */
#define MAX_DISCARD    (1u << 22)           /* sectors per range: 2 GiB */
#define MAX_ZEROES     (1u << 17)           /* sectors per range: 64 MiB */
#define MAX_RANGES     16                   /* ranges per discard / write-zeroes */
#define DISCARD_ALIGN  8                    /* sectors: the host's 4 KiB blocks */
#define SYNC_BATCH     32                   /* sync engine: requests per turn */
#define IOV_INLINE     16                   /* also the pieces of a zero write */
#define ZERO_CHUNK     (64u << 10)
#define ZERO_WRITE     ((uint64_t)IOV_INLINE * ZERO_CHUNK) /* 1 MiB */
#define ID_MAX         64
#define DRAIN_NAP_NS   50000ull         /* reset: how often to look at the ring */
#define DRAIN_MAX_NS   (30000000000ull) /* and for how long at most */
#define SWAP_WAIT_NS   (5000000000ull)  /* a swap waits this long for requests in flight */

/* Request types and status (virtio 1.2 section 5.2.6). */
enum {
	T_IN = 0,
	T_OUT = 1,
	T_FLUSH = 4,
	T_GET_ID = 8,
	T_DISCARD = 11,
	T_WRITE_ZEROES = 13,
};
enum { S_OK = 0, S_IOERR = 1, S_UNSUPP = 2 };
#define WZ_UNMAP 1u /* the one flag of a discard / write-zeroes range */

/* Feature bits. */
#define F_SEG_MAX      2
#define F_RO           5
#define F_BLK_SIZE     6
#define F_FLUSH        9
#define F_TOPOLOGY     10
#define F_DISCARD      13
#define F_WRITE_ZEROES 14

/* struct virtio_blk_config, up to write_zeroes_may_unmap and its padding. */
enum {
	CFG_CAPACITY = 0,
	CFG_SEG_MAX = 12,
	CFG_BLK_SIZE = 20,
	CFG_PHYS_EXP = 24,
	CFG_MIN_IO = 26,
	CFG_OPT_IO = 28,
	CFG_MAX_DISCARD = 36,
	CFG_MAX_DISCARD_SEG = 40,
	CFG_DISCARD_ALIGN = 44,
	CFG_MAX_ZEROES = 48,
	CFG_MAX_ZEROES_SEG = 52,
	CFG_ZEROES_UNMAP = 56,
	CFG_SIZE = 60,
};

enum op { OP_NONE, OP_READ, OP_WRITE, OP_SYNC, OP_FALLOC, OP_ZERO };

struct range {
	uint64_t off, len;
	bool unmap;
};

struct blk_req {
	bool busy;
	uint16_t head;
	uint32_t in_len; /* the chain's writable bytes, for the push */
	uint64_t gen;    /* the device's reset generation at the pop */
	uint8_t type;
	uint8_t *status;  /* host address of the status byte */
	uint32_t data_in; /* data bytes written into the chain (IN) */
	bool synced;      /* write-through: the fdatasync after it was done */
	/* the operation in progress */
	enum op op;
	uint64_t off, left, done; /* file offset, bytes left, bytes done */
	int mode;                 /* fallocate */
	struct iovec *iov;        /* the rest of the transfer */
	int niov;
	struct iovec iov_inline[IOV_INLINE];
	struct iovec *iov_heap;
	int heap_cap;
	/* discard / write-zeroes */
	struct range ranges[MAX_RANGES];
	unsigned nrange, cur;
};

struct spk_virtio_blk {
	struct spk_virtio *vd;
	struct spk_evloop *loop;
	int fd;
	uint64_t size;
	bool read_only;
	unsigned test_flags;
	char id[ID_MAX];
	uint8_t serial[ID_BYTES];
	/* io_uring */
	bool uring;
	struct io_uring ring;
	int efd; /* completions */
	/* under the device lock */
	bool writeback; /* FLUSH negotiated; else every write is followed by fdatasync */
	uint64_t gen;   /* bumped at each reset: older requests are not answered */
	bool stalled;   /* no free slot: popping resumes at a completion */
	uint32_t inflight;
	uint64_t taken; /* chains popped since the device was made */
	struct spk_ratelimiter rl; /* requests wait here while its buckets refill */
	struct blk_req *slots;
	uint16_t free[BLK_SLOTS]; /* a stack of free slot numbers */
	unsigned nfree;
	struct spk_virtio_blk_stats st;
};

static uint8_t zeros[ZERO_CHUNK]; /* never written: the source of zero writes */

/* ---- request slots ---------------------------------------------------------------- */

static struct blk_req *slot_get(struct spk_virtio_blk *b)
{
	struct blk_req *r;

	if (b->nfree == 0)
		return NULL;
	r = &b->slots[b->free[--b->nfree]];
	r->busy = true;
	b->inflight++;
	return r;
}

static void slot_put(struct spk_virtio_blk *b, struct blk_req *r)
{
	r->busy = false;
	b->inflight--;
	b->free[b->nfree++] = (uint16_t)(r - b->slots);
}

/* Forget what the last request in this slot had; keep the heap array. */
static void req_init(struct blk_req *r, const struct spk_virtq_chain *c, uint64_t gen)
{
	struct iovec *heap = r->iov_heap;
	int cap = r->heap_cap;

	memset(r, 0, offsetof(struct blk_req, iov_inline));
	r->busy = true;
	r->iov_heap = heap;
	r->heap_cap = cap;
	r->head = c->head;
	r->in_len = c->in_len;
	r->gen = gen;
	r->nrange = r->cur = 0;
}

/* ---- answering ---------------------------------------------------------------------- */

static void count(struct spk_virtio_blk *b, const struct blk_req *r, uint8_t status)
{
	struct spk_virtio_blk_stats *s = &b->st;

	if (status == S_IOERR) {
		s->ioerr++;
		return;
	}
	if (status == S_UNSUPP) {
		s->unsupp++;
		return;
	}
	switch (r->type) {
	case T_IN:
		s->reads++;
		s->bytes_read += r->done;
		break;
	case T_OUT:
		s->writes++;
		s->bytes_written += r->done;
		break;
	case T_FLUSH:
		s->flushes++;
		break;
	case T_GET_ID:
		s->get_ids++;
		break;
	case T_DISCARD:
		s->discards++;
		break;
	case T_WRITE_ZEROES:
		s->write_zeroes++;
		break;
	}
}

/* Write the status, hand the chain back, free the slot. A request from
 * before a reset is dropped: its chain is not the queue's any more. */
static void finish(struct spk_virtio_blk *b, struct blk_req *r, uint8_t status)
{
	if (r->gen == b->gen) {
		const struct spk_virtq_chain c = {.head = r->head, .in_len = r->in_len};
		uint32_t used = (status == S_OK ? r->data_in : 0) + 1;

		__atomic_store_n(r->status, status, __ATOMIC_RELAXED);
		spk_virtio_push(b->vd, 0, &c, used);
		count(b, r, status);
	}
	slot_put(b, r);
}

/* ---- operations ----------------------------------------------------------------------- */

/* Host iovecs for len bytes of the chain from off (writable or not). */
static int make_iov(struct spk_virtio_blk *b, struct blk_req *r, const struct spk_virtq_chain *c,
                    bool writable, uint64_t off, uint64_t len)
{
	const struct spk_mem *mem = spk_virtio_mem(b->vd);
	int n = spk_virtq_iov(mem, c, writable, off, len, r->iov_inline, IOV_INLINE);

	r->iov = r->iov_inline;
	while (n == -ENOBUFS) {
		int cap = r->heap_cap ? 2 * r->heap_cap : 64;
		struct iovec *p;

		if (cap > IOV_MAX || !(p = realloc(r->iov_heap, sizeof(*p) * (size_t)cap)))
			return -ENOBUFS;
		r->iov_heap = p;
		r->heap_cap = cap;
		n = spk_virtq_iov(mem, c, writable, off, len, p, cap);
		r->iov = p;
	}
	if (n < 0)
		return n;
	r->niov = n;
	return 0;
}

static void advance(struct blk_req *r, uint64_t n)
{
	r->off += n;
	r->left -= n;
	r->done += n;
	while (n && r->niov) {
		if (n >= r->iov->iov_len) {
			n -= r->iov->iov_len;
			r->iov++;
			r->niov--;
		} else {
			r->iov->iov_base = (uint8_t *)r->iov->iov_base + n;
			r->iov->iov_len -= n;
			n = 0;
		}
	}
}

/* The next piece of zeros to write for the current range: up to 1 MiB. */
static void zero_piece(struct blk_req *r)
{
	uint64_t n = r->left < ZERO_WRITE ? r->left : ZERO_WRITE;

	r->iov = r->iov_inline;
	r->niov = 0;
	for (uint64_t at = 0; at < n; at += ZERO_CHUNK)
		r->iov_inline[r->niov++] =
		    (struct iovec){.iov_base = zeros,
		                   .iov_len = (size_t)(n - at < ZERO_CHUNK ? n - at : ZERO_CHUNK)};
}

/* Start range cur of a discard / write-zeroes: fallocate, or zeros. */
static void start_range(struct spk_virtio_blk *b, struct blk_req *r)
{
	const struct range *g = &r->ranges[r->cur];

	r->off = g->off;
	r->left = g->len;
	if (r->type == T_DISCARD || g->unmap)
		r->mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	else
		r->mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	r->op = OP_FALLOC;
}

/* Write zeros over the rest of the current range instead of fallocate. */
static void start_zero_fill(struct spk_virtio_blk *b, struct blk_req *r)
{
	b->st.zero_fill++;
	r->op = OP_ZERO;
	zero_piece(r);
}

/* The request's own work is done: a write-through sync, or the answer.
 * Returns whether an operation was prepared. */
static bool work_done(struct spk_virtio_blk *b, struct blk_req *r)
{
	bool wrote = r->type == T_OUT || r->type == T_DISCARD || r->type == T_WRITE_ZEROES;

	if (wrote && !b->writeback && !r->synced) {
		r->synced = true;
		r->op = OP_SYNC;
		return true;
	}
	finish(b, r, S_OK);
	return false;
}

/* The next range, or the end of the work. */
static bool next_range(struct spk_virtio_blk *b, struct blk_req *r)
{
	if (++r->cur < r->nrange) {
		start_range(b, r);
		return true;
	}
	return work_done(b, r);
}

static bool falloc_unsupported(int64_t res)
{
	return res == -EOPNOTSUPP || res == -ENOSYS || res == -EINVAL;
}

static bool falloc_done(struct spk_virtio_blk *b, struct blk_req *r, int64_t res)
{
	if (res >= 0)
		return next_range(b, r);
	if (!falloc_unsupported(res)) {
		finish(b, r, S_IOERR);
		return false;
	}
	if (r->type == T_DISCARD)
		return next_range(b, r); /* a hint the image cannot take: nothing to do */
	start_zero_fill(b, r);
	return true;
}

/* A read or write moved res bytes (or failed): the rest, or what follows. */
static bool transfer_done(struct spk_virtio_blk *b, struct blk_req *r, int64_t res)
{
	if (res < 0 || (res == 0 && r->left)) {
		finish(b, r, S_IOERR); /* an error, or the image shrank under us */
		return false;
	}
	advance(r, (uint64_t)res);
	if (r->op == OP_ZERO && r->left == 0)
		return next_range(b, r);
	if (r->op == OP_ZERO && r->niov == 0)
		zero_piece(r);
	if (r->left)
		return true;
	if (r->type == T_IN)
		r->data_in = (uint32_t)r->done;
	return work_done(b, r);
}

/*
 * An operation of r ended with res (bytes, or -errno): prepare the next
 * one and return true, or answer the request and return false.
 */
static bool op_done(struct spk_virtio_blk *b, struct blk_req *r, int64_t res)
{
	if (r->gen != b->gen) { /* reset meanwhile: nothing more for it */
		slot_put(b, r);
		return false;
	}
	switch (r->op) {
	case OP_READ:
	case OP_WRITE:
	case OP_ZERO:
		return transfer_done(b, r, res);
	case OP_SYNC:
		b->st.syncs++;
		if (res < 0) {
			finish(b, r, S_IOERR);
			return false;
		}
		return work_done(b, r);
	case OP_FALLOC:
		return falloc_done(b, r, res);
	default:
		finish(b, r, S_IOERR);
		return false;
	}
}

/* ---- the engines ------------------------------------------------------------------------- */

static int64_t sync_op(struct spk_virtio_blk *b, struct blk_req *r)
{
	int64_t n;

	do {
		switch (r->op) {
		case OP_READ:
			n = preadv(b->fd, r->iov, r->niov, (off_t)r->off);
			break;
		case OP_WRITE:
		case OP_ZERO:
			n = pwritev(b->fd, r->iov, r->niov, (off_t)r->off);
			break;
		case OP_SYNC:
			n = fdatasync(b->fd);
			break;
		case OP_FALLOC:
			n = fallocate(b->fd, r->mode, (off_t)r->off, (off_t)r->left);
			break;
		default:
			errno = EINVAL;
			n = -1;
		}
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* Queue r's operation on the ring (submitted at the end of the batch). */
static int uring_queue(struct spk_virtio_blk *b, struct blk_req *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);

	if (!sqe) {
		io_uring_submit(&b->ring);
		if (!(sqe = io_uring_get_sqe(&b->ring)))
			return -EBUSY;
	}
	switch (r->op) {
	case OP_READ:
		io_uring_prep_readv(sqe, b->fd, r->iov, (unsigned)r->niov, r->off);
		break;
	case OP_WRITE:
	case OP_ZERO:
		io_uring_prep_writev(sqe, b->fd, r->iov, (unsigned)r->niov, r->off);
		break;
	case OP_SYNC:
		io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
		break;
	case OP_FALLOC:
		io_uring_prep_fallocate(sqe, b->fd, r->mode, (off_t)r->off, (off_t)r->left);
		break;
	default:
		return -EINVAL;
	}
	io_uring_sqe_set_data(sqe, r);
	return 0;
}

/* r has an operation prepared: run it and what follows to the end (sync),
 * or queue it (io_uring). */
static void run(struct spk_virtio_blk *b, struct blk_req *r)
{
	for (;;) {
		int64_t res;

		if (r->op == OP_FALLOC && (b->test_flags & SPK_BLK_TEST_NO_FALLOCATE))
			res = -EOPNOTSUPP;
		else if (!b->uring)
			res = sync_op(b, r);
		else {
			if (uring_queue(b, r) < 0)
				finish(b, r, S_IOERR);
			return;
		}
		if (!op_done(b, r, res))
			return;
	}
}

/* ---- parsing a request ---------------------------------------------------------------- */

/* [sector * 512, + len) inside the image, without overflow: its offset. */
static bool in_image(const struct spk_virtio_blk *b, uint64_t sector, uint64_t len, uint64_t *off)
{
	if (sector > b->size / SECTOR)
		return false;
	*off = sector * SECTOR;
	return len <= b->size - *off;
}

/* IN and OUT: the data, in whole sectors, inside the image, one direction. */
static uint8_t start_rw(struct spk_virtio_blk *b, struct blk_req *r,
                        const struct spk_virtq_chain *c, uint64_t sector)
{
	bool in = r->type == T_IN;
	uint64_t len = in ? c->in_len - 1u : c->out_len - (uint64_t)HDR_LEN;

	if (in ? c->out_len != HDR_LEN : c->in_len != 1)
		return S_IOERR; /* data in the wrong direction */
	if (!in && b->read_only)
		return S_IOERR;
	if (len % SECTOR || !in_image(b, sector, len, &r->off))
		return S_IOERR;
	if (len == 0)
		return S_OK; /* nothing to move */
	if (make_iov(b, r, c, in, in ? 0 : HDR_LEN, len) < 0)
		return S_IOERR;
	r->left = len;
	r->op = in ? OP_READ : OP_WRITE;
	return S_OK;
}

/* DISCARD and WRITE_ZEROES: up to MAX_RANGES ranges, each checked. */
static uint8_t start_ranges(struct spk_virtio_blk *b, struct blk_req *r,
                            const struct spk_virtq_chain *c)
{
	uint64_t n = c->out_len - (uint64_t)HDR_LEN;
	uint32_t max = r->type == T_DISCARD ? MAX_DISCARD : MAX_ZEROES;
	uint8_t seg[16];

	if (b->read_only || c->in_len != 1 || n == 0 || n % 16 || n / 16 > MAX_RANGES)
		return S_IOERR;
	r->nrange = (unsigned)(n / 16);
	for (unsigned i = 0; i < r->nrange; i++) {
		if (spk_virtq_read(spk_virtio_mem(b->vd), c, HDR_LEN + 16ull * i, seg, 16) != 16)
			return S_IOERR;
		uint32_t nsec = (uint32_t)spk_get_le(seg + 8, 4), flags = (uint32_t)spk_get_le(seg + 12, 4);

		if (flags & ~WZ_UNMAP || (r->type == T_DISCARD && flags))
			return S_UNSUPP; /* unknown flags; unmap on a discard (5.2.6.2) */
		if (nsec > max || !in_image(b, spk_get_le(seg, 8), nsec * SECTOR, &r->ranges[i].off))
			return S_IOERR;
		r->ranges[i].len = nsec * SECTOR;
		r->ranges[i].unmap = flags & WZ_UNMAP;
	}
	start_range(b, r);
	return S_OK;
}

static uint8_t get_id(struct spk_virtio_blk *b, struct blk_req *r, const struct spk_virtq_chain *c)
{
	if (c->in_len - 1u < ID_BYTES)
		return S_IOERR;
	if (spk_virtq_write(spk_virtio_mem(b->vd), c, 0, b->serial, ID_BYTES) != ID_BYTES)
		return S_IOERR;
	r->data_in = ID_BYTES;
	return S_OK;
}

/* The first operation of the request (r->op), or its answer right away. */
static uint8_t start_req(struct spk_virtio_blk *b, struct blk_req *r,
                         const struct spk_virtq_chain *c, const uint8_t *hdr)
{
	uint64_t sector = spk_get_le(hdr + 8, 8);

	r->type = (uint8_t)spk_get_le(hdr, 4);
	if (spk_get_le(hdr, 4) > 0xff)
		return S_UNSUPP;
	switch (r->type) {
	case T_IN:
	case T_OUT:
		return start_rw(b, r, c, sector);
	case T_FLUSH:
		r->op = OP_SYNC;
		return S_OK;
	case T_GET_ID:
		return get_id(b, r, c);
	case T_DISCARD:
	case T_WRITE_ZEROES:
		return start_ranges(b, r, c);
	default:
		return S_UNSUPP;
	}
}

/*
 * A chain: check what a driver cannot get wrong (a header, a status
 * byte), then start the request. False when the driver is broken (the
 * device then needs a reset and r is free again).
 */
static bool take(struct spk_virtio_blk *b, struct blk_req *r, const struct spk_virtq_chain *c)
{
	const struct spk_mem *mem = spk_virtio_mem(b->vd);
	uint8_t hdr[HDR_LEN];
	struct iovec st;

	req_init(r, c, b->gen);
	if (b->inflight > b->st.inflight_max)
		b->st.inflight_max = b->inflight;
	if (c->out_len < HDR_LEN || spk_virtq_read(mem, c, 0, hdr, HDR_LEN) != HDR_LEN) {
		spk_virtio_fail(b->vd, 0, "request %u: a header of %u bytes, need %d", c->head,
		                c->out_len, HDR_LEN);
		slot_put(b, r);
		return false;
	}
	if (c->in_len == 0 || spk_virtq_iov(mem, c, true, c->in_len - 1u, 1, &st, 1) != 1) {
		spk_virtio_fail(b->vd, 0, "request %u: no writable byte for the status", c->head);
		slot_put(b, r);
		return false;
	}
	r->status = st.iov_base;
	/* what the rate limiter counts: one operation, and the data of a read
	 * or a write (the chain's bytes past the header, or but the status) */
	uint32_t type = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
	                (uint32_t)hdr[3] << 24;
	spk_rl_charge(&b->rl, 1,
	              type == T_IN ? c->in_len - 1u : type == T_OUT ? c->out_len - HDR_LEN : 0);
	uint8_t s = start_req(b, r, c, hdr);
	if (s != S_OK || r->op == OP_NONE)
		finish(b, r, s);
	else
		run(b, r);
	return true;
}

/* Pop and start requests while slots last; the sync engine SYNC_BATCH at
 * a time (true: it stopped there with work left). */
static bool start_some(struct spk_virtio_blk *b)
{
	unsigned budget = b->uring || !b->loop ? UINT_MAX : SYNC_BATCH;
	struct spk_virtq_chain c;

	b->stalled = false;
	for (;;) {
		if (budget-- == 0)
			return spk_virtio_running(b->vd);
		/* over its rate: the refill kicks the queue again */
		if (!spk_rl_admit(&b->rl))
			return false;
		struct blk_req *r = slot_get(b);
		if (!r) {
			b->stalled = true;
			return false;
		}
		if (spk_virtio_pop(b->vd, 0, &c) <= 0 || !take(b, r, &c)) {
			if (r->busy)
				slot_put(b, r);
			return false;
		}
		b->taken++;
	}
}

/* Answer what io_uring completed; how many completions there were. */
static unsigned reap(struct spk_virtio_blk *b)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;

	io_uring_for_each_cqe(&b->ring, head, cqe)
	{
		struct blk_req *r = io_uring_cqe_get_data(cqe);

		seen++;
		if (r && op_done(b, r, cqe->res))
			run(b, r); /* the request's next operation: queued */
	}
	io_uring_cq_advance(&b->ring, seen);
	return seen;
}

/*
 * Start what the queue has. With io_uring, submit it and answer at once
 * what is already complete (page-cache hits complete inside the submit),
 * which saves a turn of the loop; freed slots take more requests.
 */
static void process(struct spk_virtio_blk *b)
{
	bool more;

	for (;;) {
		more = start_some(b);
		if (!b->uring)
			break;
		io_uring_submit(&b->ring);
		if (!reap(b))
			break;
		if (!b->stalled) {
			io_uring_submit(&b->ring); /* what the completions queued next */
			break;
		}
	}
	spk_virtio_interrupt(b->vd, 0);
	if (more)
		spk_virtio_kick(b->vd, 0); /* the rest after the loop's other work */
}

/* ---- io_uring completions (event loop) ------------------------------------------------ */

static void on_complete(void *opaque, int fd, uint32_t events)
{
	struct spk_virtio_blk *b = opaque;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: look at the ring anyway */
	}
	spk_virtio_lock(b->vd);
	reap(b);
	if (b->stalled)
		process(b);
	else {
		io_uring_submit(&b->ring);
		spk_virtio_interrupt(b->vd, 0);
	}
	spk_virtio_unlock(b->vd);
}

/*
 * Wait for every request in flight, under the lock: at a reset (on a vCPU
 * thread, whose seccomp filter has no io_uring calls) and at free. The
 * kernel posts completions into the ring's memory by itself, so this
 * watches the ring and naps, with no io_uring system call.
 */
static void drain(struct spk_virtio_blk *b)
{
	const struct timespec nap = {.tv_nsec = DRAIN_NAP_NS};

	for (uint64_t waited = 0; b->uring && b->inflight; waited += DRAIN_NAP_NS) {
		reap(b);
		if (!b->inflight)
			break;
		if (waited >= DRAIN_MAX_NS) {
			spk_log(SPK_LOG_ERROR,
			        "virtio-blk %s: %u requests still in flight after %d s; going on",
			        b->id, b->inflight, (int)(DRAIN_MAX_NS / 1000000000ull));
			break;
		}
		nanosleep(&nap, NULL);
	}
}

/* ---- the device ------------------------------------------------------------------------ */

static void blk_notify(void *opaque, struct spk_virtio *vd, unsigned q)
{
	struct spk_virtio_blk *b = opaque;

	if (q == 0)
		process(b);
}

static int blk_activate(void *opaque, struct spk_virtio *vd, uint64_t features)
{
	struct spk_virtio_blk *b = opaque;

	b->writeback = features & SPK_VIRTIO_F_BIT(F_FLUSH);
	return 0;
}

static void blk_reset(void *opaque, struct spk_virtio *vd)
{
	struct spk_virtio_blk *b = opaque;

	b->gen++; /* requests in flight are not answered ... */
	drain(b); /* ... and done before the driver sees status 0 */
	b->stalled = false;
}

static void blk_config_read(void *opaque, uint32_t off, void *buf, uint32_t len)
{
	struct spk_virtio_blk *b = opaque;
	uint8_t cfg[CFG_SIZE] = {0};

	spk_put_le(cfg + CFG_CAPACITY, b->size / SECTOR, 8);
	spk_put_le(cfg + CFG_SEG_MAX, SEG_MAX, 4);
	spk_put_le(cfg + CFG_BLK_SIZE, SECTOR, 4);
	cfg[CFG_PHYS_EXP] = 3; /* 4 KiB physical blocks: the host's page cache */
	spk_put_le(cfg + CFG_MIN_IO, 1, 2);
	spk_put_le(cfg + CFG_OPT_IO, 0, 4);
	spk_put_le(cfg + CFG_MAX_DISCARD, MAX_DISCARD, 4);
	spk_put_le(cfg + CFG_MAX_DISCARD_SEG, MAX_RANGES, 4);
	spk_put_le(cfg + CFG_DISCARD_ALIGN, DISCARD_ALIGN, 4);
	spk_put_le(cfg + CFG_MAX_ZEROES, MAX_ZEROES, 4);
	spk_put_le(cfg + CFG_MAX_ZEROES_SEG, MAX_RANGES, 4);
	cfg[CFG_ZEROES_UNMAP] = 1;
	memcpy(buf, cfg + off, len);
}

/* ---- state (snapshot.h): requests must have completed; the disk itself is the image ---- */

static int blk_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_virtio_blk *b = opaque;

	if (b->inflight)
		return spk_fail(EBUSY,
		                "virtio-blk %s: %u requests in flight: drain before a snapshot",
		                b->id, b->inflight);
	spk_snap_put_u64(w, "capacity", b->size / SECTOR);
	spk_snap_put_u8(w, "read_only", b->read_only);
	return spk_snap_put_u8(w, "writeback", b->writeback);
}

static int blk_load(void *opaque, struct spk_snap_reader *r)
{
	struct spk_virtio_blk *b = opaque;
	uint64_t sectors;
	bool ro, wb;
	int rc;

	if ((rc = spk_snap_get_u64(r, "capacity", &sectors)))
		return rc;
	if (sectors != b->size / SECTOR)
		return spk_snap_bad(r, "capacity", "%llu sectors, this disk has %llu",
		                    (unsigned long long)sectors,
		                    (unsigned long long)(b->size / SECTOR));
	if ((rc = spk_snap_get_bool(r, "read_only", &ro)))
		return rc;
	if (ro != b->read_only)
		return spk_snap_bad(r, "read_only", "%d, this disk is %s", ro,
		                    b->read_only ? "read-only" : "writable");
	if ((rc = spk_snap_get_bool(r, "writeback", &wb)) || (rc = spk_snap_reader_done(r)))
		return rc;
	b->writeback = wb;
	return 0;
}

static const struct spk_dev_state_ops blk_state = {"virtio_blk", 1, blk_save, blk_load};

static int quiesce(struct spk_virtio_blk *b);

/*
 * Before a save (lock held): first take and start what the driver made
 * available before the pause but the event loop has not taken yet (its
 * kick still pending there: taken after the memory was saved, such a
 * request's used entry was in the device state and not in the saved
 * memory, and the restore refused the file), then wait for the requests
 * in flight to complete and answer them, so the queues hold no chain and
 * the late kick finds nothing new. Bounded: at most BLK_SLOTS chains a
 * round, 64 rounds; the io_uring engine only. A disk that does not answer in time still refuses the
 * save (blk_save, -EBUSY). Requests a rate limiter holds back stay in the
 * ring (their refill can still take them during the save: see
 * spk_virtio_quiesce).
 */
static void blk_quiesce(void *opaque, struct spk_virtio *vd)
{
	struct spk_virtio_blk *b = opaque;

	for (unsigned round = 0; round < 64; round++) {
		uint64_t before = b->taken;

		/* io_uring only: the sync engine would do the I/O itself on this
		 * (the API's) thread, whose filter has no preadv/pwritev */
		if (b->uring && spk_virtio_running(vd) && spk_virtio_queue_ready(vd, 0)) {
			start_some(b);
			if (io_uring_sq_ready(&b->ring))
				io_uring_submit(&b->ring);
		}
		if (quiesce(b) < 0)
			return;
		if (b->taken == before && !b->stalled)
			break;
	}
	spk_virtio_interrupt(vd, 0); /* what it answered */
}

static const struct spk_virtio_ops blk_ops = {
    .config_read = blk_config_read,
    .activate = blk_activate,
    .queue_notify = blk_notify,
    .reset = blk_reset,
    .quiesce = blk_quiesce,
    .state = &blk_state,
};

/* ---- creation -------------------------------------------------------------------------- */

static int open_image(struct spk_virtio_blk *b, const char *path)
{
	struct stat sb;
	off_t end;

	b->fd = open(path, (b->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0)
		return spk_fail(errno, "virtio-blk %s: %s: %s", b->id, path, strerror(errno));
	if (fstat(b->fd, &sb) < 0 || (!S_ISREG(sb.st_mode) && !S_ISBLK(sb.st_mode)))
		return spk_fail(EINVAL, "virtio-blk %s: %s is not a regular file or block device",
		                b->id, path);
	end = lseek(b->fd, 0, SEEK_END);
	if (end < 0)
		return spk_fail(errno, "virtio-blk %s: %s: size: %s", b->id, path, strerror(errno));
	b->size = (uint64_t)end;
	if (b->size % SECTOR)
		return spk_fail(EINVAL,
		                "virtio-blk %s: %s: the image is %llu bytes, not a multiple of 512",
		                b->id, path, (unsigned long long)b->size);
	return 0;
}

static bool uring_has_ops(struct io_uring *ring)
{
	static const int need[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC,
	                           IORING_OP_FALLOCATE};
	struct io_uring_probe *p = io_uring_get_probe_ring(ring);
	bool ok = p != NULL;

	for (size_t i = 0; ok && i < sizeof(need) / sizeof(need[0]); i++)
		ok = io_uring_opcode_supported(p, need[i]);
	if (p)
		io_uring_free_probe(p);
	return ok;
}

/* io_uring with an eventfd on the loop; -errno when the kernel refuses. */
static int uring_start(struct spk_virtio_blk *b)
{
	int rc = io_uring_queue_init(BLK_SLOTS, &b->ring, 0);

	if (rc < 0)
		return rc;
	b->uring = true;
	if (!uring_has_ops(&b->ring))
		return -EOPNOTSUPP;
	b->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->efd < 0)
		return -errno;
	if ((rc = io_uring_register_eventfd(&b->ring, b->efd)) < 0)
		return rc;
	return spk_evloop_add(b->loop, b->efd, EPOLLIN, on_complete, b);
}

static void uring_stop(struct spk_virtio_blk *b)
{
	if (b->efd >= 0) {
		spk_evloop_del(b->loop, b->efd);
		close(b->efd);
		b->efd = -1;
	}
	if (b->uring)
		io_uring_queue_exit(&b->ring);
	b->uring = false;
}

static int pick_engine(struct spk_virtio_blk *b, enum spk_blk_engine want)
{
	if (want == SPK_BLK_ENGINE_SYNC)
		return 0;
	int rc = b->loop ? uring_start(b) : -ENOTSUP;
	if (rc == 0)
		return 0;
	uring_stop(b);
	if (want == SPK_BLK_ENGINE_IO_URING)
		return spk_fail(-rc, "virtio-blk %s: io_uring: %s", b->id,
		                b->loop ? strerror(-rc) : "needs an event loop");
	spk_log(SPK_LOG_INFO, "virtio-blk %s: io_uring is not available (%s): preadv/pwritev",
	        b->id, strerror(-rc));
	return 0;
}

static int make_dev(struct spk_virtio_blk *b, const struct spk_virtio_blk_config *cfg)
{
	uint64_t f = SPK_VIRTIO_F_BIT(F_SEG_MAX) | SPK_VIRTIO_F_BIT(F_BLK_SIZE) |
	             SPK_VIRTIO_F_BIT(F_FLUSH) | SPK_VIRTIO_F_BIT(F_TOPOLOGY) |
	             SPK_VIRTIO_F_BIT(F_DISCARD) | SPK_VIRTIO_F_BIT(F_WRITE_ZEROES);
	const struct spk_virtio_config vc = {
	    .name = "virtio-blk",
	    .device_id = SPK_VIRTIO_ID_BLOCK,
	    .class_code = BLK_CLASS,
	    .num_queues = 1,
	    .queue_max = BLK_QUEUE_SIZE,
	    .features = f | (b->read_only ? SPK_VIRTIO_F_BIT(F_RO) : 0),
	    .config_size = CFG_SIZE,
	    .ops = &blk_ops,
	    .opaque = b,
	    .pci = cfg->pci,
	    .slot = cfg->slot,
	    .mem = cfg->mem,
	    .loop = cfg->loop,
	};
	return spk_virtio_new(&vc, &b->vd);
}

int spk_virtio_blk_new(const struct spk_virtio_blk_config *cfg, struct spk_virtio_blk **out)
{
	struct spk_virtio_blk *b;
	int rc;

	if (!cfg || !out || !cfg->path)
		return spk_fail(EINVAL, "virtio-blk: new needs a config with a path and an out "
		                        "pointer");
	b = calloc(1, sizeof(*b));
	if (!b || !(b->slots = calloc(BLK_SLOTS, sizeof(*b->slots)))) {
		free(b);
		return spk_fail(ENOMEM, "virtio-blk: out of memory");
	}
	b->fd = b->efd = -1;
	spk_rl_init(&b->rl, cfg->loop, NULL, 0);
	for (unsigned i = 0; i < BLK_SLOTS; i++)
		b->free[b->nfree++] = (uint16_t)(BLK_SLOTS - 1 - i);
	b->loop = cfg->loop;
	b->read_only = cfg->read_only;
	b->test_flags = cfg->test_flags;
	b->writeback = true;
	snprintf(b->id, sizeof(b->id), "%s", cfg->id ? cfg->id : "disk");
	if (cfg->id)
		memcpy(b->serial, cfg->id, strnlen(cfg->id, ID_BYTES));
	if ((rc = open_image(b, cfg->path)) < 0 || (rc = pick_engine(b, cfg->engine)) < 0 ||
	    (rc = make_dev(b, cfg)) < 0) {
		spk_virtio_blk_free(b);
		return rc;
	}
	b->rl.vd = b->vd;
	if ((rc = spk_rl_set(&b->rl, &cfg->rate_limit)) < 0) {
		spk_virtio_blk_free(b);
		return rc;
	}
	*out = b;
	return 0;
}

void spk_virtio_blk_free(struct spk_virtio_blk *b)
{
	if (!b)
		return;
	if (b->vd) {
		spk_virtio_lock(b->vd);
		b->gen++;
		if (b->uring)
			io_uring_submit(&b->ring); /* anything left queued */
		drain(b);
		spk_virtio_unlock(b->vd);
	}
	spk_rl_free(&b->rl); /* its refill kicks the device */
	uring_stop(b);
	spk_virtio_free(b->vd);
	for (unsigned i = 0; b->slots && i < BLK_SLOTS; i++)
		free(b->slots[i].iov_heap);
	free(b->slots);
	if (b->fd >= 0)
		close(b->fd);
	free(b);
}

/*
 * Wait, under the lock, until no request is in flight: io_uring requests
 * hold the fd number, so it may change only then. Requests still queued
 * in the ring are submitted (the caller is the API thread, whose filter
 * has io_uring_enter), finished requests answered, nothing new started.
 */
static int quiesce(struct spk_virtio_blk *b)
{
	const struct timespec nap = {.tv_nsec = DRAIN_NAP_NS};

	for (uint64_t waited = 0; b->uring && b->inflight; waited += DRAIN_NAP_NS) {
		if (io_uring_sq_ready(&b->ring))
			io_uring_submit(&b->ring);
		reap(b);
		if (!b->inflight)
			break;
		if (waited >= SWAP_WAIT_NS)
			return -EBUSY;
		nanosleep(&nap, NULL);
	}
	return 0;
}

int spk_virtio_blk_swap(struct spk_virtio_blk *b, const char *path)
{
	struct spk_virtio_blk n = {.fd = -1, .read_only = b ? b->read_only : false};
	int rc, old;

	if (!b || !path)
		return spk_fail(EINVAL, "virtio-blk: swap needs a device and a path");
	memcpy(n.id, b->id, sizeof(n.id));
	/* the new file first, outside the lock: a bad one changes nothing */
	if ((rc = open_image(&n, path)) < 0) {
		if (n.fd >= 0)
			close(n.fd);
		return rc;
	}
	spk_virtio_lock(b->vd);
	if (quiesce(b) < 0) {
		unsigned left = b->inflight;

		spk_virtio_interrupt(b->vd, 0);
		spk_virtio_unlock(b->vd);
		close(n.fd);
		return spk_fail(EBUSY, "virtio-blk %s: %u requests still in flight; the disk is "
		                       "unchanged", b->id, left);
	}
	old = b->fd;
	b->fd = n.fd;
	b->size = n.size;
	spk_virtio_interrupt(b->vd, 0);     /* what quiesce answered */
	spk_virtio_config_changed(b->vd);   /* new capacity: generation, config IRQ */
	if (b->stalled)
		spk_virtio_kick(b->vd, 0);
	spk_virtio_unlock(b->vd);
	close(old);
	spk_log(SPK_LOG_INFO, "virtio-blk %s: now %s (%llu sectors)", b->id, path,
	        (unsigned long long)(n.size / SECTOR));
	return 0;
}

struct spk_virtio *spk_virtio_blk_dev(struct spk_virtio_blk *b)
{
	if (!b) {
		spk_fail(EINVAL, "virtio-blk: dev needs a device");
		return NULL;
	}
	return b->vd;
}

const char *spk_virtio_blk_engine_name(const struct spk_virtio_blk *b)
{
	if (!b) {
		spk_fail(EINVAL, "virtio-blk: engine_name needs a device");
		return NULL;
	}
	return b->uring ? "io_uring" : "sync";
}

uint64_t spk_virtio_blk_size(const struct spk_virtio_blk *b)
{
	uint64_t size;

	if (!b) {
		spk_fail(EINVAL, "virtio-blk: size needs a device");
		return 0;
	}
	/* under the lock: spk_virtio_blk_swap() changes it */
	spk_virtio_lock(b->vd);
	size = b->size;
	spk_virtio_unlock(b->vd);
	return size;
}

void spk_virtio_blk_get_stats(struct spk_virtio_blk *b, struct spk_virtio_blk_stats *out)
{
	if (!b || !out) {
		spk_fail(EINVAL, "virtio-blk: get_stats needs a device and a place for them");
		if (out)
			memset(out, 0, sizeof(*out));
		return;
	}
	spk_virtio_lock(b->vd);
	*out = b->st;
	out->rate = b->rl.st;
	spk_virtio_unlock(b->vd);
}

int spk_virtio_blk_set_rate_limit(struct spk_virtio_blk *b, const struct spk_rate_limit *l)
{
	int rc;

	if (!b || !l)
		return spk_fail(EINVAL, "virtio-blk: set_rate_limit needs a device and a limit");
	spk_virtio_lock(b->vd);
	rc = spk_rl_set(&b->rl, l);
	spk_virtio_unlock(b->vd);
	return rc;
}
