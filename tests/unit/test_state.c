// SPDX-License-Identifier: Apache-2.0
/* The vCPU state machine: every (from, to) pair of the table. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <sparkler/log.h>
#include <sparkler/vcpu.h>

#define NSTATES 5

static const enum spk_vcpu_state all_states[NSTATES] = {
    SPK_VCPU_INVALID, SPK_VCPU_CREATED, SPK_VCPU_READY, SPK_VCPU_RUNNING, SPK_VCPU_STOPPED,
};

/* The table of the brief, written out independently of the library. */
static bool legal(enum spk_vcpu_state from, enum spk_vcpu_state to)
{
	switch (from) {
	case SPK_VCPU_CREATED:
		return to == SPK_VCPU_READY || to == SPK_VCPU_STOPPED || to == SPK_VCPU_INVALID;
	case SPK_VCPU_READY:
		return to == SPK_VCPU_READY || to == SPK_VCPU_RUNNING || to == SPK_VCPU_STOPPED ||
		       to == SPK_VCPU_INVALID;
	case SPK_VCPU_RUNNING:
		return to == SPK_VCPU_READY || to == SPK_VCPU_INVALID;
	case SPK_VCPU_STOPPED:
		return to == SPK_VCPU_READY || to == SPK_VCPU_STOPPED || to == SPK_VCPU_INVALID;
	case SPK_VCPU_INVALID:
		return false;
	}
	return false;
}

static void test_names(void **unused)
{
	assert_string_equal(spk_vcpu_state_name(SPK_VCPU_INVALID), "INVALID");
	assert_string_equal(spk_vcpu_state_name(SPK_VCPU_CREATED), "CREATED");
	assert_string_equal(spk_vcpu_state_name(SPK_VCPU_READY), "READY");
	assert_string_equal(spk_vcpu_state_name(SPK_VCPU_RUNNING), "RUNNING");
	assert_string_equal(spk_vcpu_state_name(SPK_VCPU_STOPPED), "STOPPED");
	assert_string_equal(spk_vcpu_state_name((enum spk_vcpu_state)5), "UNKNOWN");
	assert_string_equal(spk_vcpu_state_name((enum spk_vcpu_state) - 1), "UNKNOWN");
}

static void check_pair(enum spk_vcpu_state from, enum spk_vcpu_state to)
{
	enum spk_vcpu_state s = from;
	const char *from_name = spk_vcpu_state_name(from);
	const char *to_name = spk_vcpu_state_name(to);
	int rc = spk_vcpu_transition(&s, to, "frobnicate");

	if (legal(from, to)) {
		if (rc != 0)
			fail_msg("%s -> %s refused: %s", from_name, to_name, spk_last_error());
		assert_int_equal(s, to);
		return;
	}
	if (rc != (from == SPK_VCPU_RUNNING ? -EBUSY : -EINVAL))
		fail_msg("%s -> %s: rc %d", from_name, to_name, rc);
	assert_int_equal(s, from);
	/* The message names the operation, the state, and the wanted one. */
	assert_non_null(strstr(spk_last_error(), "cannot frobnicate"));
	assert_non_null(strstr(spk_last_error(), from_name));
	assert_non_null(strstr(spk_last_error(), to_name));
}

static void test_every_pair(void **unused)
{
	int legal_count = 0;

	for (int i = 0; i < NSTATES; i++) {
		for (int j = 0; j < NSTATES; j++) {
			check_pair(all_states[i], all_states[j]);
			legal_count += legal(all_states[i], all_states[j]);
		}
	}
	/* 3 + 4 + 2 + 3 + 0 pairs are legal: guards the table above too. */
	assert_int_equal(legal_count, 12);
}

static void test_message_is_clear(void **unused)
{
	enum spk_vcpu_state s = SPK_VCPU_CREATED;

	assert_int_equal(spk_vcpu_transition(&s, SPK_VCPU_RUNNING, "run"), -EINVAL);
	assert_string_equal(spk_last_error(),
	                    "vcpu: cannot run: state is CREATED, which cannot move to RUNNING"
	                    " (from CREATED the vCPU can only go to: READY, STOPPED, INVALID)");
	s = SPK_VCPU_RUNNING;
	assert_int_equal(spk_vcpu_transition(&s, SPK_VCPU_STOPPED, "stop"), -EBUSY);
	assert_non_null(strstr(spk_last_error(), "cannot stop: state is RUNNING"));
	assert_non_null(strstr(spk_last_error(), "READY, INVALID"));
	s = SPK_VCPU_INVALID;
	assert_int_equal(spk_vcpu_transition(&s, SPK_VCPU_READY, "ready"), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "INVALID is final"));
}

static void test_full_lifecycle(void **unused)
{
	enum spk_vcpu_state s = SPK_VCPU_CREATED;

	assert_int_equal(spk_vcpu_transition(&s, SPK_VCPU_READY, "ready"), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(spk_vcpu_transition(&s, SPK_VCPU_RUNNING, "run"), 0);
		assert_int_equal(spk_vcpu_transition(&s, SPK_VCPU_RUNNING, "run"), -EBUSY);
		assert_int_equal(spk_vcpu_transition(&s, SPK_VCPU_READY, "return"), 0);
	}
	assert_int_equal(spk_vcpu_transition(&s, SPK_VCPU_STOPPED, "stop"), 0);
	assert_int_equal(spk_vcpu_transition(&s, SPK_VCPU_RUNNING, "run"), -EINVAL);
	assert_int_equal(spk_vcpu_transition(&s, SPK_VCPU_READY, "start"), 0);
	assert_int_equal(spk_vcpu_transition(&s, SPK_VCPU_INVALID, "fail"), 0);
	assert_int_equal(s, SPK_VCPU_INVALID);
}

static void test_bad_arguments(void **unused)
{
	enum spk_vcpu_state s = SPK_VCPU_READY;

	assert_int_equal(spk_vcpu_transition(NULL, SPK_VCPU_READY, "run"), -EINVAL);
	assert_int_equal(spk_vcpu_transition(&s, (enum spk_vcpu_state)9, "run"), -EINVAL);
	assert_int_equal(s, SPK_VCPU_READY);
	s = (enum spk_vcpu_state)42;
	assert_int_equal(spk_vcpu_transition(&s, SPK_VCPU_READY, "run"), -EINVAL);
	assert_int_equal(s, 42);
	/* A missing operation name still gives a message. */
	s = SPK_VCPU_CREATED;
	assert_int_equal(spk_vcpu_transition(&s, SPK_VCPU_RUNNING, NULL), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "CREATED"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_every_pair),
	    cmocka_unit_test(test_message_is_clear),
	    cmocka_unit_test(test_full_lifecycle),
	    cmocka_unit_test(test_bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
