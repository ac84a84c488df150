// SPDX-License-Identifier: Apache-2.0
/*
 * ACPI fixed hardware for a guest that is not hardware-reduced: the PM1a
 * event block (PM1_STS, PM1_EN), the PM1a control block (PM1_CNT), the
 * GPE0 block (GPE0_STS, GPE0_EN: 16 GPEs) and the FADT reset register.
 * That is what power-off (\_S5), reboot and the power button need.
 *
 * The four blocks share one ops table and are told apart by the absolute
 * port of each byte: an access is split into bytes at consecutive ports,
 * so any width at any offset works, including the 16-bit accesses Linux
 * makes and the byte accesses ACPICA may split them into.
 *
 * The power button is a control-method one (the FADT's PWR_BUTTON flag is
 * set): a press sets GPE0_STS bit 0, the DSDT's \_GPE._E00 notifies the
 * PNP0C0C device \_SB.PWRB. PM1's PWRBTN_STS is never set any more.
 *
 * Status bits (PM1_STS, GPE0_STS) are write-1-to-clear. The SCI is
 * level-triggered: it is high while a status bit and its enable bit are
 * both set, in PM1 or in GPE0; only WAK_STS (never enabled) and GPEs 0
 * and 1 are ever set, and only their enable bits stick (ACPICA edge GPEs:
 * it clears the status, then runs _E00 or _E01). GPE 1 is the VM
 * generation ID's (spk_acpi_pm_raise_gpe from the monitor). SCI_EN reads as 1: the platform is
 * always in ACPI mode (the FADT has no SMI command port), so Linux never
 * tries to switch.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/devices.h>
#include <sparkler/snapshot.h>
#include <sparkler/platform.h>

#include "core/internal.h"
#include "devices/devlog.h"

#define EVT_LEN 4 /* PM1_STS (2), PM1_EN (2) */
#define CNT_LEN 2
#define GPE_LEN 4 /* GPE0_STS (2), GPE0_EN (2) */

/* PM1_STS / PM1_EN */
#define PM1_TMR    0x0001
#define PM1_GBL    0x0020
#define PM1_PWRBTN 0x0100
#define PM1_SLPBTN 0x0200
#define PM1_RTC    0x0400
#define PM1_WAK    0x8000 /* STS only */
/* Enable bits a guest can set (PCIEXP_WAKE_DIS, bit 14, included). */
#define PM1_EN_MASK (PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC | 0x4000)
/* Status bits that raise the SCI when enabled. */
#define PM1_SCI_MASK (PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC)

/* GPE0_STS / GPE0_EN: GPE 0 is the power button, GPE 1 the VM generation ID */
#define GPE_PWRBTN  0x0001
#define GPE_VMGENID (1u << SPK_PC_GPE_VMGENID)
#define GPE_EN_MASK (GPE_PWRBTN | GPE_VMGENID)

/* PM1_CNT */
#define CNT_SCI_EN    0x0001
#define CNT_BM_RLD    0x0002
#define CNT_SLP_TYP   0x1c00
#define CNT_SLP_SHIFT 10
#define CNT_SLP_EN    0x2000 /* write-only */
/* What reads back; GBL_RLS and SLP_EN are write-only. */
#define CNT_KEPT (CNT_BM_RLD | CNT_SLP_TYP)

struct spk_acpi_pm {
	pthread_mutex_t lock;
	uint8_t s5_slp_typ, reset_value;
	spk_stop_fn stop;
	void *stop_ctx;
	struct spk_irq_line sci;
	uint16_t evt_port, cnt_port, gpe_port, reset_port;

	uint16_t sts, en, cnt;
	uint16_t gpe_sts, gpe_en;
	bool sci_level;

	struct spk_dev_ratelimit rl;
};

/* What a write asks of the VM, done after the lock is dropped. */
enum pm_action {
	PM_NONE = 0,
	PM_POWEROFF,
	PM_RESET,
};

static void update_sci(struct spk_acpi_pm *p)
{
	bool level = (p->sts & p->en & PM1_SCI_MASK) || (p->gpe_sts & p->gpe_en);

	if (level == p->sci_level)
		return;
	p->sci_level = level;
	spk_irq_set(&p->sci, level);
}

/* Replace byte i (0 or 1) of a 16-bit register. */
static uint16_t set_byte(uint16_t reg, unsigned i, uint8_t byte)
{
	unsigned shift = 8 * i;

	return (uint16_t)((reg & ~(0xffu << shift)) | ((unsigned)byte << shift));
}

static void write_evt(struct spk_acpi_pm *p, unsigned off, uint8_t byte)
{
	if (off < 2)
		p->sts &= (uint16_t) ~((unsigned)byte << (8 * off)); /* write 1 to clear */
	else
		p->en = set_byte(p->en, off - 2, byte) & PM1_EN_MASK;
}

/* GPE0: the same layout, status then enable, 2 bytes each. */
static void write_gpe(struct spk_acpi_pm *p, unsigned off, uint8_t byte)
{
	if (off < 2)
		p->gpe_sts &= (uint16_t) ~((unsigned)byte << (8 * off)); /* write 1 to clear */
	else
		p->gpe_en = set_byte(p->gpe_en, off - 2, byte) & GPE_EN_MASK;
}

/* A write of the SLP_TYP/SLP_EN byte (the high byte of PM1_CNT). */
static enum pm_action sleep_request(struct spk_acpi_pm *p, uint16_t cnt)
{
	unsigned typ = (cnt & CNT_SLP_TYP) >> CNT_SLP_SHIFT;

	if (!(cnt & CNT_SLP_EN))
		return PM_NONE;
	if (typ == p->s5_slp_typ)
		return PM_POWEROFF;
	spk_dev_log(&p->rl, "acpi-pm", SPK_LOG_WARN,
	            "acpi-pm: sleep type %u is not supported, ignored (PM1_CNT 0x%04x)", typ, cnt);
	/* Wake at once, so that a guest polling WAK_STS does not hang. */
	p->sts |= PM1_WAK;
	return PM_NONE;
}

static enum pm_action write_cnt(struct spk_acpi_pm *p, unsigned off, uint8_t byte)
{
	uint16_t cnt = set_byte(p->cnt, off, byte);

	p->cnt = cnt & CNT_KEPT;
	return off == 1 ? sleep_request(p, cnt) : PM_NONE;
}

static enum pm_action write_reset(struct spk_acpi_pm *p, uint8_t byte)
{
	if (byte == p->reset_value)
		return PM_RESET;
	/* Linux's "reboot=pci" writes 0x02 before 0x06: not worth a warning. */
	spk_dev_log(&p->rl, "acpi-pm", SPK_LOG_DEBUG,
	            "acpi-pm: reset register write 0x%02x ignored", byte);
	return PM_NONE;
}

static enum pm_action write_byte(struct spk_acpi_pm *p, uint64_t port, uint8_t byte)
{
	if (port >= p->evt_port && port < (uint64_t)p->evt_port + EVT_LEN) {
		write_evt(p, (unsigned)(port - p->evt_port), byte);
		return PM_NONE;
	}
	if (port >= p->cnt_port && port < (uint64_t)p->cnt_port + CNT_LEN)
		return write_cnt(p, (unsigned)(port - p->cnt_port), byte);
	if (port >= p->gpe_port && port < (uint64_t)p->gpe_port + GPE_LEN) {
		write_gpe(p, (unsigned)(port - p->gpe_port), byte);
		return PM_NONE;
	}
	if (port == p->reset_port)
		return write_reset(p, byte);
	spk_dev_log(&p->rl, "acpi-pm", SPK_LOG_WARN,
	            "acpi-pm: write 0x%02x to unknown port 0x%llx ignored", byte,
	            (unsigned long long)port);
	return PM_NONE;
}

static uint8_t read_byte(struct spk_acpi_pm *p, uint64_t port)
{
	uint32_t evt = p->sts | (uint32_t)p->en << 16;
	uint16_t cnt = p->cnt | CNT_SCI_EN;
	uint32_t gpe = p->gpe_sts | (uint32_t)p->gpe_en << 16;

	if (port >= p->evt_port && port < (uint64_t)p->evt_port + EVT_LEN)
		return (uint8_t)(evt >> (8 * (port - p->evt_port)));
	if (port >= p->cnt_port && port < (uint64_t)p->cnt_port + CNT_LEN)
		return (uint8_t)(cnt >> (8 * (port - p->cnt_port)));
	if (port >= p->gpe_port && port < (uint64_t)p->gpe_port + GPE_LEN)
		return (uint8_t)(gpe >> (8 * (port - p->gpe_port)));
	if (port == p->reset_port)
		return 0;
	return 0xff;
}

/* The port of byte i of an access, false without one (or on a wrap). */
static bool port_of(const struct spk_bus_access *who, unsigned i, uint64_t *port)
{
	if (!who || who->addr + i < who->addr)
		return false;
	*port = who->addr + i;
	return true;
}

static uint64_t pm_read(void *opaque, uint64_t offset, unsigned width,
                        const struct spk_bus_access *who)
{
	struct spk_acpi_pm *p = opaque;
	uint64_t value = 0;

	if (width > 8)
		width = 8;
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < width; i++) {
		uint64_t port;
		uint8_t byte = port_of(who, i, &port) ? read_byte(p, port) : 0xff;

		value |= (uint64_t)byte << (8 * i);
	}
	pthread_mutex_unlock(&p->lock);
	return value;
}

static void pm_write(void *opaque, uint64_t offset, unsigned width, uint64_t value,
                     const struct spk_bus_access *who)
{
	struct spk_acpi_pm *p = opaque;
	enum pm_action action = PM_NONE;

	if (width > 8)
		width = 8;
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < width; i++) {
		enum pm_action a = PM_NONE;
		uint64_t port;

		if (port_of(who, i, &port))
			a = write_byte(p, port, (uint8_t)(value >> (8 * i)));
		if (a != PM_NONE)
			action = a;
	}
	update_sci(p);
	pthread_mutex_unlock(&p->lock);
	/* Outside the lock: stop may do anything, even reach the device. */
	if (!p->stop || action == PM_NONE)
		return;
	p->stop(p->stop_ctx, action == PM_POWEROFF ? SPK_EXIT_SYSTEM_DOWN : SPK_EXIT_RESET);
}

static const struct spk_bus_ops pm_ops = {.read = pm_read, .write = pm_write};

const struct spk_bus_ops *spk_acpi_pm_ops(void)
{
	return &pm_ops;
}

void spk_acpi_pm_set_ports(struct spk_acpi_pm *p, uint16_t evt, uint16_t cnt, uint16_t gpe0,
                           uint16_t reset)
{
	if (!p) {
		spk_fail(EINVAL, "acpi-pm: set ports: no device");
		return;
	}
	pthread_mutex_lock(&p->lock);
	p->evt_port = evt;
	p->cnt_port = cnt;
	p->gpe_port = gpe0;
	p->reset_port = reset;
	pthread_mutex_unlock(&p->lock);
}

void spk_acpi_pm_power_button(struct spk_acpi_pm *p)
{
	if (!p) {
		spk_fail(EINVAL, "acpi-pm: power button: no device");
		return;
	}
	spk_acpi_pm_raise_gpe(p, 0);
}

int spk_acpi_pm_raise_gpe(struct spk_acpi_pm *p, unsigned gpe)
{
	if (!p)
		return spk_fail(EINVAL, "acpi-pm: GPE %u: no device", gpe);
	if (gpe >= 16 || !(GPE_EN_MASK & (1u << gpe)))
		return spk_fail(EINVAL,
		                "acpi-pm: GPE %u is not wired (0: power button, %u: "
		                "VM generation ID)",
		                gpe, SPK_PC_GPE_VMGENID);
	pthread_mutex_lock(&p->lock);
	p->gpe_sts |= (uint16_t)(1u << gpe);
	update_sci(p);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int spk_acpi_pm_new(const struct spk_acpi_pm_config *cfg, struct spk_acpi_pm **out)
{
	struct spk_acpi_pm *p;
	int rc;

	if (!out)
		return spk_fail(EINVAL, "acpi-pm: no place for the device");
	*out = NULL;
	if (!cfg)
		return spk_fail(EINVAL, "acpi-pm: no config");
	if (cfg->s5_slp_typ > 7)
		return spk_fail(EINVAL, "acpi-pm: SLP_TYP %u does not fit in 3 bits",
		                cfg->s5_slp_typ);
	p = calloc(1, sizeof(*p));
	if (!p)
		return spk_fail(ENOMEM, "acpi-pm: out of memory");
	rc = pthread_mutex_init(&p->lock, NULL);
	if (rc) {
		free(p);
		return spk_fail(rc, "acpi-pm: mutex: %s", strerror(rc));
	}
	p->s5_slp_typ = cfg->s5_slp_typ;
	p->reset_value = cfg->reset_value;
	p->stop = cfg->stop;
	p->stop_ctx = cfg->stop_ctx;
	p->sci = cfg->sci;
	/* The platform's ports until spk_acpi_pm_set_ports says otherwise. */
	p->evt_port = SPK_PC_PM1A_EVT;
	p->cnt_port = SPK_PC_PM1A_CNT;
	p->gpe_port = SPK_PC_GPE0_BLK;
	p->reset_port = SPK_PC_RESET_PORT;
	*out = p;
	return 0;
}

void spk_acpi_pm_free(struct spk_acpi_pm *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* ---- state (include/sparkler/snapshot.h) ---- */

static int pm_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_acpi_pm *p = opaque;

	pthread_mutex_lock(&p->lock);
	spk_snap_put_u16(w, "pm1_sts", p->sts);
	spk_snap_put_u16(w, "pm1_en", p->en);
	spk_snap_put_u16(w, "pm1_cnt", p->cnt);
	spk_snap_put_u16(w, "gpe0_sts", p->gpe_sts);
	spk_snap_put_u16(w, "gpe0_en", p->gpe_en);
	pthread_mutex_unlock(&p->lock);
	return spk_snap_writer_error(w);
}

static int pm_load(void *opaque, struct spk_snap_reader *r)
{
	struct spk_acpi_pm *p = opaque;
	uint64_t sts, en, cnt, gsts, gen;
	int rc;

	/* what the device itself ever sets: WAK in PM1, GPEs 0 and 1 */
	if ((rc = spk_snap_get_mask(r, "pm1_sts", PM1_WAK, &sts)) ||
	    (rc = spk_snap_get_mask(r, "pm1_en", PM1_EN_MASK, &en)) ||
	    (rc = spk_snap_get_mask(r, "pm1_cnt", CNT_KEPT, &cnt)) ||
	    (rc = spk_snap_get_mask(r, "gpe0_sts", GPE_EN_MASK, &gsts)) ||
	    (rc = spk_snap_get_mask(r, "gpe0_en", GPE_EN_MASK, &gen)) ||
	    (rc = spk_snap_reader_done(r)))
		return rc;
	pthread_mutex_lock(&p->lock);
	p->sts = (uint16_t)sts;
	p->en = (uint16_t)en;
	p->cnt = (uint16_t)cnt;
	p->gpe_sts = (uint16_t)gsts;
	p->gpe_en = (uint16_t)gen;
	update_sci(p);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static const struct spk_dev_state_ops pm_state = {"acpi_pm", 1, pm_save, pm_load};

const struct spk_dev_state_ops *spk_acpi_pm_state_ops(void)
{
	return &pm_state;
}
