/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MMDS end of one network interface (stack.c): its three functions are
 * the virtio-net device's frame hook (sparkler/virtio_net.h), called on
 * the device's event loop under its lock, never at once from two threads.
 */
#ifndef SPK_MMDS_STACK_H
#define SPK_MMDS_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spk_mmds;
struct spk_mmds_stack;

/* The least receive room spk_mmds_stack_rx works with: a segment with
 * options and some data. */
#define SPK_MMDS_FRAME_MIN 128

/* A stack answering at the store's configured address (read now: the
 * configuration is fixed before boot). 0, or -errno. */
int spk_mmds_stack_new(struct spk_mmds *m, struct spk_mmds_stack **out);
void spk_mmds_stack_free(struct spk_mmds_stack *s);

/* Is this frame (its first len bytes) for the MMDS: ARP for its address,
 * or IPv4 to it? */
bool spk_mmds_stack_match(void *s, const uint8_t *frame, size_t len);
/* Take a frame the guest sent to the MMDS (a copy, len bytes). */
void spk_mmds_stack_tx(void *s, const uint8_t *frame, size_t len);
/* The next frame for the guest, into buf (cap bytes): its length, or 0. */
size_t spk_mmds_stack_rx(void *s, uint8_t *buf, size_t cap);
/* The retransmission timers (the hook's timer): the connections whose
 * timer expired send again what the guest has not acknowledged (or drop,
 * with an RST, after SPK_MMDS_RTO_RETRIES timeouts in a row); the
 * milliseconds until the next timer, or 0 when none runs. The clock is
 * the store's (spk_mmds_set_clock). */
uint64_t spk_mmds_stack_timer(void *s);

#define SPK_MMDS_RTO_INIT_MS 250  /* the first timeout after a send */
#define SPK_MMDS_RTO_MAX_MS  4000 /* each timeout doubles it, up to this */
#define SPK_MMDS_RTO_RETRIES 6    /* timeouts in a row before the drop */

/* For tests: open connections and queued control frames. */
void spk_mmds_stack_counts(struct spk_mmds_stack *s, unsigned *conns, unsigned *ctl);
/* For tests: segments sent again so far (after a timeout or duplicate
 * ACKs), and connections dropped after too many timeouts. */
void spk_mmds_stack_retransmits(struct spk_mmds_stack *s, uint64_t *resent, uint64_t *dropped);

#endif
