// SPDX-License-Identifier: Apache-2.0
/*
 * Clones: N VMs from one snapshot (snapshot.h). The identities are checked
 * whole first (a duplicate CID or MAC is refused before anything is
 * built), the state file is read and checked once, then each clone is
 * built by the caller, restored (its memory a MAP_PRIVATE mapping of the
 * one memory file: shared until written) and given its generation ID. A
 * failure destroys what was made, last first.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sparkler/snapshot.h>

#include "core/internal.h"

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* A string field of n bytes: terminated, length 1..n-1. */
static bool str_ok(const char *s, size_t n)
{
	size_t len = strnlen(s, n);

	return len > 0 && len < n;
}

static bool tap_ok(const char *t)
{
	if (!str_ok(t, SPK_CLONE_TAP_MAX))
		return false;
	for (const char *c = t; *c; c++)
		if (*c == '/' || *c <= ' ' || *c > '~' || *c == ':')
			return false;
	return true;
}

static int check_one(const struct spk_clone_id *id, uint32_t k, const struct spk_clone_id *first)
{
	if ((id->vsock_cid != 0) != (first->vsock_cid != 0))
		return spk_fail(EINVAL,
		                "clone %u: field 'vsock_cid': %s, clone 0 %s (clones of one "
		                "snapshot have the same devices)",
		                k, id->vsock_cid ? "set" : "0",
		                first->vsock_cid ? "has one" : "has none");
	if (id->vsock_cid && (id->vsock_cid < 3 || id->vsock_cid == UINT32_MAX))
		return spk_fail(EINVAL,
		                "clone %u: field 'vsock_cid': %u (0-2 are reserved; need 3 to %u)",
		                k, id->vsock_cid, UINT32_MAX - 1);
	if (id->vsock_cid && !str_ok(id->vsock_uds, sizeof(id->vsock_uds)))
		return spk_fail(EINVAL,
		                "clone %u: field 'vsock_uds': need a path of 1 to %zu bytes", k,
		                sizeof(id->vsock_uds) - 1);
	if (id->n_nets != first->n_nets || id->n_nets > SPK_CLONE_MAX_NETS)
		return spk_fail(EINVAL, "clone %u: field 'n_nets': %u, clone 0 has %u (at most %d)",
		                k, id->n_nets, first->n_nets, SPK_CLONE_MAX_NETS);
	for (uint32_t i = 0; i < id->n_nets; i++) {
		const struct spk_clone_net *n = &id->nets[i];

		if (!str_ok(n->iface, sizeof(n->iface)))
			return spk_fail(EINVAL,
			                "clone %u: net %u: field 'iface': need 1 to %zu bytes", k,
			                i, sizeof(n->iface) - 1);
		if (strcmp(n->iface, first->nets[i].iface) != 0)
			return spk_fail(EINVAL,
			                "clone %u: net %u: field 'iface': '%s', clone 0 has '%s' "
			                "there",
			                k, i, n->iface, first->nets[i].iface);
		for (uint32_t j = 0; j < i; j++)
			if (strcmp(n->iface, id->nets[j].iface) == 0)
				return spk_fail(EINVAL, "clone %u: field 'iface': '%s' given twice",
				                k, n->iface);
		if (!tap_ok(n->tap))
			return spk_fail(EINVAL,
			                "clone %u: net '%s': field 'tap': need a name of 1 to %d "
			                "printable bytes without '/', ':' or spaces",
			                k, n->iface, SPK_CLONE_TAP_MAX - 1);
		if ((n->mac[0] & 1) || all_zero(n->mac, 6))
			return spk_fail(EINVAL,
			                "clone %u: net '%s': field 'mac': "
			                "%02x:%02x:%02x:%02x:%02x:%02x is %s",
			                k, n->iface, n->mac[0], n->mac[1], n->mac[2], n->mac[3],
			                n->mac[4], n->mac[5],
			                (n->mac[0] & 1) ? "a multicast address" : "all zero");
	}
	return 0;
}

/* No field that must be unique is the same in clones a and b (a < b). */
static int check_pair(const struct spk_clone_id *ids, uint32_t a, uint32_t b)
{
	const struct spk_clone_id *x = &ids[a], *y = &ids[b];

	if (x->vsock_cid && x->vsock_cid == y->vsock_cid)
		return spk_fail(EINVAL, "clone %u: field 'vsock_cid': %u is clone %u's too", b,
		                y->vsock_cid, a);
	if (x->vsock_cid && strcmp(x->vsock_uds, y->vsock_uds) == 0)
		return spk_fail(EINVAL, "clone %u: field 'vsock_uds': %s is clone %u's too", b,
		                y->vsock_uds, a);
	if (!all_zero(x->vmgenid, SPK_VMGENID_LEN) &&
	    memcmp(x->vmgenid, y->vmgenid, SPK_VMGENID_LEN) == 0)
		return spk_fail(EINVAL, "clone %u: field 'vmgenid': the same as clone %u's", b, a);
	for (uint32_t i = 0; i < x->n_nets; i++)
		for (uint32_t j = 0; j < y->n_nets; j++) {
			if (strcmp(x->nets[i].tap, y->nets[j].tap) == 0)
				return spk_fail(EINVAL,
				                "clone %u: net '%s': field 'tap': %s is clone %u's "
				                "too",
				                b, y->nets[j].iface, y->nets[j].tap, a);
			if (memcmp(x->nets[i].mac, y->nets[j].mac, 6) == 0)
				return spk_fail(
				    EINVAL,
				    "clone %u: net '%s': field 'mac': the same as clone "
				    "%u's",
				    b, y->nets[j].iface, a);
		}
	return 0;
}

/* TAPs and MACs unique inside one clone too. */
static int check_inside(const struct spk_clone_id *id, uint32_t k)
{
	for (uint32_t i = 0; i < id->n_nets; i++)
		for (uint32_t j = 0; j < i; j++) {
			if (strcmp(id->nets[i].tap, id->nets[j].tap) == 0)
				return spk_fail(EINVAL, "clone %u: field 'tap': %s given twice", k,
				                id->nets[i].tap);
			if (memcmp(id->nets[i].mac, id->nets[j].mac, 6) == 0)
				return spk_fail(EINVAL,
				                "clone %u: net '%s': field 'mac': given twice", k,
				                id->nets[i].iface);
		}
	return 0;
}

int spk_clone_ids_check(const struct spk_clone_id *ids, uint32_t n)
{
	int rc;

	if (!ids)
		return spk_fail(EINVAL, "clone: no identities");
	if (n == 0 || n > SPK_CLONE_MAX)
		return spk_fail(EINVAL, "clone: %u clones: need 1 to %d", n, SPK_CLONE_MAX);
	for (uint32_t k = 0; k < n; k++)
		if ((rc = check_one(&ids[k], k, &ids[0])) || (rc = check_inside(&ids[k], k)))
			return rc;
	/* n is at most 1024: the pairs are at most half a million cheap compares */
	for (uint32_t b = 1; b < n; b++)
		for (uint32_t a = 0; a < b; a++)
			if ((rc = check_pair(ids, a, b)))
				return rc;
	return 0;
}

int spk_clone_ids_derive(const struct spk_clone_id *base, uint32_t n, struct spk_clone_id *out)
{
	if (!base || !out)
		return spk_fail(EINVAL,
		                "clone: derive needs a template and room for the identities");
	if (n == 0 || n > SPK_CLONE_MAX)
		return spk_fail(EINVAL, "clone: %u clones: need 1 to %d", n, SPK_CLONE_MAX);
	if (base->n_nets > SPK_CLONE_MAX_NETS)
		return spk_fail(EINVAL, "clone: field 'n_nets': %u, at most %d", base->n_nets,
		                SPK_CLONE_MAX_NETS);
	if (base->vsock_cid && (uint64_t)base->vsock_cid + n - 1 >= UINT32_MAX)
		return spk_fail(EINVAL, "clone: field 'vsock_cid': %u + %u clones passes %u",
		                base->vsock_cid, n, UINT32_MAX - 1);
	for (uint32_t k = 0; k < n; k++) {
		struct spk_clone_id *id = &out[k];
		int len;

		memset(id, 0, sizeof(*id));
		if (base->vsock_cid) {
			id->vsock_cid = base->vsock_cid + k;
			len = snprintf(id->vsock_uds, sizeof(id->vsock_uds), "%.*s.%u",
			               (int)sizeof(base->vsock_uds), base->vsock_uds, k);
			if (len < 0 || (size_t)len >= sizeof(id->vsock_uds))
				return spk_fail(
				    EINVAL,
				    "clone %u: field 'vsock_uds': %s.%u is longer than %zu "
				    "bytes",
				    k, base->vsock_uds, k, sizeof(id->vsock_uds) - 1);
		}
		id->n_nets = base->n_nets;
		for (uint32_t i = 0; i < base->n_nets; i++) {
			const struct spk_clone_net *b = &base->nets[i];
			struct spk_clone_net *c = &id->nets[i];
			uint32_t low =
			    (uint32_t)b->mac[3] << 16 | (uint32_t)b->mac[4] << 8 | b->mac[5];

			memcpy(c->iface, b->iface, sizeof(c->iface));
			c->iface[sizeof(c->iface) - 1] = '\0';
			len = snprintf(c->tap, sizeof(c->tap), "%.*s.%u", (int)sizeof(b->tap),
			               b->tap, k);
			if (len < 0 || (size_t)len >= sizeof(c->tap))
				return spk_fail(
				    EINVAL,
				    "clone %u: net '%s': field 'tap': %s.%u is longer than "
				    "%zu bytes",
				    k, c->iface, b->tap, k, sizeof(c->tap) - 1);
			memcpy(c->mac, b->mac, 3);
			low = (low + k) & 0xffffff; /* the last three bytes, wrapping */
			c->mac[3] = (uint8_t)(low >> 16);
			c->mac[4] = (uint8_t)(low >> 8);
			c->mac[5] = (uint8_t)low;
		}
		/* the VMGENID stays zero: a random one at the clone */
	}
	return spk_clone_ids_check(out, n);
}

/* Destroy clones [0, made), last first, and zero them. */
static void undo(const struct spk_clone_ops *ops, void *ctx, struct spk_clone_vm *out,
                 uint32_t made)
{
	while (made-- > 0) {
		ops->destroy(ctx, made, &out[made]);
		memset(&out[made], 0, sizeof(out[made]));
	}
}

/* The last error again, with "clone K: " in front (copied first: the
 * message buffer is the one being written). */
static int fail_clone(int rc, uint32_t k, const char *what)
{
	char why[512];

	snprintf(why, sizeof(why), "%s", spk_last_error());
	return spk_fail(-rc, "clone %u: %s%s", k, what, why);
}

static int clone_one(const char *state, const char *mem, uint32_t k, const struct spk_clone_id *id,
                     const struct spk_clone_ops *ops, void *ctx, struct spk_clone_vm *c)
{
	bool random_id = all_zero(id->vmgenid, SPK_VMGENID_LEN);
	int rc;

	memset(c, 0, sizeof(*c));
	if ((rc = ops->build(ctx, k, id, c)) < 0)
		return spk_fail(-rc, "clone %u: the build function failed: %s", k, strerror(-rc));
	if (!c->vm) {
		ops->destroy(ctx, k, c);
		memset(c, 0, sizeof(*c));
		return spk_fail(EINVAL, "clone %u: the build function gave no VM", k);
	}
	rc = spk_vm_restore(c->vm, c->devs, state, mem);
	if (rc == 0 && c->genid)
		rc = spk_vmgenid_set(c->genid, random_id ? NULL : id->vmgenid);
	if (rc < 0) {
		rc = fail_clone(rc, k, "");
		ops->destroy(ctx, k, c);
		memset(c, 0, sizeof(*c));
	}
	return rc;
}

int spk_vm_clone(const char *state, const char *mem, uint32_t n, const struct spk_clone_id *ids,
                 const struct spk_clone_ops *ops, void *ctx, struct spk_clone_vm *out)
{
	struct spk_snap_file *f = NULL;
	int rc;

	if (!state || !ops || !ops->build || !ops->destroy || !out)
		return spk_fail(EINVAL,
		                "clone: needs a state file, build and destroy functions and "
		                "room for the clones");
	if ((rc = spk_clone_ids_check(ids, n)) < 0)
		return rc;
	memset(out, 0, sizeof(*out) * n);
	/* a file that cannot load is refused before the first clone is built */
	if ((rc = spk_snap_open(state, &f)) < 0)
		return rc;
	spk_snap_close(f);
	for (uint32_t k = 0; k < n; k++) {
		if ((rc = clone_one(state, mem, k, &ids[k], ops, ctx, &out[k])) < 0) {
			undo(ops, ctx, out, k);
			return rc;
		}
	}
	return 0;
}
