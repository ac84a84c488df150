// SPDX-License-Identifier: Apache-2.0
/*
 * An ARM PrimeCell PL031 real-time clock: the arm64 machine's wall clock,
 * what Linux's rtc-pl031 (an AMBA driver) reads at boot to set the time.
 *
 * The counter is seconds: the guest's value is the host's wall clock plus
 * an offset, which a write to the load register (RTCLR) sets; the data
 * register (RTCDR) reads it. Registers (ARM DDI 0224, all 32-bit):
 *   0x000 DR    data, read-only       0x004 MR   match
 *   0x008 LR    load                  0x00c CR   control: bit 0 start
 *   0x010 IMSC  interrupt mask        0x014 RIS  raw interrupt status
 *   0x018 MIS   masked status         0x01c ICR  interrupt clear
 *   0xfe0-0xffc the peripheral and PrimeCell IDs (0x00041031, B105F00D),
 *               which Linux's AMBA bus reads to bind the driver.
 * The match interrupt (RIS bit 0) is set when the counter passes MR; the
 * device has no timer of its own, so that is noticed at each register
 * access, not at the second it happens: an alarm set through it fires at
 * the guest's next access, not by itself. Linux's boot (hctosys) and
 * `hwclock` need only the counter. The interrupt line is level: RIS &
 * IMSC. Accesses of another width than 4, or not 4-byte aligned, read 0
 * and are ignored, as the bus of a real PL031 does not decode them; so are
 * offsets with no register.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/devices.h>
#include <sparkler/snapshot.h>

#include "core/internal.h"
#include "devices/devlog.h"

enum {
	REG_DR = 0x000,
	REG_MR = 0x004,
	REG_LR = 0x008,
	REG_CR = 0x00c,
	REG_IMSC = 0x010,
	REG_RIS = 0x014,
	REG_MIS = 0x018,
	REG_ICR = 0x01c,
	REG_ID = 0xfe0, /* 8 ID registers to 0xffc */
};

/* PeriphID0-3 then PCellID0-3, one byte each in the low bits */
static const uint8_t pl031_id[8] = {0x31, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1};

struct spk_pl031 {
	pthread_mutex_t lock;
	struct spk_irq_line irq;
	time_t (*now)(void *ctx);
	void *now_ctx;
	int64_t offset; /* guest seconds - host seconds */
	uint32_t mr;
	uint32_t seen; /* the counter when a match was last looked for */
	bool imsc, ris;
	bool irq_level;
	struct spk_dev_ratelimit rl;
};

static time_t host_now(const struct spk_pl031 *p)
{
	return p->now ? p->now(p->now_ctx) : time(NULL);
}

/* The counter wraps at 32 bits, as the register does. */
static uint32_t counter(const struct spk_pl031 *p)
{
	return (uint32_t)((uint64_t)host_now(p) + (uint64_t)p->offset);
}

/* Notice a match the counter passed since it was last looked at (MR in
 * (seen, now], modulo 2^32), then drive the line from RIS & IMSC. */
static void update(struct spk_pl031 *p)
{
	uint32_t now = counter(p);
	uint32_t to_match = p->mr - p->seen, passed = now - p->seen;
	bool level;

	if (to_match && to_match <= passed)
		p->ris = true;
	p->seen = now;
	level = p->ris && p->imsc;
	if (level == p->irq_level)
		return;
	p->irq_level = level;
	spk_irq_set(&p->irq, level);
}

static uint64_t pl031_read(void *opaque, uint64_t off, unsigned width,
                           const struct spk_bus_access *who)
{
	struct spk_pl031 *p = opaque;
	uint32_t v = 0;

	if (width != 4 || (off & 3)) {
		spk_dev_log(&p->rl, "pl031", SPK_LOG_DEBUG, "pl031: %u-byte read at 0x%llx ignored",
		            width, (unsigned long long)off);
		return 0;
	}
	pthread_mutex_lock(&p->lock);
	update(p);
	switch (off) {
	case REG_DR:
		v = counter(p);
		break;
	case REG_MR:
		v = p->mr;
		break;
	case REG_LR:
		v = counter(p); /* what was loaded, as it has counted since */
		break;
	case REG_CR:
		v = 1; /* always running */
		break;
	case REG_IMSC:
		v = p->imsc;
		break;
	case REG_RIS:
		v = p->ris;
		break;
	case REG_MIS:
		v = p->ris && p->imsc;
		break;
	default:
		if (off >= REG_ID && off < REG_ID + 32)
			v = pl031_id[(off - REG_ID) / 4];
		break;
	}
	pthread_mutex_unlock(&p->lock);
	return v;
}

static void pl031_write(void *opaque, uint64_t off, unsigned width, uint64_t value,
                        const struct spk_bus_access *who)
{
	struct spk_pl031 *p = opaque;
	uint32_t v = (uint32_t)value;

	if (width != 4 || (off & 3)) {
		spk_dev_log(&p->rl, "pl031", SPK_LOG_DEBUG,
		            "pl031: %u-byte write at 0x%llx ignored", width,
		            (unsigned long long)off);
		return;
	}
	pthread_mutex_lock(&p->lock);
	switch (off) {
	case REG_MR:
		p->mr = v;
		p->seen = counter(p); /* a match from now on */
		break;
	case REG_LR:
		/* the counter continues from v: the offset that makes it so */
		p->offset = (int64_t)v - (int64_t)host_now(p);
		p->seen = counter(p);
		break;
	case REG_IMSC:
		p->imsc = v & 1;
		break;
	case REG_ICR:
		if (v & 1)
			p->ris = false;
		break;
	case REG_CR: /* start: it always runs; stopping is not modelled */
		break;
	default:
		spk_dev_log(&p->rl, "pl031", SPK_LOG_DEBUG,
		            "pl031: write 0x%08x to 0x%llx (read-only or no register)", v,
		            (unsigned long long)off);
		break;
	}
	update(p);
	pthread_mutex_unlock(&p->lock);
}

static const struct spk_bus_ops pl031_ops = {.read = pl031_read, .write = pl031_write};

const struct spk_bus_ops *spk_pl031_ops(void)
{
	return &pl031_ops;
}

int spk_pl031_new(const struct spk_pl031_config *cfg, struct spk_pl031 **out)
{
	struct spk_pl031 *p;
	int rc;

	if (!out)
		return spk_fail(EINVAL, "pl031: no place for the device");
	*out = NULL;
	if (!cfg)
		return spk_fail(EINVAL, "pl031: no config");
	p = calloc(1, sizeof(*p));
	if (!p)
		return spk_fail(ENOMEM, "pl031: out of memory");
	rc = pthread_mutex_init(&p->lock, NULL);
	if (rc) {
		free(p);
		return spk_fail(rc, "pl031: mutex: %s", strerror(rc));
	}
	p->irq = cfg->irq;
	p->now = cfg->now;
	p->now_ctx = cfg->now_ctx;
	p->seen = counter(p);
	*out = p;
	return 0;
}

void spk_pl031_free(struct spk_pl031 *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* ---- state (include/sparkler/snapshot.h): the offset from the host's
 * clock, so a restored guest reads the real time plus what it set ---- */

static int pl031_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_pl031 *p = opaque;

	pthread_mutex_lock(&p->lock);
	spk_snap_put_u64(w, "offset", (uint64_t)p->offset);
	spk_snap_put_u32(w, "mr", p->mr);
	spk_snap_put_u8(w, "imsc", p->imsc);
	spk_snap_put_u8(w, "ris", p->ris);
	pthread_mutex_unlock(&p->lock);
	return spk_snap_writer_error(w);
}

static int pl031_load(void *opaque, struct spk_snap_reader *rd)
{
	struct spk_pl031 *p = opaque;
	uint64_t offset;
	uint32_t mr;
	uint8_t imsc, ris;
	int rc;

	if ((rc = spk_snap_get_u64(rd, "offset", &offset)) ||
	    (rc = spk_snap_get_u32(rd, "mr", &mr)) ||
	    (rc = spk_snap_get_u8_max(rd, "imsc", 1, &imsc)) ||
	    (rc = spk_snap_get_u8_max(rd, "ris", 1, &ris)) || (rc = spk_snap_reader_done(rd)))
		return rc;
	pthread_mutex_lock(&p->lock);
	p->offset = (int64_t)offset;
	p->mr = mr;
	p->imsc = imsc;
	p->ris = ris;
	p->seen = counter(p);
	update(p);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static const struct spk_dev_state_ops pl031_state = {"pl031", 1, pl031_save, pl031_load};

const struct spk_dev_state_ops *spk_pl031_state_ops(void)
{
	return &pl031_state;
}
