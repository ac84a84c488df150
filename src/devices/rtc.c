// SPDX-License-Identifier: Apache-2.0
/*
 * The MC146818 CMOS RTC at ports 0x70 (index) and 0x71 (data).
 *
 * The time registers are not stored: each read converts "host clock +
 * offset" (UTC) into the format register B asks for, so the clock never
 * drifts and never needs a timer. An update is never in progress (A.UIP
 * reads 0), so Linux's mc146818_avoid_UIP loop ends at once.
 *
 * Setting the clock follows the chip: the guest sets B.SET, which freezes
 * the time registers (we latch their current values), writes the ones it
 * wants, and clears B.SET, at which point the latched registers become the
 * new guest time: only the offset changes, never the host clock. A time
 * register written while SET is clear is applied at once the same way.
 * Values that are not a valid date (bad BCD, the 31st of February) leave
 * the clock as it was, with a log line.
 *
 * There is no interrupt line: register C's flags are computed when it is
 * read (UF after a second boundary, AF when the alarm matches) and cleared
 * by the read.
 *
 * Accesses wider than a byte are split into byte accesses at consecutive
 * ports (an outw to 0x70 sets the index and writes the data).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/devices.h>
#include <sparkler/snapshot.h>

#include "core/internal.h"
#include "devices/devlog.h"

#define RTC_PORTS 2

/* CMOS indexes */
enum {
	R_SEC = 0x00,
	R_SEC_ALARM = 0x01,
	R_MIN = 0x02,
	R_MIN_ALARM = 0x03,
	R_HOUR = 0x04,
	R_HOUR_ALARM = 0x05,
	R_WDAY = 0x06,
	R_MDAY = 0x07,
	R_MON = 0x08,
	R_YEAR = 0x09,
	R_A = 0x0a,
	R_B = 0x0b,
	R_C = 0x0c,
	R_D = 0x0d,
	R_CENTURY = 0x32, /* the FADT's CENTURY field points here */
};

#define A_UIP     0x80
#define A_DEFAULT 0x26 /* 32.768 kHz time base, 1024 Hz periodic rate */

#define B_SET     0x80
#define B_PIE     0x40
#define B_AIE     0x20
#define B_UIE     0x10
#define B_DM      0x04 /* 1: binary, 0: BCD */
#define B_24H     0x02
#define B_DEFAULT B_24H

#define C_IRQF 0x80
#define C_AF   0x20
#define C_UF   0x10

#define D_VRT 0x80 /* valid RAM and time: the battery is fine */

#define HOUR_PM 0x80

/* The time registers, in the order of the latch. */
static const uint8_t time_regs[] = {R_SEC, R_MIN, R_HOUR, R_WDAY, R_MDAY, R_MON, R_YEAR, R_CENTURY};
#define NTIME SPK_ARRAY_SIZE(time_regs)

/* The years a guest may set: four BCD digits, no earlier than 1900. */
#define YEAR_MIN 1900
#define YEAR_MAX 9999
/* The times the registers can show: 0000-01-01 00:00:00 to 9999-12-31
 * 23:59:59 UTC, in seconds since the epoch. */
#define TIME_MIN (-62167219200LL)
#define TIME_MAX 253402300799LL

struct spk_rtc {
	pthread_mutex_t lock;
	time_t (*now)(void *ctx);
	void *now_ctx;

	uint8_t index;
	uint8_t ram[128];     /* everything but the time registers */
	int64_t offset;       /* guest time = host time + offset, in seconds */
	uint8_t latch[NTIME]; /* the frozen time registers while B.SET */
	int64_t last_c_read;  /* guest time of the last register C read */

	struct spk_dev_ratelimit rl;
};

/* The broken-down guest time, as the registers hold it. */
struct rtc_tm {
	int sec, min, hour, wday /* 0 = Sunday */, mday, mon /* 1-12 */, year;
};

static int time_slot(uint8_t reg)
{
	for (unsigned i = 0; i < NTIME; i++) {
		if (time_regs[i] == reg)
			return (int)i;
	}
	return -1;
}

static int64_t host_now(const struct spk_rtc *r)
{
	return r->now ? (int64_t)r->now(r->now_ctx) : (int64_t)time(NULL);
}

static int64_t guest_time(const struct spk_rtc *r, int64_t host)
{
	int64_t t;

	if (__builtin_add_overflow(host, r->offset, &t))
		return 0;
	return t;
}

static int64_t guest_now(const struct spk_rtc *r)
{
	return guest_time(r, host_now(r));
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), without the C library's time zone. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The inverse: seconds since the epoch to a date. Times outside the
 * years the registers hold stop at 0000-01-01 00:00:00 or 9999-12-31
 * 23:59:59: clamping the year alone would make dates that do not exist
 * (10000-02-29 would read as 9999-02-29). */
static void civil_from_time(int64_t t, struct rtc_tm *tm)
{
	int64_t days, secs;
	int64_t era, doe, yoe, doy, mp, y;

	if (t < TIME_MIN)
		t = TIME_MIN;
	if (t > TIME_MAX)
		t = TIME_MAX;
	days = t / 86400;
	secs = t % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	tm->hour = (int)(secs / 3600);
	tm->min = (int)(secs / 60 % 60);
	tm->sec = (int)(secs % 60);
	tm->wday = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
	days += 719468;
	era = (days >= 0 ? days : days - 146096) / 146097;
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	tm->mday = (int)(doy - (153 * mp + 2) / 5 + 1);
	tm->mon = (int)(mp < 10 ? mp + 3 : mp - 9);
	y = yoe + era * 400 + (tm->mon <= 2);
	tm->year = (int)y; /* 0 to 9999: t is clamped */
}

static int days_in_month(int year, int mon)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return mon == 2 && leap ? 29 : days[mon - 1];
}

static uint8_t encode(int v, uint8_t b)
{
	v %= 100; /* registers hold two digits */
	return (b & B_DM) ? (uint8_t)v : (uint8_t)((v / 10) << 4 | v % 10);
}

/* -1 for a byte that is not a number in the current mode. */
static int decode(uint8_t v, uint8_t b)
{
	if (b & B_DM)
		return v;
	if ((v >> 4) > 9 || (v & 0xf) > 9)
		return -1;
	return (v >> 4) * 10 + (v & 0xf);
}

static uint8_t encode_hour(int hour, uint8_t b)
{
	int h12;

	if (b & B_24H)
		return encode(hour, b);
	/* 12-hour mode: 12 AM, 1 AM ... 11 AM, 12 PM, 1 PM ... with the PM
	 * flag in bit 7 over the BCD or binary hour. */
	h12 = hour % 12 == 0 ? 12 : hour % 12;
	return encode(h12, b) | (hour >= 12 ? HOUR_PM : 0);
}

static int decode_hour(uint8_t v, uint8_t b)
{
	int h;

	if (b & B_24H) {
		h = decode(v, b);
		return h <= 23 ? h : -1;
	}
	h = decode(v & ~HOUR_PM, b);
	if (h < 1 || h > 12)
		return -1;
	return h % 12 + ((v & HOUR_PM) ? 12 : 0);
}

/* The value of time register reg at guest time t, in format b. */
static uint8_t time_reg(uint8_t reg, int64_t t, uint8_t b)
{
	struct rtc_tm tm;

	civil_from_time(t, &tm);
	switch (reg) {
	case R_SEC:
		return encode(tm.sec, b);
	case R_MIN:
		return encode(tm.min, b);
	case R_HOUR:
		return encode_hour(tm.hour, b);
	case R_WDAY:
		return encode(tm.wday + 1, b); /* 1 = Sunday */
	case R_MDAY:
		return encode(tm.mday, b);
	case R_MON:
		return encode(tm.mon, b);
	case R_YEAR:
		return encode(tm.year % 100, b);
	case R_CENTURY:
		return encode(tm.year / 100, b);
	}
	return 0;
}

static void latch_time(struct spk_rtc *r, uint8_t b, int64_t host)
{
	int64_t t = guest_time(r, host);

	for (unsigned i = 0; i < NTIME; i++)
		r->latch[i] = time_reg(time_regs[i], t, b);
}

/* Make the latched registers (in format b) the guest's time at host. */
static void commit_time(struct spk_rtc *r, uint8_t b, int64_t host)
{
	const uint8_t *l = r->latch;
	int sec = decode(l[0], b), min = decode(l[1], b), hour = decode_hour(l[2], b);
	int mday = decode(l[4], b), mon = decode(l[5], b);
	int yy = decode(l[6], b), cc = decode(l[7], b);
	int year = cc * 100 + yy;
	int64_t t;

	if (sec < 0 || sec > 59 || min < 0 || min > 59 || hour < 0 || mon < 1 || mon > 12 ||
	    yy < 0 || yy > 99 || cc < 0 || cc > 99 || year < YEAR_MIN || year > YEAR_MAX ||
	    mday < 1 || mday > days_in_month(year, mon)) {
		spk_dev_log(
		    &r->rl, "rtc", SPK_LOG_WARN,
		    "rtc: invalid time %02x:%02x:%02x %02x-%02x-%02x%02x (B 0x%02x) ignored", l[2],
		    l[1], l[0], l[4], l[5], l[7], l[6], b);
		return;
	}
	t = days_from_civil(year, mon, mday) * 86400 + (int64_t)hour * 3600 + (int64_t)min * 60 + sec;
	/* The years are bounded, so only a wild host clock can overflow. */
	if (__builtin_sub_overflow(t, host, &r->offset))
		r->offset = 0;
}

/* Register C: flags since the last read, computed now and cleared. */
static uint8_t read_c(struct spk_rtc *r)
{
	uint8_t b = r->ram[R_B], c = 0;
	int64_t t = guest_now(r);

	if (!(b & B_SET) && t != r->last_c_read) {
		static const uint8_t alarm[3][2] = {
		    {R_SEC_ALARM, R_SEC}, {R_MIN_ALARM, R_MIN}, {R_HOUR_ALARM, R_HOUR}};
		bool match = true;

		c |= C_UF; /* a second boundary passed */
		for (unsigned i = 0; i < 3; i++) {
			uint8_t want = r->ram[alarm[i][0]];

			/* 0xc0-0xff in an alarm byte means "any" */
			if (want < 0xc0 && want != time_reg(alarm[i][1], t, b))
				match = false;
		}
		if (match)
			c |= C_AF;
	}
	r->last_c_read = t;
	if (c & b & (B_PIE | B_AIE | B_UIE))
		c |= C_IRQF;
	return c;
}

static uint8_t read_data(struct spk_rtc *r)
{
	uint8_t reg = r->index, b = r->ram[R_B];
	int slot = time_slot(reg);

	if (slot >= 0)
		return (b & B_SET) ? r->latch[slot] : time_reg(reg, guest_now(r), b);
	switch (reg) {
	case R_A:
		return r->ram[R_A] & ~A_UIP; /* never mid-update */
	case R_C:
		return read_c(r);
	case R_D:
		return D_VRT;
	}
	return r->ram[reg];
}

static void write_b(struct spk_rtc *r, uint8_t value)
{
	uint8_t old = r->ram[R_B];

	if (value & B_SET)
		value &= ~B_UIE; /* SET clears UIE (datasheet) */
	r->ram[R_B] = value;
	/* Entering SET freezes the registers in the format the guest will
	 * write them in; leaving it reads them in the format they were
	 * written in. */
	if (!(old & B_SET) && (value & B_SET))
		latch_time(r, value, host_now(r));
	else if ((old & B_SET) && !(value & B_SET))
		commit_time(r, old, host_now(r));
}

static void write_data(struct spk_rtc *r, uint8_t value)
{
	uint8_t reg = r->index, b = r->ram[R_B];
	int slot = time_slot(reg);

	if (slot >= 0) {
		if (b & B_SET) {
			r->latch[slot] = value;
			return;
		}
		/* Without SET: a one-register set of the clock, at one
		 * instant of the host clock. */
		int64_t host = host_now(r);

		latch_time(r, b, host);
		r->latch[slot] = value;
		commit_time(r, b, host);
		return;
	}
	switch (reg) {
	case R_A:
		r->ram[R_A] = value & ~A_UIP;
		break;
	case R_B:
		write_b(r, value);
		break;
	case R_C:
	case R_D:
		spk_dev_log(&r->rl, "rtc", SPK_LOG_DEBUG,
		            "rtc: write 0x%02x to read-only register 0x%02x ignored", value, reg);
		break;
	default:
		r->ram[reg] = value; /* alarms and battery-backed RAM */
		break;
	}
}

static uint8_t read_port(struct spk_rtc *r, uint64_t port)
{
	if (port == 1)
		return read_data(r);
	return 0xff; /* the index register is write-only */
}

static void write_port(struct spk_rtc *r, uint64_t port, uint8_t value)
{
	if (port == 0)
		r->index = value & 0x7f; /* bit 7 masks NMIs: not ours */
	else if (port == 1)
		write_data(r, value);
}

static uint64_t rtc_read(void *opaque, uint64_t offset, unsigned width,
                         const struct spk_bus_access *who)
{
	struct spk_rtc *r = opaque;
	uint64_t value = 0;

	if (width > 8)
		width = 8;
	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < width; i++) {
		/* offset first: offset + i must not wrap around to a port */
		bool ours = offset < RTC_PORTS && offset + i < RTC_PORTS;
		uint8_t byte = ours ? read_port(r, offset + i) : 0xff;

		value |= (uint64_t)byte << (8 * i);
	}
	pthread_mutex_unlock(&r->lock);
	return value;
}

static void rtc_write(void *opaque, uint64_t offset, unsigned width, uint64_t value,
                      const struct spk_bus_access *who)
{
	struct spk_rtc *r = opaque;

	if (width > 8)
		width = 8;
	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < width; i++) {
		if (offset < RTC_PORTS && offset + i < RTC_PORTS)
			write_port(r, offset + i, (uint8_t)(value >> (8 * i)));
	}
	pthread_mutex_unlock(&r->lock);
}

static const struct spk_bus_ops rtc_ops = {.read = rtc_read, .write = rtc_write};

const struct spk_bus_ops *spk_rtc_ops(void)
{
	return &rtc_ops;
}

int spk_rtc_new(const struct spk_rtc_config *cfg, struct spk_rtc **out)
{
	struct spk_rtc *r;
	int rc;

	if (!out)
		return spk_fail(EINVAL, "rtc: no place for the device");
	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return spk_fail(ENOMEM, "rtc: out of memory");
	rc = pthread_mutex_init(&r->lock, NULL);
	if (rc) {
		free(r);
		return spk_fail(rc, "rtc: mutex: %s", strerror(rc));
	}
	if (cfg) {
		r->now = cfg->now;
		r->now_ctx = cfg->now_ctx;
	}
	r->ram[R_A] = A_DEFAULT;
	r->ram[R_B] = B_DEFAULT;
	r->last_c_read = guest_now(r);
	*out = r;
	return 0;
}

void spk_rtc_free(struct spk_rtc *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* ---- state (include/sparkler/snapshot.h) ---- */

/*
 * The guest's time is saved as its offset from the host's wall clock, so
 * a restored guest reads the real time plus what it set, as before. The
 * latch (while B.SET) and the last C read are guest times as they were.
 */
static int rtc_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_rtc *r = opaque;

	pthread_mutex_lock(&r->lock);
	spk_snap_put_u8(w, "index", r->index);
	spk_snap_put_bytes(w, "ram", r->ram, sizeof(r->ram));
	spk_snap_put_u64(w, "offset", (uint64_t)r->offset);
	spk_snap_put_bytes(w, "latch", r->latch, sizeof(r->latch));
	spk_snap_put_u64(w, "last_c_read", (uint64_t)r->last_c_read);
	pthread_mutex_unlock(&r->lock);
	return spk_snap_writer_error(w);
}

static int rtc_load(void *opaque, struct spk_snap_reader *rd)
{
	struct spk_rtc *r = opaque;
	uint8_t index, ram[128], latch[NTIME];
	uint64_t offset, last_c;
	int rc;

	if ((rc = spk_snap_get_u8_max(rd, "index", 0x7f, &index)) ||
	    (rc = spk_snap_get_bytes(rd, "ram", ram, sizeof(ram))))
		return rc;
	if (ram[R_A] & A_UIP)
		return spk_snap_bad(rd, "ram", "register A 0x%02x shows an update in progress",
		                    ram[R_A]);
	if ((ram[R_B] & B_SET) && (ram[R_B] & B_UIE))
		return spk_snap_bad(rd, "ram", "register B 0x%02x has SET and UIE", ram[R_B]);
	if ((rc = spk_snap_get_u64(rd, "offset", &offset)))
		return rc;
	/* the whole range the registers can show, either way */
	if ((int64_t)offset < TIME_MIN - TIME_MAX || (int64_t)offset > TIME_MAX - TIME_MIN)
		return spk_snap_bad(rd, "offset", "%lld seconds is beyond years 0-9999",
		                    (long long)(int64_t)offset);
	if ((rc = spk_snap_get_bytes(rd, "latch", latch, sizeof(latch))) ||
	    (rc = spk_snap_get_u64(rd, "last_c_read", &last_c)) || (rc = spk_snap_reader_done(rd)))
		return rc;

	pthread_mutex_lock(&r->lock);
	r->index = index;
	memcpy(r->ram, ram, sizeof(ram));
	r->offset = (int64_t)offset;
	memcpy(r->latch, latch, sizeof(latch));
	r->last_c_read = (int64_t)last_c;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static const struct spk_dev_state_ops rtc_state = {"rtc", 1, rtc_save, rtc_load};

const struct spk_dev_state_ops *spk_rtc_state_ops(void)
{
	return &rtc_state;
}
