/* virtio-console through the SDK driver, at CPL3: output, then input the
 * host sends when it has seen the output, echoed back. */
#include <guest.h>
#include <virtio.h>

#define QSIZE 8
#define RX    0
#define TX    1

static uint8_t rx_ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t tx_ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static char rx_bufs[4][64];
static char *by_head[QSIZE]; /* which buffer each posted chain holds */
static char line[128];

static void post_rx(struct gvirtio *d, char *buf)
{
	struct gvbuf b = {buf, 64, true};
	int head = gvq_submit(&d->q[RX], &b, 1);

	GUEST_ASSERT(head >= 0 && head < QSIZE);
	by_head[head] = buf;
	gvq_kick(&d->q[RX]);
}

static void send(struct gvirtio *d, const char *s, size_t n)
{
	struct gvbuf b = {s, (uint32_t)n, false};
	uint32_t len;

	GUEST_ASSERT(gvq_submit(&d->q[TX], &b, 1) >= 0);
	gvq_kick(&d->q[TX]);
	GUEST_ASSERT(gvq_wait(&d->q[TX], &len, 1ull << 32) >= 0);
}

static uint64_t body(uint64_t arg)
{
	static const char hello[] = "hello from hvc0\n";
	struct gvirtio d;
	size_t got = 0;

	GUEST_ASSERT_EQ(gvirtio_find(&d, GV_ID_CONSOLE), 0);
	GUEST_ASSERT_EQ(gvirtio_init(&d, 0), 0);
	GUEST_ASSERT_EQ(gvirtio_cfg_read(&d, 4, 4), 1); /* max_nr_ports */
	GUEST_ASSERT_EQ(gvirtio_queue(&d, RX, QSIZE, rx_ring), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(&d, TX, QSIZE, tx_ring), 0);
	gvirtio_ready(&d);
	for (unsigned i = 0; i < 4; i++)
		post_rx(&d, rx_bufs[i]);
	send(&d, hello, sizeof(hello) - 1);
	/* the host answers with one line, maybe in pieces */
	while (got == 0 || line[got - 1] != '\n') {
		uint32_t len = 0;
		int head = gvq_wait(&d.q[RX], &len, 1ull << 34);

		GUEST_ASSERT(head >= 0 && head < QSIZE && by_head[head]);
		GUEST_ASSERT(len <= 64 && got + len < sizeof(line));
		memcpy(line + got, by_head[head], len);
		got += len;
		post_rx(&d, by_head[head]);
	}
	GUEST_ASSERT(got == 15 && memcmp(line, "ping from host\n", 15) == 0);
	send(&d, "echo: ", 6);
	send(&d, line, got);
	return 0;
}

int main(void)
{
	guest_user_allow_ports(0, 0x10000); /* the user code drives the device */
	return (int)guest_run_user(body, 0);
}
