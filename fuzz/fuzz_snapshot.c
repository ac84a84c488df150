/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the snapshot state file reader: spk_snap_open_buf
 * (structure, lengths, CRCs, order, field encoding, the header), then on
 * a file that opened, what a restore does with it: the dump
 * (snapshot-info), the memory layout, and a cursor over every section
 * reading each field with the type it claims, then reading it again
 * with wrong expectations. The CRC is the first thing a mutated file
 * fails, so the seed corpus (gen_snapshot_corpus.py) has valid files and
 * the fuzzer's CRC-fixing custom mutator keeps them valid: after each
 * mutation every section's CRC is recomputed, so mutations reach the
 * checks behind it.
 *
 * Device sections of a kind it knows are loaded into fresh devices (the
 * legacy PC devices, a PCI host, virtio-rng over a small guest memory).
 * Invariant: a load that is accepted saves again, and that save loads
 * into another fresh device (no state a load accepts is one a save
 * cannot write or a load refuses).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/devices.h>
#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/snapshot.h>
#include <sparkler/virtio.h>

#include "core/internal.h"
#include "snapshot/snap_internal.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Recompute every section's CRC as far as the lengths let us walk. */
static void fix_crcs(uint8_t *d, size_t n)
{
	size_t at = 16;

	while (n >= 24 && at <= n - 24) {
		uint64_t len = spk_get_le(d + at + 8, 8);

		if (len > n - at - 24)
			return;
		spk_put_le(d + at + 16,
		           spk_snap_crc32(spk_snap_crc32(0, d + at, 16), d + at + 24, (size_t)len),
		           4);
		at += 24 + (size_t)len;
	}
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	size_t n = LLVMFuzzerMutate(data, size, max_size);

	if (seed % 8) /* most of the time; sometimes leave a CRC wrong */
		fix_crcs(data, n);
	return n;
}

/* Read every field of section i: first with a wrong type (refused, the
 * cursor stays), then as what it is. */
static void walk(const struct spk_snap_file *f, size_t i)
{
	struct spk_snap_reader *r;
	char name[SPK_SNAP_NAME_MAX], s[SPK_SNAP_STR_MAX];
	uint8_t type, b[16];
	uint64_t v;
	const void *p;
	size_t len;

	if (spk_snap_reader_new(f, i, &r))
		return;
	while (spk_snap_peek(r, name, &type) == 0) {
		int rc;

		if (type == SPK_SNAP_STR)
			(void)spk_snap_get_bytes(r, name, b, sizeof(b));
		else
			(void)spk_snap_get_str(r, name, s, 8);
		if (type == SPK_SNAP_STR)
			rc = spk_snap_get_str(r, name, s, sizeof(s));
		else if (type == SPK_SNAP_BYTES)
			rc = spk_snap_get_blob(r, name, &p, &len);
		else
			rc = spk_snap_get_max(r, name, v = (uint64_t)i * 7, &v) &&
			     spk_snap_get_max(r, name, UINT64_MAX, &v);
		if (rc)
			__builtin_trap(); /* a field open() accepted must read */
	}
	(void)spk_snap_reader_done(r);
	spk_snap_reader_free(r);
}

/* ---- devices ---- */

#define RAM (256u << 10)

static void no_irq(void *ctx, uint32_t gsi, bool level)
{
}

static void no_stop(void *ctx, enum spk_exit_kind kind)
{
}

static time_t fixed_now(void *ctx)
{
	return 1765100000;
}

/* One of each device, fresh. */
struct devs {
	struct spk_uart *uart;
	struct spk_i8042 *kbd;
	struct spk_rtc *rtc;
	struct spk_acpi_pm *pm;
	struct spk_boot_timer *bt;
	struct spk_bus *bus;
	struct spk_pci_host *host;
	struct spk_virtio_rng *rng;
};

static uint8_t *ram;
static struct spk_mem *mem;

static int devs_new(struct devs *d)
{
	const struct spk_irq_line line = {no_irq, NULL, 4};
	const struct spk_uart_config uc = {"com1", line, NULL, NULL};
	const struct spk_i8042_config kc = {line, no_stop, NULL};
	const struct spk_rtc_config rc = {fixed_now, NULL};
	const struct spk_acpi_pm_config pc = {5, 0x0e, no_stop, NULL, line};
	const struct spk_boot_timer_config bc = {{0, 0}, NULL, NULL};

	memset(d, 0, sizeof(*d));
	if (!mem) {
		ram = calloc(1, RAM);
		if (!ram || spk_mem_new(&mem) || spk_mem_add(mem, 0, RAM, SPK_MEM_RAM, ram, "ram"))
			return -1;
	}
	if (spk_uart_new(&uc, &d->uart) || spk_i8042_new(&kc, &d->kbd) ||
	    spk_rtc_new(&rc, &d->rtc) || spk_acpi_pm_new(&pc, &d->pm) ||
	    spk_boot_timer_new(&bc, &d->bt) || spk_bus_new(&d->bus))
		return -1;
	const struct spk_pci_host_config hc = {.bus = d->bus,
	                                       .ecam = SPK_PC_PCI_ECAM,
	                                       .mmio_start = SPK_PC_PCI_MMIO_START,
	                                       .mmio_size = SPK_PC_PCI_MMIO_SIZE,
	                                       .intx = line};
	if (spk_pci_host_new(&hc, &d->host))
		return -1;
	const struct spk_virtio_rng_config rngc = {.pci = d->host, .slot = -1, .mem = mem};
	return spk_virtio_rng_new(&rngc, &d->rng);
}

static void devs_free(struct devs *d)
{
	spk_virtio_rng_free(d->rng);
	spk_pci_host_free(d->host);
	spk_bus_free(d->bus);
	spk_uart_free(d->uart);
	spk_i8042_free(d->kbd);
	spk_rtc_free(d->rtc);
	spk_acpi_pm_free(d->pm);
	spk_boot_timer_free(d->bt);
}

/* The ops and device for a kind, or NULL. */
static const struct spk_dev_state_ops *pick(struct devs *d, const char *kind, void **dev)
{
	struct spk_virtio *vd = d->rng ? spk_virtio_rng_dev(d->rng) : NULL;
	const struct {
		const char *kind;
		const struct spk_dev_state_ops *ops;
		void *dev;
	} t[] = {
	    {"uart8250", spk_uart_state_ops(), d->uart},
	    {"i8042", spk_i8042_state_ops(), d->kbd},
	    {"rtc", spk_rtc_state_ops(), d->rtc},
	    {"acpi_pm", spk_acpi_pm_state_ops(), d->pm},
	    {"boot_timer", spk_boot_timer_state_ops(), d->bt},
	    {"pci_host", spk_pci_host_state_ops(), d->host},
	    {"virtio_rng", vd ? spk_virtio_state_ops(vd) : NULL, vd},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(t[i].kind, kind) == 0 && t[i].ops) {
			*dev = t[i].dev;
			return t[i].ops;
		}
	return NULL;
}

/* Load section's device; if accepted, save it and load that elsewhere. */
static void load_device(const struct spk_snap_file *f, const struct spk_snap_section_info *si)
{
	struct devs a, b;
	struct spk_snap_writer *w = NULL;
	struct spk_snap_header h;
	struct spk_snap_file *again = NULL;
	const struct spk_dev_state_ops *ops;
	const void *buf;
	size_t len;
	void *dev, *dev2;

	if (devs_new(&a) || devs_new(&b))
		__builtin_trap();
	ops = pick(&a, si->kind, &dev);
	if (!ops || spk_snap_load_device(f, si->name, ops, dev) != 0)
		goto out;
	spk_snap_header_host(&h);
	if (spk_snap_writer_new(&w) || spk_snap_put_header(w, &h) ||
	    spk_snap_save_device(w, si->name, ops, dev) || spk_snap_writer_finish(w, &buf, &len) ||
	    spk_snap_open_buf(buf, len, &again))
		__builtin_trap(); /* an accepted state must save */
	ops = pick(&b, si->kind, &dev2);
	if (spk_snap_load_device(again, si->name, ops, dev2) != 0)
		__builtin_trap(); /* and load again */
out:
	spk_snap_close(again);
	spk_snap_writer_free(w);
	devs_free(&a);
	devs_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spk_snap_file *f;
	struct spk_snap_mem_layout l;
	FILE *out;

	if (spk_snap_open_buf(data, size, &f) < 0)
		return 0;
	out = fopen("/dev/null", "w");
	if (out) {
		spk_snap_file_dump(f, out, true);
		fclose(out);
	}
	if (spk_snap_mem_layout(f, &l) == 0)
		spk_snap_mem_layout_fini(&l);
	for (size_t i = 0; i < spk_snap_file_sections(f); i++) {
		struct spk_snap_section_info si;

		walk(f, i);
		if (spk_snap_file_section(f, i, &si) == 0 && si.type == SPK_SNAP_SEC_DEVICE)
			load_device(f, &si);
	}
	spk_snap_close(f);
	return 0;
}
