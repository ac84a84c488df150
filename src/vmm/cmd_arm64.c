/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sparkler program on arm64: what does not work there yet says so.
 * The Firecracker API (`--api-sock`, `--config-file`) and `--gdb` are
 * built on x86-64 parts (the API's machine resources and the metadata
 * service with jansson, which the cross sysroot has not; gdb's x86
 * register file in gdb/gdb_x86.c) that have no arm64 counterpart in this
 * build; each answers with one line and the usage status instead. run
 * (machine.c on machine_arm64.c's platform), sandbox, call, kvm-info,
 * snapshot-info, version, the jail and seccomp are the same program as on
 * x86-64.
 */
#include <errno.h>
#include <stdio.h>

#include "mmds/stack.h"
#include "vmm/gdb/gdb.h"
#include "vmm/vmm.h"

static int not_on_arm64(const char *what)
{
	fprintf(stderr,
	        "sparkler: %s: not on arm64 yet (this build has run, sandbox, call, kvm-info, "
	        "snapshot-info and version)\n",
	        what);
	return SPK_STATUS_USAGE;
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

/* ---- the metadata service: only the API configures it, so machine.c's
 * MMDS hook is never reached here; every function it names ---------- */

int spk_mmds_stack_new(struct spk_mmds *m, struct spk_mmds_stack **out)
{
	(void)m;
	*out = NULL;
	return -ENOTSUP;
}

void spk_mmds_stack_free(struct spk_mmds_stack *s)
{
	(void)s;
}

bool spk_mmds_stack_match(void *s, const uint8_t *frame, size_t len)
{
	(void)s, (void)frame, (void)len;
	return false;
}

void spk_mmds_stack_tx(void *s, const uint8_t *frame, size_t len)
{
	(void)s, (void)frame, (void)len;
}

size_t spk_mmds_stack_rx(void *s, uint8_t *buf, size_t cap)
{
	(void)s, (void)buf, (void)cap;
	return 0;
}

uint64_t spk_mmds_stack_timer(void *s)
{
	(void)s;
	return 0;
}
