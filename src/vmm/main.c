/* SPDX-License-Identifier: Apache-2.0 */
/* sparkler: the monitor program. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vmm/vmm.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sparkler COMMAND [options]\n"
		   "commands:\n"
		   "  run --kernel PATH   boot a Linux microVM (see sparkler run --help)\n"
		   "  --api-sock PATH     serve Firecracker's API (see sparkler api --help)\n"
		   "  --config-file FILE --no-api  boot from a Firecracker config file\n"
		   "  sandbox GUEST.elf   run a guest-SDK program (see sparkler sandbox --help)\n"
		   "  kvm-info            say which KVM this host has\n"
		   "  version             print the version\n");
}

struct timespec spk_process_start;

int main(int argc, char **argv)
{
	clock_gettime(CLOCK_MONOTONIC, &spk_process_start);
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
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("sparkler %s\n", SPARKLER_VERSION);
		return 0;
	}
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
