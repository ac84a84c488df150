/* SPDX-License-Identifier: Apache-2.0 */
/* main() returns: the SDK sends ucall DONE with its value, then powers off
 * (tests/guest/demo_test.py runs it under `sparkler sandbox`). */
#include <guest.h>

int main(void)
{
	guest_printf("main returns %d\n", 0);
	return 0;
}
