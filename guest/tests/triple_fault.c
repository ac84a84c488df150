/* A fault with no IDT: a triple fault, which KVM reports as a shutdown. */
#include <guest.h>

int main(void)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} empty = {0, 0};

	__asm__ volatile("lidt %0\n\tud2" ::"m"(empty));
	return 1;
}
