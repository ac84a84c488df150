/* SPDX-License-Identifier: Apache-2.0 */
/* ACPI tables for the sparkler PC platform, generated at boot. */
#ifndef SPARKLER_ACPI_H
#define SPARKLER_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sparkler/mem.h>

#ifdef __cplusplus
extern "C" {
#endif

struct spk_acpi_config {
	uint32_t ncpus;         /* one MADT Local APIC entry each, APIC id = index */
	uint64_t lapic_addr;
	uint64_t ioapic_addr;
	uint8_t ioapic_id;      /* ncpus is fine: after the LAPIC ids */
	uint16_t pm1a_evt_port; /* PM1a_EVT_BLK, 4 bytes */
	uint16_t pm1a_cnt_port; /* PM1a_CNT_BLK, 2 bytes */
	uint16_t gpe0_port;     /* GPE0_BLK, 4 bytes; GPE 0 is the power button */
	uint8_t sci_irq;
	uint16_t reset_port;    /* FADT RESET_REG (system I/O, 8 bits) */
	uint8_t reset_value;
	uint8_t s5_slp_typ;     /* the \_S5 package's SLP_TYPa */
	bool com1;              /* a PNP0501 device in the DSDT */
	uint16_t com1_port;
	uint8_t com1_irq;
	bool pci;               /* MCFG and a PCI0 host bridge (PNP0A08) */
	uint64_t pci_ecam;
	uint64_t pci_mmio_start, pci_mmio_size;
	/* INTx: the PCI0 _PRT maps slot s (1-31), pin p (INTA-INTD) to GSI
	 * spk_pci_intx_gsi(pci_intx_gsi, s, p + 1), IOAPIC pins that are not
	 * ISA IRQs (at least 16). 0: no _PRT (no INTx). */
	uint32_t pci_intx_gsi;
	/* A VM generation ID device (\_SB.VGEN, _CID "VM_Gen_Counter", as
	 * Linux's vmgenid driver and Windows look for it): its ADDR method
	 * returns vmgenid_addr (the 16-byte ID in guest memory, 16-byte
	 * aligned, e820 reserved: the monitor's), and \_GPE._Exx for GPE
	 * vmgenid_gpe (1-15; GPE 0 is the power button) notifies it (0x80)
	 * when the ID changed. 0: no such device. */
	uint64_t vmgenid_addr;
	uint8_t vmgenid_gpe;
};

/* What was built. */
struct spk_acpi_info {
	uint64_t rsdp;  /* guest address of the RSDP (= base) */
	uint64_t end;   /* one past the last byte used */
	uint64_t xsdt, fadt, facs, dsdt, madt, mcfg; /* 0 where not built */
};

/*
 * The configuration of the sparkler PC platform (platform.h) for ncpus
 * vCPUs: its LAPIC and IOAPIC, PM1a and GPE0 blocks, reset register, \_S5, COM1,
 * and with pci its host bridge (MCFG, PCI0 with the INTx _PRT).
 */
void spk_acpi_pc_config(struct spk_acpi_config *c, uint32_t ncpus, bool pci);

/*
 * Build RSDP (ACPI 2.0+, at base, 16-byte aligned), XSDT, FADT (revision
 * 6, PM1a blocks, GPE0 block, reset register, not hardware-reduced),
 * FACS, DSDT (AML: \_S5, the control-method power button \_SB.PWRB
 * (PNP0C0C) with \_GPE._E00 to notify it, COM1, PCI0 with its _PRT when
 * asked, the VM generation ID device \_SB.VGEN with its \_GPE._Exx when
 * vmgenid_addr is set) and MADT (Local APIC per CPU,
 * the IOAPIC, overrides for IRQ0 -> GSI2 and the SCI) into buf, which the
 * guest will see at gpa base. Checksums right. -ENOSPC if size is too
 * small, -EINVAL for a bad config (the message says which field).
 */
int spk_acpi_build_buf(uint8_t *buf, size_t size, uint64_t base, const struct spk_acpi_config *cfg,
		       struct spk_acpi_info *info);

/* The same straight into guest memory [base, limit). */
int spk_acpi_build(struct spk_mem *mem, uint64_t base, uint64_t limit,
		   const struct spk_acpi_config *cfg, struct spk_acpi_info *info);

#ifdef __cplusplus
}
#endif
#endif
