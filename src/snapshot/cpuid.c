// SPDX-License-Identifier: Apache-2.0
/*
 * Will a snapshot's guest run here? Its CPUID (what the guest saw and may
 * have relied on: instructions it uses, state it saves) against what this
 * host's KVM supports. Refused before anything starts, with the leaf,
 * register and bit, so "restoring on another machine fails" has a reason.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sparkler/snapshot.h>

#include "core/internal.h"

/* The feature leaves, and the bits in them that are not features. */
static const struct {
	uint32_t function, index;
	unsigned reg; /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	uint32_t ignore;
} features[] = {
    {0x1, 0, 2, (1u << 27) | (1u << 31)}, /* OSXSAVE follows CR4; the hypervisor bit */
    {0x1, 0, 3, 0},
    {0x7, 0, 1, 0},
    {0x7, 0, 2, 1u << 4}, /* OSPKE follows CR4 */
    {0x7, 0, 3, 0},
    {0x7, 1, 0, 0},
    {0xd, 1, 0, 0},
    {0x80000001, 0, 2, 0},
    {0x80000001, 0, 3, 0},
    {0x80000008, 0, 1, 0},
};

static const char *const reg_names[] = {"EAX", "EBX", "ECX", "EDX"};

static const struct spk_snap_cpuid *find(const struct spk_snap_cpuid *c, size_t n, uint32_t fn,
                                         uint32_t index)
{
	for (size_t i = 0; i < n; i++)
		if (c[i].function == fn && c[i].index == index)
			return &c[i];
	return NULL;
}

static uint32_t reg(const struct spk_snap_cpuid *c, unsigned r)
{
	const uint32_t v[4] = {c->eax, c->ebx, c->ecx, c->edx};

	return v[r];
}

int spk_snap_check_cpuid(const struct spk_snap_header *h, const struct spk_snap_cpuid *host,
                         size_t n)
{
	const struct spk_snap_cpuid *hv;
	char vendor[13] = {0};

	if (!h || (!host && n))
		return spk_fail(EINVAL,
		                "snapshot: check_cpuid needs a header and the host's CPUID");
	hv = find(host, n, 0, 0);
	if (hv) {
		memcpy(vendor, &hv->ebx, 4);
		memcpy(vendor + 4, &hv->edx, 4);
		memcpy(vendor + 8, &hv->ecx, 4);
		if (strcmp(vendor, h->cpu_vendor) != 0)
			return spk_fail(
			    EINVAL,
			    "snapshot: field 'cpu_vendor': the snapshot was taken on %s, "
			    "this host is %s",
			    h->cpu_vendor, vendor);
	}
	for (size_t i = 0; i < SPK_ARRAY_SIZE(features); i++) {
		const struct spk_snap_cpuid *g =
		    find(h->cpuid, h->n_cpuid, features[i].function, features[i].index);
		uint32_t want, have, missing;

		if (!g)
			continue; /* the guest did not see the leaf */
		want = reg(g, features[i].reg) & ~features[i].ignore;
		hv = find(host, n, features[i].function, features[i].index);
		have = hv ? reg(hv, features[i].reg) : 0;
		missing = want & ~have;
		if (missing)
			return spk_fail(
			    EINVAL,
			    "snapshot: field 'cpuid': leaf 0x%" PRIx32 ".%" PRIu32
			    " %s bit %d is set in what the guest saw and %s on this host",
			    features[i].function, features[i].index, reg_names[features[i].reg],
			    __builtin_ctz(missing), hv ? "not supported" : "the leaf is missing");
	}
	return 0;
}
