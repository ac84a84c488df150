/*
 * A hostile driver: the host says which rule to break (SYNC 1 returns the
 * case), the guest breaks it on the virtio-rng queue, and checks that the
 * device went to NEEDS_RESET without using the chain, that the console
 * still works, and that a reset brings the rng back. At CPL3.
 */
#include <guest.h>
#include <virtio.h>

#define QSIZE   8
#define BAD_RAM 0x80000000ull /* the test VM has 16 MiB */

enum {
	CASE_LOOP = 1,
	CASE_HEAD_BEYOND,
	CASE_NEXT_BEYOND,
	CASE_OUTSIDE_RAM,
	CASE_WRAPS,
	CASE_TOO_LONG,
	CASE_NESTED,
};

static uint8_t rng_ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t con_ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t con_rx_ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static struct gvq_desc table[16] __attribute__((aligned(16)));
static struct gvq_desc inner[2] __attribute__((aligned(16)));
static uint8_t data[64];
static struct gvirtio rng, con;

static void rng_up(void)
{
	GUEST_ASSERT_EQ(gvirtio_init(&rng, GV_F_INDIRECT_DESC), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(&rng, 0, QSIZE, rng_ring), 0);
	gvirtio_ready(&rng);
}

static void desc(struct gvq_desc *t, unsigned i, uint64_t addr, uint32_t len, uint16_t f,
                 uint16_t next)
{
	t[i] = (struct gvq_desc){.addr = addr, .len = len, .flags = f, .next = next};
}

static void break_rule(uint64_t which)
{
	struct gvirtq *q = &rng.q[0];
	uint64_t d = (uint64_t)data;

	switch (which) {
	case CASE_LOOP: /* 0 -> 1 -> 0 -> ... */
		gvq_put_desc(q, 0, d, 8, GVQ_F_WRITE | GVQ_F_NEXT, 1);
		gvq_put_desc(q, 1, d, 8, GVQ_F_WRITE | GVQ_F_NEXT, 0);
		gvq_publish(q, 0);
		break;
	case CASE_HEAD_BEYOND:
		gvq_publish(q, 300);
		break;
	case CASE_NEXT_BEYOND:
		gvq_put_desc(q, 0, d, 8, GVQ_F_WRITE | GVQ_F_NEXT, 200);
		gvq_publish(q, 0);
		break;
	case CASE_OUTSIDE_RAM:
		gvq_put_desc(q, 0, BAD_RAM, 64, GVQ_F_WRITE, 0);
		gvq_publish(q, 0);
		break;
	case CASE_WRAPS:
		gvq_put_desc(q, 0, 0xfffffffffffff000ull, 0x2000, GVQ_F_WRITE, 0);
		gvq_publish(q, 0);
		break;
	case CASE_TOO_LONG: /* an indirect chain of 12 buffers on a queue of 8 */
		for (unsigned i = 0; i < 12; i++)
			desc(table, i, d, 4, GVQ_F_WRITE | (i < 11 ? GVQ_F_NEXT : 0),
			     (uint16_t)(i + 1));
		gvq_put_desc(q, 0, (uint64_t)table, 12 * 16, GVQ_F_INDIRECT, 0);
		gvq_publish(q, 0);
		break;
	case CASE_NESTED:
		desc(inner, 0, d, 8, GVQ_F_WRITE, 0);
		desc(table, 0, d, 8, GVQ_F_WRITE | GVQ_F_NEXT, 1);
		desc(table, 1, (uint64_t)inner, 16, GVQ_F_INDIRECT, 0);
		gvq_put_desc(q, 0, (uint64_t)table, 2 * 16, GVQ_F_INDIRECT, 0);
		gvq_publish(q, 0);
		break;
	default:
		GUEST_ASSERT(0);
	}
	gvq_kick(q);
}

static void console_says(const char *s)
{
	struct gvbuf b = {s, (uint32_t)strlen(s), false};
	uint32_t len;

	GUEST_ASSERT(gvq_submit(&con.q[1], &b, 1) >= 0);
	gvq_kick(&con.q[1]);
	GUEST_ASSERT(gvq_wait(&con.q[1], &len, 1ull << 32) >= 0);
}

static uint64_t body(uint64_t which)
{
	uint64_t spins = 0;
	uint32_t len = 0;

	GUEST_ASSERT_EQ(gvirtio_find(&rng, GV_ID_RNG), 0);
	GUEST_ASSERT_EQ(gvirtio_find(&con, GV_ID_CONSOLE), 0);
	GUEST_ASSERT_EQ(gvirtio_init(&con, 0), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(&con, 0, QSIZE, con_rx_ring), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(&con, 1, QSIZE, con_ring), 0);
	gvirtio_ready(&con);
	rng_up();
	break_rule(which);
	while (!(gvirtio_status(&rng) & GV_S_NEEDS_RESET) && spins++ < (1ull << 34))
		guest_pause();
	GUEST_ASSERT(gvirtio_status(&rng) & GV_S_NEEDS_RESET);
	GUEST_ASSERT(gvirtio_status(&rng) & GV_S_DRIVER_OK);
	GUEST_ASSERT_EQ(gvq_poll(&rng.q[0], &len), -1); /* the chain was not used */
	GUEST_ASSERT(gvirtio_isr(&rng) & 2);            /* a config change was signalled */
	console_says("console ok\n");
	/* a reset brings the rng back */
	rng_up();
	GUEST_ASSERT_EQ(gvirtio_status(&rng) & GV_S_NEEDS_RESET, 0);
	struct gvbuf b = {data, sizeof(data), true};
	GUEST_ASSERT(gvq_submit(&rng.q[0], &b, 1) >= 0);
	gvq_kick(&rng.q[0]);
	GUEST_ASSERT(gvq_wait(&rng.q[0], &len, 1ull << 32) >= 0);
	GUEST_ASSERT_EQ(len, sizeof(data));
	return 0;
}

int main(void)
{
	/* which rule to break: the host answers the first SYNC */
	uint64_t which = guest_hypercall(SPK_HC_UCALL, SPK_UCALL_SYNC, 1, 0, 0, 0, 0);

	guest_user_allow_ports(0, 0x10000); /* the user code drives the device */
	return (int)guest_run_user(body, which);
}
