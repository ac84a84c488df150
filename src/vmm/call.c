/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `sparkler call GUEST.elf FUNCTION ARG...`: try a function guest's
 * export from the shell (include/sparkler/fn.h). Each ARG is converted by
 * the function's signature ('i' an integer, 'd' a number, 's' and 'b' the
 * text itself); the result is printed on stdout (bytes as hex). Exit
 * status: 0 the call returned, 1 it failed (the message says why), 2 bad
 * command line, guest or arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/vmm.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sparkler call [options] GUEST.elf FUNCTION [ARG...]\n"
	           "  --mem SIZE       guest RAM (default 8M; 4M to 1G, 2M steps)\n"
	           "  --timeout SEC    the call's time budget (default 10)\n"
	           "  --exits N        the call's exit budget (default: none)\n"
	           "  --stats          print the call's exits and the sandbox's counters\n"
	           "  --list           list the guest's exports and their signatures\n"
	           "the guest's console output goes to stderr\n");
}

struct call_opts {
	uint64_t mem, timeout, exits;
	bool stats, list;
};

static int parse(int argc, char **argv, struct call_opts *o)
{
	static const struct option longs[] = {
	    {"mem", required_argument, NULL, 'm'},
	    {"timeout", required_argument, NULL, 't'},
	    {"exits", required_argument, NULL, 'e'},
	    {"stats", no_argument, NULL, 's'},
	    {"list", no_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *err;
	int c;

	*o = (struct call_opts){.mem = 8ull << 20, .timeout = 10};
	optind = 1;
	while ((c = getopt_long(argc, argv, "+", longs, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (spk_parse_size(optarg, &o->mem, &err) < 0) {
				fprintf(stderr, "sparkler: --mem %s: %s\n", optarg, err);
				return -1;
			}
			break;
		case 't':
			if (spk_parse_uint(optarg, 1, 86400, &o->timeout) < 0) {
				fprintf(stderr, "sparkler: --timeout %s: need 1 to 86400 s\n",
				        optarg);
				return -1;
			}
			break;
		case 'e':
			if (spk_parse_uint(optarg, 1, UINT32_MAX, &o->exits) < 0) {
				fprintf(stderr, "sparkler: --exits %s: need 1 to 4294967295\n",
				        optarg);
				return -1;
			}
			break;
		case 's':
			o->stats = true;
			break;
		case 'l':
			o->list = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (argc - optind < (o->list ? 1 : 2)) {
		usage(stderr);
		return -1;
	}
	return 0;
}

/* ARG as the signature's type t; -1 when it does not convert. */
static int convert(char t, const char *arg, struct spk_fn_value *v)
{
	char *end;

	errno = 0;
	*v = (struct spk_fn_value){.type = (enum spk_fn_type)t};
	switch (t) {
	case SPK_FN_I64:
		v->i64 = strtoll(arg, &end, 0);
		return (*arg && !*end && !errno) ? 0 : -1;
	case SPK_FN_F64:
		v->f64 = strtod(arg, &end);
		return (*arg && !*end && !errno) ? 0 : -1;
	default: /* bytes and strings: the text */
		v->ptr = arg;
		v->len = strlen(arg);
		return 0;
	}
}

static void print_result(const struct spk_fn_value *r)
{
	switch (r->type) {
	case SPK_FN_I64:
		printf("%lld\n", (long long)r->i64);
		break;
	case SPK_FN_F64:
		printf("%.17g\n", r->f64);
		break;
	case SPK_FN_STR:
		printf("%s\n", (const char *)r->ptr);
		break;
	case SPK_FN_BYTES:
		for (size_t i = 0; i < r->len; i++)
			printf("%02x", ((const uint8_t *)r->ptr)[i]);
		printf("\n");
		break;
	default:
		break;
	}
}

/* The signature of name, or NULL. */
static const char *signature(struct spk_fn *fn, const char *name)
{
	const char *sig;

	for (size_t i = 0; i < spk_fn_exports(fn); i++) {
		const char *n = spk_fn_export_name(fn, i, &sig);
		if (n && !strcmp(n, name))
			return sig;
	}
	return NULL;
}

static int do_call(struct spk_fn *fn, const char *name, int nargs, char **argv, bool stats)
{
	struct spk_fn_value args[SPK_FN_MAX_ARGS], r;
	struct spk_fn_stats st;
	const char *sig = signature(fn, name);

	if (!sig) {
		fprintf(stderr, "sparkler: the guest exports no function '%s' (--list)\n", name);
		return SPK_STATUS_USAGE;
	}
	size_t want = strcspn(sig, ":");
	if ((size_t)nargs != want) {
		fprintf(stderr, "sparkler: %s takes %zu arguments (%s), not %d\n", name, want, sig,
		        nargs);
		return SPK_STATUS_USAGE;
	}
	for (int i = 0; i < nargs; i++)
		if (convert(sig[i], argv[i], &args[i]) < 0) {
			fprintf(stderr, "sparkler: argument %d of %s ('%s') is not a%s\n", i + 1,
			        name, argv[i], sig[i] == 'i' ? "n integer" : " number");
			return SPK_STATUS_USAGE;
		}
	int rc = spk_fn_call(fn, name, args, (unsigned)nargs, &r);
	if (rc < 0)
		fprintf(stderr, "sparkler: %s\n", spk_last_error());
	else
		print_result(&r);
	if (stats && spk_fn_stats(fn, &st) == 0)
		fprintf(stderr, "exits %llu, calls %llu, failed %llu, guest RAM %llu bytes\n",
		        (unsigned long long)st.last_exits, (unsigned long long)st.calls,
		        (unsigned long long)st.failed, (unsigned long long)st.mem_size);
	return rc < 0 ? SPK_STATUS_GUEST : SPK_STATUS_OK;
}

int spk_cmd_call(int argc, char **argv)
{
	struct call_opts o;
	struct spk_fn *fn;
	int status;

	if (parse(argc, argv, &o) < 0)
		return SPK_STATUS_USAGE;
	const struct spk_fn_config cfg = {.mem_size = o.mem,
	                                  .time_budget_ns = o.timeout * 1000000000ull,
	                                  .exit_budget = o.exits,
	                                  .console_fd = STDERR_FILENO};
	if (spk_fn_open(argv[optind], &cfg, &fn) < 0) {
		fprintf(stderr, "sparkler: %s\n", spk_last_error());
		return SPK_STATUS_USAGE;
	}
	if (o.list) {
		const char *sig;
		for (size_t i = 0; i < spk_fn_exports(fn); i++) {
			const char *n = spk_fn_export_name(fn, i, &sig);
			if (n)
				printf("%s %s\n", n, sig);
		}
		status = SPK_STATUS_OK;
	} else {
		status =
		    do_call(fn, argv[optind + 1], argc - optind - 2, argv + optind + 2, o.stats);
	}
	spk_fn_close(fn);
	return status;
}
