/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-net (virtio 1.2 section 5.1) on a Linux TAP device: queue 0
 * receives (TAP to guest), queue 1 transmits. No offloads are offered, so
 * every frame is a plain Ethernet frame behind a 12-byte virtio_net_hdr
 * that says nothing; the TAP uses the same header (IFF_VNET_HDR with
 * TUNSETVNETHDRSZ 12) and has its offloads off, so frames are handed
 * through with readv/writev straight between the TAP and guest memory.
 *
 * Flow, all on the event loop:
 *   - TAP readable: take a receive chain, readv the frame into it. No
 *     chain: stop watching the TAP for input until the driver posts
 *     buffers (its kick on queue 0 turns the watch back on).
 *   - kick on queue 1: writev each frame to the TAP. A TAP that would
 *     block keeps the frame and the loop waits for EPOLLOUT.
 * Each event moves at most NET_BUDGET frames per direction, so a guest
 * (or the host side) flooding one queue cannot starve the other devices.
 *
 * What the guest gets wrong: a transmit chain with device-writable
 * buffers or without a whole header, a receive chain with device-readable
 * buffers or no room for a header, are broken drivers (NEEDS_RESET). A
 * frame over 64 KiB, shorter than an Ethernet header, or asking for an
 * offload that was not negotiated is dropped with a rate-limited log
 * line, and the device goes on.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/snapshot.h>
#include <sparkler/virtio_net.h>

#include "core/internal.h"
#include "devices/devlog.h"
#include "virtio/ratelimit.h"

#define NET_QUEUE_SIZE 256
#define NET_RX         0
#define NET_TX         1
#define NET_HDR_LEN    12          /* virtio_net_hdr with num_buffers (VERSION_1) */
#define NET_FRAME_MAX  (64u << 10) /* largest frame after the header */
#define NET_FRAME_MIN  14          /* an Ethernet header */
#define NET_MTU_MIN    68          /* IPv4's least MTU, as Firecracker and the API check */
#define NET_BUDGET     64          /* frames per event and direction */
#define NET_IOV_MAX    (2 * NET_QUEUE_SIZE + 1)
#define NET_CLASS      0x020000 /* network controller, Ethernet */

#define F_MAC            5
#define F_MTU            3
#define F_STATUS         16
#define S_LINK_UP        1
#define CFG_MAC          0
#define CFG_STATUS       6
#define CFG_MTU          10
#define CFG_SIZE         12 /* mac, status, max_virtqueue_pairs, mtu */
#define HDR_F_NEEDS_CSUM 1

/* A chain taken from a queue and mapped, waiting for the TAP. */
struct held {
	bool held;
	struct spk_virtq_chain c; /* head and in_len only: buf belongs to the queue */
	struct iovec iov[NET_IOV_MAX];
	int niov;
	uint32_t cap; /* frame bytes it has room for (receive) or carries (transmit) */
};

struct spk_virtio_net {
	struct spk_virtio *vd;
	struct spk_evloop *loop;
	int tap;
	char ifname[IFNAMSIZ];
	uint8_t mac[6];
	uint16_t mtu; /* offered with VIRTIO_NET_F_MTU; 0: none */
	/* under the device lock */
	uint32_t watching; /* the events the loop watches the TAP for */
	bool tap_gone;     /* the TAP failed for good: not watched any more */
	struct held rx, tx;
	uint8_t rx_hdr[NET_HDR_LEN]; /* the TAP's header of the frame read last */
	uint8_t rx_spill;            /* a byte past the chain: the frame did not fit */
	uint8_t tx_hdr[NET_HDR_LEN]; /* all zeros: what the TAP gets */
	struct spk_virtio_net_stats st;
	struct spk_dev_ratelimit rl;
	/* frames wait in the TAP (receive) or the queue (transmit) while
	 * these refill */
	struct spk_ratelimiter rx_rl, tx_rl;
	/* a local endpoint (the metadata service): its frames bypass the TAP */
	struct spk_virtio_net_hook hook;
	bool has_hook;
	uint8_t *hook_buf; /* NET_FRAME_MAX bytes: one frame copied either way */
	int hook_tfd;      /* the hook's timer (-1: none yet) */
	uint64_t hook_due; /* CLOCK_MONOTONIC ns it is armed for; 0: disarmed */
};

#define net_log(n, ...) spk_dev_log(&(n)->rl, spk_virtio_name((n)->vd), SPK_LOG_WARN, __VA_ARGS__)

/* ---- the TAP ----------------------------------------------------------------------------- */

static int tap_fail(int fd, int err, const char *name, const char *what)
{
	if (fd >= 0)
		close(fd);
	return spk_fail(err, "virtio-net: TAP %s: %s: %s%s", name, what, strerror(err),
	                err == EPERM    ? " (creating or attaching a TAP needs CAP_NET_ADMIN, "
	                                  "or a persistent TAP owned by this user)"
	                : err == EBUSY  ? " (another process has it open)"
	                : err == EINVAL ? " (it exists and is not a single-queue TAP)"
	                                : "");
}

/* Bring the link up if it is down (best effort: a persistent TAP may belong
 * to an unprivileged user, who then brings it up). */
static void tap_link_up(const char *name)
{
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			spk_log(SPK_LOG_WARN,
			        "virtio-net: TAP %s is down and cannot be brought up (%s); "
			        "frames flow once it is up (ip link set %s up)",
			        name, strerror(errno), name);
	}
	close(s);
}

/* The TAP's MTU, as the API asked (Firecracker's `mtu`). */
static int tap_set_mtu(const char *name, uint16_t mtu)
{
	struct ifreq ifr = {.ifr_mtu = mtu};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (s < 0)
		return spk_fail(errno, "virtio-net: TAP %s: socket: %s", name, strerror(errno));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
		rc = spk_fail(errno, "virtio-net: TAP %s: setting the MTU to %u: %s", name, mtu,
		              strerror(errno));
	close(s);
	return rc;
}

/* Open (or create) the TAP: one frame per read and write, each behind a
 * 12-byte virtio_net_hdr, no offloads. */
static int tap_open(const char *name, char out[IFNAMSIZ])
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	int hdr = NET_HDR_LEN;
	int fd;

	if (!name || !*name || strlen(name) >= IFNAMSIZ || strchr(name, '/'))
		return spk_fail(EINVAL, "virtio-net: '%s' is not a TAP name (1 to %d characters)",
		                name ? name : "", IFNAMSIZ - 1);
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return tap_fail(-1, errno, name, "opening /dev/net/tun");
	memcpy(ifr.ifr_name, name, strlen(name) + 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		return tap_fail(fd, errno, name, "TUNSETIFF");
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0)
		return tap_fail(fd, errno, name, "TUNSETVNETHDRSZ");
	if (ioctl(fd, TUNSETOFFLOAD, 0) < 0)
		return tap_fail(fd, errno, name, "TUNSETOFFLOAD");
	snprintf(out, IFNAMSIZ, "%s", ifr.ifr_name);
	tap_link_up(out);
	return fd;
}

/* Watch the TAP for in (frames to receive) and out (room to transmit). On the loop. */
static void tap_watch(struct spk_virtio_net *n, bool in, bool out)
{
	uint32_t ev = (in ? EPOLLIN : 0) | (out ? EPOLLOUT : 0);

	if (n->tap_gone || ev == n->watching)
		return;
	if (spk_evloop_mod(n->loop, n->tap, ev) == 0)
		n->watching = ev;
}

/* The TAP failed in a way that will not pass (deleted under us). */
static void tap_lost(struct spk_virtio_net *n, const char *what, int err)
{
	if (n->tap_gone)
		return;
	spk_log(SPK_LOG_ERROR, "%s: TAP %s: %s: %s; no more frames in either direction",
	        spk_virtio_name(n->vd), n->ifname, what, strerror(err));
	spk_evloop_del(n->loop, n->tap);
	n->tap_gone = true;
}

/* ---- receive: TAP to guest ---------------------------------------------------------------- */

/* Take a receive chain and map it: 1, or 0 when there is none (or the
 * device cannot run). */
static int rx_take(struct spk_virtio_net *n)
{
	struct held *h = &n->rx;
	struct spk_virtq_chain c;
	int rc = spk_virtio_pop(n->vd, NET_RX, &c);

	if (rc <= 0)
		return 0;
	if (c.n_out) {
		spk_virtio_fail(n->vd, NET_RX, "receive chain %u has %u device-readable buffers",
		                c.head, c.n_out);
		return 0;
	}
	if (c.in_len < NET_HDR_LEN) {
		spk_virtio_fail(n->vd, NET_RX,
		                "receive chain %u of %u bytes has no room for the %d-byte header",
		                c.head, c.in_len, NET_HDR_LEN);
		return 0;
	}
	h->cap = c.in_len - NET_HDR_LEN < NET_FRAME_MAX ? c.in_len - NET_HDR_LEN : NET_FRAME_MAX;
	h->iov[0] = (struct iovec){.iov_base = n->rx_hdr, .iov_len = NET_HDR_LEN};
	rc = spk_virtq_iov(spk_virtio_mem(n->vd), &c, true, NET_HDR_LEN, h->cap, h->iov + 1,
	                   NET_IOV_MAX - 2);
	if (rc < 0) {
		spk_virtio_fail(n->vd, NET_RX, "receive chain %u cannot be mapped", c.head);
		return 0;
	}
	/* the TAP truncates a frame that does not fit and says how much it
	 * copied: a byte beyond the chain tells us */
	h->iov[rc + 1] = (struct iovec){.iov_base = &n->rx_spill, .iov_len = 1};
	h->niov = rc + 2;
	h->c = c;
	h->held = true;
	return 1;
}

/* The guest sees a header that asks for nothing (no offloads were negotiated). */
static int rx_finish(struct spk_virtio_net *n, const struct spk_virtq_chain *c, uint32_t frame)
{
	uint8_t hdr[NET_HDR_LEN] = {[10] = 1}; /* num_buffers = 1 */

	if ((n->rx_hdr[0] & HDR_F_NEEDS_CSUM) || n->rx_hdr[1] != 0) {
		net_log(n, "%s: TAP %s gave a frame with offloads (flags 0x%x, gso 0x%x); dropped",
		        spk_virtio_name(n->vd), n->ifname, n->rx_hdr[0], n->rx_hdr[1]);
		return -1;
	}
	if (spk_virtq_write(spk_virtio_mem(n->vd), c, 0, hdr, sizeof(hdr)) != sizeof(hdr))
		return -1;
	spk_virtio_push(n->vd, NET_RX, c, NET_HDR_LEN + frame);
	return 0;
}

/* Read one frame into the held chain: 1 delivered, 0 nothing to read,
 * -1 a frame was dropped (the chain stays held for the next one). */
static int rx_one(struct spk_virtio_net *n)
{
	struct held *h = &n->rx;
	ssize_t r;

	do
		r = readv(n->tap, h->iov, h->niov);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		if (errno != EAGAIN)
			tap_lost(n, "read", errno);
		return 0;
	}
	if (r < NET_HDR_LEN || (size_t)r - NET_HDR_LEN > h->cap) {
		net_log(n,
		        "%s: a frame from TAP %s is larger than the guest's receive buffer of %u "
		        "bytes; dropped",
		        spk_virtio_name(n->vd), n->ifname, h->cap);
		n->st.rx_dropped++;
		return -1;
	}
	if (rx_finish(n, &h->c, (uint32_t)(r - NET_HDR_LEN)) < 0) {
		n->st.rx_dropped++;
		return -1;
	}
	h->held = false;
	n->st.rx_frames++;
	n->st.rx_bytes += (uint64_t)(r - NET_HDR_LEN);
	return 1;
}

/* Frames from the hook into receive chains, before the TAP's: how many. */
static unsigned rx_local(struct spk_virtio_net *n)
{
	uint8_t hdr[NET_HDR_LEN] = {[10] = 1}; /* num_buffers = 1 */
	unsigned pushed = 0;

	for (unsigned i = 0; i < NET_BUDGET && n->has_hook; i++) {
		size_t len;

		/* the hook's frames count against the receive rate (as
		 * Firecracker's MMDS frames do): they wait for the refill,
		 * which kicks queue 0 */
		if (!spk_rl_admit(&n->rx_rl))
			return pushed;
		if (!n->rx.held && !rx_take(n))
			return pushed; /* the driver's kick brings us back */
		len = n->hook.rx(n->hook.opaque, n->hook_buf, n->rx.cap);
		if (!len)
			return pushed;
		if (len > n->rx.cap ||
		    spk_virtq_write(spk_virtio_mem(n->vd), &n->rx.c, 0, hdr, sizeof(hdr)) !=
		        sizeof(hdr) ||
		    spk_virtq_write(spk_virtio_mem(n->vd), &n->rx.c, NET_HDR_LEN, n->hook_buf,
		                    len) != (int64_t)len) {
			n->st.rx_dropped++;
			continue; /* the chain stays held for the next frame */
		}
		spk_virtio_push(n->vd, NET_RX, &n->rx.c, NET_HDR_LEN + (uint32_t)len);
		spk_rl_charge(&n->rx_rl, 1, len);
		n->rx.held = false;
		pushed++;
	}
	if (pushed == NET_BUDGET)
		spk_virtio_kick(n->vd, NET_RX); /* more may wait: after the other events */
	return pushed;
}

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Run the hook's due timers and arm ours for its next one (re-armed only
 * when that is sooner than what is armed: a timer that fires early costs
 * one call that finds nothing due). */
static void hook_timer(struct spk_virtio_net *n)
{
	uint64_t ms, due;
	struct itimerspec its = {0};

	if (!n->has_hook || !n->hook.timer || n->hook_tfd < 0)
		return;
	ms = n->hook.timer(n->hook.opaque);
	if (!ms)
		return;
	if (ms > 3600000) /* a day-long timer is a bug: an hour is plenty */
		ms = 3600000;
	due = mono_ns() + ms * 1000000ull;
	if (n->hook_due && n->hook_due <= due)
		return;
	its.it_value.tv_sec = (time_t)(ms / 1000);
	its.it_value.tv_nsec = (long)(ms % 1000) * 1000000;
	if (timerfd_settime(n->hook_tfd, 0, &its, NULL) == 0)
		n->hook_due = due;
}

/* The hook's frames, then its timers (which may have more). */
static unsigned rx_hook(struct spk_virtio_net *n)
{
	unsigned pushed = rx_local(n);

	hook_timer(n);
	return pushed;
}

static void rx_pump(struct spk_virtio_net *n)
{
	unsigned pushed = rx_hook(n);

	for (unsigned i = 0; i < NET_BUDGET && !n->tap_gone; i++) {
		if (!spk_rl_admit(&n->rx_rl)) {
			/* over the receive rate: frames wait in the TAP; the
			 * refill kicks queue 0, which watches the TAP again */
			tap_watch(n, false, n->tx.held);
			break;
		}
		if (!n->rx.held && !rx_take(n)) {
			/* no buffers: wait for the driver's kick, not for the TAP */
			tap_watch(n, false, n->tx.held);
			break;
		}
		uint64_t before = n->st.rx_bytes;
		int rc = rx_one(n);
		if (rc == 0)
			break;
		if (rc > 0)
			spk_rl_charge(&n->rx_rl, 1, n->st.rx_bytes - before);
		pushed += rc > 0;
	}
	if (pushed)
		spk_virtio_interrupt(n->vd, NET_RX);
}

/* ---- transmit: guest to TAP ----------------------------------------------------------------- */

enum tx_verdict { TX_SEND, TX_DROP, TX_BROKEN };

/* Check a transmit chain and map its frame into n->tx. */
static enum tx_verdict tx_check(struct spk_virtio_net *n, const struct spk_virtq_chain *c)
{
	const char *name = spk_virtio_name(n->vd);
	uint8_t hdr[NET_HDR_LEN];
	uint32_t frame;
	int rc;

	if (c->n_out < c->n) {
		spk_virtio_fail(n->vd, NET_TX, "transmit chain %u has %u device-writable buffers",
		                c->head, c->n - c->n_out);
		return TX_BROKEN;
	}
	if (c->out_len < NET_HDR_LEN) {
		spk_virtio_fail(n->vd, NET_TX,
		                "transmit chain %u of %u bytes is shorter than the %d-byte header",
		                c->head, c->out_len, NET_HDR_LEN);
		return TX_BROKEN;
	}
	frame = c->out_len - NET_HDR_LEN;
	if (frame > NET_FRAME_MAX || frame < NET_FRAME_MIN) {
		net_log(n, "%s: a frame of %u bytes to transmit (need %d to %u); dropped", name,
		        frame, NET_FRAME_MIN, NET_FRAME_MAX);
		return TX_DROP;
	}
	if (spk_virtq_read(spk_virtio_mem(n->vd), c, 0, hdr, sizeof(hdr)) != sizeof(hdr))
		return TX_DROP;
	if ((hdr[0] & HDR_F_NEEDS_CSUM) || hdr[1] != 0) {
		net_log(n,
		        "%s: a frame asks for offloads that were not negotiated (flags 0x%x, "
		        "gso 0x%x); dropped",
		        name, hdr[0], hdr[1]);
		return TX_DROP;
	}
	/* the TAP gets our own all-zero header: the guest's may change under us */
	n->tx.iov[0] = (struct iovec){.iov_base = n->tx_hdr, .iov_len = NET_HDR_LEN};
	rc = spk_virtq_iov(spk_virtio_mem(n->vd), c, false, NET_HDR_LEN, frame, n->tx.iov + 1,
	                   NET_IOV_MAX - 1);
	if (rc < 0)
		return TX_DROP;
	n->tx.niov = rc + 1;
	n->tx.cap = frame;
	return TX_SEND;
}

/* Copy len bytes of the frame mapped in n->tx into the hook's buffer. */
static void tx_copy(struct spk_virtio_net *n, size_t len)
{
	size_t got = 0;

	for (int i = 1; i < n->tx.niov && got < len; i++) {
		size_t k = n->tx.iov[i].iov_len < len - got ? n->tx.iov[i].iov_len : len - got;

		memcpy(n->hook_buf + got, n->tx.iov[i].iov_base, k);
		got += k;
	}
}

/* Is the frame mapped in n->tx for the hook? Then it has it (a copy). */
static bool tx_local(struct spk_virtio_net *n)
{
	size_t head = n->tx.cap < SPK_VIRTIO_NET_HOOK_HEAD ? n->tx.cap : SPK_VIRTIO_NET_HOOK_HEAD;

	if (!n->has_hook)
		return false;
	/* the head first: the other frames are not copied */
	tx_copy(n, head);
	if (!n->hook.match(n->hook.opaque, n->hook_buf, head))
		return false;
	/* the whole frame, once: the guest may change its buffers meanwhile */
	tx_copy(n, n->tx.cap);
	n->hook.tx(n->hook.opaque, n->hook_buf, n->tx.cap);
	return true;
}

/* Write the frame in n->tx: true when done with it (sent or dropped),
 * false when the TAP is full. */
static bool tx_write(struct spk_virtio_net *n)
{
	ssize_t w;

	if (n->tap_gone) { /* a cable pulled out: frames go nowhere */
		n->st.tx_dropped++;
		return true;
	}
	do
		w = writev(n->tap, n->tx.iov, n->tx.niov);
	while (w < 0 && errno == EINTR);
	if (w < 0 && errno == EAGAIN)
		return false;
	if (w < 0) {
		/* EIO: the link is down; the frame goes nowhere, as on a cable */
		net_log(n, "%s: TAP %s: write: %s%s; frame dropped", spk_virtio_name(n->vd),
		        n->ifname, strerror(errno), errno == EIO ? " (is the link up?)" : "");
		n->st.tx_dropped++;
		return true;
	}
	n->st.tx_frames++;
	n->st.tx_bytes += n->tx.cap;
	return true;
}

/* The frame the TAP refused earlier; false while it still refuses. */
static bool tx_retry(struct spk_virtio_net *n)
{
	if (!n->tx.held) {
		/* a reset dropped the frame: stop waiting for room */
		tap_watch(n, n->watching & EPOLLIN, false);
		return true;
	}
	if (!tx_write(n))
		return false;
	n->tx.held = false;
	spk_virtio_push(n->vd, NET_TX, &n->tx.c, 0);
	tap_watch(n, n->watching & EPOLLIN, false);
	return true;
}

static void tx_pump(struct spk_virtio_net *n)
{
	struct spk_virtq_chain c;
	unsigned i, used = 0, local = 0;

	if (!tx_retry(n))
		return; /* EPOLLOUT brings us back */
	for (i = 0; i < NET_BUDGET; i++) {
		/* over the transmit rate: frames wait in the queue; the refill
		 * kicks it */
		if (!spk_rl_admit(&n->tx_rl) || spk_virtio_pop(n->vd, NET_TX, &c) <= 0)
			break;
		enum tx_verdict v = tx_check(n, &c);

		if (v == TX_BROKEN)
			return;
		if (v == TX_SEND && tx_local(n)) {
			/* the hook's: not the TAP's, not counted against its rate */
			spk_virtio_push(n->vd, NET_TX, &c, 0);
			used++;
			local++;
			continue;
		}
		if (v == TX_SEND)
			spk_rl_charge(&n->tx_rl, 1, n->tx.cap);
		if (v == TX_SEND && !tx_write(n)) {
			n->tx.c = c;
			n->tx.held = true;
			tap_watch(n, n->watching & EPOLLIN, true);
			break;
		}
		n->st.tx_dropped += v == TX_DROP;
		spk_virtio_push(n->vd, NET_TX, &c, 0);
		used++;
	}
	if (used)
		spk_virtio_interrupt(n->vd, NET_TX);
	if (local && rx_hook(n))
		spk_virtio_interrupt(n->vd, NET_RX); /* the hook's answers */
	if (i == NET_BUDGET)
		spk_virtio_kick(n->vd, NET_TX); /* the rest after the other devices' events */
}

/* ---- the device ---------------------------------------------------------------------------- */

static void on_tap(void *opaque, int fd, uint32_t events)
{
	struct spk_virtio_net *n = opaque;

	spk_virtio_lock(n->vd);
	if (events & (EPOLLERR | EPOLLHUP)) {
		/* the TAP was deleted under us: these fire whatever we watch */
		tap_lost(n, "poll", EIO);
	} else if (!spk_virtio_running(n->vd)) {
		/* nothing moves until the driver is back: DRIVER_OK kicks the queues */
		tap_watch(n, false, false);
	} else {
		if (events & EPOLLOUT)
			tx_pump(n);
		if (events & EPOLLIN)
			rx_pump(n);
	}
	spk_virtio_unlock(n->vd);
}

/* The hook's timer: its retransmissions go out now if there is room. */
static void on_hook_timer(void *opaque, int fd, uint32_t events)
{
	struct spk_virtio_net *n = opaque;
	uint64_t ticks;

	(void)events;
	if (read(fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		return;
	spk_virtio_lock(n->vd);
	n->hook_due = 0;
	if (n->has_hook && n->hook.timer) {
		if (spk_virtio_running(n->vd) && rx_local(n))
			spk_virtio_interrupt(n->vd, NET_RX);
		hook_timer(n);
		/* what the timers made due: out now, or at the next kick */
		if (spk_virtio_running(n->vd) && rx_local(n))
			spk_virtio_interrupt(n->vd, NET_RX);
	}
	spk_virtio_unlock(n->vd);
}

static void net_notify(void *opaque, struct spk_virtio *vd, unsigned q)
{
	struct spk_virtio_net *n = opaque;

	if (q == NET_RX) {
		/* new receive buffers: frames may flow again */
		tap_watch(n, true, n->tx.held);
		rx_pump(n);
	} else if (q == NET_TX) {
		tx_pump(n);
	}
}

static void net_reset(void *opaque, struct spk_virtio *vd)
{
	struct spk_virtio_net *n = opaque;

	/* on a vCPU thread: the loop's watch is fixed up by on_tap */
	n->rx.held = false;
	n->tx.held = false;
}

static void net_config_read(void *opaque, uint32_t off, void *buf, uint32_t len)
{
	struct spk_virtio_net *n = opaque;
	uint8_t cfg[CFG_SIZE] = {0};

	memcpy(cfg + CFG_MAC, n->mac, sizeof(n->mac));
	cfg[CFG_STATUS] = S_LINK_UP;
	cfg[CFG_MTU] = (uint8_t)n->mtu; /* little-endian; 0 when not offered */
	cfg[CFG_MTU + 1] = (uint8_t)(n->mtu >> 8);
	memcpy(buf, cfg + off, len);
}

/*
 * State (snapshot.h): the MAC the guest knew, for the record; the device
 * keeps its own (a clone has a MAC of its own) and its TAP. Frames held
 * for the TAP are buffers in flight: the transport refuses to save then.
 */
static int net_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_virtio_net *n = opaque;

	return spk_snap_put_bytes(w, "mac", n->mac, sizeof(n->mac));
}

static int net_load(void *opaque, struct spk_snap_reader *r)
{
	uint8_t mac[6];
	int rc;

	if ((rc = spk_snap_get_bytes(r, "mac", mac, sizeof(mac))) || (rc = spk_snap_reader_done(r)))
		return rc;
	return 0;
}

static const struct spk_dev_state_ops net_state = {"virtio_net", 1, net_save, net_load};

/* Before a save: the receive chain waiting for the TAP and the frame the
 * TAP refused go back to their queues, to be taken again. */
static void net_quiesce(void *opaque, struct spk_virtio *vd)
{
	struct spk_virtio_net *n = opaque;

	if (n->rx.held && spk_virtio_unpop(vd, NET_RX, &n->rx.c) == 0)
		n->rx.held = false;
	if (n->tx.held && spk_virtio_unpop(vd, NET_TX, &n->tx.c) == 0)
		n->tx.held = false;
}

static const struct spk_virtio_ops net_ops = {
    .config_read = net_config_read,
    .queue_notify = net_notify,
    .reset = net_reset,
    .state = &net_state,
    .quiesce = net_quiesce,
};

static void random_mac(uint8_t mac[6])
{
	if (getrandom(mac, 6, 0) != 6) {
		uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;

		memcpy(mac, &t, 6);
	}
	mac[0] = (uint8_t)((mac[0] & 0xfe) | 0x02); /* unicast, locally administered */
}

static int net_make(struct spk_virtio_net *n, const struct spk_virtio_net_config *cfg)
{
	const struct spk_virtio_config vc = {
	    .name = "virtio-net",
	    .device_id = SPK_VIRTIO_ID_NET,
	    .class_code = NET_CLASS,
	    .num_queues = 2,
	    .queue_max = NET_QUEUE_SIZE,
	    .features = SPK_VIRTIO_F_BIT(F_MAC) | SPK_VIRTIO_F_BIT(F_STATUS) |
	                (n->mtu ? SPK_VIRTIO_F_BIT(F_MTU) : 0),
	    .config_size = CFG_SIZE,
	    .ops = &net_ops,
	    .opaque = n,
	    .pci = cfg->pci,
	    .slot = cfg->slot,
	    .mem = cfg->mem,
	    .loop = cfg->loop,
	};
	int rc = spk_virtio_new(&vc, &n->vd);

	if (rc < 0)
		return rc;
	/* nothing to receive until the driver is ready: DRIVER_OK kicks the queues */
	rc = spk_evloop_add(cfg->loop, n->tap, 0, on_tap, n);
	if (rc < 0) {
		spk_virtio_free(n->vd);
		n->vd = NULL;
	}
	return rc;
}

int spk_virtio_net_new(const struct spk_virtio_net_config *cfg, struct spk_virtio_net **out)
{
	struct spk_virtio_net *n;
	int rc;

	if (!cfg || !out || !cfg->loop)
		return spk_fail(EINVAL, "virtio-net: new needs a config with a loop, and an out "
		                        "pointer");
	if (cfg->mtu && cfg->mtu < NET_MTU_MIN)
		return spk_fail(EINVAL, "virtio-net: an MTU of %u (need %d to 65535)", cfg->mtu,
		                NET_MTU_MIN);
	n = calloc(1, sizeof(*n));
	if (!n)
		return spk_fail(ENOMEM, "virtio-net: out of memory");
	n->loop = cfg->loop;
	n->hook_tfd = -1;
	spk_rl_init(&n->rx_rl, cfg->loop, NULL, NET_RX);
	spk_rl_init(&n->tx_rl, cfg->loop, NULL, NET_TX);
	if (cfg->has_mac)
		memcpy(n->mac, cfg->mac, sizeof(n->mac));
	else
		random_mac(n->mac);
	n->tap = cfg->tap_fd >= 0 ? cfg->tap_fd : tap_open(cfg->tap, n->ifname);
	if (n->tap < 0) {
		rc = n->tap;
		goto err_free;
	}
	if (cfg->tap_fd >= 0) {
		snprintf(n->ifname, sizeof(n->ifname), "fd %d", cfg->tap_fd);
		fcntl(n->tap, F_SETFL, fcntl(n->tap, F_GETFL) | O_NONBLOCK);
	} else if (cfg->mtu && (rc = tap_set_mtu(n->ifname, cfg->mtu)) < 0) {
		goto err_close;
	}
	n->mtu = cfg->mtu;
	if ((rc = net_make(n, cfg)) < 0)
		goto err_close;
	n->rx_rl.vd = n->tx_rl.vd = n->vd;
	if ((rc = spk_rl_set(&n->rx_rl, &cfg->rx_rate_limit)) < 0 ||
	    (rc = spk_rl_set(&n->tx_rl, &cfg->tx_rate_limit)) < 0) {
		spk_virtio_net_free(n); /* it owns the TAP now */
		return rc;
	}
	*out = n;
	return 0;

err_close:
	close(n->tap);
err_free:
	free(n);
	return rc;
}

void spk_virtio_net_free(struct spk_virtio_net *n)
{
	if (!n)
		return;
	if (!n->tap_gone)
		spk_evloop_del(n->loop, n->tap);
	spk_rl_free(&n->rx_rl); /* their refills kick the device */
	spk_rl_free(&n->tx_rl);
	if (n->hook_tfd >= 0) {
		spk_evloop_del(n->loop, n->hook_tfd);
		close(n->hook_tfd);
	}
	spk_virtio_free(n->vd);
	close(n->tap);
	free(n->hook_buf);
	free(n);
}

struct spk_virtio *spk_virtio_net_dev(struct spk_virtio_net *n)
{
	if (!n) {
		spk_fail(EINVAL, "virtio-net: dev needs a device");
		return NULL;
	}
	return n->vd;
}

const char *spk_virtio_net_ifname(const struct spk_virtio_net *n)
{
	if (!n) {
		spk_fail(EINVAL, "virtio-net: ifname needs a device");
		return NULL;
	}
	return n->ifname;
}

void spk_virtio_net_mac(const struct spk_virtio_net *n, uint8_t mac[6])
{
	if (!n || !mac) {
		spk_fail(EINVAL, "virtio-net: mac needs a device and a buffer");
		if (mac)
			memset(mac, 0, 6);
		return;
	}
	memcpy(mac, n->mac, 6);
}

void spk_virtio_net_get_stats(struct spk_virtio_net *n, struct spk_virtio_net_stats *st)
{
	if (!n || !st) {
		spk_fail(EINVAL, "virtio-net: get_stats needs a device and a place for them");
		if (st)
			memset(st, 0, sizeof(*st));
		return;
	}
	spk_virtio_lock(n->vd);
	*st = n->st;
	st->rx_rate = n->rx_rl.st;
	st->tx_rate = n->tx_rl.st;
	spk_virtio_unlock(n->vd);
}

int spk_virtio_net_set_rate_limits(struct spk_virtio_net *n, const struct spk_rate_limit *rx,
                                   const struct spk_rate_limit *tx)
{
	int rc = 0;

	if (!n)
		return spk_fail(EINVAL, "virtio-net: set_rate_limits needs a device");
	/* both checked before either changes: all or nothing */
	if ((rx && (rc = spk_rl_check(rx)) < 0) || (tx && (rc = spk_rl_check(tx)) < 0))
		return rc;
	spk_virtio_lock(n->vd);
	if (rx)
		rc = spk_rl_set(&n->rx_rl, rx);
	if (rc == 0 && tx)
		rc = spk_rl_set(&n->tx_rl, tx);
	spk_virtio_unlock(n->vd);
	return rc;
}

/* The hook's timerfd on the loop, made once. Not under the device lock:
 * the loop's add may wait for a dispatch that waits for that lock. */
static int hook_timer_make(struct spk_virtio_net *n)
{
	bool spare;
	int fd, rc;

	fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		return spk_fail(errno, "virtio-net: the hook's timer: timerfd_create: %s",
		                strerror(errno));
	if ((rc = spk_evloop_add(n->loop, fd, EPOLLIN, on_hook_timer, n)) < 0) {
		close(fd);
		return rc;
	}
	spk_virtio_lock(n->vd);
	spare = n->hook_tfd >= 0; /* another set_hook made one meanwhile */
	if (!spare)
		n->hook_tfd = fd;
	spk_virtio_unlock(n->vd);
	if (spare) {
		spk_evloop_del(n->loop, fd);
		close(fd);
	}
	return 0;
}

int spk_virtio_net_set_hook(struct spk_virtio_net *n, const struct spk_virtio_net_hook *h)
{
	uint8_t *buf = NULL;
	int rc;

	if (!n)
		return spk_fail(EINVAL, "virtio-net: set_hook needs a device");
	if (h && (!h->match || !h->tx || !h->rx))
		return spk_fail(EINVAL, "virtio-net: a hook needs match, tx and rx");
	if (h && !(buf = malloc(NET_FRAME_MAX)))
		return spk_fail(ENOMEM, "virtio-net: out of memory for the hook's frames");
	if (h && h->timer && n->hook_tfd < 0 && (rc = hook_timer_make(n)) < 0) {
		free(buf);
		return rc;
	}
	spk_virtio_lock(n->vd);
	if (h) {
		n->hook = *h;
		if (!n->hook_buf) {
			n->hook_buf = buf;
			buf = NULL;
		}
	}
	n->has_hook = h != NULL;
	spk_virtio_unlock(n->vd);
	free(buf);
	return 0;
}
