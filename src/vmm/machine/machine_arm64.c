/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The arm64 Linux microVM's platform: what machine.c builds instead of
 * the PC in the aarch64 build (its run loop, devices on PCI and control
 * are the same for both).
 *
 * In the shape of QEMU's virt board (what Debian's arm64 kernel finds
 * through the device tree, src/boot/arm64_fdt.c):
 *   0x08000000  GICv3 distributor, then one redistributor per vCPU from
 *               0x080a0000 (the backend's in-kernel GIC: sparkler/abi.h)
 *   0x09000000  a 16550A UART over MMIO (src/devices/uart8250.c, byte
 *               registers; "ns16550a", ttyS0, earlycon through stdout-path),
 *               SPI 1
 *   0x09010000  a PL031 RTC (src/devices/pl031.c) with the host's time, SPI 2
 *   0x10000000  the PCI BAR window (to 0x3eff0000), ECAM of bus 0 at
 *               0x3f000000; INTA-D on SPIs 3-6, swizzled by slot (no MSI:
 *               there is no ITS, so virtio devices use INTx)
 *   0x40000000  RAM: the kernel at its base (+ text_offset), the initrd
 *               below the DTB, the DTB in the last 2 MiB block
 * vCPU 0 starts at the kernel's entry with x0 = the DTB, x1-x3 = 0, EL1h,
 * interrupts masked, MMU off (booting.rst); the others wait powered off
 * for the guest's PSCI CPU_ON (its CPU_UP exit: spk_vm_run's default start
 * puts them at the entry with x0 = the context). PSCI SYSTEM_OFF ends the
 * run with SYSTEM_DOWN, SYSTEM_RESET with RESET.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <sparkler/abi.h>
#include <sparkler/arm64.h>
#include <sparkler/arm64_boot.h>
#include <sparkler/pci.h>

#include "vmm/machine/machine.h"

#define A64_RAM_BASE 0x40000000ull
#define A64_RAM_END  (1ull << 40) /* the PC's bound, spk_machine_config_check */
#define A64_PCI_MMIO 0x10000000ull
#define A64_PCI_SIZE 0x2eff0000ull
#define A64_PCI_ECAM 0x3f000000ull
#define A64_PCI_SPI  3
#define A64_DTB_ROOM (64u << 10)

static void set_err(char *err, size_t len, const char *what)
{
	if (err && len)
		snprintf(err, len, "%s", what);
}

int spk_arm64_machine_check(const struct spk_machine_config *c, char *err, size_t errlen)
{
	const char *what = NULL;

	if (c->restore_state || c->track_dirty_pages)
		what = "snapshots: not on arm64";
	else if (c->template != SPK_CPU_TEMPLATE_HOST)
		what = "CPU templates: not on arm64";
	else if (c->no_pvh)
		what = "--no-pvh (an x86-64 boot path): not on arm64";
	else if (c->vcpus > SPK_A64_MAX_VCPUS)
		what = "more than 32 vCPUs: not on arm64 (GIC redistributors)";
	else if (c->mem > A64_RAM_END - A64_RAM_BASE)
		what = "memory above 1 TiB - 1 GiB: not on arm64";
	if (!what)
		return 0;
	set_err(err, errlen, what);
	return -EINVAL;
}

int spk_arm64_machine_vm(const struct spk_machine_config *c, struct spk_vm **out)
{
	const struct spk_vm_config vc = {.max_vcpus = c->vcpus, .irqchip = SPK_IRQCHIP_KERNEL};
	int rc = spk_vm_create(&vc, out);

	if (rc < 0)
		return rc;
	return spk_vm_add_memory(*out, A64_RAM_BASE, c->mem, SPK_MEM_RAM, "ram", NULL);
}

struct spk_pci_host_config spk_arm64_pci_host_config(struct spk_vm *vm)
{
	return (struct spk_pci_host_config){.bus = spk_vm_bus(vm),
	                                    .vm = vm,
	                                    .ecam = A64_PCI_ECAM,
	                                    .mmio_start = A64_PCI_MMIO,
	                                    .mmio_size = A64_PCI_SIZE,
	                                    .no_cf8 = true,
	                                    .intx = spk_vm_irq(vm, A64_PCI_SPI)};
}

/* The kernel and initrd, the tree that points at them, and the vCPUs. */
int spk_arm64_machine_boot(struct spk_vm *vm, const struct spk_machine_config *c,
                           const void *kernel, size_t kernel_size, const void *initrd,
                           size_t initrd_size)
{
	struct spk_mem *mem = spk_vm_mem(vm);
	const struct spk_arm64_boot_config bc = {.kernel = kernel,
	                                         .kernel_size = kernel_size,
	                                         .initrd = initrd,
	                                         .initrd_size = initrd_size,
	                                         .ram_base = A64_RAM_BASE,
	                                         .ram_size = c->mem};
	struct spk_arm64_boot boot;
	struct spk_arm64_fdt_config fc = {
	    .n_cpus = c->vcpus,
	    .ram_base = A64_RAM_BASE,
	    .ram_size = c->mem,
	    .cmdline = c->cmdline ? c->cmdline : SPK_MACHINE_DEFAULT_CMDLINE,
	    .gicd_base = SPK_A64_GICD_BASE,
	    .gicd_size = SPK_A64_GICD_SIZE,
	    .gicr_base = SPK_A64_GICR_BASE,
	    .gicr_size = SPK_A64_GICR_SIZE * c->vcpus,
	    .uart_base = SPK_ARM64_MACHINE_UART,
	    .uart_size = SPK_ARM64_MACHINE_DEV_SIZE,
	    .uart_spi = SPK_ARM64_MACHINE_UART_SPI,
	    .rtc_base = SPK_ARM64_MACHINE_RTC,
	    .rtc_size = SPK_ARM64_MACHINE_DEV_SIZE,
	    .rtc_spi = SPK_ARM64_MACHINE_RTC_SPI,
	    .ecam_base = A64_PCI_ECAM,
	    .ecam_size = 1 << 20,
	    .pci_mmio_base = A64_PCI_MMIO,
	    .pci_mmio_size = A64_PCI_SIZE,
	    .pci_spi = A64_PCI_SPI,
	};
	struct spk_arm64_regs regs = {0};
	struct spk_vcpu *vcpu;
	uint8_t *dtb;
	size_t dtb_size;
	int rc;

	if ((rc = spk_arm64_boot_load(mem, &bc, &boot)) < 0)
		return rc;
	fc.initrd_start = boot.initrd_start;
	fc.initrd_end = boot.initrd_end;
	dtb = malloc(A64_DTB_ROOM);
	if (!dtb)
		return -ENOMEM;
	rc = spk_arm64_fdt_build(&fc, dtb, A64_DTB_ROOM, &dtb_size);
	if (!rc)
		rc = spk_arm64_boot_put_dtb(mem, &boot, dtb, dtb_size);
	free(dtb);
	if (rc < 0)
		return rc;
	/* vCPU 0 at the entry; the others wait for PSCI CPU_ON (CPU_UP) */
	for (uint32_t i = 0; i < c->vcpus; i++)
		if ((rc = spk_vcpu_create(vm, i, &vcpu)) < 0)
			return rc;
	vcpu = spk_vm_vcpu(vm, 0);
	regs.pc = boot.entry;
	regs.pstate = SPK_ARM64_PSTATE_EL1H_MASKED;
	regs.x[0] = boot.dtb_addr;
	if ((rc = spk_vcpu_set_arm64_regs(vcpu, &regs)) < 0)
		return rc;
	return spk_vcpu_ready(vcpu);
}
