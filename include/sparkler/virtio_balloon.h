/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-balloon (virtio 1.2 section 5.5), the traditional memory balloon:
 * the host sets a target (num_pages in configuration space) and the
 * guest's driver inflates towards it, handing over 4 KiB pages by page
 * frame number on the inflate queue, and takes pages back on the deflate
 * queue; the driver writes how many pages it holds into `actual`.
 *
 * Every PFN is checked against guest RAM (a whole 4 KiB page inside a RAM
 * region); inflated pages go back to the host with madvise(MADV_DONTNEED)
 * (the guest's RAM is a private mapping: the next touch reads zeros), bad
 * PFNs are counted and skipped. Each chain is read at most
 * SPK_BALLOON_MAX_PFNS_PER_CHAIN PFNs deep, and each notification takes at
 * most a queue's worth of chains before it yields to the loop, so a
 * hostile driver cannot keep the event loop busy.
 *
 * Options, fixed when the device is made (Firecracker's rules):
 *  - deflate_on_oom: VIRTIO_BALLOON_F_DEFLATE_ON_OOM is offered;
 *  - stats_interval_s > 0: VIRTIO_BALLOON_F_STATS_VQ is offered and the
 *    driver's one statistics buffer is given back every interval (a
 *    timerfd on the loop), so the driver refills it with fresh numbers;
 *    the interval may change later but not from or to 0;
 *  - free_page_reporting: VIRTIO_BALLOON_F_REPORTING; the ranges the
 *    guest reports free are given back to the host as inflated pages are;
 *  - free_page_hinting: VIRTIO_BALLOON_F_FREE_PAGE_HINT; a run started
 *    with spk_virtio_balloon_hint_start() has the driver hand over blocks
 *    of free pages it holds until the host says DONE; they are given back
 *    to the host too.
 * Queues are numbered as Linux numbers them: inflate 0, deflate 1, then
 * stats, hinting and reporting in that order, each only when negotiated.
 */
#ifndef SPARKLER_VIRTIO_BALLOON_H
#define SPARKLER_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include <sparkler/virtio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPK_VIRTIO_ID_BALLOON 5

/* Feature bits (virtio 1.2 section 5.5.3). */
#define SPK_BALLOON_F_MUST_TELL_HOST 0
#define SPK_BALLOON_F_STATS_VQ       1
#define SPK_BALLOON_F_DEFLATE_ON_OOM 2
#define SPK_BALLOON_F_FREE_PAGE_HINT 3
#define SPK_BALLOON_F_REPORTING      5

#define SPK_BALLOON_PAGE_SHIFT         12
#define SPK_BALLOON_MAX_PFNS_PER_CHAIN 65536u
/* The longest statistics interval (Firecracker's field is 16 bits). */
#define SPK_BALLOON_MAX_INTERVAL_S 65535u

/* Statistics tags (virtio 1.2 section 5.5.6.3) and the values' slots. */
enum {
	SPK_BALLOON_S_SWAP_IN = 0,
	SPK_BALLOON_S_SWAP_OUT = 1,
	SPK_BALLOON_S_MAJFLT = 2,
	SPK_BALLOON_S_MINFLT = 3,
	SPK_BALLOON_S_MEMFREE = 4,
	SPK_BALLOON_S_MEMTOT = 5,
	SPK_BALLOON_S_AVAIL = 6,
	SPK_BALLOON_S_CACHES = 7,
	SPK_BALLOON_S_HTLB_PGALLOC = 8,
	SPK_BALLOON_S_HTLB_PGFAIL = 9,
	SPK_BALLOON_S_OOM_KILL = 10, /* 10 to 15: Linux 6.12 and later */
	SPK_BALLOON_S_ALLOC_STALL = 11,
	SPK_BALLOON_S_ASYNC_SCAN = 12,
	SPK_BALLOON_S_DIRECT_SCAN = 13,
	SPK_BALLOON_S_ASYNC_RECLAIM = 14,
	SPK_BALLOON_S_DIRECT_RECLAIM = 15,
	SPK_BALLOON_S_NR = 16,
};

struct spk_virtio_balloon_config {
	struct spk_pci_host *pci;
	int slot; /* -1: the first free */
	struct spk_mem *mem;
	/* the statistics timer runs here; NULL (unit tests): no timer, poll
	 * with spk_virtio_balloon_poll_stats() */
	struct spk_evloop *loop;
	uint32_t target_pages; /* the first target, 4 KiB pages */
	bool deflate_on_oom;
	uint32_t stats_interval_s; /* 0: no statistics; at most SPK_BALLOON_MAX_INTERVAL_S */
	bool free_page_reporting;
	bool free_page_hinting;
};

struct spk_virtio_balloon_stats {
	uint32_t target_pages, actual_pages; /* actual: what the driver wrote */
	/* the driver's last statistics: have bit i set when value[i] came */
	uint32_t have;
	uint64_t value[SPK_BALLOON_S_NR];
	/* counters since the device was made */
	uint64_t inflate_chains, deflate_chains;
	uint64_t inflated_pages, deflated_pages; /* valid PFNs */
	uint64_t bad_pfns;                       /* outside RAM, skipped */
	uint64_t ignored_pfns;                   /* past the per-chain limit */
	uint64_t stats_updates, stats_update_fails;
	uint64_t reports, reported_bytes; /* free page reporting */
	uint64_t hints, hinted_bytes;     /* free page hinting */
	uint64_t discard_fails;           /* madvise refused */
};

/*
 * The contract (the library's rules: vcpu.h): NULL devices and pointers
 * are refused with a message (-EINVAL, or nothing done and an out-struct
 * zeroed); every call is thread-safe (the device lock), none is
 * signal-safe.
 */
struct spk_virtio_balloon;
/* Before the VM first runs; cfg is copied (its pointers borrowed). 0 and
 * *out, or -errno (-EINVAL for a bad interval) with a message. */
int spk_virtio_balloon_new(const struct spk_virtio_balloon_config *cfg,
                           struct spk_virtio_balloon **out);
/* After the loop stopped and no vCPU runs. Takes NULL. */
void spk_virtio_balloon_free(struct spk_virtio_balloon *b);
/* Its virtio device (owned by b). */
struct spk_virtio *spk_virtio_balloon_dev(struct spk_virtio_balloon *b);
/* A new target; the driver hears of it through a configuration change
 * interrupt when it runs. */
int spk_virtio_balloon_set_target(struct spk_virtio_balloon *b, uint32_t pages);
/* A new statistics interval: -EINVAL when statistics were off and s is
 * not 0, or on and s is 0 (Firecracker's rule), or s is too large. */
int spk_virtio_balloon_set_stats_interval(struct spk_virtio_balloon *b, uint32_t s);
uint32_t spk_virtio_balloon_stats_interval(struct spk_virtio_balloon *b);
/* What the timer does at each interval: give the driver its statistics
 * buffer back (it refills it and returns it). 1 when a buffer went back,
 * 0 when there was none to give, -EINVAL without statistics. */
int spk_virtio_balloon_poll_stats(struct spk_virtio_balloon *b);
/* Free page hinting (-EINVAL without it): start a run (a new command id;
 * ack_on_stop: answer the driver's STOP with DONE at once), end one
 * (DONE: the driver takes its pages back), and the last command the host
 * gave and the last the driver sent (0 STOP, 1 DONE, 2 and up a run). */
int spk_virtio_balloon_hint_start(struct spk_virtio_balloon *b, bool ack_on_stop);
int spk_virtio_balloon_hint_stop(struct spk_virtio_balloon *b);
int spk_virtio_balloon_hint_status(struct spk_virtio_balloon *b, uint32_t *host_cmd,
                                   uint32_t *guest_cmd);
/* Copy the sizes, statistics and counters (one consistent moment). */
void spk_virtio_balloon_get_stats(struct spk_virtio_balloon *b,
                                  struct spk_virtio_balloon_stats *out);

#ifdef __cplusplus
}
#endif
#endif
