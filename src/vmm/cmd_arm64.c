/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sparkler program on arm64: what does not work there yet says so.
 * `run`, the Firecracker API (`--api-sock`, `--config-file`) and `--gdb`
 * are built on x86-64 parts (the PC machine with its port devices, ACPI
 * and CPUID in machine/, gdb's x86 register file in gdb/gdb_x86.c) that
 * have no arm64 counterpart in this build; each answers with one line and
 * the usage status instead. sandbox, call, kvm-info, snapshot-info,
 * version, the jail and seccomp are the same program as on x86-64.
 */
#include <stdio.h>

#include "vmm/gdb/gdb.h"
#include "vmm/vmm.h"

static int not_on_arm64(const char *what)
{
	fprintf(stderr,
	        "sparkler: %s: not on arm64 yet (this build has sandbox, call, kvm-info, "
	        "snapshot-info and version)\n",
	        what);
	return SPK_STATUS_USAGE;
}

int spk_cmd_run(int argc, char **argv)
{
	(void)argc, (void)argv;
	return not_on_arm64("run");
}

int spk_cmd_api(int argc, char **argv)
{
	(void)argc, (void)argv;
	return not_on_arm64("the Firecracker API (--api-sock, --config-file)");
}

/* ---- the gdb stub: --gdb is refused when the options are read ---------- */

int spk_gdb_check_listen(const char *spec, char *err, size_t errlen)
{
	(void)spec;
	snprintf(err, errlen, "--gdb: not on arm64 yet (the stub knows x86-64's registers only)");
	return -1;
}

int spk_gdb_start(const struct spk_gdb_config *cfg, struct spk_gdb **out, char *err, size_t errlen)
{
	(void)cfg;
	*out = NULL;
	return spk_gdb_check_listen(NULL, err, errlen);
}

/* Without a stub (g is always NULL here) these do what gdb.c's do for NULL. */
bool spk_gdb_vm_start(struct spk_gdb *g, struct spk_vm *vm)
{
	(void)g, (void)vm;
	return false;
}

enum spk_action spk_gdb_on_exit(struct spk_gdb *g, struct spk_vcpu *vcpu, struct spk_exit *e)
{
	(void)g, (void)vcpu, (void)e;
	return SPK_ACT_DEFAULT;
}

void spk_gdb_vm_end(struct spk_gdb *g, int status, bool final)
{
	(void)g, (void)status, (void) final;
}

void spk_gdb_free(struct spk_gdb *g)
{
	(void)g;
}
