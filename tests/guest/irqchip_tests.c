/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The in-kernel irqchip's GSI routes as KVM holds them: GSI 0, where KVM's
 * PIT raises its interrupt, reaches IOAPIC pin 2 (the MADT's ISA IRQ 0 ->
 * GSI 2 override), before and after MSI routes rewrite the table. Read
 * back with KVM_GET_IRQCHIP: a masked IOAPIC pin keeps its IRR bit.
 * Needs /dev/kvm (skip: 77).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <sparkler/sparkler.h>

#include "kvm/kvm.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: %s failed (%s)\n", __FILE__, __LINE__, #c,         \
			        spk_last_error());                                                 \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static uint32_t ioapic_irr(struct spk_vm *vm)
{
	struct kvm_irqchip chip = {.chip_id = KVM_IRQCHIP_IOAPIC};

	CHECK(ioctl(spk_kvm_vm(vm)->vm_fd, KVM_GET_IRQCHIP, &chip) == 0);
	return chip.chip.ioapic.irr;
}

/* Raise gsi, read which IOAPIC pins are pending, lower it again. */
static uint32_t pins_of(struct spk_vm *vm, uint32_t gsi)
{
	CHECK(spk_vm_irq_line(vm, gsi, true) == 0);
	uint32_t irr = ioapic_irr(vm);
	CHECK(spk_vm_irq_line(vm, gsi, false) == 0);
	CHECK(ioapic_irr(vm) == 0);
	return irr;
}

static void check_routes(struct spk_vm *vm, const char *when)
{
	uint32_t pit = pins_of(vm, 0);

	printf("%s: GSI 0 -> IOAPIC IRR 0x%06x, GSI 5 -> 0x%06x, GSI 20 -> 0x%06x\n", when, pit,
	       pins_of(vm, 5), pins_of(vm, 20));
	CHECK(pit == 1u << 2);
	CHECK(pins_of(vm, 5) == 1u << 5);
	CHECK(pins_of(vm, 20) == 1u << 20);
}

int main(void)
{
	struct spk_vm_config cfg = {.irqchip = SPK_IRQCHIP_KERNEL};
	struct spk_msi msi = {.addr = 0xfee00000u, .data = 0x30};
	struct spk_vm *vm;
	uint32_t gsi;

	if (!spk_kvm_usable(NULL, 0)) {
		printf("SKIP: no usable /dev/kvm\n");
		return 77;
	}
	printf("KVM: %s\n", spk_host_kvm_kind());
	CHECK(spk_vm_create(&cfg, &vm) == 0);
	check_routes(vm, "default table");
	CHECK(spk_vm_msi_route_add(vm, &msi, &gsi) == 0);
	check_routes(vm, "with an MSI route");
	CHECK(spk_vm_msi_route_del(vm, gsi) == 0);
	check_routes(vm, "after removing it");
	spk_vm_destroy(vm);
	printf("PASS\n");
	return 0;
}
