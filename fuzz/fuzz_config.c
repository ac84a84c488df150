/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for Firecracker config files (`sparkler --config-file
 * FILE --no-api`): arbitrary bytes are the file's text, parsed by
 * spk_res_load_buffer (what spk_res_load_file calls after reading the
 * file) into fresh resources. Besides what the sanitizers catch (leaks
 * included), it checks what a user must always get:
 *
 *   - a refusal is one line: "vm.json: " then the JSON path ("$...") or
 *     the place of a syntax error ("line L column C: ..."), and no
 *     control characters (a name or value quoted from the file cannot
 *     break the line or write escape sequences to the terminal);
 *   - an accepted file has a kernel, and what GET /vm/config reports for
 *     it is itself a config file that loads to the same configuration.
 *
 * Files the seed corpus names (fuzz/gen_config_corpus.py) are made in
 * FILES_DIR at start, so kernels, initrds and drives can be accepted.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/log.h>

#include "fuzz_files.h"

#include "vmm/api/resources.h"

#define FILES_DIR "/tmp/sparkler-fuzz-config"
#define NAME      "vm.json"
#define ERR_LEN   512 /* as api.c's */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* machine.c's boot timer counts from here (main.c defines it in sparkler) */
struct timespec spk_process_start;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const names[] = {"vmlinux", "initrd", "disk.img", "ro.img"};
	static const size_t sizes[] = {4096, 4096, 65536, 65536};

	fuzz_files_init(FILES_DIR, names, sizes, sizeof(names) / sizeof(names[0]));
	return 0;
}

/* One line, no control characters, the name, then a path or a place. */
static void check_refusal(const char *err)
{
	const char *msg = err + strlen(NAME ": ");

	if (strncmp(err, NAME ": ", strlen(NAME ": ")) != 0)
		__builtin_trap();
	for (const char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			__builtin_trap();
	if (msg[0] != '$' && strncmp(msg, "line ", 5) != 0)
		__builtin_trap();
}

/* GET /vm/config of an accepted file loads again, to the same thing. */
static void check_round_trip(const struct spk_vm_resources *r)
{
	json_t *full = spk_res_full_json(r), *again_full;
	char *text = json_dumps(full, JSON_COMPACT), err[ERR_LEN] = "";
	struct spk_vm_resources again;

	if (!text)
		__builtin_trap(); /* not encodable: the API would answer "internal error" */
	spk_res_init(&again);
	if (spk_res_load_buffer(&again, NAME, text, strlen(text), err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n%s\n", text, err);
		__builtin_trap();
	}
	again_full = spk_res_full_json(&again);
	if (!json_equal(full, again_full)) {
		fprintf(stderr, "%s\n", text);
		__builtin_trap();
	}
	json_decref(again_full);
	spk_res_free(&again);
	free(text);
	json_decref(full);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spk_vm_resources r;
	char err[ERR_LEN] = "";
	int rc;

	spk_res_init(&r);
	rc = spk_res_load_buffer(&r, NAME, (const char *)data, size, err, sizeof(err));
	if (rc == 0) {
		if (!r.m.kernel || err[0])
			__builtin_trap();
		check_round_trip(&r);
	} else {
		check_refusal(err);
	}
	spk_res_free(&r);
	return 0;
}
