/*
 * A stand-in for Linux under `sparkler run --disk` (tests/linux/disk_test.py):
 * no hypercalls (the machine answers them ENOSYS), output on COM1, ACPI
 * power-off, and CPL0 only (the Linux boot protocol's page tables are not
 * the SDK's: nothing is user-accessible). For every virtio-blk disk, in
 * slot order: its serial
 * (GET_ID), the marker the test put in sector 0, a write of sector 1, and
 * one line on COM1 saying what happened:
 *
 *	disk 0: id drive0, 2048 sectors, marker SPARKLER-DISK-0, read-only no, write 0
 */
#include <guest.h>
#include <virtio.h>

#include <sparkler/platform.h>

#define QSIZE  8
#define SECTOR 512u
#define F_RO   (1ull << 5)
#define F_FLUSH (1ull << 9)

enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8 };

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

static uint8_t ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t data[SECTOR];
static struct hdr hdr;
static volatile uint8_t status;

static void com1(const char *s)
{
	for (; *s; s++) {
		while (!(inb(SPK_PC_COM1 + 5) & 0x20)) /* LSR: THR empty */
			;
		outb(SPK_PC_COM1, (uint8_t)*s);
	}
}

static uint8_t req(struct gvirtio *d, uint32_t type, uint64_t sector, uint32_t n, bool dev_writes)
{
	struct gvbuf b[3] = {
	    {&hdr, sizeof(hdr), false}, {data, n, dev_writes}, {(const void *)&status, 1, true}};

	hdr = (struct hdr){.type = type, .sector = sector};
	status = 0xee;
	if (n == 0)
		b[1] = b[2];
	if (gvq_submit(&d->q[0], b, n ? 3 : 2) < 0)
		return 0xfe;
	gvq_kick(&d->q[0]);
	if (gvq_wait(&d->q[0], NULL, 1ull << 32) < 0)
		return 0xfd;
	return status;
}

/* Copy the printable start of data, up to n bytes, into out. */
static void printable(char *out, unsigned n)
{
	unsigned i = 0;

	for (; i < n && data[i] >= 0x21 && data[i] < 0x7f; i++)
		out[i] = (char)data[i];
	out[i] = '\0';
}

static uint64_t body(uint64_t arg)
{
	struct gvirtio d;
	char line[200], id[24], marker[40];
	unsigned n;

	for (n = 0; gvirtio_find_nth(&d, GV_ID_BLOCK, n) == 0; n++) {
		if (gvirtio_init(&d, F_RO | F_FLUSH) < 0 || gvirtio_queue(&d, 0, QSIZE, ring) < 0) {
			com1("disk: the device refused the driver\n");
			continue;
		}
		gvirtio_ready(&d);
		uint64_t sectors = gvirtio_cfg_read(&d, 0, 4) | (uint64_t)gvirtio_cfg_read(&d, 4, 4)
		                                                    << 32;
		memset(data, 0, sizeof(data));
		uint8_t s_id = req(&d, T_GET_ID, 0, 20, true);
		printable(id, 20);
		uint8_t s_rd = req(&d, T_IN, 0, SECTOR, true);
		printable(marker, 32);
		guest_snprintf((char *)data, sizeof(data), "WRITTEN-BY-GUEST-%u", n);
		uint8_t s_wr = req(&d, T_OUT, 1, SECTOR, false);
		uint8_t s_fl = req(&d, T_FLUSH, 0, 0, true);
		guest_snprintf(line, sizeof(line),
		               "disk %u: id %s (%u), %llu sectors, marker %s (%u), read-only %s, "
		               "write %u, flush %u\n",
		               n, id, s_id, (unsigned long long)sectors, marker, s_rd,
		               d.features & F_RO ? "yes" : "no", s_wr, s_fl);
		com1(line);
		gvirtio_set_status(&d, 0);
	}
	guest_snprintf(line, sizeof(line), "disks: %u\n", n);
	com1(line);
	return 0;
}

int main(void)
{
	body(0);
	/* ACPI S5: what Linux does to power off */
	outw(SPK_PC_PM1A_CNT, (uint16_t)(SPK_PC_S5_SLP_TYP << 10 | 1u << 13));
	for (;;)
		__asm__ volatile("hlt");
}
