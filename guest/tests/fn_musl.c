/* SPDX-License-Identifier: Apache-2.0 */
/* A function guest in ordinary C on musl: printf, malloc, qsort, strings. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>

#include <guest_fn.h>

static char *greeting;

int guest_fn_init(void)
{
	greeting = strdup("hello from musl");
	return greeting ? 0 : 1;
}

SPK_EXPORT(hello, ":s")
{
	int n = printf("%s, %d%%\n", greeting, 100);

	fflush(stdout);
	return n == (int)strlen(greeting) + 7 ? guest_fn_ret_str(c, greeting) : 1;
}

static int cmp(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	return (x > y) - (x < y);
}

/* sort little-endian int32s */
SPK_EXPORT(sort, "b:b")
{
	size_t n;
	const void *p = guest_fn_bytes(c, 0, &n);
	int32_t *v = malloc(n ? n : 1);

	if (!v || n % 4)
		return 22;
	memcpy(v, p, n);
	qsort(v, n / 4, 4, cmp);
	int rc = guest_fn_ret_bytes(c, v, n);
	free(v);
	return rc;
}

SPK_EXPORT(format, "sd:s")
{
	char buf[128];

	snprintf(buf, sizeof(buf), "%s=%.3f (%e)", guest_fn_str(c, 0, NULL), guest_fn_f64(c, 1),
	         guest_fn_f64(c, 1));
	return guest_fn_ret_str(c, buf);
}

SPK_EXPORT(parse_double, "s:d")
{
	return guest_fn_ret_f64(c, strtod(guest_fn_str(c, 0, NULL), NULL));
}

/* malloc n bytes, touch them; -1 when malloc says no */
SPK_EXPORT(alloc, "i:i")
{
	size_t n = (size_t)guest_fn_i64(c, 0);
	unsigned char *p = malloc(n);
	int64_t sum = 0;

	if (!p)
		return guest_fn_ret_i64(c, -1);
	memset(p, 1, n);
	for (size_t i = 0; i < n; i += 4096)
		sum += p[i];
	free(p);
	return guest_fn_ret_i64(c, sum);
}

SPK_EXPORT(now, ":i")
{
	struct timespec t;

	if (clock_gettime(CLOCK_MONOTONIC, &t))
		return 5;
	return guest_fn_ret_i64(c, (int64_t)t.tv_sec * 1000000000 + t.tv_nsec);
}

/* an unsupported system call: ENOSYS in errno */
SPK_EXPORT(no_file, ":i")
{
	FILE *f = fopen("/etc/passwd", "r");

	return guest_fn_ret_i64(c, f ? 0 : errno);
}

SPK_EXPORT(quit, "i:v")
{
	exit((int)guest_fn_i64(c, 0));
}
