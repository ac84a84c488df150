/* SPDX-License-Identifier: Apache-2.0 */
/* The sparkler PC platform's memory: RAM slots and the e820 map that describes them. */
#include <errno.h>

#include "core/internal.h"
#include <sparkler/acpi.h>
#include <sparkler/linux.h>
#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/vm.h>

static int check_size(uint64_t mem_size)
{
	if (mem_size < SPK_PC_MEM_MIN || mem_size > SPK_PC_MEM_MAX || mem_size % 4096)
		return spk_fail(EINVAL, "pc: memory size %llu bytes must be whole pages from %llu MiB "
				"to %llu GiB", (unsigned long long)mem_size,
				SPK_PC_MEM_MIN >> 20, SPK_PC_MEM_MAX >> 30);
	return 0;
}

static uint64_t low_ram(uint64_t mem_size)
{
	return mem_size < SPK_PC_HOLE_START ? mem_size : SPK_PC_HOLE_START;
}

int spk_pc_add_ram(struct spk_vm *vm, uint64_t mem_size)
{
	int rc = check_size(mem_size);

	if (rc < 0)
		return rc;
	rc = spk_vm_add_memory(vm, 0, low_ram(mem_size), SPK_MEM_RAM, "ram-low", NULL);
	if (rc == 0 && mem_size > SPK_PC_HOLE_START)
		rc = spk_vm_add_memory(vm, SPK_PC_HIGH_RAM_START, mem_size - SPK_PC_HOLE_START,
				       SPK_MEM_RAM, "ram-high", NULL);
	return rc;
}

int spk_pc_e820(uint64_t mem_size, struct spk_e820 *map, size_t cap)
{
	const struct spk_e820 all[] = {
		{0, SPK_PC_LOW_RAM_END, SPK_E820_RAM},
		/* EBDA, VGA, BIOS and our ACPI tables: not RAM to the guest */
		{SPK_PC_LOW_RAM_END, SPK_PC_HIGH_RAM - SPK_PC_LOW_RAM_END, SPK_E820_RESERVED},
		{SPK_PC_HIGH_RAM, low_ram(mem_size) - SPK_PC_HIGH_RAM, SPK_E820_RAM},
		/*
		 * The 32-bit hole: the PCI MMIO window [0xc0000000, ECAM) stays
		 * out of the map, a gap where Linux puts PCI resources (as in
		 * Firecracker's and cloud-hypervisor's maps). The ECAM is
		 * reserved, as they do and as Linux wants for MMCONFIG (the
		 * DSDT's PNP0C02 says it too); so is the page-sized platform
		 * MMIO from the boot timer up: IOAPIC and LAPIC, as a PC
		 * BIOS reserves them.
		 */
		{SPK_PC_PCI_ECAM, SPK_PC_PCI_ECAM_SIZE, SPK_E820_RESERVED},
		{SPK_PC_BOOT_TIMER, SPK_PC_HIGH_RAM_START - SPK_PC_BOOT_TIMER, SPK_E820_RESERVED},
		{SPK_PC_HIGH_RAM_START, mem_size > SPK_PC_HOLE_START ? mem_size - SPK_PC_HOLE_START : 0,
		 SPK_E820_RAM},
	};
	size_t n = 0;
	int rc = check_size(mem_size);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < SPK_ARRAY_SIZE(all); i++) {
		if (!all[i].size)
			continue;
		if (n == cap)
			return spk_fail(ENOSPC, "pc: e820 map needs more than %zu entries", cap);
		map[n++] = all[i];
	}
	return (int)n;
}

struct spk_pci_host_config spk_pc_pci_host_config(struct spk_vm *vm)
{
	return (struct spk_pci_host_config){
		.bus = spk_vm_bus(vm),
		.vm = vm,
		.ecam = SPK_PC_PCI_ECAM,
		.mmio_start = SPK_PC_PCI_MMIO_START,
		.mmio_size = SPK_PC_PCI_MMIO_SIZE,
		.intx = spk_vm_irq(vm, SPK_PC_PCI_INTX_GSI),
	};
}

void spk_acpi_pc_config(struct spk_acpi_config *c, uint32_t ncpus, bool pci)
{
	*c = (struct spk_acpi_config){
		.ncpus = ncpus,
		.lapic_addr = SPK_PC_LAPIC,
		.ioapic_addr = SPK_PC_IOAPIC,
		.ioapic_id = (uint8_t)ncpus, /* after the LAPIC ids 0..ncpus-1 */
		.pm1a_evt_port = SPK_PC_PM1A_EVT,
		.pm1a_cnt_port = SPK_PC_PM1A_CNT,
		.gpe0_port = SPK_PC_GPE0_BLK,
		.sci_irq = SPK_PC_SCI_IRQ,
		.reset_port = SPK_PC_RESET_PORT,
		.reset_value = SPK_PC_RESET_VALUE,
		.s5_slp_typ = SPK_PC_S5_SLP_TYP,
		.com1 = true,
		.com1_port = SPK_PC_COM1,
		.com1_irq = SPK_PC_COM1_IRQ,
		.pci = pci,
		.pci_ecam = pci ? SPK_PC_PCI_ECAM : 0,
		.pci_mmio_start = pci ? SPK_PC_PCI_MMIO_START : 0,
		.pci_mmio_size = pci ? SPK_PC_PCI_MMIO_SIZE : 0,
		.pci_intx_gsi = pci ? SPK_PC_PCI_INTX_GSI : 0,
		.vmgenid_addr = SPK_PC_VMGENID,
		.vmgenid_gpe = SPK_PC_GPE_VMGENID,
	};
}
