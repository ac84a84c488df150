// SPDX-License-Identifier: Apache-2.0
/*
 * Interrupt lines of the VM's in-kernel irqchip, for the devices: a
 * spk_irq_line whose set() is spk_vm_irq_line(). A device cannot do
 * anything useful about a failed line change, so the failure is logged,
 * once per GSI (below 64; once for all the others), not returned.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sparkler/devices.h>
#include <sparkler/vm.h>

#include "core/internal.h"

static _Atomic uint64_t warned_gsis; /* bit n: GSI n has failed before */
static atomic_bool warned_high;      /* some GSI >= 64 has failed before */

static bool first_failure(uint32_t gsi)
{
	if (gsi < 64) {
		uint64_t bit = 1ull << gsi;

		return !(atomic_fetch_or(&warned_gsis, bit) & bit);
	}
	return !atomic_exchange(&warned_high, true);
}

static void vm_irq_set(void *ctx, uint32_t gsi, bool level)
{
	int rc = spk_vm_irq_line(ctx, gsi, level);

	if (rc < 0 && first_failure(gsi))
		spk_log(SPK_LOG_WARN, "irq: setting GSI %u to %d failed: %s", gsi, level,
		        spk_last_error());
}

struct spk_irq_line spk_vm_irq(struct spk_vm *vm, uint32_t gsi)
{
	/* Without a VM the line goes nowhere (spk_irq_set skips a NULL set). */
	if (!vm)
		spk_fail(EINVAL, "irq: GSI %u: no VM, the line goes nowhere", gsi);
	return (struct spk_irq_line){.set = vm ? vm_irq_set : NULL, .ctx = vm, .gsi = gsi};
}
