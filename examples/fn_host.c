/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Function sandboxes from C: summarise untrusted JSON with a parser that
 * runs inside a microVM (examples/fn_guest.c, built with musl), as if it
 * were a library call. Each call starts from the guest's freshly
 * initialised state; a call that crashes or loops ends with an error and
 * the next one works. usage: fn_host GUEST.elf
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sparkler/sparkler.h>

static int summarize(struct spk_fn *fn, const char *json)
{
	const struct spk_fn_value arg = {.type = SPK_FN_BYTES, .ptr = json, .len = strlen(json)};
	struct spk_fn_value r;
	int rc = spk_fn_call(fn, "summarize", &arg, 1, &r);

	if (rc == 0)
		printf("%-32.32s -> %s\n", json, (const char *)r.ptr);
	else
		printf("%-32.32s -> error: %s\n", json, spk_last_error());
	return rc;
}

int main(int argc, char **argv)
{
	const struct spk_fn_config cfg = {.mem_size = 8 << 20, .time_budget_ns = 2000000000};
	struct spk_fn *fn;
	char deep[200];
	int bad = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s GUEST.elf\n", argv[0]);
		return 2;
	}
	if (spk_fn_open(argv[1], &cfg, &fn) < 0) {
		fprintf(stderr, "fn_host: %s\n", spk_last_error());
		return spk_kvm_usable(NULL, 0) ? 1 : 77;
	}
	bad |= summarize(fn, "{\"a\": [1, 2.5, {\"b\": \"x\"}], \"c\": null}") != 0;
	bad |= summarize(fn, "[1, 2") != -EREMOTEIO; /* truncated: the parser says no */
	memset(deep, '[', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = 0;
	bad |= summarize(fn, deep) != -EREMOTEIO; /* too deep */
	bad |= summarize(fn, "[\"still works\", 40, 2]") != 0;
	spk_fn_close(fn);
	return bad;
}
