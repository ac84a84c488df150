/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Virtio 1.x: the split virtqueue, the modern PCI transport, and the
 * interface a device (blk, net, console, rng, vsock) implements on top.
 *
 * A device is a small ops table plus the queue loop:
 *
 *	static void my_notify(void *opaque, struct spk_virtio *vd, unsigned q)
 *	{
 *		struct spk_virtq_chain c;
 *		int rc;
 *
 *		while ((rc = spk_virtio_pop(vd, q, &c)) > 0) {
 *			uint32_t written = handle(opaque, vd, &c); // spk_virtq_read/write
 *			spk_virtio_push(vd, q, &c, written);
 *		}
 *		spk_virtio_interrupt(vd, q); // if the driver wants one
 *	}
 *
 * Everything the guest controls is checked before a device sees it: a
 * chain handed out by spk_virtio_pop() has every buffer inside guest RAM
 * (readable ones readable, writable ones writable), the readable ones
 * first, at most queue-size buffers, and totals that fit 32 bits. When
 * the guest breaks a rule the device is marked DEVICE_NEEDS_RESET, the
 * driver gets a configuration-change interrupt, one log line names the
 * device, the queue and the value, and the device does nothing more until
 * the driver resets it. The monitor and the other devices go on.
 *
 * Threads and locks: every virtio device has one lock. The ops are called
 * with it held: config accesses on vCPU threads, queue_notify on the event
 * loop thread. Device code running on other threads (host input, backend
 * completions) takes it with spk_virtio_lock() before touching queues.
 *
 * The contract (the library's rules: vcpu.h). Constructors, frees and the
 * host-side calls of the devices here (rng, console: dev, bytes, input,
 * resize; spk_virtio_status, spk_virtio_state_ops) refuse NULL with a
 * message (-EINVAL, or the NULL/0 return each names, or nothing done).
 * The rest is the exit path and device code running under the device
 * lock: spk_virtq_* (including their snapshot calls, made by the
 * transport on its own queues), spk_virtio_lock/unlock, the getters,
 * pop/push/unpop, interrupt, kick, config_changed and fail take non-NULL
 * arguments as a precondition: NULL is undefined (exit path). A
 * spk_virtq is one thread's at a time (the device lock); nothing here is
 * signal-safe.
 */
#ifndef SPARKLER_VIRTIO_H
#define SPARKLER_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <sparkler/evloop.h>
#include <sparkler/mem.h>
#include <sparkler/pci.h>
#include <sparkler/ratelimit.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Device types (virtio 1.2 section 5). */
enum {
	SPK_VIRTIO_ID_NET = 1,
	SPK_VIRTIO_ID_BLOCK = 2,
	SPK_VIRTIO_ID_CONSOLE = 3,
	SPK_VIRTIO_ID_RNG = 4,
	SPK_VIRTIO_ID_VSOCK = 19,
};

/* Transport feature bits. */
#define SPK_VIRTIO_F_INDIRECT_DESC 28
#define SPK_VIRTIO_F_EVENT_IDX     29
#define SPK_VIRTIO_F_VERSION_1     32
#define SPK_VIRTIO_F_BIT(b)        (1ull << (b))

/* Device status bits. */
enum {
	SPK_VIRTIO_S_ACKNOWLEDGE = 1,
	SPK_VIRTIO_S_DRIVER = 2,
	SPK_VIRTIO_S_DRIVER_OK = 4,
	SPK_VIRTIO_S_FEATURES_OK = 8,
	SPK_VIRTIO_S_NEEDS_RESET = 64,
	SPK_VIRTIO_S_FAILED = 128,
};

/* Split ring layout (virtio 1.2 section 2.7). */
#define SPK_VIRTQ_DESC_F_NEXT          1
#define SPK_VIRTQ_DESC_F_WRITE         2
#define SPK_VIRTQ_DESC_F_INDIRECT      4
#define SPK_VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define SPK_VIRTQ_MAX_SIZE             32768
#define SPK_VIRTIO_NO_VECTOR           0xffff

/* ---- the split virtqueue ---------------------------------------------------------- */

/* One buffer of a chain, checked against guest memory. */
struct spk_virtq_buf {
	uint64_t gpa;
	uint32_t len;
	bool write; /* device-writable */
};

struct spk_virtq_chain {
	uint16_t head;             /* what spk_virtio_push() hands back */
	uint32_t n;                /* buffers */
	uint32_t n_out;            /* buf[0 .. n_out) are device-readable, the rest writable */
	uint32_t out_len, in_len;  /* readable and writable bytes */
	struct spk_virtq_buf *buf; /* owned by the queue: valid until the next pop */
};

/*
 * A queue as the transport keeps it. Device code uses the spk_virtio_*
 * calls; the spk_virtq_* calls below work on any guest memory (unit tests,
 * the fuzzer) and say what went wrong in err.
 */
struct spk_virtq {
	uint16_t index;    /* for messages */
	uint16_t max_size; /* what the device offers */
	/* written by the driver */
	uint16_t size;
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc, avail, used;
	/* set by spk_virtq_start() */
	const struct spk_mem *mem;
	bool event_idx, indirect;
	void *desc_p, *avail_p, *used_p; /* checked host mappings of the rings */
	uint16_t last_avail;             /* next avail entry to take */
	uint16_t used_idx;               /* next used entry to fill */
	uint16_t signalled;              /* used_idx when interrupts were last decided */
	uint32_t inflight;               /* popped, not pushed */
	bool broken;                     /* a violation: no more pops until reset */
	struct spk_virtq_buf *bufs;      /* max_size entries */
	char err[192];                   /* the last violation, for the log line */
};

int spk_virtq_init(struct spk_virtq *q, uint16_t index, uint16_t max_size);
void spk_virtq_fini(struct spk_virtq *q);
/* Back to the state after init (driver-written fields too). */
void spk_virtq_reset(struct spk_virtq *q);
/*
 * The driver enabled the queue: check the size (a power of two, at most
 * max_size) and the rings (aligned, inside guest RAM, the used ring
 * writable), and map them. 0, or -EINVAL with q->err set.
 */
int spk_virtq_start(struct spk_virtq *q, const struct spk_mem *mem, bool event_idx, bool indirect);
/*
 * Take the next available chain, checked (see the top comment). 1: *c
 * filled; 0: nothing available; -EIO: the guest broke a rule (q->err says
 * which, the queue is broken until reset).
 */
int spk_virtq_pop(struct spk_virtq *q, struct spk_virtq_chain *c);
/* Hand a chain back with len bytes written into it (at most c->in_len). */
int spk_virtq_push(struct spk_virtq *q, const struct spk_virtq_chain *c, uint32_t len);
/* After pushes: does the driver want an interrupt now (EVENT_IDX or
 * NO_INTERRUPT)? Counts this one as sent when it says yes. */
bool spk_virtq_need_interrupt(struct spk_virtq *q);
/* Is a chain available? (a full barrier first: after the last pop) */
bool spk_virtq_has_work(struct spk_virtq *q);

/*
 * Copy bytes between a chain and the host: spk_virtq_read takes from the
 * readable buffers starting off bytes into them, spk_virtq_write puts
 * into the writable ones. Both return the number of bytes copied (short
 * at the end of the chain), or -EFAULT.
 */
int64_t spk_virtq_read(const struct spk_mem *mem, const struct spk_virtq_chain *c, uint64_t off,
                       void *dst, uint64_t len);
int64_t spk_virtq_write(const struct spk_mem *mem, const struct spk_virtq_chain *c, uint64_t off,
                        const void *src, uint64_t len);
/*
 * Host iovecs for the readable (writable = false) or writable buffers,
 * from off bytes in, at most len bytes, for zero-copy I/O (preadv,
 * io_uring, a TAP write). Returns the number of iovecs (a buffer that
 * spans two memory regions takes two), or -ENOBUFS if max is too small.
 */
int spk_virtq_iov(const struct spk_mem *mem, const struct spk_virtq_chain *c, bool writable,
                  uint64_t off, uint64_t len, struct iovec *iov, int max);

/*
 * Queue state for snapshots (fields "q<index>.*", written by the transport).
 * save refuses (-EBUSY) a queue with buffers in flight. state_read reads
 * into out, checking the size against max_size, the vector against nvec
 * and, for an enabled queue, the rings as enabling checks them and the
 * indexes against the rings in guest memory (restore memory first);
 * state_apply makes out the queue's state.
 */
struct spk_snap_writer;
struct spk_snap_reader;
int spk_virtq_state_save(const struct spk_virtq *q, struct spk_snap_writer *w);
int spk_virtq_state_read(const struct spk_virtq *q, struct spk_snap_reader *r,
                         const struct spk_mem *mem, bool event_idx, bool indirect, uint16_t nvec,
                         struct spk_virtq *out);
void spk_virtq_state_apply(struct spk_virtq *q, const struct spk_virtq *st);
/* Give back the chain taken last (head), untouched: the next pop takes it
 * again. For a device that holds a chain while it waits (a snapshot). */
int spk_virtq_unpop(struct spk_virtq *q, uint16_t head);

/* ---- the device interface ------------------------------------------------------------- */

struct spk_virtio;

struct spk_virtio_ops {
	/* Device configuration space (config_size bytes); off + len is inside
	 * it. NULL: reads as zeros, writes are ignored. */
	void (*config_read)(void *opaque, uint32_t off, void *buf, uint32_t len);
	void (*config_write)(void *opaque, uint32_t off, const void *buf, uint32_t len);
	/* The driver set DRIVER_OK with these features. Non-zero: the device
	 * cannot run (it is marked NEEDS_RESET). */
	int (*activate)(void *opaque, struct spk_virtio *vd, uint64_t features);
	/* The driver notified queue q (a ready queue of an active device). */
	void (*queue_notify)(void *opaque, struct spk_virtio *vd, unsigned q);
	/* The driver reset the device: forget requests in flight. */
	void (*reset)(void *opaque, struct spk_virtio *vd);
	/*
	 * Required: the device's own state for snapshots (snapshot.h), saved
	 * and loaded by the transport after its own fields and queues, with
	 * the device lock held; opaque is the device's. spk_virtio_new
	 * refuses ops without it, so no virtio device can be left out.
	 */
	const struct spk_dev_state_ops *state;
	/* Optional: before a save (lock held), give back chains held while
	 * waiting, untouched (spk_virtio_unpop): the transport refuses to save
	 * a queue with buffers in flight. */
	void (*quiesce)(void *opaque, struct spk_virtio *vd);
	/* Optional: the transport applied a loaded state (lock held); e.g.
	 * vsock tells the guest its connections were reset. */
	void (*restored)(void *opaque, struct spk_virtio *vd);
};

struct spk_virtio_config {
	const char *name;    /* "virtio-rng" */
	uint16_t device_id;  /* SPK_VIRTIO_ID_* */
	uint32_t class_code; /* PCI class (0xff0000 "other" if 0) */
	uint16_t num_queues;
	uint16_t queue_max;   /* largest size of every queue, a power of two */
	uint64_t features;    /* device feature bits; VERSION_1, EVENT_IDX and
	                       * INDIRECT_DESC are added */
	uint32_t config_size; /* device configuration bytes (at most 4096) */
	const struct spk_virtio_ops *ops;
	void *opaque;

	struct spk_pci_host *pci; /* where it goes */
	int slot;                 /* -1: the first free */
	struct spk_mem *mem;      /* guest memory */
	/* Where queue notifications are handled; NULL: on the thread that
	 * notifies (unit tests). With a VM (the PCI host's), notifications
	 * are ioeventfds and never reach a vCPU thread. */
	struct spk_evloop *loop;
};

/* Before the VM first runs (it adds a PCI function); cfg is copied (ops,
 * opaque, pci, mem and loop are borrowed and must outlive the device).
 * 0 and *out (the caller owns it), or -EINVAL (NULL cfg or out, ops
 * without state, a bad size) / the PCI host's error, with a message. */
int spk_virtio_new(const struct spk_virtio_config *cfg, struct spk_virtio **out);
/* After the VM stopped running and the loop stopped. Takes NULL. */
void spk_virtio_free(struct spk_virtio *vd);

/* ---- for device code: with the device lock held ---- */

void spk_virtio_lock(struct spk_virtio *vd);
void spk_virtio_unlock(struct spk_virtio *vd);

/* "virtio-rng (00:03.0)" */
const char *spk_virtio_name(const struct spk_virtio *vd);
const struct spk_mem *spk_virtio_mem(const struct spk_virtio *vd);
struct spk_pci_dev *spk_virtio_pci(struct spk_virtio *vd);
/* The negotiated features (valid from activate on). */
uint64_t spk_virtio_features(const struct spk_virtio *vd);
/* DRIVER_OK set and no NEEDS_RESET: queues may be used. */
bool spk_virtio_running(const struct spk_virtio *vd);
bool spk_virtio_queue_ready(const struct spk_virtio *vd, unsigned q);

/* spk_virtq_pop/push on queue q; a violation marks the device NEEDS_RESET. */
int spk_virtio_pop(struct spk_virtio *vd, unsigned q, struct spk_virtq_chain *c);
int spk_virtio_push(struct spk_virtio *vd, unsigned q, const struct spk_virtq_chain *c,
                    uint32_t len);
/* spk_virtq_unpop on queue q. */
int spk_virtio_unpop(struct spk_virtio *vd, unsigned q, const struct spk_virtq_chain *c);
/* Interrupt the driver for queue q if it wants one. */
void spk_virtio_interrupt(struct spk_virtio *vd, unsigned q);
/* Ask for queue_notify(q) on the loop (work that arrived from the host). */
void spk_virtio_kick(struct spk_virtio *vd, unsigned q);
/* The device configuration changed: new generation, config interrupt. */
void spk_virtio_config_changed(struct spk_virtio *vd);
/* A request the guest made is malformed in a way the device cannot
 * answer: log one line (device, queue, what) and mark NEEDS_RESET. */
void spk_virtio_fail(struct spk_virtio *vd, unsigned q, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The device's state ops for snapshots: kind and version are its ops->state's,
 * opaque is vd. Saves the PCI function (pci.*), the transport (features,
 * status, ISR, vectors, selectors) and each queue, then the device's own
 * fields; loading checks all of that before applying any of it.
 */
/*
 * Finish the device's work in flight now (its ops' quiesce under the
 * device lock: blk answers its requests and signals them), for
 * spk_snap_devices_add_quiesce (vd is a struct spk_virtio *). 0; -EINVAL
 * for NULL.
 */
int spk_virtio_quiesce(void *vd);
const struct spk_dev_state_ops *spk_virtio_state_ops(struct spk_virtio *vd);

/* Status as the driver sees it (tests). Thread-safe (takes the device
 * lock: not with it held). NULL: 0, with a message. */
uint8_t spk_virtio_status(struct spk_virtio *vd);

/* ---- the devices of this directory ---- */

/* virtio-rng: one queue, filled from getrandom(). */
struct spk_virtio_rng;
struct spk_virtio_rng_config {
	struct spk_pci_host *pci;
	int slot;
	struct spk_mem *mem;
	struct spk_evloop *loop;
	/* all zero: none; else a request is one operation and its bytes are
	 * bandwidth (needs a loop for the refill timer) */
	struct spk_rate_limit rate_limit;
};
/* new: before the VM first runs, cfg copied (its pointers borrowed); the
 * caller owns the device. free: after the loop stopped, takes NULL. dev:
 * its virtio device (owned by r). */
int spk_virtio_rng_new(const struct spk_virtio_rng_config *cfg, struct spk_virtio_rng **out);
void spk_virtio_rng_free(struct spk_virtio_rng *r);
struct spk_virtio *spk_virtio_rng_dev(struct spk_virtio_rng *r);
/* Bytes handed to the guest so far. Thread-safe (the device lock). */
uint64_t spk_virtio_rng_bytes(struct spk_virtio_rng *r);
/* Change the rate limit (the buckets start full again; a waiting queue
 * goes on). 0, or -EINVAL (NULLs, a bad limit). Thread-safe. */
int spk_virtio_rng_set_rate_limit(struct spk_virtio_rng *r, const struct spk_rate_limit *l);
/* What went through the limiter and how often it stopped the queue
 * (zeroed, with a message, for NULLs). Thread-safe. */
void spk_virtio_rng_rate_stats(struct spk_virtio_rng *r, struct spk_rate_limit_stats *out);

/* virtio-console: one port (hvc0 in Linux), output to a callback,
 * input through spk_virtio_console_input(). */
struct spk_virtio_console;
struct spk_virtio_console_config {
	struct spk_pci_host *pci;
	int slot;
	struct spk_mem *mem;
	struct spk_evloop *loop;
	/* Bytes the guest writes (transmitq, and emergency writes). May be NULL. */
	void (*output)(void *ctx, const uint8_t *buf, size_t n);
	void *output_ctx;
	uint16_t cols, rows; /* the console size (VIRTIO_CONSOLE_F_SIZE), 0: not offered */
};
/* new/free/dev: as for virtio-rng. */
int spk_virtio_console_new(const struct spk_virtio_console_config *cfg,
                           struct spk_virtio_console **out);
void spk_virtio_console_free(struct spk_virtio_console *c);
struct spk_virtio *spk_virtio_console_dev(struct spk_virtio_console *c);
/*
 * Host input (a keyboard), from any thread: queued (up to 4 KiB) and
 * delivered into the guest's receive buffers as they come. Returns how
 * many bytes were taken. Thread-safe (takes the device lock: not from
 * the output callback, which runs with it held). NULL c or buf: 0.
 */
size_t spk_virtio_console_input(struct spk_virtio_console *c, const uint8_t *buf, size_t n);
/* Change the console size (a config-change interrupt), if offered.
 * Thread-safe (the device lock), as input. */
void spk_virtio_console_resize(struct spk_virtio_console *c, uint16_t cols, uint16_t rows);

#ifdef __cplusplus
}
#endif
#endif
