/*
 * The virtio-blk benchmark's guest (bench/blk.c), a driver at CPL3 that
 * keeps QD requests in flight. The host hands out runs through SYNCs:
 * SYNC 1 answers the kind (0: done), SYNC 2 the request size, SYNC 3 the
 * number of requests; the guest then SYNCs 4 (start the clock), runs
 * them, and SYNCs 5 (stop it) with the number of errors. Each slot owns
 * three fixed descriptors (header, data, status): completions may come
 * back in any order and a slot is refilled as soon as its request ends.
 */
#include <guest.h>
#include <virtio.h>

#define QSIZE  128
#define QD     32
#define MAXBS  (128u << 10)
#define SECTOR 512u

enum { T_IN = 0, T_OUT = 1 };
enum { SEQ_READ = 1, SEQ_WRITE, RAND_READ, RAND_WRITE };
#define F_FLUSH (1ull << 9)

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

static uint8_t ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t bufs[QD][MAXBS] __attribute__((aligned(4096)));
static struct hdr hdrs[QD];
static volatile uint8_t st[QD];
static struct gvirtio d;

static uint64_t host_sync(uint64_t stage, uint64_t value)
{
	return guest_hypercall(SPK_HC_UCALL, SPK_UCALL_SYNC, stage, value, 0, 0, 0);
}

struct run {
	uint64_t kind, bs, n;
	uint64_t blocks; /* the disk in bs units */
	uint64_t next;   /* requests started */
	uint64_t rng;
	uint64_t errors;
};

static uint64_t next_sector(struct run *r)
{
	uint64_t block;

	if (r->kind == SEQ_READ || r->kind == SEQ_WRITE)
		block = r->next % r->blocks;
	else {
		r->rng = r->rng * 6364136223846793005ull + 1442695040888963407ull;
		block = (r->rng >> 17) % r->blocks;
	}
	r->next++;
	return block * r->bs / SECTOR;
}

/* Start slot k's next request: its three descriptors, then the avail entry. */
static void post(struct run *r, unsigned k)
{
	struct gvirtq *q = &d.q[0];
	bool read = r->kind == SEQ_READ || r->kind == RAND_READ;
	uint16_t at = (uint16_t)(3 * k);

	hdrs[k] = (struct hdr){.type = read ? T_IN : T_OUT, .sector = next_sector(r)};
	st[k] = 0xee;
	gvq_put_desc(q, at, (uint64_t)&hdrs[k], sizeof(hdrs[k]), GVQ_F_NEXT, (uint16_t)(at + 1));
	gvq_put_desc(q, (uint16_t)(at + 1), (uint64_t)bufs[k], (uint32_t)r->bs,
	             (uint16_t)((read ? GVQ_F_WRITE : 0) | GVQ_F_NEXT), (uint16_t)(at + 2));
	gvq_put_desc(q, (uint16_t)(at + 2), (uint64_t)&st[k], 1, GVQ_F_WRITE, 0);
	gvq_publish(q, at);
}

static void run_one(struct run *r)
{
	struct gvirtq *q = &d.q[0];
	uint64_t done = 0;
	unsigned depth = r->n < QD ? (unsigned)r->n : QD;

	for (unsigned k = 0; k < depth; k++)
		post(r, k);
	gvq_kick(q);
	while (done < r->n) {
		int head = gvq_wait(q, NULL, 1ull << 36);
		bool posted = false;

		GUEST_ASSERT(head >= 0);
		/* everything that finished meanwhile, then one kick for the new ones */
		for (; head >= 0; head = gvq_poll(q, NULL)) {
			unsigned k = (unsigned)head / 3;

			r->errors += st[k] != 0;
			done++;
			if (r->next < r->n) {
				post(r, k);
				posted = true;
			}
		}
		if (posted)
			gvq_kick(q);
	}
}

static uint64_t body(uint64_t arg)
{
	GUEST_ASSERT_EQ(gvirtio_find(&d, GV_ID_BLOCK), 0);
	GUEST_ASSERT_EQ(gvirtio_init(&d, F_FLUSH | GV_F_EVENT_IDX), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(&d, 0, QSIZE, ring), 0);
	gvirtio_ready(&d);
	uint64_t capacity = gvirtio_cfg_read(&d, 0, 4) | (uint64_t)gvirtio_cfg_read(&d, 4, 4) << 32;

	for (;;) {
		struct run r = {.kind = host_sync(1, 0), .rng = 0x2545f4914f6cdd1dull};

		if (r.kind == 0)
			return 0;
		r.bs = host_sync(2, 0);
		r.n = host_sync(3, 0);
		GUEST_ASSERT(r.bs >= SECTOR && r.bs <= MAXBS && r.bs % SECTOR == 0);
		r.blocks = capacity * SECTOR / r.bs;
		GUEST_ASSERT(r.blocks > 0);
		host_sync(4, 0);
		run_one(&r);
		host_sync(5, r.errors);
	}
}

int main(void)
{
	guest_user_allow_ports(0, 0x10000); /* the user code drives the device */
	return (int)guest_run_user(body, 0);
}
