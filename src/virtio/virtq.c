/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The split virtqueue (virtio 1.2 section 2.7), device side, with every
 * guest-controlled value checked before it is used.
 *
 * The rings are mapped once, when the driver enables the queue, through
 * the checked accessor over their whole extent; the guest keeps writing
 * them while we read, so each field is loaded exactly once (an atomic
 * load) into a local and only the local is checked and used. Descriptors
 * are copied out the same way. Buffers are checked against guest memory
 * at both ends when the chain is parsed; devices copy through
 * spk_virtq_read/write or spk_virtq_iov, which go through the accessor
 * again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/snapshot.h>
#include <sparkler/virtio.h>

#include "core/internal.h"

#define DESC_SIZE   16
#define DESC_ALIGN  16
#define AVAIL_ALIGN 2
#define USED_ALIGN  4
#define USED_ELEM   8

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

/* The walk over one chain: where it is, what it has seen. */
struct walk {
	struct spk_virtq *q;
	struct spk_virtq_chain *c;
	uint32_t budget;  /* buffers left: the queue size */
	bool seen_write;  /* a writable buffer came already */
	uint64_t out, in; /* byte totals */
};

static int violation(struct spk_virtq *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int violation(struct spk_virtq *q, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->err, sizeof(q->err), fmt, ap);
	va_end(ap);
	q->broken = true;
	return -EIO;
}

int spk_virtq_init(struct spk_virtq *q, uint16_t index, uint16_t max_size)
{
	if (!q || max_size == 0 || max_size > SPK_VIRTQ_MAX_SIZE || (max_size & (max_size - 1)))
		return spk_fail(EINVAL,
		                "virtq: queue %u: maximum size %u is not a power of two "
		                "up to %d",
		                index, max_size, SPK_VIRTQ_MAX_SIZE);
	memset(q, 0, sizeof(*q));
	q->bufs = calloc(max_size, sizeof(*q->bufs));
	if (!q->bufs)
		return spk_fail(ENOMEM, "virtq: queue %u: out of memory", index);
	q->index = index;
	q->max_size = max_size;
	spk_virtq_reset(q);
	return 0;
}

void spk_virtq_fini(struct spk_virtq *q)
{
	if (!q)
		return;
	free(q->bufs);
	q->bufs = NULL;
}

void spk_virtq_reset(struct spk_virtq *q)
{
	struct spk_virtq_buf *bufs = q->bufs;
	uint16_t index = q->index, max = q->max_size;

	memset(q, 0, sizeof(*q));
	q->bufs = bufs;
	q->index = index;
	q->max_size = max;
	q->size = max;
	q->msix_vector = SPK_VIRTIO_NO_VECTOR;
}

/* ---- ring setup ----------------------------------------------------------------------- */

static void *map_ring(struct spk_virtq *q, const char *what, uint64_t gpa, uint64_t len,
                      uint64_t align, unsigned access)
{
	void *p;

	if (gpa % align) {
		violation(q, "%s ring at 0x%" PRIx64 " is not %" PRIu64 "-byte aligned", what, gpa,
		          align);
		return NULL;
	}
	p = spk_mem_ptr(q->mem, gpa, len, access);
	if (!p)
		violation(q, "%s ring at 0x%" PRIx64 "+0x%" PRIx64 " is not in guest RAM%s", what,
		          gpa, len, access & SPK_MEM_W ? " (writable)" : "");
	return p;
}

int spk_virtq_start(struct spk_virtq *q, const struct spk_mem *mem, bool event_idx, bool indirect)
{
	uint64_t n = q->size, extra = event_idx ? 2 : 0;

	q->mem = mem;
	q->event_idx = event_idx;
	q->indirect = indirect;
	q->broken = false;
	if (n == 0 || n > q->max_size || (n & (n - 1))) {
		violation(q, "queue size %" PRIu64 " is not a power of two from 1 to %u", n,
		          q->max_size);
		return -EINVAL;
	}
	q->desc_p = map_ring(q, "descriptor", q->desc, DESC_SIZE * n, DESC_ALIGN, SPK_MEM_R);
	if (!q->desc_p)
		return -EINVAL;
	q->avail_p = map_ring(q, "available", q->avail, 4 + 2 * n + extra, AVAIL_ALIGN, SPK_MEM_R);
	if (!q->avail_p)
		return -EINVAL;
	q->used_p = map_ring(q, "used", q->used, 4 + USED_ELEM * n + extra, USED_ALIGN,
	                     SPK_MEM_R | SPK_MEM_W);
	if (!q->used_p)
		return -EINVAL;
	q->last_avail = q->used_idx = 0;
	q->signalled = 0;
	q->inflight = 0;
	q->broken = false;
	q->err[0] = '\0';
	return 0;
}

/* ---- ring fields: each loaded or stored once, atomically -------------------------------- */

static uint16_t avail_idx(const struct spk_virtq *q)
{
	return __atomic_load_n((uint16_t *)((uint8_t *)q->avail_p + 2), __ATOMIC_ACQUIRE);
}

static uint16_t avail_flags(const struct spk_virtq *q)
{
	return __atomic_load_n((uint16_t *)q->avail_p, __ATOMIC_RELAXED);
}

static uint16_t avail_ring(const struct spk_virtq *q, uint16_t i)
{
	return __atomic_load_n((uint16_t *)((uint8_t *)q->avail_p + 4) + (i & (q->size - 1)),
	                       __ATOMIC_RELAXED);
}

static uint16_t used_event(const struct spk_virtq *q)
{
	return __atomic_load_n((uint16_t *)((uint8_t *)q->avail_p + 4) + q->size, __ATOMIC_RELAXED);
}

static void set_avail_event(struct spk_virtq *q, uint16_t v)
{
	uint16_t *p = (uint16_t *)((uint8_t *)q->used_p + 4 + USED_ELEM * (size_t)q->size);

	__atomic_store_n(p, v, __ATOMIC_RELAXED);
	spk_mem_mark_dirty(q->mem, q->used + 4 + USED_ELEM * (uint64_t)q->size, 2);
}

static struct desc load_desc(const uint8_t *p)
{
	struct desc d;

	d.addr = __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
	d.len = __atomic_load_n((const uint32_t *)(p + 8), __ATOMIC_RELAXED);
	d.flags = __atomic_load_n((const uint16_t *)(p + 12), __ATOMIC_RELAXED);
	d.next = __atomic_load_n((const uint16_t *)(p + 14), __ATOMIC_RELAXED);
	return d;
}

/* ---- chain parsing ------------------------------------------------------------------------ */

/* Why [gpa, gpa + len) is not all guest RAM with the access wanted, or NULL. */
static const char *buffer_refused(const struct spk_mem *mem, uint64_t gpa, uint64_t len,
                                  unsigned access)
{
	while (len) {
		const struct spk_mem_region *r = spk_mem_find(mem, gpa);
		uint64_t piece;

		if (!r || r->type == SPK_MEM_UNPOPULATED)
			return "is outside guest RAM";
		piece = r->size - (gpa - r->gpa);
		if (piece > len)
			piece = len;
		if (!spk_mem_ptr(mem, gpa, piece, access))
			return (access & SPK_MEM_W) ? "is in read-only memory"
			                            : "is outside guest RAM";
		len -= piece;
		if (len && !spk_add_ok(gpa, piece, &gpa))
			return "is outside guest RAM";
	}
	return NULL;
}

/* One buffer descriptor (not an indirect one): check it and record it. */
static int add_buffer(struct walk *w, const struct desc *d, const char *where, uint32_t idx)
{
	struct spk_virtq *q = w->q;
	bool wr = d->flags & SPK_VIRTQ_DESC_F_WRITE;
	const char *why;
	uint64_t last;

	if (w->budget == 0)
		return violation(q, "chain from head %u is longer than the queue size %u",
		                 w->c->head, q->size);
	w->budget--;
	if (!wr && w->seen_write)
		return violation(q, "%sdescriptor %u is device-readable after a writable one",
		                 where, idx);
	if (d->len && !spk_add_ok(d->addr, d->len - 1, &last))
		return violation(q, "%sdescriptor %u: buffer 0x%" PRIx64 "+0x%x wraps around",
		                 where, idx, d->addr, d->len);
	why = d->len ? buffer_refused(q->mem, d->addr, d->len, wr ? SPK_MEM_W : SPK_MEM_R) : NULL;
	if (why)
		return violation(q, "%sdescriptor %u: %s buffer 0x%" PRIx64 "+0x%x %s", where, idx,
		                 wr ? "writable" : "readable", d->addr, d->len, why);
	if (wr)
		w->in += d->len;
	else
		w->out += d->len;
	if (w->in > UINT32_MAX || w->out > UINT32_MAX)
		return violation(q,
		                 "chain from head %u: total length 0x%" PRIx64 " overflows 32 "
		                 "bits",
		                 w->c->head, wr ? w->in : w->out);
	w->seen_write |= wr;
	w->c->buf[w->c->n++] = (struct spk_virtq_buf){.gpa = d->addr, .len = d->len, .write = wr};
	if (!wr)
		w->c->n_out++;
	return 0;
}

/* The chain inside an indirect table (virtio 1.2 section 2.7.5.3). */
static int walk_indirect(struct walk *w, const struct desc *ind, uint16_t at)
{
	struct spk_virtq *q = w->q;
	const uint8_t *table;
	uint32_t n, i = 0;
	int rc;

	if (!q->indirect)
		return violation(q,
		                 "descriptor %u is indirect, but INDIRECT_DESC was not "
		                 "negotiated",
		                 at);
	if (ind->flags & SPK_VIRTQ_DESC_F_NEXT)
		return violation(q, "descriptor %u is indirect and has NEXT too", at);
	if (ind->len == 0 || ind->len % DESC_SIZE)
		return violation(q,
		                 "descriptor %u: indirect table length %u is not a non-zero "
		                 "multiple of 16",
		                 at, ind->len);
	n = ind->len / DESC_SIZE;
	if (n > q->size)
		return violation(q,
		                 "descriptor %u: indirect table of %u descriptors is longer than "
		                 "the queue size %u",
		                 at, n, q->size);
	table = spk_mem_ptr(q->mem, ind->addr, ind->len, SPK_MEM_R);
	if (!table)
		return violation(q,
		                 "descriptor %u: indirect table 0x%" PRIx64 "+0x%x is not inside "
		                 "one guest RAM region",
		                 at, ind->addr, ind->len);
	for (;;) {
		struct desc d = load_desc(table + (size_t)i * DESC_SIZE);

		if (d.flags & SPK_VIRTQ_DESC_F_INDIRECT)
			return violation(q,
			                 "indirect descriptor %u (table at 0x%" PRIx64 ") is "
			                 "indirect again: nested tables",
			                 i, ind->addr);
		if ((rc = add_buffer(w, &d, "indirect ", i)) < 0)
			return rc;
		if (!(d.flags & SPK_VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= n)
			return violation(q,
			                 "indirect descriptor %u: next %u is beyond the table of "
			                 "%u",
			                 i, d.next, n);
		i = d.next;
	}
}

static int walk_chain(struct walk *w, uint16_t head)
{
	struct spk_virtq *q = w->q;
	uint16_t i = head;
	int rc;

	for (;;) {
		struct desc d = load_desc((const uint8_t *)q->desc_p + (size_t)i * DESC_SIZE);

		if (d.flags & SPK_VIRTQ_DESC_F_INDIRECT)
			return walk_indirect(w, &d, i);
		if ((rc = add_buffer(w, &d, "", i)) < 0)
			return rc;
		if (!(d.flags & SPK_VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= q->size)
			return violation(q,
			                 "descriptor %u: next index %u is beyond the queue size "
			                 "%u",
			                 i, d.next, q->size);
		i = d.next;
	}
}

int spk_virtq_pop(struct spk_virtq *q, struct spk_virtq_chain *c)
{
	uint16_t avail, head;
	int rc;

	if (q->broken)
		return -EIO;
	if (!q->desc_p)
		return 0;
	avail = avail_idx(q);
	if ((uint16_t)(avail - q->last_avail) > q->size)
		return violation(q,
		                 "available index %u is %u entries ahead of %u, more than the "
		                 "queue size %u",
		                 avail, (uint16_t)(avail - q->last_avail), q->last_avail, q->size);
	if (avail == q->last_avail)
		return 0;
	head = avail_ring(q, q->last_avail);
	if (head >= q->size)
		return violation(q, "available entry %u: head index %u is beyond the queue size %u",
		                 q->last_avail, head, q->size);
	*c = (struct spk_virtq_chain){.head = head, .buf = q->bufs};
	struct walk w = {.q = q, .c = c, .budget = q->size};
	if ((rc = walk_chain(&w, head)) < 0)
		return rc;
	c->out_len = (uint32_t)w.out;
	c->in_len = (uint32_t)w.in;
	q->last_avail++;
	q->inflight++;
	if (q->event_idx)
		set_avail_event(q, q->last_avail);
	return 1;
}

int spk_virtq_push(struct spk_virtq *q, const struct spk_virtq_chain *c, uint32_t len)
{
	uint8_t *elem;
	uint64_t slot;

	if (!q->used_p || q->inflight == 0 || c->head >= q->size)
		return spk_fail(EINVAL, "virtq: queue %u: push of head %u with %u chains in flight",
		                q->index, c->head, q->inflight);
	if (len > c->in_len)
		len = c->in_len; /* never claim more than the driver offered */
	slot = 4 + USED_ELEM * (uint64_t)(q->used_idx & (q->size - 1));
	elem = (uint8_t *)q->used_p + slot;
	__atomic_store_n((uint32_t *)elem, (uint32_t)c->head, __ATOMIC_RELAXED);
	__atomic_store_n((uint32_t *)(elem + 4), len, __ATOMIC_RELAXED);
	q->used_idx++;
	q->inflight--;
	/* the element before the index: the driver reads them in that order */
	__atomic_store_n((uint16_t *)((uint8_t *)q->used_p + 2), q->used_idx, __ATOMIC_RELEASE);
	/* the ring is written through the pointer kept since start: tell the dirty log */
	spk_mem_mark_dirty(q->mem, q->used + slot, USED_ELEM);
	spk_mem_mark_dirty(q->mem, q->used + 2, 2);
	return 0;
}

bool spk_virtq_need_interrupt(struct spk_virtq *q)
{
	uint16_t old = q->signalled, event;

	if (!q->used_p || old == q->used_idx)
		return false; /* nothing used since the last one: no spurious interrupt */
	q->signalled = q->used_idx;
	/* our used index store before the driver's suppression fields */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(avail_flags(q) & SPK_VIRTQ_AVAIL_F_NO_INTERRUPT);
	event = used_event(q);
	/* vring_need_event(): did used_idx step over event since the last one? */
	return (uint16_t)(q->used_idx - event - 1) < (uint16_t)(q->used_idx - old);
}

bool spk_virtq_has_work(struct spk_virtq *q)
{
	if (!q->avail_p || q->broken)
		return false;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return avail_idx(q) != q->last_avail;
}

/* ---- data ------------------------------------------------------------------------------ */

/* Walk the readable or writable buffers from off, calling fn on each piece. */
static int64_t each_piece(const struct spk_virtq_chain *c, bool writable, uint64_t off,
                          uint64_t len,
                          int (*fn)(void *ctx, uint64_t gpa, uint64_t n, uint64_t done), void *ctx)
{
	uint64_t done = 0;
	uint32_t first = writable ? c->n_out : 0, end = writable ? c->n : c->n_out;

	for (uint32_t i = first; i < end && done < len; i++) {
		const struct spk_virtq_buf *b = &c->buf[i];
		uint64_t n;

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		n = b->len - off;
		if (n > len - done)
			n = len - done;
		int rc = fn(ctx, b->gpa + off, n, done);
		if (rc < 0)
			return rc;
		done += n;
		off = 0;
	}
	return (int64_t)done;
}

struct copy_ctx {
	const struct spk_mem *mem;
	uint8_t *host;
};

static int copy_out(void *p, uint64_t gpa, uint64_t n, uint64_t done)
{
	struct copy_ctx *x = p;

	return spk_mem_read(x->mem, gpa, x->host + done, n) < 0 ? -EFAULT : 0;
}

static int copy_in(void *p, uint64_t gpa, uint64_t n, uint64_t done)
{
	struct copy_ctx *x = p;

	return spk_mem_write(x->mem, gpa, x->host + done, n) < 0 ? -EFAULT : 0;
}

int64_t spk_virtq_read(const struct spk_mem *mem, const struct spk_virtq_chain *c, uint64_t off,
                       void *dst, uint64_t len)
{
	struct copy_ctx x = {.mem = mem, .host = dst};

	return each_piece(c, false, off, len, copy_out, &x);
}

int64_t spk_virtq_write(const struct spk_mem *mem, const struct spk_virtq_chain *c, uint64_t off,
                        const void *src, uint64_t len)
{
	struct copy_ctx x = {.mem = mem, .host = (uint8_t *)src};

	return each_piece(c, true, off, len, copy_in, &x);
}

struct iov_ctx {
	const struct spk_mem *mem;
	bool writable;
	struct iovec *iov;
	int n, max;
};

static int add_iov(void *p, uint64_t gpa, uint64_t n, uint64_t done)
{
	struct iov_ctx *x = p;

	while (n) {
		const struct spk_mem_region *r = spk_mem_find(x->mem, gpa);
		uint64_t piece;
		void *host;

		if (!r)
			return -EFAULT;
		piece = r->size - (gpa - r->gpa);
		if (piece > n)
			piece = n;
		host = spk_mem_ptr(x->mem, gpa, piece, x->writable ? SPK_MEM_W : SPK_MEM_R);
		if (!host)
			return -EFAULT;
		if (x->n == x->max)
			return -ENOBUFS;
		x->iov[x->n++] = (struct iovec){.iov_base = host, .iov_len = piece};
		gpa += piece;
		n -= piece;
	}
	return 0;
}

int spk_virtq_iov(const struct spk_mem *mem, const struct spk_virtq_chain *c, bool writable,
                  uint64_t off, uint64_t len, struct iovec *iov, int max)
{
	struct iov_ctx x = {.mem = mem, .writable = writable, .iov = iov, .max = max};
	int64_t rc = each_piece(c, writable, off, len, add_iov, &x);

	return rc < 0 ? (int)rc : x.n;
}

/* ---- state (snapshot.h) ------------------------------------------------------------------ */

static void qfield(char *buf, size_t len, const struct spk_virtq *q, const char *what)
{
	snprintf(buf, len, "q%u.%s", q->index, what);
}

int spk_virtq_state_save(const struct spk_virtq *q, struct spk_snap_writer *w)
{
	const struct {
		const char *name;
		uint64_t v;
		unsigned width;
	} f[] = {
	    {"size", q->size, 2},
	    {"msix_vector", q->msix_vector, 2},
	    {"enabled", q->enabled, 1},
	    {"desc", q->desc, 8},
	    {"avail", q->avail, 8},
	    {"used", q->used, 8},
	    {"last_avail", q->last_avail, 2},
	    {"used_idx", q->used_idx, 2},
	    {"signalled", q->signalled, 2},
	    {"broken", q->broken, 1},
	};
	char name[32];

	if (q->inflight)
		return spk_fail(EBUSY,
		                "virtq: queue %u has %u buffers in flight: the device must be "
		                "drained before a snapshot",
		                q->index, q->inflight);
	for (size_t i = 0; i < SPK_ARRAY_SIZE(f); i++) {
		qfield(name, sizeof(name), q, f[i].name);
		if (f[i].width == 1)
			spk_snap_put_u8(w, name, (uint8_t)f[i].v);
		else if (f[i].width == 2)
			spk_snap_put_u16(w, name, (uint16_t)f[i].v);
		else
			spk_snap_put_u64(w, name, f[i].v);
	}
	return spk_snap_writer_error(w);
}

/* The ring fields of an enabled queue: mapped as enabling maps them, and
 * the indexes agree with the rings in (already restored) guest memory. */
static int check_rings(struct spk_virtq *t, struct spk_snap_reader *r, const struct spk_mem *mem,
                       bool event_idx, bool indirect)
{
	uint16_t last_avail = t->last_avail, used_idx = t->used_idx, signalled = t->signalled;
	bool broken = t->broken;
	char f[32];

	if (spk_virtq_start(t, mem, event_idx, indirect) < 0) {
		const char *which = strstr(t->err, "available") ? "avail"
		                    : strstr(t->err, "used")    ? "used"
		                    : strstr(t->err, "size")    ? "size"
		                                                : "desc";

		qfield(f, sizeof(f), t, which);
		return spk_snap_bad(r, f, "%s", t->err);
	}
	t->last_avail = last_avail;
	t->used_idx = used_idx;
	t->signalled = signalled;
	t->broken = broken;
	if (broken)
		snprintf(t->err, sizeof(t->err), "broken before the snapshot");
	uint16_t used_now =
	    __atomic_load_n((uint16_t *)((uint8_t *)t->used_p + 2), __ATOMIC_RELAXED);
	uint16_t avail_now = avail_idx(t);

	if (used_now != used_idx) {
		qfield(f, sizeof(f), t, "used_idx");
		return spk_snap_bad(r, f, "%u, the used ring in guest memory says %u", used_idx,
		                    used_now);
	}
	if ((uint16_t)(avail_now - last_avail) > t->size) {
		qfield(f, sizeof(f), t, "last_avail");
		return spk_snap_bad(r, f,
		                    "%u is %u entries behind the available index %u, more than the "
		                    "queue size %u",
		                    last_avail, (uint16_t)(avail_now - last_avail), avail_now,
		                    t->size);
	}
	return 0;
}

int spk_virtq_state_read(const struct spk_virtq *q, struct spk_snap_reader *r,
                         const struct spk_mem *mem, bool event_idx, bool indirect, uint16_t nvec,
                         struct spk_virtq *out)
{
	struct spk_virtq t = {.index = q->index, .max_size = q->max_size};
	char f[10][32];
	static const char *const names[] = {"size",      "msix_vector", "enabled",    "desc",
	                                    "avail",     "used",        "last_avail", "used_idx",
	                                    "signalled", "broken"};
	int rc;

	for (int i = 0; i < 10; i++)
		qfield(f[i], sizeof(f[i]), q, names[i]);
	if ((rc = spk_snap_get_u16_max(r, f[0], q->max_size, &t.size)) ||
	    (rc = spk_snap_get_u16(r, f[1], &t.msix_vector)) ||
	    (rc = spk_snap_get_bool(r, f[2], &t.enabled)) ||
	    (rc = spk_snap_get_u64(r, f[3], &t.desc)) ||
	    (rc = spk_snap_get_u64(r, f[4], &t.avail)) ||
	    (rc = spk_snap_get_u64(r, f[5], &t.used)) ||
	    (rc = spk_snap_get_u16(r, f[6], &t.last_avail)) ||
	    (rc = spk_snap_get_u16(r, f[7], &t.used_idx)) ||
	    (rc = spk_snap_get_u16(r, f[8], &t.signalled)) ||
	    (rc = spk_snap_get_bool(r, f[9], &t.broken)))
		return rc;
	if (t.msix_vector != SPK_VIRTIO_NO_VECTOR && t.msix_vector >= nvec)
		return spk_snap_bad(r, f[1], "%u: the table has %u vectors", t.msix_vector, nvec);
	if (t.enabled) {
		if ((rc = check_rings(&t, r, mem, event_idx, indirect)))
			return rc;
	} else if (t.last_avail || t.used_idx || t.signalled || t.broken) {
		return spk_snap_bad(r, f[6], "a queue that is not enabled has ring indexes");
	}
	*out = t;
	return 0;
}

void spk_virtq_state_apply(struct spk_virtq *q, const struct spk_virtq *st)
{
	struct spk_virtq_buf *bufs = q->bufs;

	*q = *st;
	q->bufs = bufs;
	q->inflight = 0;
}

int spk_virtq_unpop(struct spk_virtq *q, uint16_t head)
{
	if (!q->avail_p || q->inflight == 0 || avail_ring(q, (uint16_t)(q->last_avail - 1)) != head)
		return spk_fail(EINVAL, "virtq: queue %u: chain %u is not the last one taken",
		                q->index, head);
	q->last_avail--;
	q->inflight--;
	if (q->event_idx)
		set_avail_event(q, q->last_avail);
	return 0;
}
