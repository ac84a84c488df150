/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest SDK's architecture-neutral API (console, ucall, asserts,
 * vCPUs, power, MMIO, a small libc), the same on x86-64 and arm64; each
 * architecture's guest.h includes it after its own hypercall inline
 * (guest_hypercall, guest_hc0). A program defines `int main(void)`; its
 * return value goes to the host as a ucall DONE, then the guest powers
 * off.
 */
#ifndef GUEST_API_H
#define GUEST_API_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MAX_CPUS   8
#define GUEST_STACK_SIZE 16384

int main(void);

uint32_t guest_vcpu_id(void);
void guest_system_off(void) __attribute__((noreturn));
void guest_system_reset(void) __attribute__((noreturn));
void guest_cpu_off(void) __attribute__((noreturn));
/* Start vCPU cpu running fn(arg) on its own stack; 0 or a negative errno
 * (arm64: a PSCI code, 0, -2 invalid parameters or -4 already on). */
int64_t guest_cpu_on(uint32_t cpu, void (*fn)(uint64_t), uint64_t arg);

/* ---- console ---- */
void guest_write(const char *s, size_t len);
void guest_puts(const char *s);
int guest_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int guest_snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* %d %i %u %x %X %p %s %c %% with l/ll/z and a width / 0 flag */
void guest_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- ucall: talking to a host test loop ---- */
void guest_ucall(uint64_t type, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4);
void guest_done(uint64_t value);
void guest_sync(uint64_t stage, uint64_t value);
void guest_assert_fail(const char *expr, const char *file, int line, uint64_t a, uint64_t b)
    __attribute__((noreturn));

#define GUEST_ASSERT(e)                                                                            \
	do {                                                                                       \
		if (!(e))                                                                          \
			guest_assert_fail(#e, __FILE__, __LINE__, 0, 0);                           \
	} while (0)

#define GUEST_ASSERT_EQ(a, b)                                                                      \
	do {                                                                                       \
		uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                   \
		if (a_ != b_)                                                                      \
			guest_assert_fail(#a " == " #b, __FILE__, __LINE__, a_, b_);               \
	} while (0)

/* ---- MMIO ---- */
static inline void mmio_write8(uint64_t a, uint8_t v)
{
	*(volatile uint8_t *)a = v;
}
static inline void mmio_write16(uint64_t a, uint16_t v)
{
	*(volatile uint16_t *)a = v;
}
static inline void mmio_write32(uint64_t a, uint32_t v)
{
	*(volatile uint32_t *)a = v;
}
static inline void mmio_write64(uint64_t a, uint64_t v)
{
	*(volatile uint64_t *)a = v;
}
static inline uint8_t mmio_read8(uint64_t a)
{
	return *(volatile uint8_t *)a;
}
static inline uint16_t mmio_read16(uint64_t a)
{
	return *(volatile uint16_t *)a;
}
static inline uint32_t mmio_read32(uint64_t a)
{
	return *(volatile uint32_t *)a;
}
static inline uint64_t mmio_read64(uint64_t a)
{
	return *(volatile uint64_t *)a;
}

/* ---- small libc ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
