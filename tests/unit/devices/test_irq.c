// SPDX-License-Identifier: Apache-2.0
/* spk_vm_irq: the line a device gets for a GSI of the VM's irqchip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sparkler/devices.h>

/* Without KVM there is no VM to set a line on: check the wiring only. */
static void test_line_fields(void **state)
{
	struct spk_vm *vm = (struct spk_vm *)&state; /* never dereferenced here */
	struct spk_irq_line l = spk_vm_irq(vm, 4);

	assert_non_null(l.set);
	assert_ptr_equal(l.ctx, vm);
	assert_int_equal(l.gsi, 4);
	l = spk_vm_irq(vm, 23);
	assert_int_equal(l.gsi, 23);
}

static void test_no_vm(void **state)
{
	struct spk_irq_line l = spk_vm_irq(NULL, 9);

	/* a line to nowhere: setting it is a no-op, not a crash */
	assert_null(l.set);
	assert_int_equal(l.gsi, 9);
	spk_irq_set(&l, true);
	spk_irq_set(&l, false);
	spk_irq_set(NULL, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_line_fields),
	    cmocka_unit_test(test_no_vm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
