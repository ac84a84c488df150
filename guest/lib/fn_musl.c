/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Function guests linked with musl (guest_fn.h): start musl's C library
 * the way its own _start would, with a stack of argc, argv, envp and an
 * auxiliary vector that the SDK makes up, so that its thread pointer
 * (arch_prctl), stdio and malloc are set up before the program's
 * guest_fn_init() and the call loop run. No AT_PHDR: musl then sees no
 * TLS segment, so a program must not use _Thread_local variables (errno
 * is fine: it lives in musl's thread structure). AT_RANDOM is fixed, so
 * the stack-protector canary is the same in every guest.
 */
#include <stdint.h>

int __libc_start_main(int (*main)(int, char **, char **), int argc, char **argv, void (*init)(void),
                      void (*fini)(void), void (*ldso)(void));

static const uint8_t random16[16] = {0x53, 0x70, 0x61, 0x72, 0x6b, 0x6c, 0x65, 0x72,
                                     0x2d, 0x66, 0x6e, 0x2d, 0x72, 0x6e, 0x64, 0x21};
static char prog[] = "fn";

enum {
	AT_NULL = 0,
	AT_PAGESZ = 6,
	AT_UID = 11,
	AT_EUID = 12,
	AT_GID = 13,
	AT_EGID = 14,
	AT_SECURE = 23,
	AT_RANDOM = 25
};

/* argv[0], NULL, envp: NULL, then the auxiliary vector */
static uintptr_t start_block[] = {
    0, 0,       0, AT_PAGESZ, 4096, AT_UID,    0, AT_EUID, 0, AT_GID,
    0, AT_EGID, 0, AT_SECURE, 0,    AT_RANDOM, 0, AT_NULL, 0,
};

static int musl_start(int (*main)(int, char **, char **))
{
	start_block[0] = (uintptr_t)prog;
	start_block[16] = (uintptr_t)random16;
	return __libc_start_main(main, 1, (char **)start_block, 0, 0, 0);
}

int (*guest_fn_libc_start)(int (*main)(int, char **, char **)) = musl_start;
