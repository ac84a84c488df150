/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Build the platform's ACPI tables (2 CPUs, COM1, PCI) and write each one
 * to DIR/<signature>.dat for tests/acpi_iasl.sh to disassemble with iasl,
 * and DIR/expect.sh: the config's values as iasl prints them, for the
 * script to look for. No RSDP: iasl cannot load one from a file (the unit
 * test checks it).
 * usage: acpi_dump DIR
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sparkler/acpi.h>
#include <sparkler/log.h>
#include <sparkler/platform.h>

static uint8_t buf[SPK_PC_ACPI_END - SPK_PC_ACPI_START];

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int write_file(const char *dir, const char *name, const uint8_t *p, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "acpi_dump: %s: %s\n", path, strerror(errno));
		return 1;
	}
	return 0;
}

static int write_expect(const char *dir, const struct spk_acpi_config *c)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/expect.sh", dir);
	f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "acpi_dump: %s: %s\n", path, strerror(errno));
		return 1;
	}
	fprintf(f, "lapic=%08" PRIX64 "\n", c->lapic_addr);
	fprintf(f, "ioapic=%08" PRIX64 " ioapic_id=%02X\n", c->ioapic_addr, c->ioapic_id);
	fprintf(f, "pm1a_evt=%08X pm1a_cnt=%08X\n", c->pm1a_evt_port, c->pm1a_cnt_port);
	fprintf(f, "gpe0=%08X gpe0_64=%016X\n", c->gpe0_port, c->gpe0_port);
	fprintf(f, "sci=%02X sci16=%04X sci32=%08X\n", c->sci_irq, c->sci_irq, c->sci_irq);
	fprintf(f, "reset=%016X reset_value=%02X\n", c->reset_port, c->reset_value);
	fprintf(f, "slp_typ=%02X\n", c->s5_slp_typ);
	fprintf(f, "com1=%04X com1_irq=%u\n", c->com1_port, c->com1_irq);
	fprintf(f, "ecam=%016" PRIX64 " ecam32=%08" PRIX64 "\n", c->pci_ecam, c->pci_ecam);
	fprintf(f, "vmgenid=%08" PRIX64 "\n", c->vmgenid_addr);
	fprintf(f, "mmio=%08" PRIX64 " mmio_last=%08" PRIX64 "\n", c->pci_mmio_start,
	        c->pci_mmio_start + c->pci_mmio_size - 1);
	if (fclose(f) != 0) {
		fprintf(stderr, "acpi_dump: %s: %s\n", path, strerror(errno));
		return 1;
	}
	return 0;
}

/* A table at guest address gpa, named by its signature, of its own length. */
static int dump_table(const char *dir, uint64_t gpa)
{
	const uint8_t *t = buf + (gpa - SPK_PC_ACPI_START);
	char sig[5] = {0};

	memcpy(sig, t, 4);
	return write_file(dir, sig, t, get32(t + 4));
}

int main(int argc, char **argv)
{
	struct spk_acpi_config cfg;

	spk_acpi_pc_config(&cfg, 2, true);
	struct spk_acpi_info info;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: acpi_dump DIR\n");
		return 2;
	}
	rc = spk_acpi_build_buf(buf, sizeof(buf), SPK_PC_ACPI_START, &cfg, &info);
	if (rc != 0) {
		fprintf(stderr, "acpi_dump: build failed: %s\n", spk_last_error());
		return 1;
	}
	rc = write_expect(argv[1], &cfg);
	rc |= dump_table(argv[1], info.xsdt);
	rc |= dump_table(argv[1], info.fadt);
	rc |= dump_table(argv[1], info.facs);
	rc |= dump_table(argv[1], info.dsdt);
	rc |= dump_table(argv[1], info.madt);
	rc |= dump_table(argv[1], info.mcfg);
	return rc;
}
