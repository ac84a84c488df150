// SPDX-License-Identifier: Apache-2.0
/*
 * The device tree of sparkler's arm64 machine (spk_arm64_fdt_build in
 * sparkler/arm64_boot.h), in the shape QEMU's "virt" board gives Linux, so
 * that Debian's arm64 kernel finds everything through drivers it has built
 * in: the GICv3 ("arm,gic-v3"), the architected timer, PSCI through HVC,
 * a 16550A over MMIO (of_serial, and earlycon through stdout-path), and
 * the generic ECAM PCIe host (pci-host-generic) with its INTx lines mapped
 * onto GIC SPIs.
 *
 * Interrupt specifiers are the GICv3 binding's three cells: type (0 SPI,
 * 1 PPI), number (SPI: INTID - 32; PPI: INTID - 16) and flags (4: level,
 * active high; the in-kernel GIC takes KVM_IRQ_LINE levels).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sparkler/arm64_boot.h>
#include <sparkler/fdt.h>

#include "core/internal.h"

#define GIC_SPI      0
#define GIC_PPI      1
#define IRQ_LEVEL_HI 4
#define UART_CLOCK   1843200u
#define APB_CLOCK    24000000u
#define GIC_MAX_SPI  (1020 - 32)
#define PCI_BUS_ECAM (1ull << 20) /* one bus of ECAM */

/* The architected timer's PPIs as Linux's arm,armv8-timer binding lists
 * them: secure physical, non-secure physical, virtual, hypervisor. */
static const uint32_t timer_ppis[4] = {13, 14, 11, 10};

static int check_range(const char *what, uint64_t base, uint64_t size)
{
	if (!size || base + size < base)
		return spk_fail(EINVAL, "arm64 fdt: %s 0x%llx+0x%llx is %s", what,
		                (unsigned long long)base, (unsigned long long)size,
		                size ? "wrapping" : "empty");
	return 0;
}

static int check_config(const struct spk_arm64_fdt_config *c)
{
	int rc;

	if (!c->n_cpus || c->n_cpus > SPK_ARM64_FDT_MAX_CPUS)
		return spk_fail(EINVAL, "arm64 fdt: %u CPUs (1-%d)", c->n_cpus,
		                SPK_ARM64_FDT_MAX_CPUS);
	if ((rc = check_range("RAM", c->ram_base, c->ram_size)) ||
	    (rc = check_range("GIC distributor", c->gicd_base, c->gicd_size)) ||
	    (rc = check_range("GIC redistributors", c->gicr_base, c->gicr_size)) ||
	    (rc = check_range("UART", c->uart_base, c->uart_size)))
		return rc;
	if (c->initrd_end < c->initrd_start ||
	    (c->initrd_end &&
	     (c->initrd_start < c->ram_base || c->initrd_end - c->ram_base > c->ram_size)))
		return spk_fail(EINVAL, "arm64 fdt: initrd 0x%llx-0x%llx is not inside RAM",
		                (unsigned long long)c->initrd_start,
		                (unsigned long long)c->initrd_end);
	if (c->uart_spi > GIC_MAX_SPI)
		return spk_fail(EINVAL, "arm64 fdt: UART SPI %u above %d", c->uart_spi,
		                GIC_MAX_SPI);
	if (c->rtc_size && (rc = check_range("RTC", c->rtc_base, c->rtc_size)))
		return rc;
	if (c->rtc_size && c->rtc_spi > GIC_MAX_SPI)
		return spk_fail(EINVAL, "arm64 fdt: RTC SPI %u above %d", c->rtc_spi, GIC_MAX_SPI);
	if (c->ecam_size) {
		if ((rc = check_range("PCIe ECAM", c->ecam_base, c->ecam_size)) ||
		    (rc = check_range("PCIe MMIO window", c->pci_mmio_base, c->pci_mmio_size)))
			return rc;
		if (c->ecam_size < PCI_BUS_ECAM)
			return spk_fail(EINVAL,
			                "arm64 fdt: PCIe ECAM of 0x%llx bytes: one bus needs "
			                "1 MiB",
			                (unsigned long long)c->ecam_size);
		if (c->pci_spi > GIC_MAX_SPI - 3)
			return spk_fail(EINVAL, "arm64 fdt: PCI SPIs %u..%u above %d", c->pci_spi,
			                c->pci_spi + 3, GIC_MAX_SPI);
	}
	return 0;
}

static void add_chosen(struct spk_fdt *f, const struct spk_arm64_fdt_config *c, const char *uart)
{
	spk_fdt_begin_node(f, "chosen");
	spk_fdt_prop_string(f, "bootargs", c->cmdline ? c->cmdline : "");
	spk_fdt_prop_string(f, "stdout-path", uart);
	if (c->initrd_end) {
		spk_fdt_prop_u64(f, "linux,initrd-start", c->initrd_start);
		spk_fdt_prop_u64(f, "linux,initrd-end", c->initrd_end);
	}
	spk_fdt_end_node(f);
}

static void add_cpus(struct spk_fdt *f, const struct spk_arm64_fdt_config *c)
{
	char name[32];

	spk_fdt_begin_node(f, "cpus");
	spk_fdt_prop_u32(f, "#address-cells", 1);
	spk_fdt_prop_u32(f, "#size-cells", 0);
	for (uint32_t i = 0; i < c->n_cpus; i++) {
		snprintf(name, sizeof(name), "cpu@%x", i);
		spk_fdt_begin_node(f, name);
		spk_fdt_prop_string(f, "device_type", "cpu");
		spk_fdt_prop_string(f, "compatible", "arm,arm-v8");
		spk_fdt_prop_u32(f, "reg", i);
		spk_fdt_prop_string(f, "enable-method", "psci");
		spk_fdt_end_node(f);
	}
	spk_fdt_end_node(f);
	spk_fdt_begin_node(f, "psci");
	spk_fdt_prop_string(f, "compatible", "arm,psci-0.2");
	spk_fdt_prop_string(f, "method", "hvc");
	spk_fdt_end_node(f);
}

static void add_gic(struct spk_fdt *f, const struct spk_arm64_fdt_config *c, uint32_t ph,
                    const char *name)
{
	const uint64_t reg[4] = {c->gicd_base, c->gicd_size, c->gicr_base, c->gicr_size};
	const uint32_t maint[3] = {GIC_PPI, 9, IRQ_LEVEL_HI};

	spk_fdt_begin_node(f, name);
	spk_fdt_prop_string(f, "compatible", "arm,gic-v3");
	spk_fdt_prop_u32(f, "#interrupt-cells", 3);
	spk_fdt_prop_empty(f, "interrupt-controller");
	spk_fdt_prop_u32(f, "#address-cells", 2);
	spk_fdt_prop_u32(f, "#size-cells", 2);
	spk_fdt_prop_empty(f, "ranges");
	spk_fdt_prop_reg(f, "reg", reg, 2, 2, 2);
	spk_fdt_prop_cells(f, "interrupts", maint, 3);
	spk_fdt_prop_u32(f, "phandle", ph);
	spk_fdt_end_node(f);
}

static void add_timer(struct spk_fdt *f)
{
	uint32_t irqs[12];

	for (int i = 0; i < 4; i++) {
		irqs[3 * i] = GIC_PPI;
		irqs[3 * i + 1] = timer_ppis[i];
		irqs[3 * i + 2] = IRQ_LEVEL_HI;
	}
	spk_fdt_begin_node(f, "timer");
	spk_fdt_prop_string(f, "compatible", "arm,armv8-timer");
	spk_fdt_prop_empty(f, "always-on");
	spk_fdt_prop_cells(f, "interrupts", irqs, 12);
	spk_fdt_end_node(f);
}

static void add_uart(struct spk_fdt *f, const struct spk_arm64_fdt_config *c, const char *name)
{
	const uint64_t reg[2] = {c->uart_base, c->uart_size};
	const uint32_t irq[3] = {GIC_SPI, c->uart_spi, IRQ_LEVEL_HI};

	spk_fdt_begin_node(f, name);
	spk_fdt_prop_string(f, "compatible", "ns16550a");
	spk_fdt_prop_reg(f, "reg", reg, 1, 2, 2);
	spk_fdt_prop_u32(f, "clock-frequency", c->uart_clock ? c->uart_clock : UART_CLOCK);
	spk_fdt_prop_u32(f, "reg-shift", 0);
	spk_fdt_prop_u32(f, "reg-io-width", 1);
	spk_fdt_prop_cells(f, "interrupts", irq, 3);
	spk_fdt_end_node(f);
}

/* The PL031 and the fixed clock Linux's AMBA bus enables for it. */
static void add_rtc(struct spk_fdt *f, const struct spk_arm64_fdt_config *c)
{
	char name[48];
	const uint64_t reg[2] = {c->rtc_base, c->rtc_size};
	const uint32_t irq[3] = {GIC_SPI, c->rtc_spi, IRQ_LEVEL_HI};
	const char *compat[2] = {"arm,pl031", "arm,primecell"};
	uint32_t clk = spk_fdt_phandle(f);

	spk_fdt_begin_node(f, "apb-pclk");
	spk_fdt_prop_string(f, "compatible", "fixed-clock");
	spk_fdt_prop_u32(f, "#clock-cells", 0);
	spk_fdt_prop_u32(f, "clock-frequency", APB_CLOCK);
	spk_fdt_prop_string(f, "clock-output-names", "clk24mhz");
	spk_fdt_prop_u32(f, "phandle", clk);
	spk_fdt_end_node(f);
	snprintf(name, sizeof(name), "pl031@%llx", (unsigned long long)c->rtc_base);
	spk_fdt_begin_node(f, name);
	spk_fdt_prop_strings(f, "compatible", compat, 2);
	spk_fdt_prop_reg(f, "reg", reg, 1, 2, 2);
	spk_fdt_prop_cells(f, "interrupts", irq, 3);
	spk_fdt_prop_u32(f, "clocks", clk);
	spk_fdt_prop_string(f, "clock-names", "apb_pclk");
	spk_fdt_end_node(f);
}

static void add_pci(struct spk_fdt *f, const struct spk_arm64_fdt_config *c, uint32_t gic)
{
	char name[48];
	const uint64_t reg[2] = {c->ecam_base, c->ecam_size};
	/* child (space: 32-bit memory; 64-bit address), parent, size */
	const uint32_t ranges[7] = {0x02000000,
	                            (uint32_t)(c->pci_mmio_base >> 32),
	                            (uint32_t)c->pci_mmio_base,
	                            (uint32_t)(c->pci_mmio_base >> 32),
	                            (uint32_t)c->pci_mmio_base,
	                            (uint32_t)(c->pci_mmio_size >> 32),
	                            (uint32_t)c->pci_mmio_size};
	const uint32_t bus_range[2] = {0, 0};
	const uint32_t mask[4] = {0x1800, 0, 0, 7}; /* slot bits 11-12, the pin */
	uint32_t map[4 * 4 * 10];
	size_t k = 0;

	/* Slot s, pin p (1-4): SPI pci_spi + (s + p - 1) % 4, the usual swizzle.
	 * Each entry: child unit address (3) and pin (1), the GIC's phandle,
	 * its unit address (2, #address-cells), the GIC specifier (3). */
	for (uint32_t slot = 0; slot < 4; slot++)
		for (uint32_t pin = 1; pin <= 4; pin++) {
			const uint32_t e[10] = {
			    slot << 11,  0,       0,
			    pin,         gic,     0,
			    0,           GIC_SPI, c->pci_spi + (slot + pin - 1) % 4,
			    IRQ_LEVEL_HI};

			memcpy(map + k, e, sizeof(e));
			k += 10;
		}
	snprintf(name, sizeof(name), "pcie@%llx", (unsigned long long)c->ecam_base);
	spk_fdt_begin_node(f, name);
	spk_fdt_prop_string(f, "compatible", "pci-host-ecam-generic");
	spk_fdt_prop_string(f, "device_type", "pci");
	spk_fdt_prop_u32(f, "#address-cells", 3);
	spk_fdt_prop_u32(f, "#size-cells", 2);
	spk_fdt_prop_u32(f, "#interrupt-cells", 1);
	spk_fdt_prop_u32(f, "linux,pci-domain", 0);
	spk_fdt_prop_cells(f, "bus-range", bus_range, 2);
	spk_fdt_prop_empty(f, "dma-coherent");
	spk_fdt_prop_reg(f, "reg", reg, 1, 2, 2);
	spk_fdt_prop_cells(f, "ranges", ranges, 7);
	spk_fdt_prop_cells(f, "interrupt-map-mask", mask, 4);
	spk_fdt_prop_cells(f, "interrupt-map", map, k);
	spk_fdt_end_node(f);
}

int spk_arm64_fdt_build(const struct spk_arm64_fdt_config *c, void *buf, size_t cap, size_t *size)
{
	struct spk_fdt *f;
	const void *blob;
	size_t len, max;
	uint32_t gic;
	char uart[48], gicname[48], mem[48];
	const uint64_t ram[2] = {c ? c->ram_base : 0, c ? c->ram_size : 0};
	int rc;

	if (!c || !buf || !size)
		return spk_fail(EINVAL, "arm64 fdt: no %s", !c ? "config" : "buffer");
	*size = 0;
	if ((rc = check_config(c)))
		return rc;
	max = cap < SPK_FDT_MAX_SIZE ? cap : SPK_FDT_MAX_SIZE;
	if ((rc = spk_fdt_new(max, &f)))
		return rc == -EINVAL
		           ? spk_fail(E2BIG, "arm64 fdt: a %zu-byte buffer is too small", cap)
		           : rc;
	snprintf(uart, sizeof(uart), "/uart@%llx", (unsigned long long)c->uart_base);
	snprintf(gicname, sizeof(gicname), "intc@%llx", (unsigned long long)c->gicd_base);
	snprintf(mem, sizeof(mem), "memory@%llx", (unsigned long long)c->ram_base);

	gic = spk_fdt_phandle(f);
	spk_fdt_begin_node(f, "");
	spk_fdt_prop_string(f, "compatible", "linux,dummy-virt");
	spk_fdt_prop_string(f, "model", "sparkler");
	spk_fdt_prop_u32(f, "#address-cells", 2);
	spk_fdt_prop_u32(f, "#size-cells", 2);
	spk_fdt_prop_u32(f, "interrupt-parent", gic);
	add_chosen(f, c, uart);
	spk_fdt_begin_node(f, mem);
	spk_fdt_prop_string(f, "device_type", "memory");
	spk_fdt_prop_reg(f, "reg", ram, 1, 2, 2);
	spk_fdt_end_node(f);
	add_cpus(f, c);
	add_gic(f, c, gic, gicname);
	add_timer(f);
	add_uart(f, c, uart + 1);
	if (c->rtc_size)
		add_rtc(f, c);
	if (c->ecam_size)
		add_pci(f, c, gic);
	spk_fdt_end_node(f);
	/* errors are sticky: the first one (and its message) comes out here */
	rc = spk_fdt_finish(f, 0, &blob, &len);
	if (!rc)
		memcpy(buf, blob, len);
	if (!rc)
		*size = len;
	spk_fdt_free(f);
	return rc;
}
