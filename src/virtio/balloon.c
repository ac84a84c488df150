/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-balloon (virtio 1.2 section 5.5; the behaviour and the limits are
 * in sparkler/virtio_balloon.h).
 *
 * Inflate and deflate chains carry little-endian u32 PFNs of 4 KiB pages
 * in their readable buffers. An inflated PFN that names a whole page of
 * guest RAM is released with madvise(MADV_DONTNEED); consecutive pages
 * are released in one call. Deflated PFNs are only checked and counted:
 * the pages come back by themselves when the guest touches them (zeroed).
 *
 * The statistics queue holds one buffer: the driver fills it and adds it;
 * the device reads it and keeps it until the next interval, when it gives
 * it back (used length 0) and the driver refills it. A held buffer is
 * given back untouched (unpopped) before a snapshot is saved, and taken
 * again at the next interval.
 *
 * Free page reporting: each chain's writable buffers are free guest
 * ranges; the whole pages inside them are released, and the chain goes
 * back with used length 0.
 *
 * Free page hinting (VIRTIO_BALLOON_F_FREE_PAGE_HINT): the host starts a
 * run by writing a new command id (2 and up) into free_page_hint_cmd_id;
 * the driver answers on the hint queue with that id (a readable u32),
 * then hands over blocks of free pages it holds (writable buffers: their
 * whole pages are released, as reported ones are), then the id STOP (0).
 * The host writes DONE (1) when it is finished with them (at once when
 * the run was started with ack_on_stop), and only then does the driver
 * give the pages back to its allocator: so releasing them is safe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <sparkler/snapshot.h>
#include <sparkler/virtio.h>
#include <sparkler/virtio_balloon.h>

#include "core/internal.h"

#define BALLOON_QUEUE_SIZE 256
#define BALLOON_MAX_QUEUES 5
#define BALLOON_CLASS      0x050000 /* memory controller, as QEMU's virtio-balloon-pci */
#define BALLOON_CFG_SIZE   16       /* num_pages, actual, free_page_hint_cmd_id, poison_val */
#define PAGE               (1ull << SPK_BALLOON_PAGE_SHIFT)
#define PFN_BATCH          256
#define STAT_ENTRY         10 /* le16 tag, le64 value, packed */
#define STAT_MAX_ENTRIES   64 /* read at most this many from one buffer */
#define BAD_PFN_LOGS       8
#define HINT_CMD_STOP      0
#define HINT_CMD_DONE      1
#define HINT_CMD_FIRST     2

enum role { R_NONE = 0, R_INFLATE, R_DEFLATE, R_STATS, R_HINT, R_REPORT };

struct spk_virtio_balloon {
	struct spk_virtio *vd;
	struct spk_evloop *loop;
	int tfd; /* the statistics timer, -1 without */
	bool stats_offered, report_offered, hint_offered, deflate_on_oom;
	/* under the device lock */
	uint32_t target, actual;
	uint32_t interval_s;
	enum role role[BALLOON_MAX_QUEUES];
	unsigned stats_q;             /* the negotiated statistics queue (role R_STATS) */
	bool held;                    /* a statistics chain is held */
	struct spk_virtq_chain stats; /* its head (its buffers are not used again) */
	struct spk_virtio_balloon_stats st;
	/* hinting: the host's command id, the last id the driver sent */
	uint32_t host_cmd, guest_cmd, next_cmd;
	bool ack_on_stop;
	struct iovec iov[2 * BALLOON_QUEUE_SIZE];
};

/* ---- configuration space ------------------------------------------------------------ */

static void balloon_config_read(void *opaque, uint32_t off, void *buf, uint32_t len)
{
	struct spk_virtio_balloon *b = opaque;
	uint8_t cfg[BALLOON_CFG_SIZE] = {0};

	spk_put_le(cfg, b->target, 4);
	spk_put_le(cfg + 4, b->actual, 4);
	spk_put_le(cfg + 8, b->host_cmd, 4);
	memcpy(buf, cfg + off, len); /* the transport keeps off + len inside */
}

/* Only `actual` is the driver's to write (any width, any byte of it). */
static void balloon_config_write(void *opaque, uint32_t off, const void *buf, uint32_t len)
{
	struct spk_virtio_balloon *b = opaque;
	uint8_t cfg[BALLOON_CFG_SIZE] = {0};

	spk_put_le(cfg + 4, b->actual, 4);
	for (uint32_t i = 0; i < len; i++)
		if (off + i >= 4 && off + i < 8)
			cfg[off + i] = ((const uint8_t *)buf)[i];
	b->actual = (uint32_t)spk_get_le(cfg + 4, 4);
}

/* ---- releasing memory -------------------------------------------------------------------- */

/* Give [host, host + len) back to the host; len is whole pages. */
static void discard(struct spk_virtio_balloon *b, void *host, uint64_t len)
{
	if (len && madvise(host, len, MADV_DONTNEED) < 0)
		b->st.discard_fails++;
}

/* A run of consecutive pages being collected. */
struct run {
	uint8_t *start;
	uint64_t len;
};

static void run_add(struct spk_virtio_balloon *b, struct run *r, uint8_t *page, bool release)
{
	if (!release)
		return;
	if (r->start && r->start + r->len == page) {
		r->len += PAGE;
		return;
	}
	if (r->start)
		discard(b, r->start, r->len);
	r->start = page;
	r->len = PAGE;
}

/* The host address of the whole RAM page pfn names, or NULL. */
static uint8_t *pfn_page(const struct spk_mem *mem, uint32_t pfn)
{
	uint64_t gpa = (uint64_t)pfn << SPK_BALLOON_PAGE_SHIFT; /* < 2^44: no wrap */
	const struct spk_mem_region *r = spk_mem_find(mem, gpa);

	if (!r || r->type != SPK_MEM_RAM)
		return NULL;
	return spk_mem_ptr(mem, gpa, PAGE, SPK_MEM_R | SPK_MEM_W);
}

static void bad_pfn(struct spk_virtio_balloon *b, uint32_t pfn, bool inflate)
{
	if (b->st.bad_pfns++ < BAD_PFN_LOGS)
		spk_log(SPK_LOG_WARN, "%s: %s of PFN 0x%x: not a page of guest RAM, ignored%s",
		        spk_virtio_name(b->vd), inflate ? "inflate" : "deflate", pfn,
		        b->st.bad_pfns == BAD_PFN_LOGS ? " (not logging more)" : "");
}

/* One inflate or deflate chain: every PFN in its readable bytes. */
static void pfn_chain(struct spk_virtio_balloon *b, const struct spk_virtq_chain *c, bool inflate)
{
	const struct spk_mem *mem = spk_virtio_mem(b->vd);
	uint64_t n = c->out_len / 4, done = 0;
	uint32_t pfns[PFN_BATCH];
	struct run run = {0};

	if (n > SPK_BALLOON_MAX_PFNS_PER_CHAIN) {
		b->st.ignored_pfns += n - SPK_BALLOON_MAX_PFNS_PER_CHAIN;
		n = SPK_BALLOON_MAX_PFNS_PER_CHAIN;
	}
	while (done < n) {
		uint64_t k = n - done < PFN_BATCH ? n - done : PFN_BATCH;
		int64_t got = spk_virtq_read(mem, c, done * 4, pfns, k * 4);

		if (got < (int64_t)(k * 4))
			break; /* cannot happen: the chain was checked */
		for (uint64_t i = 0; i < k; i++) {
			uint32_t pfn = (uint32_t)spk_get_le((const uint8_t *)&pfns[i], 4);
			uint8_t *page = pfn_page(mem, pfn);

			if (!page) {
				bad_pfn(b, pfn, inflate);
				continue;
			}
			if (inflate)
				b->st.inflated_pages++;
			else
				b->st.deflated_pages++;
			run_add(b, &run, page, inflate);
		}
		done += k;
	}
	if (run.start)
		discard(b, run.start, run.len);
	if (inflate)
		b->st.inflate_chains++;
	else
		b->st.deflate_chains++;
}

/* The whole pages inside a chain's writable buffers go back to the host
 * (free page reports and hints); the bytes released. */
static uint64_t release_writable(struct spk_virtio_balloon *b, const struct spk_virtq_chain *c)
{
	uint64_t done = 0;
	int n = spk_virtq_iov(spk_virtio_mem(b->vd), c, true, 0, c->in_len, b->iov,
	                      (int)SPK_ARRAY_SIZE(b->iov));

	if (n < 0) {
		b->st.discard_fails++;
		return 0;
	}
	for (int i = 0; i < n; i++) {
		/* the whole pages inside: skip to the first page boundary */
		uint8_t *p = b->iov[i].iov_base;
		size_t len = b->iov[i].iov_len;
		size_t head = (size_t)((PAGE - ((uintptr_t)p & (PAGE - 1))) & (PAGE - 1));
		size_t whole = len > head ? (len - head) & ~(size_t)(PAGE - 1) : 0;

		if (whole) {
			discard(b, p + head, whole);
			done += whole;
		}
	}
	return done;
}

static void report_chain(struct spk_virtio_balloon *b, const struct spk_virtq_chain *c)
{
	b->st.reported_bytes += release_writable(b, c);
	b->st.reports++;
}

/* A hint chain: a command id in its readable bytes, free pages in its
 * writable ones (Linux sends them apart; either may come alone). */
static void hint_chain(struct spk_virtio_balloon *b, const struct spk_virtq_chain *c)
{
	uint8_t id[4];

	if (c->out_len >= 4 && spk_virtq_read(spk_virtio_mem(b->vd), c, 0, id, 4) == 4) {
		b->guest_cmd = (uint32_t)spk_get_le(id, 4);
		if (b->guest_cmd == HINT_CMD_STOP && b->ack_on_stop &&
		    b->host_cmd >= HINT_CMD_FIRST) {
			b->host_cmd = HINT_CMD_DONE; /* the driver may take its pages back */
			spk_virtio_config_changed(b->vd);
		}
	}
	if (c->in_len) {
		b->st.hinted_bytes += release_writable(b, c);
		b->st.hints++;
	}
}

/* ---- statistics --------------------------------------------------------------------------- */

static void read_stats(struct spk_virtio_balloon *b, const struct spk_virtq_chain *c)
{
	uint64_t n = c->out_len / STAT_ENTRY;
	uint8_t buf[STAT_MAX_ENTRIES * STAT_ENTRY];

	if (n > STAT_MAX_ENTRIES)
		n = STAT_MAX_ENTRIES;
	if (c->out_len % STAT_ENTRY || !n ||
	    spk_virtq_read(spk_virtio_mem(b->vd), c, 0, buf, n * STAT_ENTRY) !=
	        (int64_t)(n * STAT_ENTRY)) {
		b->st.stats_update_fails++;
		return;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint16_t tag = (uint16_t)spk_get_le(buf + i * STAT_ENTRY, 2);

		if (tag >= SPK_BALLOON_S_NR)
			continue; /* a newer driver's statistic */
		b->st.value[tag] = spk_get_le(buf + i * STAT_ENTRY + 2, 8);
		b->st.have |= 1u << tag;
	}
	b->st.stats_updates++;
}

/* Give the held statistics buffer back: the driver refills it. */
static bool release_stats(struct spk_virtio_balloon *b)
{
	if (!b->held)
		return false;
	b->held = false;
	spk_virtio_push(b->vd, b->stats_q, &b->stats, 0);
	spk_virtio_interrupt(b->vd, b->stats_q);
	return true;
}

/* Take what the driver added: the newest buffer is kept, older ones (a
 * driver should add only one) go back at once. */
static void take_stats(struct spk_virtio_balloon *b, unsigned q)
{
	struct spk_virtq_chain c;

	for (unsigned i = 0; i < BALLOON_QUEUE_SIZE && spk_virtio_pop(b->vd, q, &c) > 0; i++) {
		release_stats(b);
		read_stats(b, &c);
		b->stats = c;
		b->stats.buf = NULL;
		b->held = true;
	}
}

static int poll_stats_locked(struct spk_virtio_balloon *b)
{
	unsigned q = b->stats_q;

	if (!b->stats_offered)
		return spk_fail(EINVAL, "%s: statistics are not enabled", spk_virtio_name(b->vd));
	/* q is BALLOON_MAX_QUEUES when the driver did not take statistics */
	if (!spk_virtio_running(b->vd) || q >= BALLOON_MAX_QUEUES || b->role[q] != R_STATS ||
	    !spk_virtio_queue_ready(b->vd, q))
		return 0;
	if (!b->held)
		take_stats(b, q); /* given back for a snapshot: take it again */
	return release_stats(b) ? 1 : 0;
}

static void on_stats_timer(void *opaque, int fd, uint32_t events)
{
	struct spk_virtio_balloon *b = opaque;
	uint64_t n;

	(void)events;
	if (read(fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: disarmed meanwhile */
	}
	spk_virtio_lock(b->vd);
	poll_stats_locked(b);
	spk_virtio_unlock(b->vd);
}

static int arm_timer(struct spk_virtio_balloon *b, uint32_t s)
{
	struct itimerspec its = {.it_interval = {.tv_sec = s}, .it_value = {.tv_sec = s}};

	if (b->tfd < 0)
		return 0;
	if (timerfd_settime(b->tfd, 0, &its, NULL) < 0)
		return spk_fail(errno, "%s: timerfd_settime: %s", spk_virtio_name(b->vd),
		                strerror(errno));
	return 0;
}

/* ---- the queues --------------------------------------------------------------------------- */

static int balloon_activate(void *opaque, struct spk_virtio *vd, uint64_t features)
{
	struct spk_virtio_balloon *b = opaque;
	unsigned q = 2;

	(void)vd;
	memset(b->role, 0, sizeof(b->role));
	b->role[0] = R_INFLATE;
	b->role[1] = R_DEFLATE;
	b->stats_q = BALLOON_MAX_QUEUES; /* none */
	if (features & SPK_VIRTIO_F_BIT(SPK_BALLOON_F_STATS_VQ)) {
		b->stats_q = q;
		b->role[q++] = R_STATS;
	}
	if (features & SPK_VIRTIO_F_BIT(SPK_BALLOON_F_FREE_PAGE_HINT))
		b->role[q++] = R_HINT;
	if (features & SPK_VIRTIO_F_BIT(SPK_BALLOON_F_REPORTING))
		b->role[q++] = R_REPORT;
	b->held = false;
	return 0;
}

static void balloon_notify(void *opaque, struct spk_virtio *vd, unsigned q)
{
	struct spk_virtio_balloon *b = opaque;
	struct spk_virtq_chain c;
	unsigned i = 0;

	if (q >= BALLOON_MAX_QUEUES)
		return;
	switch (b->role[q]) {
	case R_INFLATE:
	case R_DEFLATE:
	case R_REPORT:
	case R_HINT:
		for (; i < BALLOON_QUEUE_SIZE && spk_virtio_pop(vd, q, &c) > 0; i++) {
			if (b->role[q] == R_REPORT)
				report_chain(b, &c);
			else if (b->role[q] == R_HINT)
				hint_chain(b, &c);
			else
				pfn_chain(b, &c, b->role[q] == R_INFLATE);
			spk_virtio_push(vd, q, &c, 0);
		}
		spk_virtio_interrupt(vd, q);
		if (i == BALLOON_QUEUE_SIZE && b->loop)
			spk_virtio_kick(vd, q); /* more: after the loop's other work */
		return;
	case R_STATS:
		take_stats(b, q);
		return;
	case R_NONE:
		return;
	}
}

static void balloon_reset(void *opaque, struct spk_virtio *vd)
{
	struct spk_virtio_balloon *b = opaque;

	(void)vd;
	b->held = false; /* the transport forgets the queues */
	b->actual = 0;
	b->guest_cmd = 0;
	memset(b->role, 0, sizeof(b->role));
}

static void balloon_quiesce(void *opaque, struct spk_virtio *vd)
{
	struct spk_virtio_balloon *b = opaque;

	if (b->held && spk_virtio_unpop(vd, b->stats_q, &b->stats) == 0)
		b->held = false;
}

static void balloon_restored(void *opaque, struct spk_virtio *vd)
{
	struct spk_virtio_balloon *b = opaque;

	b->held = false;
	if (spk_virtio_running(vd))
		balloon_activate(b, vd, spk_virtio_features(vd));
	else
		memset(b->role, 0, sizeof(b->role));
}

/* ---- state ---------------------------------------------------------------------------------- */

static int balloon_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_virtio_balloon *b = opaque;
	uint8_t vals[SPK_BALLOON_S_NR * 8];

	for (unsigned i = 0; i < SPK_BALLOON_S_NR; i++)
		spk_put_le(vals + 8 * i, b->st.value[i], 8);
	spk_snap_put_u32(w, "target", b->target);
	spk_snap_put_u32(w, "actual", b->actual);
	spk_snap_put_u32(w, "interval", b->interval_s);
	spk_snap_put_u32(w, "stats_have", b->st.have);
	spk_snap_put_u32(w, "hint_host_cmd", b->host_cmd);
	spk_snap_put_u32(w, "hint_guest_cmd", b->guest_cmd);
	spk_snap_put_u32(w, "hint_next_cmd", b->next_cmd);
	spk_snap_put_u8(w, "hint_ack", b->ack_on_stop);
	return spk_snap_put_bytes(w, "stats", vals, sizeof(vals));
}

static int balloon_load(void *opaque, struct spk_snap_reader *r)
{
	struct spk_virtio_balloon *b = opaque;
	uint32_t target, actual, interval, have, host_cmd, guest_cmd, next_cmd;
	bool ack;
	uint8_t vals[SPK_BALLOON_S_NR * 8];
	int rc;

	if ((rc = spk_snap_get_u32(r, "target", &target)) ||
	    (rc = spk_snap_get_u32(r, "actual", &actual)) ||
	    (rc = spk_snap_get_u32(r, "interval", &interval)) ||
	    (rc = spk_snap_get_u32(r, "stats_have", &have)) ||
	    (rc = spk_snap_get_u32(r, "hint_host_cmd", &host_cmd)) ||
	    (rc = spk_snap_get_u32(r, "hint_guest_cmd", &guest_cmd)) ||
	    (rc = spk_snap_get_u32(r, "hint_next_cmd", &next_cmd)) ||
	    (rc = spk_snap_get_bool(r, "hint_ack", &ack)) ||
	    (rc = spk_snap_get_bytes(r, "stats", vals, sizeof(vals))) ||
	    (rc = spk_snap_reader_done(r)))
		return rc;
	if ((interval != 0) != b->stats_offered || interval > SPK_BALLOON_MAX_INTERVAL_S)
		return spk_fail(EINVAL,
		                "snapshot: virtio_balloon: field 'interval': %u does not "
		                "fit this device (statistics %s)",
		                interval, b->stats_offered ? "on" : "off");
	if (have >> SPK_BALLOON_S_NR)
		return spk_fail(EINVAL,
		                "snapshot: virtio_balloon: field 'stats_have': 0x%x names "
		                "unknown statistics",
		                have);
	if (!b->hint_offered && (host_cmd || guest_cmd))
		return spk_fail(EINVAL, "snapshot: virtio_balloon: field 'hint_host_cmd': hinting "
		                        "state for a device without hinting");
	if (interval != b->interval_s && (rc = arm_timer(b, interval)) < 0)
		return rc;
	b->host_cmd = host_cmd;
	b->guest_cmd = guest_cmd;
	b->next_cmd = next_cmd;
	b->ack_on_stop = ack;
	b->target = target;
	b->actual = actual;
	b->interval_s = interval;
	b->st.have = have;
	for (unsigned i = 0; i < SPK_BALLOON_S_NR; i++)
		b->st.value[i] = spk_get_le(vals + 8 * i, 8);
	return 0;
}

static const struct spk_dev_state_ops balloon_state = {"virtio_balloon", 1, balloon_save,
                                                       balloon_load};

static const struct spk_virtio_ops balloon_ops = {
    .config_read = balloon_config_read,
    .config_write = balloon_config_write,
    .activate = balloon_activate,
    .queue_notify = balloon_notify,
    .reset = balloon_reset,
    .state = &balloon_state,
    .quiesce = balloon_quiesce,
    .restored = balloon_restored,
};

/* ---- the public calls ---------------------------------------------------------------------- */

static int make_timer(struct spk_virtio_balloon *b)
{
	int rc;

	if (!b->loop || !b->stats_offered)
		return 0;
	b->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (b->tfd < 0)
		return spk_fail(errno, "virtio-balloon: timerfd_create: %s", strerror(errno));
	if ((rc = spk_evloop_add(b->loop, b->tfd, EPOLLIN, on_stats_timer, b)) < 0) {
		close(b->tfd);
		b->tfd = -1;
		return rc;
	}
	return 0;
}

int spk_virtio_balloon_new(const struct spk_virtio_balloon_config *cfg,
                           struct spk_virtio_balloon **out)
{
	struct spk_virtio_balloon *b;
	uint64_t features = 0;
	uint16_t nq = 2;
	int rc;

	if (!cfg || !out)
		return spk_fail(EINVAL, "virtio-balloon: new needs a config and an out pointer");
	if (cfg->stats_interval_s > SPK_BALLOON_MAX_INTERVAL_S)
		return spk_fail(EINVAL,
		                "virtio-balloon: a statistics interval of %u s (at most %u)",
		                cfg->stats_interval_s, SPK_BALLOON_MAX_INTERVAL_S);
	if (!(b = calloc(1, sizeof(*b))))
		return spk_fail(ENOMEM, "virtio-balloon: out of memory");
	*b = (struct spk_virtio_balloon){.loop = cfg->loop,
	                                 .tfd = -1,
	                                 .stats_offered = cfg->stats_interval_s != 0,
	                                 .report_offered = cfg->free_page_reporting,
	                                 .hint_offered = cfg->free_page_hinting,
	                                 .next_cmd = HINT_CMD_FIRST,
	                                 .deflate_on_oom = cfg->deflate_on_oom,
	                                 .target = cfg->target_pages,
	                                 .interval_s = cfg->stats_interval_s};
	if (b->deflate_on_oom)
		features |= SPK_VIRTIO_F_BIT(SPK_BALLOON_F_DEFLATE_ON_OOM);
	if (b->stats_offered) {
		features |= SPK_VIRTIO_F_BIT(SPK_BALLOON_F_STATS_VQ);
		nq++;
	}
	if (b->hint_offered) {
		features |= SPK_VIRTIO_F_BIT(SPK_BALLOON_F_FREE_PAGE_HINT);
		nq++;
	}
	if (b->report_offered) {
		features |= SPK_VIRTIO_F_BIT(SPK_BALLOON_F_REPORTING);
		nq++;
	}
	const struct spk_virtio_config vc = {
	    .name = "virtio-balloon",
	    .device_id = SPK_VIRTIO_ID_BALLOON,
	    .class_code = BALLOON_CLASS,
	    .num_queues = nq,
	    .queue_max = BALLOON_QUEUE_SIZE,
	    .features = features,
	    .config_size = BALLOON_CFG_SIZE,
	    .ops = &balloon_ops,
	    .opaque = b,
	    .pci = cfg->pci,
	    .slot = cfg->slot,
	    .mem = cfg->mem,
	    .loop = cfg->loop,
	};
	if ((rc = spk_virtio_new(&vc, &b->vd)) < 0)
		goto err_free;
	if ((rc = make_timer(b)) < 0 || (rc = arm_timer(b, b->interval_s)) < 0)
		goto err_dev;
	*out = b;
	return 0;
err_dev:
	if (b->tfd >= 0) {
		spk_evloop_del(b->loop, b->tfd);
		close(b->tfd);
	}
	spk_virtio_free(b->vd);
err_free:
	free(b);
	return rc;
}

void spk_virtio_balloon_free(struct spk_virtio_balloon *b)
{
	if (!b)
		return;
	if (b->tfd >= 0) {
		spk_evloop_del(b->loop, b->tfd);
		close(b->tfd);
	}
	spk_virtio_free(b->vd);
	free(b);
}

struct spk_virtio *spk_virtio_balloon_dev(struct spk_virtio_balloon *b)
{
	if (!b) {
		spk_fail(EINVAL, "virtio-balloon: dev needs a device");
		return NULL;
	}
	return b->vd;
}

int spk_virtio_balloon_set_target(struct spk_virtio_balloon *b, uint32_t pages)
{
	if (!b)
		return spk_fail(EINVAL, "virtio-balloon: set_target needs a device");
	spk_virtio_lock(b->vd);
	if (b->target != pages) {
		b->target = pages;
		if (spk_virtio_running(b->vd))
			spk_virtio_config_changed(b->vd);
	}
	spk_virtio_unlock(b->vd);
	return 0;
}

int spk_virtio_balloon_set_stats_interval(struct spk_virtio_balloon *b, uint32_t s)
{
	int rc = 0;

	if (!b)
		return spk_fail(EINVAL, "virtio-balloon: set_stats_interval needs a device");
	if (s > SPK_BALLOON_MAX_INTERVAL_S)
		return spk_fail(EINVAL,
		                "virtio-balloon: a statistics interval of %u s (at most %u)", s,
		                SPK_BALLOON_MAX_INTERVAL_S);
	if ((s != 0) != b->stats_offered) /* fixed at new */
		return spk_fail(EINVAL,
		                "virtio-balloon: statistics cannot be turned %s once the "
		                "device exists",
		                s ? "on" : "off");
	spk_virtio_lock(b->vd);
	if (s != b->interval_s && (rc = arm_timer(b, s)) == 0)
		b->interval_s = s;
	spk_virtio_unlock(b->vd);
	return rc;
}

uint32_t spk_virtio_balloon_stats_interval(struct spk_virtio_balloon *b)
{
	if (!b) {
		spk_fail(EINVAL, "virtio-balloon: stats_interval needs a device");
		return 0;
	}
	spk_virtio_lock(b->vd);
	uint32_t s = b->interval_s;
	spk_virtio_unlock(b->vd);
	return s;
}

int spk_virtio_balloon_poll_stats(struct spk_virtio_balloon *b)
{
	int rc;

	if (!b)
		return spk_fail(EINVAL, "virtio-balloon: poll_stats needs a device");
	spk_virtio_lock(b->vd);
	rc = poll_stats_locked(b);
	spk_virtio_unlock(b->vd);
	return rc;
}

/* A new hinting command for the driver (a config change when it runs). */
static int hint_cmd(struct spk_virtio_balloon *b, bool start, bool ack)
{
	if (!b)
		return spk_fail(EINVAL, "virtio-balloon: hinting needs a device");
	if (!b->hint_offered)
		return spk_fail(EINVAL, "virtio-balloon: free page hinting is not enabled");
	spk_virtio_lock(b->vd);
	if (start) {
		b->host_cmd = b->next_cmd;
		b->next_cmd = b->next_cmd == UINT32_MAX ? HINT_CMD_FIRST : b->next_cmd + 1;
		b->ack_on_stop = ack;
	} else {
		b->host_cmd = HINT_CMD_DONE;
	}
	if (spk_virtio_running(b->vd))
		spk_virtio_config_changed(b->vd);
	spk_virtio_unlock(b->vd);
	return 0;
}

int spk_virtio_balloon_hint_start(struct spk_virtio_balloon *b, bool ack_on_stop)
{
	return hint_cmd(b, true, ack_on_stop);
}

int spk_virtio_balloon_hint_stop(struct spk_virtio_balloon *b)
{
	return hint_cmd(b, false, false);
}

int spk_virtio_balloon_hint_status(struct spk_virtio_balloon *b, uint32_t *host_cmd,
                                   uint32_t *guest_cmd)
{
	if (!b || !host_cmd || !guest_cmd)
		return spk_fail(EINVAL,
		                "virtio-balloon: hint_status needs a device and two pointers");
	if (!b->hint_offered)
		return spk_fail(EINVAL, "virtio-balloon: free page hinting is not enabled");
	spk_virtio_lock(b->vd);
	*host_cmd = b->host_cmd;
	*guest_cmd = b->guest_cmd;
	spk_virtio_unlock(b->vd);
	return 0;
}

void spk_virtio_balloon_get_stats(struct spk_virtio_balloon *b,
                                  struct spk_virtio_balloon_stats *out)
{
	if (!b || !out) {
		if (out)
			memset(out, 0, sizeof(*out));
		spk_fail(EINVAL, "virtio-balloon: get_stats needs a device and an out pointer");
		return;
	}
	spk_virtio_lock(b->vd);
	*out = b->st;
	out->target_pages = b->target;
	out->actual_pages = b->actual;
	spk_virtio_unlock(b->vd);
}
