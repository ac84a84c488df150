/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The event loop (sparkler/evloop.h): epoll, one registration per fd.
 *
 * Lifetime of a registration: epoll hands back a pointer to it, and an
 * epoll_wait() that returned before a spk_evloop_del() may still hold that
 * pointer. So a deleted registration is only marked dead and moved to a
 * graveyard, and the graveyard is emptied right before the next
 * epoll_wait(), when no returned event can point into it any more.
 *
 * Locking: the loop holds its lock while it dispatches a batch of events,
 * and drops it while it sleeps in epoll_wait(). Calls from a handler (on
 * the loop's thread) must not take it again; a thread-local pointer says
 * which loop, if any, this thread is dispatching.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <sparkler/evloop.h>

#include "core/internal.h"

#define BATCH    32
#define NAME_MAX 32

struct reg {
	int fd;
	uint32_t events;
	spk_evloop_fn fn;
	void *opaque;
	bool dead;
	struct reg *next;
};

struct spk_evloop {
	char name[NAME_MAX];
	int epfd;
	int wake_fd; /* eventfd: stop requests */
	pthread_mutex_t lock;
	struct reg *regs;      /* live registrations */
	struct reg *graveyard; /* deleted, freed before the next epoll_wait */
	pthread_t thread;
	bool has_thread;
	void (*on_start)(void *opaque);
	void *on_start_opaque;
	atomic_bool stopping;
};

/* The loop whose handlers this thread is running, if any. */
static __thread const struct spk_evloop *dispatching;

static void lock_unless_dispatching(struct spk_evloop *l)
{
	if (dispatching != l)
		pthread_mutex_lock(&l->lock);
}

static void unlock_unless_dispatching(struct spk_evloop *l)
{
	if (dispatching != l)
		pthread_mutex_unlock(&l->lock);
}

int spk_evloop_new(const char *name, struct spk_evloop **out)
{
	struct spk_evloop *l;
	int rc;

	if (!out)
		return spk_fail(EINVAL, "evloop: new without an out pointer");
	l = calloc(1, sizeof(*l));
	if (!l)
		return spk_fail(ENOMEM, "evloop: out of memory");
	snprintf(l->name, sizeof(l->name), "%s", name ? name : "evloop");
	l->wake_fd = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		rc = spk_fail(errno, "evloop %s: epoll_create1: %s", l->name, strerror(errno));
		goto err_free;
	}
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0) {
		rc = spk_fail(errno, "evloop %s: eventfd: %s", l->name, strerror(errno));
		goto err_close;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0) {
		rc = spk_fail(errno, "evloop %s: watching the wake fd: %s", l->name,
		              strerror(errno));
		goto err_close;
	}
	pthread_mutex_init(&l->lock, NULL);
	*out = l;
	return 0;

err_close:
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	close(l->epfd);
err_free:
	free(l);
	return rc;
}

static void free_list(struct reg *r)
{
	while (r) {
		struct reg *next = r->next;

		free(r);
		r = next;
	}
}

void spk_evloop_free(struct spk_evloop *l)
{
	if (!l)
		return;
	spk_evloop_stop(l);
	free_list(l->regs);
	free_list(l->graveyard);
	close(l->wake_fd);
	close(l->epfd);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static struct reg **find(struct spk_evloop *l, int fd)
{
	for (struct reg **p = &l->regs; *p; p = &(*p)->next)
		if ((*p)->fd == fd)
			return p;
	return NULL;
}

int spk_evloop_add(struct spk_evloop *l, int fd, uint32_t events, spk_evloop_fn fn, void *opaque)
{
	struct reg *r;
	int rc = 0;

	if (!l || fd < 0 || !fn)
		return spk_fail(EINVAL, "evloop: add fd %d needs a loop, an fd and a handler", fd);
	r = calloc(1, sizeof(*r));
	if (!r)
		return spk_fail(ENOMEM, "evloop %s: out of memory", l->name);
	*r = (struct reg){.fd = fd, .events = events, .fn = fn, .opaque = opaque};
	lock_unless_dispatching(l);
	if (find(l, fd)) {
		rc = spk_fail(EEXIST, "evloop %s: fd %d is already watched", l->name, fd);
	} else {
		struct epoll_event ev = {.events = events, .data.ptr = r};

		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			rc = spk_fail(errno, "evloop %s: watching fd %d: %s", l->name, fd,
			              strerror(errno));
	}
	if (rc == 0) {
		r->next = l->regs;
		l->regs = r;
	}
	unlock_unless_dispatching(l);
	if (rc < 0)
		free(r);
	return rc;
}

int spk_evloop_mod(struct spk_evloop *l, int fd, uint32_t events)
{
	struct reg **p;
	int rc = 0;

	if (!l)
		return spk_fail(EINVAL, "evloop: mod fd %d without a loop", fd);
	lock_unless_dispatching(l);
	p = find(l, fd);
	if (!p) {
		rc = spk_fail(ENOENT, "evloop %s: fd %d is not watched", l->name, fd);
	} else {
		struct epoll_event ev = {.events = events, .data.ptr = *p};

		if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
			rc = spk_fail(errno, "evloop %s: changing fd %d: %s", l->name, fd,
			              strerror(errno));
		else
			(*p)->events = events;
	}
	unlock_unless_dispatching(l);
	return rc;
}

int spk_evloop_del(struct spk_evloop *l, int fd)
{
	struct reg **p, *r;
	int rc = 0;

	if (!l)
		return spk_fail(EINVAL, "evloop: del fd %d without a loop", fd);
	lock_unless_dispatching(l);
	p = find(l, fd);
	if (!p) {
		rc = spk_fail(ENOENT, "evloop %s: fd %d is not watched", l->name, fd);
	} else {
		r = *p;
		*p = r->next;
		/* a closed fd has left the epoll set by itself: ignore ENOENT/EBADF */
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
		r->dead = true;
		r->next = l->graveyard;
		l->graveyard = r;
	}
	unlock_unless_dispatching(l);
	return rc;
}

/* Run the handlers of one batch; returns how many ran. Under the lock. */
static int dispatch(struct spk_evloop *l, const struct epoll_event *evs, int n)
{
	int ran = 0;

	dispatching = l;
	for (int i = 0; i < n; i++) {
		struct reg *r = evs[i].data.ptr;

		if (!r) {
			uint64_t v;

			if (read(l->wake_fd, &v, sizeof(v)) < 0) {
				/* EAGAIN: another batch already drained it */
			}
			continue;
		}
		if (r->dead)
			continue;
		r->fn(r->opaque, r->fd, evs[i].events);
		ran++;
	}
	dispatching = NULL;
	return ran;
}

int spk_evloop_run_once(struct spk_evloop *l, int timeout_ms)
{
	struct epoll_event evs[BATCH];
	int n, ran;

	if (!l)
		return spk_fail(EINVAL, "evloop: run without a loop");
	pthread_mutex_lock(&l->lock);
	free_list(l->graveyard);
	l->graveyard = NULL;
	pthread_mutex_unlock(&l->lock);
	do {
		n = epoll_wait(l->epfd, evs, BATCH, timeout_ms);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return spk_fail(errno, "evloop %s: epoll_wait: %s", l->name, strerror(errno));
	pthread_mutex_lock(&l->lock);
	ran = dispatch(l, evs, n);
	pthread_mutex_unlock(&l->lock);
	return ran;
}

static void *loop_main(void *p)
{
	struct spk_evloop *l = p;

	if (l->on_start)
		l->on_start(l->on_start_opaque);
	while (!atomic_load(&l->stopping)) {
		if (spk_evloop_run_once(l, -1) < 0) {
			spk_log(SPK_LOG_ERROR, "evloop %s: %s; the loop ends", l->name,
			        spk_last_error());
			break;
		}
	}
	return NULL;
}

void spk_evloop_on_start(struct spk_evloop *l, void (*fn)(void *opaque), void *opaque)
{
	if (!l)
		return;
	l->on_start = fn;
	l->on_start_opaque = opaque;
}

int spk_evloop_start(struct spk_evloop *l)
{
	char tname[16];
	int rc;

	if (!l)
		return spk_fail(EINVAL, "evloop: start without a loop");
	if (l->has_thread)
		return spk_fail(EBUSY, "evloop %s: already started", l->name);
	atomic_store(&l->stopping, false);
	rc = pthread_create(&l->thread, NULL, loop_main, l);
	if (rc)
		return spk_fail(rc, "evloop %s: cannot start its thread: %s", l->name,
		                strerror(rc));
	snprintf(tname, sizeof(tname), "%.15s", l->name);
	pthread_setname_np(l->thread, tname);
	l->has_thread = true;
	return 0;
}

void spk_evloop_stop(struct spk_evloop *l)
{
	uint64_t one = 1;

	if (!l || !l->has_thread)
		return;
	atomic_store(&l->stopping, true);
	if (write(l->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter is full: the loop is awake anyway */
	}
	pthread_join(l->thread, NULL);
	l->has_thread = false;
}

bool spk_evloop_on_loop(const struct spk_evloop *l)
{
	return l && dispatching == l;
}
