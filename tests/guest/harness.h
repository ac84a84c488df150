/* SPDX-License-Identifier: Apache-2.0 */
/* The host side of guest tests: a VM with a guest-SDK program loaded. */
#ifndef SPK_TEST_HARNESS_H
#define SPK_TEST_HARNESS_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/sparkler.h>

#define SPK_ARRAY_SIZE_T(a) (sizeof(a) / sizeof((a)[0]))

#define TH_RAM (16ull << 20)
#define TH_TABLES 0x10000ull
#define TH_MAP (4ull << 30)

/* Fail the test: file, line and the message, then exit 1. */
#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);   \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, "\n");                                                     \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);     \
		CHECK(a_ == b_, "%s = 0x%llx, %s = 0x%llx", #a, a_, #b, b_);                       \
	} while (0)

#define CHECK_OK(expr)                                                                             \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		CHECK(rc_ == 0, "returned %d: %s", rc_, spk_last_error());                         \
	} while (0)

/* The library's log lines, captured for a test (each is also printed). */
#define TH_LOG_LINES 64
struct th_log {
	pthread_mutex_t lock;
	enum spk_log_level keep; /* lines at this level or more severe are kept */
	char line[TH_LOG_LINES][256];
	unsigned n;
};

/* Zero l and send the library's log to it, keeping lines up to keep. */
void th_log_capture(struct th_log *l, enum spk_log_level keep);

/* The library logs to stderr again; l's lines stay readable. */
void th_log_stop(struct th_log *l);

/* How many kept lines contain every string of want (NULL-terminated). */
unsigned th_log_count(struct th_log *l, const char *const *want);

struct th_opts {
	uint32_t max_vcpus;
	enum spk_irqchip irqchip;
	const uint32_t *msr_exits;
	uint32_t n_msr_exits;
	int console_fd;
	spk_cpuid_policy_fn cpuid_policy;
	void *cpuid_opaque;
	bool no_assists;
};

struct th {
	struct spk_vm *vm;
	struct spk_vcpu *vcpu;
	struct spk_x86_long_mode lm;
	struct spk_elf_info elf;
};

/* Create the VM with TH_RAM of RAM at 0, load guest NAME (GUEST_DIR/NAME.elf)
 * and make vCPU 0 READY at its entry, CPL0. */
void th_setup(struct th *t, const char *name, const struct th_opts *o);
void th_teardown(struct th *t);

/* Run vCPU 0 until an exit that is not NONE; fail on a run error. */
void th_run(struct th *t, struct spk_exit *e);

/* Fail unless the exit is a ucall of this type; return it decoded. */
struct spk_ucall th_expect_ucall(struct th *t, struct spk_exit *e, uint64_t type);

/* Fail with the guest's message if the exit is an ASSERT ucall. */
void th_fail_on_assert(struct th *t, const struct spk_exit *e);

/* Run until the guest's DONE ucall (any other exit fails the test). */
void th_run_to_done(struct th *t);

/* A test program's cases: `prog CASE` runs one, `prog --list` lists them. */
struct th_case {
	const char *name;
	void (*fn)(void);
};

/*
 * The main() of a test program: run the named case, exit 77 (skip) with a
 * message where KVM is not usable, print which KVM kind ran it.
 */
int th_main(int argc, char **argv, const struct th_case *cases, size_t n);

#endif
