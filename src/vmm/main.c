/* SPDX-License-Identifier: Apache-2.0 */
/* sparkler: the monitor program. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sparkler/log.h>
#include <sparkler/snapshot.h>

#include "vmm/confine/jail.h"
#ifdef __aarch64__
/* no API on arm64 yet (cmd_arm64.c): nothing to load before a jail */
#define api_preload() ((void)0)
#else
#include "vmm/api/mhd.h"
#define api_preload() ((void)spk_mhd_load(NULL, 0))
#endif
#include "vmm/confine/seccomp_policy.h"
#include "vmm/vmm.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sparkler COMMAND [options]\n"
		   "commands:\n"
		   "  run --kernel PATH   boot a Linux microVM (see sparkler run --help)\n"
		   "  --api-sock PATH     serve Firecracker's API (see sparkler api --help)\n"
		   "  --config-file FILE --no-api  boot from a Firecracker config file\n"
		   "  sandbox GUEST.elf   run a guest-SDK program (see sparkler sandbox --help)\n"
		   "  call GUEST.elf FUNCTION ARG...  call a function guest's export (--help)\n"
		   "  kvm-info            say which KVM this host has\n"
		   "  snapshot-info FILE [--fields]  print a snapshot's header and sections\n"
		   "  version             print the version\n"
		   "before the command, to confine the monitor (as root):\n"
		   "  --jail DIR --uid U --gid G [--new-netns]\n"
		   "      new mount, PID, IPC and UTS namespaces (and network with --new-netns),\n"
		   "      pivot_root into DIR (with /dev/kvm, /dev/net/tun, /dev/null made there),\n"
		   "      limits, no other fds, no environment, no capabilities, then U:G;\n"
		   "      the command's paths are then paths inside DIR\n");
}

/* Parse the jail options in front of the command; how many were used. */
static int parse_jail(int argc, char **argv, struct spk_jail *j, bool *want)
{
	int i = 1;
	uint64_t v;

	while (i < argc) {
		const char *a = argv[i];

		if (strcmp(a, "--new-netns") == 0) {
			j->new_netns = true;
			i++;
			continue;
		}
		if (strcmp(a, "--jail") != 0 && strcmp(a, "--uid") != 0 && strcmp(a, "--gid") != 0)
			break;
		if (i + 1 >= argc) {
			fprintf(stderr, "sparkler: %s needs a value\n", a);
			return -1;
		}
		*want = true;
		if (strcmp(a, "--jail") == 0) {
			j->dir = argv[i + 1];
		} else if (spk_parse_uint(argv[i + 1], 1, 0xfffffffe, &v) < 0) {
			fprintf(stderr, "sparkler: %s %s: need a number above 0\n", a, argv[i + 1]);
			return -1;
		} else if (a[2] == 'u') {
			j->uid = (uid_t)v;
		} else {
			j->gid = (gid_t)v;
		}
		i += 2;
	}
	if (*want && (!j->dir || !j->uid || !j->gid)) {
		fprintf(stderr, "sparkler: the jail needs --jail DIR, --uid U and --gid G\n");
		return -1;
	}
	return i - 1;
}

struct timespec spk_process_start;

/* sparkler snapshot-info FILE [--fields]: the file is checked whole first */
static int snapshot_info(int argc, char **argv)
{
	struct spk_snap_file *f;
	bool fields = argc == 3 && strcmp(argv[2], "--fields") == 0;

	if (argc < 2 || argc > 3 || (argc == 3 && !fields) || strcmp(argv[1], "--help") == 0) {
		fprintf(argc == 2 ? stdout : stderr,
			"usage: sparkler snapshot-info FILE [--fields]\n"
			"  check a snapshot state file and print its header and sections\n"
			"  (--fields: every field of every section too)\n");
		return argc == 2 ? 0 : SPK_STATUS_USAGE;
	}
	if (spk_snap_open(argv[1], &f) < 0) {
		fprintf(stderr, "sparkler: snapshot-info %s: %s\n", argv[1], spk_last_error());
		return 1;
	}
	spk_snap_file_dump(f, stdout, fields);
	spk_snap_close(f);
	return 0;
}

int main(int argc, char **argv)
{
	clock_gettime(CLOCK_MONOTONIC, &spk_process_start);
	struct spk_jail jail = {0};
	bool jailed = false;
	int used = parse_jail(argc, argv, &jail, &jailed);
	if (used < 0)
		return SPK_STATUS_USAGE;
	if (jailed) {
		char err[512];

		/* libmicrohttpd is loaded on demand; inside the jail its file is
		 * gone, so load it now (a failure is reported by the API command) */
		for (int i = used + 1; i < argc; i++) {
			if (strcmp(argv[i], "--api-sock") == 0)
				api_preload();
			/* the jail's outer parent filters itself too, unless told */
			if (strcmp(argv[i], "--no-seccomp") == 0)
				spk_seccomp_enabled = false;
		}

		if (spk_jail_enter(&jail, err, sizeof(err)) < 0) {
			fprintf(stderr, "sparkler: %s\n", err);
			return SPK_STATUS_USAGE;
		}
	}
	argc -= used;
	argv += used; /* argv[0] is now the last jail option: only argv[1..] counts */
	if (argc < 2) {
		usage(stderr);
		return SPK_STATUS_USAGE;
	}
	const char *cmd = argv[1];

	if (strcmp(cmd, "run") == 0)
		return spk_cmd_run(argc - 1, argv + 1);
	/* Firecracker's command line: `sparkler --api-sock PATH ...` */
	if (strcmp(cmd, "api") == 0)
		return spk_cmd_api(argc - 1, argv + 1);
	if (strncmp(cmd, "--", 2) == 0 && strcmp(cmd, "--help") != 0 &&
	    strcmp(cmd, "--version") != 0)
		return spk_cmd_api(argc, argv);

	if (strcmp(cmd, "sandbox") == 0)
		return spk_cmd_sandbox(argc - 1, argv + 1);
	if (strcmp(cmd, "call") == 0)
		return spk_cmd_call(argc - 1, argv + 1);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("sparkler %s\n", SPARKLER_VERSION);
		return 0;
	}
	if (strcmp(cmd, "snapshot-info") == 0)
		return snapshot_info(argc - 1, argv + 1);
	if (strcmp(cmd, "kvm-info") == 0) {
		char why[256];
		bool ok = spk_kvm_usable(why, sizeof(why));
		printf("kvm: %s (%s)\n", spk_host_kvm_kind(), ok ? "usable" : why);
		return ok ? 0 : 1;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "sparkler: unknown command '%s'\n", cmd);
	usage(stderr);
	return SPK_STATUS_USAGE;
}
