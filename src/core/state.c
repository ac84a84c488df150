// SPDX-License-Identifier: Apache-2.0
/*
 * The vCPU state machine (after axvcpu). The table below is the whole
 * rule: backends never assign a state directly, they ask for a
 * transition, so an illegal call fails with a message naming both states.
 * The caller serialises transitions of one vCPU (the vCPU's own lock).
 */
#include <stdio.h>
#include <string.h>

#include <sparkler/vcpu.h>

#include "core/internal.h"

#define STATE_COUNT (SPK_VCPU_STOPPED + 1)
#define BIT(s)      (1u << (s))

/* allowed[from]: the set of states `from` may move to. */
static const unsigned allowed[STATE_COUNT] = {
    [SPK_VCPU_CREATED] = BIT(SPK_VCPU_READY) | BIT(SPK_VCPU_STOPPED) | BIT(SPK_VCPU_INVALID),
    [SPK_VCPU_READY] =
        BIT(SPK_VCPU_READY) | BIT(SPK_VCPU_RUNNING) | BIT(SPK_VCPU_STOPPED) | BIT(SPK_VCPU_INVALID),
    [SPK_VCPU_RUNNING] = BIT(SPK_VCPU_READY) | BIT(SPK_VCPU_INVALID),
    [SPK_VCPU_STOPPED] = BIT(SPK_VCPU_READY) | BIT(SPK_VCPU_STOPPED) | BIT(SPK_VCPU_INVALID),
    /* INVALID is final: only spk_vm_destroy() remains. */
    [SPK_VCPU_INVALID] = 0,
};

static const char *const state_names[STATE_COUNT] = {
    [SPK_VCPU_INVALID] = "INVALID", [SPK_VCPU_CREATED] = "CREATED", [SPK_VCPU_READY] = "READY",
    [SPK_VCPU_RUNNING] = "RUNNING", [SPK_VCPU_STOPPED] = "STOPPED",
};

static bool state_valid(enum spk_vcpu_state s)
{
	return (unsigned)s < STATE_COUNT;
}

const char *spk_vcpu_state_name(enum spk_vcpu_state state)
{
	return state_valid(state) ? state_names[state] : "UNKNOWN";
}

/*
 * The tail of a refusal: where `from` can go instead, so that the message
 * tells the caller what would have worked.
 */
static void format_ways(enum spk_vcpu_state from, char *buf, size_t size)
{
	size_t len;

	if (!allowed[from]) {
		snprintf(buf, size, "%s is final: only destroying the VM remains",
		         state_names[from]);
		return;
	}
	len = (size_t)snprintf(buf, size, "from %s the vCPU can only go to", state_names[from]);
	/* In lifecycle order, INVALID (0) last. */
	for (unsigned i = 1, n = 0; i <= STATE_COUNT && len < size; i++) {
		unsigned s = i % STATE_COUNT;

		if (allowed[from] & BIT(s))
			len += (size_t)snprintf(buf + len, size - len, "%s %s", n++ ? "," : ":",
			                        state_names[s]);
	}
}

int spk_vcpu_transition(enum spk_vcpu_state *state, enum spk_vcpu_state to, const char *what)
{
	enum spk_vcpu_state from;
	char ways[96];

	if (!what)
		what = "change state";
	if (!state)
		return spk_fail(EINVAL, "vcpu: cannot %s: no state", what);
	from = *state;
	if (!state_valid(from) || !state_valid(to))
		return spk_fail(EINVAL, "vcpu: cannot %s: bad state value (from %d to %d)", what,
		                (int)from, (int)to);
	if (allowed[from] & BIT(to)) {
		*state = to;
		return 0;
	}
	format_ways(from, ways, sizeof(ways));
	return spk_fail(from == SPK_VCPU_RUNNING ? EBUSY : EINVAL,
	                "vcpu: cannot %s: state is %s, which cannot move to %s (%s)", what,
	                state_names[from], state_names[to], ways);
}
