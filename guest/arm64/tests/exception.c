/* SPDX-License-Identifier: Apache-2.0 */
/* The SDK's vectors: an undefined instruction and a brk reach the
 * guest's own handler, which steps over them. */
#include <guest.h>

static volatile uint64_t ecs[2];
static volatile unsigned n;

static void handler(uint64_t kind, struct guest_frame *f)
{
	GUEST_ASSERT_EQ(kind, 4); /* synchronous, current EL with SP_ELx */
	if (n < 2)
		ecs[n] = GUEST_ESR_EC(f->esr);
	n++;
	f->elr += 4;
}

int main(void)
{
	guest_exception_set(handler);
	__asm__ volatile("udf #0" ::: "memory");
	__asm__ volatile("brk #7" ::: "memory");
	guest_exception_set(0);
	GUEST_ASSERT_EQ(n, 2);
	GUEST_ASSERT_EQ(ecs[0], 0x00); /* unknown reason */
	GUEST_ASSERT_EQ(ecs[1], 0x3c); /* brk */
	return 0;
}
