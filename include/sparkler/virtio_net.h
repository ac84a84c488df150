/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-net (virtio 1.2 section 5.1) on a Linux TAP device: one receive
 * and one transmit queue, the MAC address in configuration space
 * (VIRTIO_NET_F_MAC), link status always up (VIRTIO_NET_F_STATUS), no
 * offloads. Frames move between the TAP and guest memory with readv and
 * writev on the event loop, at most a bounded batch per event.
 *
 * The TAP is opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR (created if
 * there is none of that name: TUNSETIFF needs CAP_NET_ADMIN for that),
 * with a 12-byte header and its offloads off, and brought up if it is
 * down and we may (else a warning says to run `ip link set NAME up`). A
 * TAP created here goes away when the device closes it; a persistent one
 * stays.
 */
#ifndef SPARKLER_VIRTIO_NET_H
#define SPARKLER_VIRTIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sparkler/ratelimit.h>
#include <sparkler/virtio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct spk_virtio_net_config {
	struct spk_pci_host *pci;
	int slot; /* -1: the first free */
	struct spk_mem *mem;
	struct spk_evloop *loop; /* required: the TAP is watched there */
	const char *tap;         /* the TAP's name (at most 15 bytes) */
	/* Or an open descriptor with a TAP's semantics (one frame behind a
	 * 12-byte virtio_net_hdr per read and write, non-blocking), which
	 * the device then owns; -1 to open tap by name. */
	int tap_fd;
	uint8_t mac[6];
	bool has_mac; /* false: a random, locally administered unicast MAC */
	/* 0: none; else 68 to 65535: offered to the guest (VIRTIO_NET_F_MTU,
	 * the config's mtu) and set on a TAP opened by name (SIOCSIFMTU) */
	uint16_t mtu;
	/* all zero: none (sparkler/ratelimit.h); frames count as operations */
	struct spk_rate_limit rx_rate_limit, tx_rate_limit;
};

struct spk_virtio_net_stats {
	uint64_t rx_frames, rx_bytes, rx_dropped; /* TAP to guest */
	uint64_t tx_frames, tx_bytes, tx_dropped; /* guest to TAP */
	struct spk_rate_limit_stats rx_rate, tx_rate;
};

/*
 * The contract (the library's rules: vcpu.h). NULL device or pointer
 * arguments are refused with a message: -EINVAL, a NULL or zero return,
 * or (void functions) nothing done and an out-struct zeroed. Every call
 * here is thread-safe (the device's lock) and none is signal-safe.
 */
struct spk_virtio_net;
/* Any time before the VM runs; cfg is copied (pci, mem and loop are
 * borrowed and must outlive the device; a tap_fd is the device's once the
 * call succeeds, and a failed call may have closed it). 0 and *out (the caller
 * owns it), or -errno with spk_last_error() naming the TAP and what failed
 * (*out untouched). */
int spk_virtio_net_new(const struct spk_virtio_net_config *cfg, struct spk_virtio_net **out);
/* After the loop stopped and no vCPU runs; closes the TAP. Takes NULL. */
void spk_virtio_net_free(struct spk_virtio_net *n);
/* Its virtio device (owned by n, valid until spk_virtio_net_free). */
struct spk_virtio *spk_virtio_net_dev(struct spk_virtio_net *n);
/* The TAP's name as the kernel has it ("fd N" for a tap_fd); owned by n. */
const char *spk_virtio_net_ifname(const struct spk_virtio_net *n);
/* Copy the MAC address the guest sees into mac. */
void spk_virtio_net_mac(const struct spk_virtio_net *n, uint8_t mac[6]);
/* Change the receive and transmit rate limits while the device runs (NULL:
 * leave that one as it is); the buckets start full again. 0 or -EINVAL
 * (NULL n, a bad limit: then neither changes). */
int spk_virtio_net_set_rate_limits(struct spk_virtio_net *n, const struct spk_rate_limit *rx,
                                   const struct spk_rate_limit *tx);
/* Copy the counters so far into *st (one consistent moment). */
void spk_virtio_net_get_stats(struct spk_virtio_net *n, struct spk_virtio_net_stats *st);

/*
 * A local endpoint on the guest's link (sparkler's metadata service):
 * frames the guest sends that match go to the hook instead of the TAP,
 * and frames the hook has for the guest go into the receive queue before
 * the TAP's. All three are called on the device's event loop with its
 * lock held (never two at once).
 *   match  head: the frame's first bytes (up to SPK_VIRTIO_NET_HOOK_HEAD,
 *          fewer for a shorter frame): does the hook take this frame?
 *   tx     the whole frame, copied out of guest memory (len bytes)
 *   rx     write the next frame for the guest into buf (at most cap
 *          bytes); its length, or 0 when there is none
 *   timer  optional (NULL: the hook has no timers): do what is due now
 *          (retransmissions) and return the milliseconds until it wants
 *          to be called again, 0 for never. The device calls it after
 *          each batch of frames that reached the hook or came from it, and
 *          when the delay it returned last has passed (a timerfd on the
 *          device's loop; it may come early), then takes the hook's
 *          frames.
 * The hook's frames to the guest count against the receive rate limit;
 * its frames from the guest wait while the transmit rate limit is over
 * budget but cost nothing from it (Firecracker's rule for MMDS frames).
 */
#define SPK_VIRTIO_NET_HOOK_HEAD 64
struct spk_virtio_net_hook {
	void *opaque;
	bool (*match)(void *opaque, const uint8_t *head, size_t len);
	void (*tx)(void *opaque, const uint8_t *frame, size_t len);
	size_t (*rx)(void *opaque, uint8_t *buf, size_t cap);
	uint64_t (*timer)(void *opaque);
};
/* Install the hook (copied; opaque must outlive the device or the next
 * call), or remove it with NULL. Before the VM runs, or from any thread
 * while it runs. 0, -EINVAL (NULL n, a hook without match, tx and rx),
 * -ENOMEM, or -errno from making the hook's timer. */
int spk_virtio_net_set_hook(struct spk_virtio_net *n, const struct spk_virtio_net_hook *h);

#ifdef __cplusplus
}
#endif
#endif
