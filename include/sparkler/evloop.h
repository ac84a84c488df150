/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An event loop: one thread around epoll that calls a handler when a file
 * descriptor is ready. Device work (virtio queues, a TAP device, sockets,
 * io_uring completions) runs here, off the vCPU threads, and sleeps in
 * epoll_wait when there is nothing to do: no busy polling.
 *
 * Handlers run one at a time on the loop's thread, under the loop's
 * dispatch lock. spk_evloop_del() from another thread waits for a handler
 * that is running to return, so after it returns the handler will not be
 * called again and its opaque may be freed. Do not call spk_evloop_del()
 * from another thread while holding a lock the handler takes.
 *
 * Every function: a NULL loop is -EINVAL with a message (free, stop and
 * on_start then do nothing, on_loop is false); a NULL fn is -EINVAL.
 */
#ifndef SPARKLER_EVLOOP_H
#define SPARKLER_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct spk_evloop;

/* events: the EPOLLIN / EPOLLOUT / EPOLLERR / EPOLLHUP bits that fired. */
typedef void (*spk_evloop_fn)(void *opaque, int fd, uint32_t events);

/* A loop with no thread yet; name is for log lines and the thread name. */
int spk_evloop_new(const char *name, struct spk_evloop **out);

/*
 * Stop the thread if it runs, then free the loop. The caller's fds stay
 * open (they are the caller's).
 */
void spk_evloop_free(struct spk_evloop *l);

/*
 * Watch fd for events (EPOLLIN, EPOLLOUT, level-triggered) and call
 * fn(opaque, fd, events) on the loop's thread. One registration per fd.
 * Any thread, also from inside a handler.
 */
int spk_evloop_add(struct spk_evloop *l, int fd, uint32_t events, spk_evloop_fn fn, void *opaque);
/* Change the events an fd is watched for. */
int spk_evloop_mod(struct spk_evloop *l, int fd, uint32_t events);
/* Stop watching fd (see the top comment for when fn may still run). */
int spk_evloop_del(struct spk_evloop *l, int fd);

/* Call fn(opaque) first thing on the loop's thread, before any handler
 * (e.g. to install a seccomp filter there). Before spk_evloop_start. */
void spk_evloop_on_start(struct spk_evloop *l, void (*fn)(void *opaque), void *opaque);

/* Start the loop's thread. */
int spk_evloop_start(struct spk_evloop *l);
/* Ask the thread to end and wait for it. Idempotent. */
void spk_evloop_stop(struct spk_evloop *l);

/*
 * Without a thread (tests, single-threaded embedders): wait up to
 * timeout_ms (-1: forever, 0: not at all) and dispatch what is ready.
 * Returns the number of handlers called, or -errno.
 */
int spk_evloop_run_once(struct spk_evloop *l, int timeout_ms);

/* True on the loop's own thread (inside a handler). */
bool spk_evloop_on_loop(const struct spk_evloop *l);

#ifdef __cplusplus
}
#endif
#endif
