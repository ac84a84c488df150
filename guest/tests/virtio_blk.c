/*
 * virtio-blk through the SDK driver, at CPL3. The host picks the case at
 * SYNC 1 (and the pattern's seed at SYNC 2) and checks the image and the
 * device's counters between the later SYNCs. Data loops (filling and
 * checking megabytes) run here at CPL3, where PVM runs them natively.
 */
#include <guest.h>
#include <virtio.h>

#define QSIZE  64
#define CHUNK  (256u << 10) /* bytes per request */
#define DEPTH  8            /* requests in flight */
#define TOTAL  (8u << 20)   /* bytes written and read back */
#define SECTOR 512u

enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11, T_WZ = 13 };
enum { S_OK = 0, S_IOERR = 1, S_UNSUPP = 2 };
#define F_RO           (1ull << 5)
#define F_FLUSH        (1ull << 9)
#define F_DISCARD      (1ull << 13)
#define F_WRITE_ZEROES (1ull << 14)

enum {
	CASE_RW = 1,  /* write TOTAL bytes of the pattern, read them back */
	CASE_VERIFY,  /* read TOTAL bytes: the pattern a former VM wrote */
	CASE_RO,      /* a read-only disk refuses writes, discards, write-zeroes */
	CASE_FLUSH,   /* flush; write-through without FLUSH */
	CASE_GET_ID,  /* the serial */
	CASE_DISCARD, /* discard and write-zeroes */
	CASE_BEYOND,  /* nothing past the end */
	CASE_HOSTILE, /* requests a driver must not send */
};

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

struct range {
	uint64_t sector;
	uint32_t sectors, flags;
};

static uint8_t ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t buf[DEPTH * CHUNK] __attribute__((aligned(4096)));
static struct hdr hdrs[DEPTH];
static volatile uint8_t st[DEPTH];
static struct range ranges[4];
static struct gvirtio d;
static uint64_t seed, capacity;

static uint64_t host_sync(uint64_t stage, uint64_t value)
{
	return guest_hypercall(SPK_HC_UCALL, SPK_UCALL_SYNC, stage, value, 0, 0, 0);
}

/* ---- the pattern: one 64-bit word per 8 bytes of the disk ---- */

static uint64_t word_at(uint64_t off)
{
	uint64_t z = seed + off * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill(uint8_t *p, uint64_t off, uint32_t n)
{
	for (uint32_t i = 0; i < n; i += 8)
		*(uint64_t *)(p + i) = word_at(off + i);
}

static bool check(const uint8_t *p, uint64_t off, uint32_t n)
{
	for (uint32_t i = 0; i < n; i += 8)
		if (*(const uint64_t *)(p + i) != word_at(off + i))
			return false;
	return true;
}

static bool all_zero(const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- requests ---- */

static struct gvirtq *q(void)
{
	return &d.q[0];
}

static void up(uint64_t features)
{
	GUEST_ASSERT_EQ(gvirtio_init(&d, features), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(&d, 0, QSIZE, ring), 0);
	gvirtio_ready(&d);
	capacity = gvirtio_cfg_read(&d, 0, 4) | (uint64_t)gvirtio_cfg_read(&d, 4, 4) << 32;
}

/* Request k: header, n data bytes at p (written by the device when dev_writes), status. */
static void submit(unsigned k, uint32_t type, uint64_t sector, void *p, uint32_t n, bool dev_writes)
{
	struct gvbuf b[3] = {{&hdrs[k], sizeof(hdrs[k]), false},
	                     {p, n, dev_writes},
	                     {(const void *)&st[k], 1, true}};

	hdrs[k] = (struct hdr){.type = type, .sector = sector};
	st[k] = 0xee;
	if (n == 0)
		b[1] = b[2];
	GUEST_ASSERT(gvq_submit(q(), b, n ? 3 : 2) >= 0);
}

static void wait_all(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		GUEST_ASSERT(gvq_wait(q(), NULL, 1ull << 34) >= 0);
}

static uint8_t one(uint32_t type, uint64_t sector, void *p, uint32_t n, bool dev_writes)
{
	submit(0, type, sector, p, n, dev_writes);
	gvq_kick(q());
	wait_all(1);
	return st[0];
}

static uint8_t ranges_req(uint32_t type, unsigned n)
{
	return one(type, 0, ranges, n * (uint32_t)sizeof(ranges[0]), false);
}

/* TOTAL bytes from sector 0, DEPTH requests of CHUNK at a time. */
static void stream(bool write)
{
	for (uint64_t off = 0; off < TOTAL; off += DEPTH * CHUNK) {
		for (unsigned k = 0; k < DEPTH; k++) {
			if (write)
				fill(buf + k * CHUNK, off + k * CHUNK, CHUNK);
			else
				memset(buf + k * CHUNK, 0, CHUNK);
			submit(k, write ? T_OUT : T_IN, (off + k * CHUNK) / SECTOR, buf + k * CHUNK,
			       CHUNK, !write);
		}
		gvq_kick(q());
		wait_all(DEPTH);
		for (unsigned k = 0; k < DEPTH; k++) {
			GUEST_ASSERT_EQ(st[k], S_OK);
			if (!write)
				GUEST_ASSERT(check(buf + k * CHUNK, off + k * CHUNK, CHUNK));
		}
	}
}

/* ---- the cases ---- */

static void case_rw(void)
{
	up(F_FLUSH | F_DISCARD | F_WRITE_ZEROES | GV_F_EVENT_IDX | GV_F_INDIRECT_DESC);
	GUEST_ASSERT(d.features & F_DISCARD);
	GUEST_ASSERT(d.features & F_WRITE_ZEROES);
	GUEST_ASSERT_EQ(d.features & F_RO, 0);
	host_sync(3, capacity);
	stream(true);
	stream(false);
	GUEST_ASSERT_EQ(one(T_FLUSH, 0, NULL, 0, true), S_OK);
	guest_printf("virtio-blk: wrote and read back %u MiB\n", TOTAL >> 20);
}

static void case_verify(void)
{
	up(F_FLUSH);
	stream(false);
	guest_printf("virtio-blk: %u MiB as the former VM left them\n", TOTAL >> 20);
}

static void case_ro(void)
{
	up(F_FLUSH | F_RO | F_DISCARD | F_WRITE_ZEROES);
	GUEST_ASSERT(d.features & F_RO);
	GUEST_ASSERT_EQ(one(T_IN, 0, buf, 4 * SECTOR, true), S_OK);
	GUEST_ASSERT(check(buf, 0, 4 * SECTOR));
	GUEST_ASSERT_EQ(one(T_OUT, 0, buf + 4096, SECTOR, false), S_IOERR);
	ranges[0] = (struct range){.sector = 0, .sectors = 8};
	GUEST_ASSERT_EQ(ranges_req(T_DISCARD, 1), S_IOERR);
	GUEST_ASSERT_EQ(ranges_req(T_WZ, 1), S_IOERR);
	ranges[0].flags = 1;
	GUEST_ASSERT_EQ(ranges_req(T_WZ, 1), S_IOERR);
	GUEST_ASSERT_EQ(one(T_FLUSH, 0, NULL, 0, true), S_OK);
	GUEST_ASSERT_EQ(one(T_IN, 0, buf, 4 * SECTOR, true), S_OK);
	GUEST_ASSERT(check(buf, 0, 4 * SECTOR));
}

static void case_flush(void)
{
	up(F_FLUSH);
	fill(buf, 0, SECTOR);
	GUEST_ASSERT_EQ(one(T_OUT, 0, buf, SECTOR, false), S_OK);
	host_sync(3, 0); /* the host counts fdatasync calls: none yet */
	GUEST_ASSERT_EQ(one(T_FLUSH, 0, NULL, 0, true), S_OK);
	host_sync(4, 0); /* one */
	up(0);           /* no FLUSH: every write is synced */
	GUEST_ASSERT_EQ(one(T_OUT, 1, buf, SECTOR, false), S_OK);
	GUEST_ASSERT_EQ(one(T_OUT, 2, buf, SECTOR, false), S_OK);
	host_sync(5, 0); /* three */
}

static void case_get_id(void)
{
	static const char want[20] = "drive0";

	up(0);
	memset(buf, 0x55, 64);
	GUEST_ASSERT_EQ(one(T_GET_ID, 0, buf, 20, true), S_OK);
	GUEST_ASSERT_EQ(memcmp(buf, want, 20), 0);
	GUEST_ASSERT_EQ(buf[20], 0x55);
	GUEST_ASSERT_EQ(one(T_GET_ID, 0, buf, 8, true), S_IOERR);
}

static void case_discard(void)
{
	up(F_FLUSH | F_DISCARD | F_WRITE_ZEROES);
	GUEST_ASSERT_EQ(gvirtio_cfg_read(&d, 36, 4), 1u << 22); /* max_discard_sectors */
	GUEST_ASSERT_EQ(gvirtio_cfg_read(&d, 40, 4), 16);       /* max_discard_seg */
	GUEST_ASSERT_EQ(gvirtio_cfg_read(&d, 48, 4), 1u << 17); /* max_write_zeroes_sectors */
	GUEST_ASSERT_EQ(gvirtio_cfg_read(&d, 56, 1), 1);        /* write_zeroes_may_unmap */
	fill(buf, 0, 64 * SECTOR);
	GUEST_ASSERT_EQ(one(T_OUT, 0, buf, 64 * SECTOR, false), S_OK);
	ranges[0] = (struct range){.sector = 8, .sectors = 8};
	ranges[1] = (struct range){.sector = 16, .sectors = 8, .flags = 1};
	GUEST_ASSERT_EQ(ranges_req(T_WZ, 2), S_OK);
	ranges[0] = (struct range){.sector = 32, .sectors = 8};
	GUEST_ASSERT_EQ(ranges_req(T_DISCARD, 1), S_OK);
	ranges[0].flags = 1; /* unmap is not for discards */
	GUEST_ASSERT_EQ(ranges_req(T_DISCARD, 1), S_UNSUPP);
	ranges[0] = (struct range){.sector = capacity - 4, .sectors = 8};
	GUEST_ASSERT_EQ(ranges_req(T_WZ, 1), S_IOERR);
	memset(buf, 0xaa, 64 * SECTOR);
	GUEST_ASSERT_EQ(one(T_IN, 0, buf, 64 * SECTOR, true), S_OK);
	GUEST_ASSERT(check(buf, 0, 8 * SECTOR));
	GUEST_ASSERT(all_zero(buf + 8 * SECTOR, 16 * SECTOR));
	GUEST_ASSERT(check(buf + 24 * SECTOR, 24 * SECTOR, 8 * SECTOR));
	GUEST_ASSERT(check(buf + 40 * SECTOR, 40 * SECTOR, 24 * SECTOR));
}

static void case_beyond(void)
{
	up(F_FLUSH);
	GUEST_ASSERT_EQ(one(T_IN, capacity - 1, buf, SECTOR, true), S_OK);
	GUEST_ASSERT_EQ(one(T_IN, capacity, buf, SECTOR, true), S_IOERR);
	GUEST_ASSERT_EQ(one(T_IN, capacity - 1, buf, 2 * SECTOR, true), S_IOERR);
	GUEST_ASSERT_EQ(one(T_IN, 1ull << 63, buf, SECTOR, true), S_IOERR);
	GUEST_ASSERT_EQ(one(T_IN, 0x0080000000000001ull, buf, SECTOR, true), S_IOERR);
	GUEST_ASSERT_EQ(one(T_IN, ~0ull, buf, SECTOR, true), S_IOERR);
	memset(buf, 0xab, 2 * SECTOR);
	GUEST_ASSERT_EQ(one(T_OUT, capacity, buf, SECTOR, false), S_IOERR);
	GUEST_ASSERT_EQ(one(T_OUT, capacity - 1, buf, 2 * SECTOR, false), S_IOERR);
}

/* A chain the device cannot answer: NEEDS_RESET, nothing used; then a reset. */
static void broken(const struct gvbuf *b, unsigned n)
{
	uint32_t len;
	uint64_t spins = 0;

	GUEST_ASSERT(gvq_submit(q(), b, n) >= 0);
	gvq_kick(q());
	while (!(gvirtio_status(&d) & GV_S_NEEDS_RESET) && spins++ < (1ull << 30))
		guest_pause();
	GUEST_ASSERT(gvirtio_status(&d) & GV_S_NEEDS_RESET);
	GUEST_ASSERT_EQ(gvq_poll(q(), &len), -1);
	up(F_FLUSH);
	GUEST_ASSERT_EQ(one(T_IN, 1, buf, SECTOR, true), S_OK);
}

static void case_hostile(void)
{
	up(F_FLUSH);
	/* answered with an error, the device goes on */
	GUEST_ASSERT_EQ(one(T_IN, 0, buf, SECTOR, false), S_IOERR); /* data the device reads */
	GUEST_ASSERT_EQ(one(T_OUT, 0, buf, SECTOR, true), S_IOERR); /* data the device writes */
	GUEST_ASSERT_EQ(one(T_IN, 0, buf, 100, true), S_IOERR);     /* not whole sectors */
	GUEST_ASSERT_EQ(one(T_OUT, 0, buf, 1000, false), S_IOERR);  /* not whole sectors */
	GUEST_ASSERT_EQ(one(0x77, 0, buf, SECTOR, true), S_UNSUPP); /* no such type */
	GUEST_ASSERT_EQ(gvirtio_status(&d) & GV_S_NEEDS_RESET, 0);
	/* no answer possible: the driver is broken */
	hdrs[0] = (struct hdr){.type = T_IN};
	broken((const struct gvbuf[]){{hdrs, 8, false}, {buf, SECTOR, true}, {(void *)st, 1, true}},
	       3);
	broken((const struct gvbuf[]){{hdrs, 16, false}, {buf, SECTOR, false}}, 2);
	broken((const struct gvbuf[]){{hdrs, 16, true}, {buf, SECTOR, true}}, 2);
}

static uint64_t body(uint64_t which)
{
	GUEST_ASSERT_EQ(gvirtio_find(&d, GV_ID_BLOCK), 0);
	switch (which) {
	case CASE_RW:
		case_rw();
		break;
	case CASE_VERIFY:
		case_verify();
		break;
	case CASE_RO:
		case_ro();
		break;
	case CASE_FLUSH:
		case_flush();
		break;
	case CASE_GET_ID:
		case_get_id();
		break;
	case CASE_DISCARD:
		case_discard();
		break;
	case CASE_BEYOND:
		case_beyond();
		break;
	case CASE_HOSTILE:
		case_hostile();
		break;
	default:
		GUEST_ASSERT(0);
	}
	return 0;
}

int main(void)
{
	uint64_t which = host_sync(1, 0);

	seed = host_sync(2, 0);
	guest_user_allow_ports(0, 0x10000); /* the user code drives the device */
	return (int)guest_run_user(body, which);
}
