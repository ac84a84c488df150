/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest SDK's architecture-neutral part (guest_api.h): console,
 * printf, ucall, asserts, a small libc. Built for x86-64 and for arm64;
 * the hypercalls underneath are each guest.h's guest_hypercall().
 */
#include <guest.h>

/* ---- console ---- */

void guest_write(const char *s, size_t len)
{
	guest_hypercall(SPK_HC_CONSOLE_WRITE, (uint64_t)s, len, 0, 0, 0, 0);
}

void guest_puts(const char *s)
{
	guest_write(s, strlen(s));
}

struct out {
	char *buf;
	size_t size, len;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_num(struct out *o, uint64_t v, unsigned base, bool upper, bool neg, int width,
		    char pad)
{
	char tmp[24];
	int n = 0;
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	for (int i = n; i < width; i++)
		put(o, pad);
	while (n)
		put(o, tmp[--n]);
}

static uint64_t arg_u(va_list *ap, int lng)
{
	return lng ? va_arg(*ap, uint64_t) : va_arg(*ap, unsigned int);
}

static int64_t arg_i(va_list *ap, int lng)
{
	return lng ? va_arg(*ap, int64_t) : va_arg(*ap, int);
}

int guest_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = {buf, size, 0};
	va_list aq;

	va_copy(aq, ap);
	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			put(&o, *p);
			continue;
		}
		char pad = ' ';
		int width = 0, lng = 0;
		p++;
		if (*p == '0') {
			pad = '0';
			p++;
		}
		while (*p >= '0' && *p <= '9')
			width = width * 10 + (*p++ - '0');
		while (*p == 'l' || *p == 'z') {
			lng = 1;
			p++;
		}
		switch (*p) {
		case 'd':
		case 'i': {
			int64_t v = arg_i(&aq, lng);
			put_num(&o, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, false, v < 0, width, pad);
			break;
		}
		case 'u':
			put_num(&o, arg_u(&aq, lng), 10, false, false, width, pad);
			break;
		case 'x':
		case 'X':
			put_num(&o, arg_u(&aq, lng), 16, *p == 'X', false, width, pad);
			break;
		case 'p':
			put(&o, '0');
			put(&o, 'x');
			put_num(&o, (uint64_t)va_arg(aq, void *), 16, false, false, width, pad);
			break;
		case 's': {
			const char *s = va_arg(aq, const char *);
			for (s = s ? s : "(null)"; *s; s++)
				put(&o, *s);
			break;
		}
		case 'c':
			put(&o, (char)va_arg(aq, int));
			break;
		case '%':
			put(&o, '%');
			break;
		case '\0':
			p--;
			break;
		default:
			put(&o, '%');
			put(&o, *p);
			break;
		}
	}
	va_end(aq);
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int guest_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = guest_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

void guest_printf(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	int n = guest_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	guest_write(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* ---- ucall ---- */

void guest_ucall(uint64_t type, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4)
{
	guest_hypercall(SPK_HC_UCALL, type, a0, a1, a2, a3, a4);
}

void guest_done(uint64_t value)
{
	guest_ucall(SPK_UCALL_DONE, value, 0, 0, 0, 0);
}

void guest_sync(uint64_t stage, uint64_t value)
{
	guest_ucall(SPK_UCALL_SYNC, stage, value, 0, 0, 0);
}

void guest_assert_fail(const char *expr, const char *file, int line, uint64_t a, uint64_t b)
{
	guest_ucall(SPK_UCALL_ASSERT, (uint64_t)expr, (uint64_t)file, (uint64_t)line, a, b);
	guest_system_off();
}

/* ---- small libc (the compiler may call these) ---- */

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;

	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *a = d;
	const uint8_t *b = s;

	while (n--)
		*a++ = *b++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}
