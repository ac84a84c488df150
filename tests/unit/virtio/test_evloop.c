// SPDX-License-Identifier: Apache-2.0
/* The event loop: registrations, dispatch, deletion from inside a batch
 * and from another thread, the thread's start hook. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include <sparkler/evloop.h>

struct src {
	int fd;
	atomic_int calls;
	uint32_t events;
	struct spk_evloop *loop;
	struct src *victim; /* deleted by this one's handler */
	bool on_loop;
};

static void on_ready(void *opaque, int fd, uint32_t events)
{
	struct src *s = opaque;
	uint64_t n;

	assert_int_equal(read(fd, &n, sizeof(n)), sizeof(n));
	s->events = events;
	s->on_loop = spk_evloop_on_loop(s->loop);
	if (s->victim)
		assert_int_equal(spk_evloop_del(s->loop, s->victim->fd), 0);
	atomic_fetch_add(&s->calls, 1);
}

static void kick(int fd)
{
	uint64_t one = 1;

	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

static void src_init(struct src *s, struct spk_evloop *l)
{
	memset(s, 0, sizeof(*s));
	s->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->loop = l;
	assert_true(s->fd >= 0);
}

static void test_dispatch(void **state)
{
	struct spk_evloop *l;
	struct src a;

	assert_int_equal(spk_evloop_new("test", &l), 0);
	src_init(&a, l);
	assert_int_equal(spk_evloop_add(l, a.fd, EPOLLIN, on_ready, &a), 0);
	assert_int_equal(spk_evloop_add(l, a.fd, EPOLLIN, on_ready, &a), -EEXIST);
	assert_int_equal(spk_evloop_add(l, a.fd, EPOLLIN, NULL, &a), -EINVAL);
	assert_int_equal(spk_evloop_add(l, -1, EPOLLIN, on_ready, &a), -EINVAL);
	assert_int_equal(spk_evloop_del(l, 12345), -ENOENT);
	assert_int_equal(spk_evloop_mod(l, 12345, EPOLLIN), -ENOENT);
	assert_int_equal(spk_evloop_run_once(l, 0), 0);
	kick(a.fd);
	assert_int_equal(spk_evloop_run_once(l, 1000), 1);
	assert_int_equal(a.calls, 1);
	assert_true(a.events & EPOLLIN);
	assert_true(a.on_loop);
	assert_false(spk_evloop_on_loop(l));             /* not while nothing is dispatched */
	assert_int_equal(spk_evloop_mod(l, a.fd, 0), 0); /* watching nothing */
	kick(a.fd);
	assert_int_equal(spk_evloop_run_once(l, 0), 0);
	assert_int_equal(spk_evloop_mod(l, a.fd, EPOLLIN), 0);
	assert_int_equal(spk_evloop_run_once(l, 0), 1);
	assert_int_equal(spk_evloop_del(l, a.fd), 0);
	kick(a.fd);
	assert_int_equal(spk_evloop_run_once(l, 0), 0);
	spk_evloop_free(l);
	close(a.fd);
}

/* A handler deletes another source that is ready in the same batch: the
 * deleted one is not called, and nothing touches freed memory. */
static void test_delete_inside_batch(void **state)
{
	struct spk_evloop *l;
	struct src a, b;

	assert_int_equal(spk_evloop_new("test", &l), 0);
	src_init(&a, l);
	src_init(&b, l);
	a.victim = &b;
	b.victim = &a;
	assert_int_equal(spk_evloop_add(l, a.fd, EPOLLIN, on_ready, &a), 0);
	assert_int_equal(spk_evloop_add(l, b.fd, EPOLLIN, on_ready, &b), 0);
	kick(a.fd);
	kick(b.fd);
	assert_int_equal(spk_evloop_run_once(l, 1000), 1);
	assert_int_equal(a.calls + b.calls, 1);
	assert_int_equal(spk_evloop_run_once(l, 0), 0); /* the victim is gone, the other drained */
	spk_evloop_free(l);
	close(a.fd);
	close(b.fd);
}

static void started(void *opaque)
{
	atomic_store((atomic_bool *)opaque, true);
}

/* The loop on its thread; a source deleted from here while it runs. */
static void test_thread(void **state)
{
	atomic_bool hook = false;
	struct spk_evloop *l;
	struct src a;

	assert_int_equal(spk_evloop_new("test-thread", &l), 0);
	spk_evloop_on_start(l, started, &hook);
	src_init(&a, l);
	assert_int_equal(spk_evloop_add(l, a.fd, EPOLLIN, on_ready, &a), 0);
	assert_int_equal(spk_evloop_start(l), 0);
	assert_int_equal(spk_evloop_start(l), -EBUSY);
	for (int i = 0; i < 100; i++) {
		int want = atomic_load(&a.calls) + 1;

		kick(a.fd);
		for (int t = 0; atomic_load(&a.calls) < want && t < 5000; t++)
			usleep(200);
		assert_int_equal(atomic_load(&a.calls), want);
	}
	assert_true(atomic_load(&hook));
	assert_int_equal(spk_evloop_del(l, a.fd), 0);
	int calls = atomic_load(&a.calls);
	kick(a.fd);
	usleep(20000);
	assert_int_equal(atomic_load(&a.calls), calls);
	spk_evloop_stop(l);
	spk_evloop_stop(l);
	spk_evloop_free(l);
	close(a.fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dispatch),
	    cmocka_unit_test(test_delete_inside_batch),
	    cmocka_unit_test(test_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
