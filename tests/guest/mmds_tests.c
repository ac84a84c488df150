/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metadata service as a guest meets it: guest/tests/mmds.c speaks
 * ARP, TCP and HTTP of its own through the real virtio-net device to the
 * MMDS's stack (src/mmds/), hostile frames included, while this side
 * checks the MMDS's counters at each of the guest's SYNC stages
 * (guest/tests/mmds_net.h): every bad frame dropped and counted where
 * Firecracker counts it, the 16-connection bound, connections made and
 * freed, retransmissions, and at the end that the interface's rate
 * limiters saw exactly the MMDS's frames to the guest (rx) and none of
 * the guest's to it (tx: only the one frame that went to the TAP).
 *
 * The TAP is one end of a datagram socket pair (a TAP's semantics: one
 * frame behind a 12-byte header per read), so the test needs no root.
 *
 * Usage: mmds_tests CASE. Exit status 77 (skip) where /dev/kvm is not
 * usable.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sparkler/evloop.h>
#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/virtio_net.h>

#include "harness.h"
#include "mmds/mmds.h"
#include "mmds/stack.h"

#include "../../guest/tests/mmds_net.h"
#include "../../guest/tests/net_frames.h"

struct mt {
	struct th t;
	struct spk_exit e;
	struct spk_evloop *loop;
	struct spk_pci_host *pci;
	struct spk_virtio_net *net;
	struct spk_mmds *m;
	struct spk_mmds_stack *s;
	int tap[2];
	struct spk_mmds_metrics last; /* the counters at the previous stage */
};

static void mt_setup(struct mt *v, const struct spk_rate_limit *rx, const struct spk_rate_limit *tx)
{
	const struct th_opts o = {.irqchip = SPK_IRQCHIP_KERNEL};
	const struct spk_mmds_config mc = {SPK_MMDS_V2, MN_MMDS_IP, false};
	struct spk_virtio_net_config nc = {.slot = -1, .has_mac = true};
	json_t *data = json_loads(MN_METADATA, 0, NULL);

	memset(v, 0, sizeof(*v));
	th_setup(&v->t, "t_mmds", &o);
	CHECK_OK(spk_evloop_new("virtio", &v->loop));
	const struct spk_pci_host_config hc = spk_pc_pci_host_config(v->t.vm);
	CHECK_OK(spk_pci_host_new(&hc, &v->pci));
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, v->tap) == 0,
	      "socketpair: %s", strerror(errno));
	nc.pci = v->pci;
	nc.mem = spk_vm_mem(v->t.vm);
	nc.loop = v->loop;
	nc.tap_fd = v->tap[0];
	nc.rx_rate_limit = *rx;
	nc.tx_rate_limit = *tx;
	memcpy(nc.mac, nf_guest_mac, 6);
	CHECK_OK(spk_virtio_net_new(&nc, &v->net));

	CHECK(data, "the metadata parses");
	CHECK_OK(spk_mmds_new(SPK_MMDS_LIMIT_DEFAULT, &v->m));
	CHECK_OK(spk_mmds_put(v->m, data));
	json_decref(data);
	spk_mmds_set_config(v->m, &mc);
	CHECK_OK(spk_mmds_stack_new(v->m, &v->s));
	const struct spk_virtio_net_hook h = {v->s, spk_mmds_stack_match, spk_mmds_stack_tx,
	                                      spk_mmds_stack_rx, spk_mmds_stack_timer};
	CHECK_OK(spk_virtio_net_set_hook(v->net, &h));
	CHECK_OK(spk_evloop_start(v->loop));
}

static void mt_teardown(struct mt *v)
{
	spk_evloop_stop(v->loop);
	spk_virtio_net_free(v->net);
	spk_mmds_stack_free(v->s);
	spk_mmds_free(v->m);
	spk_pci_host_free(v->pci);
	spk_evloop_free(v->loop);
	th_teardown(&v->t);
	close(v->tap[1]);
}

/* Run to the guest's SYNC stage: its value. */
static uint64_t run_to_sync(struct mt *v, uint64_t stage)
{
	th_run(&v->t, &v->e);
	struct spk_ucall uc = th_expect_ucall(&v->t, &v->e, SPK_UCALL_SYNC);
	CHECK_EQ(uc.args[0], stage);
	return uc.args[1];
}

/* The counters since the previous stage. */
static struct spk_mmds_metrics delta(struct mt *v)
{
	struct spk_mmds_metrics now, d;
	const uint64_t *a = (const uint64_t *)&now, *b = (const uint64_t *)&v->last;
	uint64_t *o = (uint64_t *)&d;

	spk_mmds_get_metrics(v->m, &now);
	for (size_t i = 0; i < sizeof(d) / sizeof(uint64_t); i++)
		o[i] = a[i] - b[i];
	v->last = now;
	return d;
}

static unsigned conns(struct mt *v)
{
	unsigned c, q;

	spk_mmds_stack_counts(v->s, &c, &q);
	return c;
}

/* Frames that reached the TAP since the last call. */
static unsigned tap_frames(struct mt *v, size_t want_len)
{
	uint8_t f[2048];
	unsigned n = 0;
	ssize_t r;

	while ((r = read(v->tap[1], f, sizeof(f))) >= 0) {
		CHECK_EQ(r, want_len);
		n++;
	}
	CHECK(errno == EAGAIN, "reading the TAP: %s", strerror(errno));
	return n;
}

/* Stages MN_ARP to MN_LAST, each checked against the counters. */
static void run_stages(struct mt *v)
{
	struct spk_mmds_metrics d;
	uint64_t val, resent, dropped;

	run_to_sync(v, MN_ARP);
	d = delta(v);
	CHECK_EQ(d.rx_accepted, 1);
	CHECK_EQ(d.tx_frames, 1);

	run_to_sync(v, MN_V2);
	d = delta(v);
	CHECK_EQ(d.connections_created, 1);
	CHECK_EQ(d.connections_destroyed, 1);
	CHECK_EQ(d.rx_count, 3); /* the token, the GET with it, the one without */
	CHECK_EQ(d.tx_count, 3);
	CHECK_EQ(d.rx_no_token, 1);
	CHECK_EQ(d.rx_invalid_token, 0);
	CHECK_EQ(d.rx_bad_eth + d.rx_accepted_err + d.rx_accepted_unusual, 0);
	CHECK_EQ(conns(v), 0);

	val = run_to_sync(v, MN_HEADERS);
	d = delta(v);
	printf("headers: %llu frames to the MMDS: rx_bad_eth %llu, rx_accepted_err %llu, "
	       "rx_accepted_unusual %llu\n",
	       (unsigned long long)d.rx_accepted, (unsigned long long)d.rx_bad_eth,
	       (unsigned long long)d.rx_accepted_err, (unsigned long long)d.rx_accepted_unusual);
	CHECK_EQ(d.rx_accepted, val);
	CHECK_EQ(d.rx_accepted, MN_BAD_ETH + MN_ACCEPTED_ERR + MN_UNUSUAL);
	CHECK_EQ(d.rx_bad_eth, MN_BAD_ETH);
	CHECK_EQ(d.rx_accepted_err, MN_ACCEPTED_ERR);
	CHECK_EQ(d.rx_accepted_unusual, MN_UNUSUAL);
	CHECK_EQ(d.connections_created, 0);
	CHECK_EQ(d.tx_frames, 1); /* the probe's RST, nothing else */
	CHECK_EQ(d.rx_count, 0);
	CHECK_EQ(tap_frames(v, NF_HDR + 14), MN_TO_TAP);
	CHECK_EQ(conns(v), 0);

	run_to_sync(v, MN_WINDOW);
	d = delta(v);
	CHECK_EQ(d.connections_created, 1);
	CHECK_EQ(d.connections_destroyed, 1);
	CHECK_EQ(d.rx_count, 2);
	/* three probes, the ACK of unsent data, a segment ahead, one all old */
	CHECK_EQ(d.rx_accepted_unusual, 6);
	CHECK_EQ(d.rx_bad_eth + d.rx_accepted_err, 0);
	CHECK_EQ(conns(v), 0);

	run_to_sync(v, MN_RST);
	d = delta(v);
	CHECK_EQ(d.connections_created, 1);
	CHECK_EQ(d.connections_destroyed, 1);
	CHECK_EQ(d.rx_count, 0);
	CHECK_EQ(d.rx_accepted_unusual, 2); /* the misplaced RST, data after the RST */
	CHECK_EQ(conns(v), 0);

	val = run_to_sync(v, MN_FLOOD);
	d = delta(v);
	CHECK_EQ(val, MN_FLOOD_SYNS);
	CHECK_EQ(d.connections_created, MN_FLOOD_SYNS);
	CHECK_EQ(d.connections_destroyed, MN_FLOOD_SYNS - 16);
	CHECK_EQ(conns(v), 16);
	run_to_sync(v, MN_FLOOD_RST);
	d = delta(v);
	CHECK_EQ(d.connections_destroyed, 16);
	CHECK_EQ(conns(v), 0);

	run_to_sync(v, MN_TOO_BIG);
	d = delta(v);
	CHECK_EQ(d.connections_created, 2);
	CHECK_EQ(d.connections_destroyed, 2);
	CHECK_EQ(d.rx_count, 2); /* 400 and 413 */
	CHECK_EQ(conns(v), 0);

	val = run_to_sync(v, MN_RESEND);
	d = delta(v);
	spk_mmds_stack_retransmits(v->s, &resent, &dropped);
	printf("retransmissions: the guest saw %llu, the stack sent %llu in all, dropped %llu\n",
	       (unsigned long long)val, (unsigned long long)resent, (unsigned long long)dropped);
	CHECK_EQ(val, 2);
	CHECK(resent >= 2, "the stack sent %llu segments again", (unsigned long long)resent);
	CHECK_EQ(dropped, 0);
	CHECK_EQ(d.connections_created, 1);
	CHECK_EQ(d.connections_destroyed, 1);
	CHECK_EQ(conns(v), 0);

	val = run_to_sync(v, MN_LAST);
	d = delta(v);
	printf("last: a well-formed request after all of it (%llu segments sent again skipped)\n",
	       (unsigned long long)val);
	CHECK_EQ(d.rx_count, 1);
	CHECK_EQ(d.rx_no_token + d.rx_invalid_token, 0);
	CHECK_EQ(conns(v), 0);
	th_run_to_done(&v->t);
}

static void case_mmds(void)
{
	/* limits that never stop anything: they only count */
	const struct spk_rate_limit big = {.ops = {.size = 1u << 30, .refill_time_ms = 1000}};
	struct spk_virtio_net_stats st;
	struct spk_mmds_metrics all;
	struct mt v;

	mt_setup(&v, &big, &big);
	run_stages(&v);
	spk_virtio_net_get_stats(v.net, &st);
	spk_mmds_get_metrics(v.m, &all);
	printf("rate limiters: rx %llu frames %llu bytes (the MMDS sent %llu, %llu bytes), tx %llu "
	       "frames\n",
	       (unsigned long long)st.rx_rate.ops, (unsigned long long)st.rx_rate.bytes,
	       (unsigned long long)all.tx_frames, (unsigned long long)all.tx_bytes,
	       (unsigned long long)st.tx_rate.ops);
	/* Firecracker's rule: the MMDS's frames count against rx, the
	 * guest's frames to it not against tx */
	CHECK_EQ(st.rx_rate.ops, all.tx_frames);
	CHECK_EQ(st.rx_rate.bytes, all.tx_bytes);
	CHECK_EQ(st.tx_rate.ops, MN_TO_TAP);
	CHECK_EQ(st.tx_frames, MN_TO_TAP);
	mt_teardown(&v);
}

/* The same under a tight receive limit (4 frames per 10 ms): the MMDS's
 * frames wait for the refill like the TAP's, and nothing is lost. */
static void case_mmds_rx_limited(void)
{
	const struct spk_rate_limit tight = {.ops = {.size = 4, .refill_time_ms = 10}};
	const struct spk_rate_limit none = {0};
	struct spk_virtio_net_stats st;
	struct mt v;

	mt_setup(&v, &tight, &none);
	run_stages(&v);
	spk_virtio_net_get_stats(v.net, &st);
	printf("rx limiter: %llu frames, throttled %llu times\n",
	       (unsigned long long)st.rx_rate.ops, (unsigned long long)st.rx_rate.throttled);
	CHECK(st.rx_rate.ops > 0, "the MMDS's frames went through the rx limiter");
	mt_teardown(&v);
}

int main(int argc, char **argv)
{
	static const struct th_case cases[] = {
	    {"mmds", case_mmds},
	    {"mmds_rx_limited", case_mmds_rx_limited},
	};

	return th_main(argc, argv, cases, SPK_ARRAY_SIZE_T(cases));
}
