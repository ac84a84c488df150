// SPDX-License-Identifier: Apache-2.0
/*
 * Clone identities (snapshot.h, no KVM): spk_clone_ids_check refuses every
 * identity two clones of one snapshot cannot have, naming the clone and
 * the field; spk_clone_ids_derive makes n of them from one and refuses
 * what would not fit; spk_vm_clone refuses bad arguments before it builds
 * anything.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sparkler/log.h>
#include <sparkler/snapshot.h>

/* Two good identities: vsock and two interfaces each. */
static void two(struct spk_clone_id ids[2])
{
	memset(ids, 0, 2 * sizeof(ids[0]));
	for (int k = 0; k < 2; k++) {
		struct spk_clone_id *id = &ids[k];

		id->vsock_cid = 10 + (uint32_t)k;
		snprintf(id->vsock_uds, sizeof(id->vsock_uds), "/run/v.%d", k);
		id->n_nets = 2;
		for (int i = 0; i < 2; i++) {
			struct spk_clone_net *n = &id->nets[i];

			snprintf(n->iface, sizeof(n->iface), "eth%d", i);
			snprintf(n->tap, sizeof(n->tap), "tap%d.%d", i, k);
			const uint8_t mac[6] = {0x06, 0, 0, 0, (uint8_t)i, (uint8_t)k};
			memcpy(n->mac, mac, 6);
		}
	}
}

static void refused(const struct spk_clone_id *ids, uint32_t n, const char *w1, const char *w2)
{
	assert_int_equal(spk_clone_ids_check(ids, n), -EINVAL);
	if (!strstr(spk_last_error(), w1) || !strstr(spk_last_error(), w2))
		fail_msg("'%s' lacks '%s' or '%s'", spk_last_error(), w1, w2);
}

static void test_check(void **state)
{
	struct spk_clone_id ids[2], b[2];

	two(ids);
	assert_int_equal(spk_clone_ids_check(ids, 2), 0);
	assert_int_equal(spk_clone_ids_check(ids, 1), 0);
	refused(NULL, 2, "no identities", "");
	refused(ids, 0, "0 clones", "1 to 1024");
	refused(ids, SPK_CLONE_MAX + 1, "1025 clones", "1 to 1024");

	/* each field that must be unique, made the same */
	memcpy(b, ids, sizeof(b));
	b[1].vsock_cid = 10;
	refused(b, 2, "clone 1: field 'vsock_cid'", "clone 0's too");
	memcpy(b, ids, sizeof(b));
	strcpy(b[1].vsock_uds, b[0].vsock_uds);
	refused(b, 2, "clone 1: field 'vsock_uds'", "clone 0's too");
	memcpy(b, ids, sizeof(b));
	strcpy(b[1].nets[1].tap, b[0].nets[0].tap);
	refused(b, 2, "clone 1: net 'eth1': field 'tap'", "clone 0's too");
	memcpy(b, ids, sizeof(b));
	memcpy(b[1].nets[0].mac, b[0].nets[1].mac, 6);
	refused(b, 2, "clone 1: net 'eth0': field 'mac'", "clone 0's");
	memcpy(b, ids, sizeof(b));
	memset(b[0].vmgenid, 7, SPK_VMGENID_LEN);
	memset(b[1].vmgenid, 7, SPK_VMGENID_LEN);
	refused(b, 2, "clone 1: field 'vmgenid'", "clone 0's");
	/* and inside one clone */
	memcpy(b, ids, sizeof(b));
	strcpy(b[0].nets[1].tap, b[0].nets[0].tap);
	refused(b, 1, "clone 0: field 'tap'", "twice");
	memcpy(b, ids, sizeof(b));
	memcpy(b[0].nets[1].mac, b[0].nets[0].mac, 6);
	refused(b, 1, "clone 0: net 'eth1': field 'mac'", "twice");
	memcpy(b, ids, sizeof(b));
	strcpy(b[0].nets[1].iface, "eth0");
	strcpy(b[1].nets[1].iface, "eth0");
	refused(b, 2, "clone 0: field 'iface'", "twice");

	/* values no clone may have */
	const uint32_t bad_cids[] = {1, 2, UINT32_MAX};
	for (size_t i = 0; i < sizeof(bad_cids) / sizeof(bad_cids[0]); i++) {
		memcpy(b, ids, sizeof(b));
		b[1].vsock_cid = bad_cids[i];
		refused(b, 2, "clone 1: field 'vsock_cid'", "reserved");
	}
	memcpy(b, ids, sizeof(b));
	b[1].vsock_cid = 0;
	refused(b, 2, "clone 1: field 'vsock_cid'", "same devices");
	memcpy(b, ids, sizeof(b));
	b[1].vsock_uds[0] = '\0';
	refused(b, 2, "clone 1: field 'vsock_uds'", "1 to 107");
	memcpy(b, ids, sizeof(b));
	memset(b[1].vsock_uds, 'x', sizeof(b[1].vsock_uds)); /* unterminated */
	refused(b, 2, "clone 1: field 'vsock_uds'", "1 to 107");
	memcpy(b, ids, sizeof(b));
	b[1].nets[0].mac[0] = 0x01;
	refused(b, 2, "field 'mac'", "multicast");
	memcpy(b, ids, sizeof(b));
	memset(b[1].nets[0].mac, 0, 6);
	refused(b, 2, "field 'mac'", "all zero");
	const char *bad_taps[] = {"", "a/b", "a b", "a:b", "0123456789abcdef"};
	for (size_t i = 0; i < sizeof(bad_taps) / sizeof(bad_taps[0]); i++) {
		memcpy(b, ids, sizeof(b));
		memset(b[1].nets[0].tap, 0, sizeof(b[1].nets[0].tap));
		memcpy(b[1].nets[0].tap, bad_taps[i],
		       strnlen(bad_taps[i], sizeof(b[1].nets[0].tap)));
		refused(b, 2, "clone 1: net 'eth0': field 'tap'", "1 to 15");
	}
	memcpy(b, ids, sizeof(b));
	b[1].n_nets = 1;
	refused(b, 2, "clone 1: field 'n_nets'", "clone 0 has 2");
	memcpy(b, ids, sizeof(b));
	b[0].n_nets = b[1].n_nets = SPK_CLONE_MAX_NETS + 1;
	refused(b, 2, "field 'n_nets'", "at most 8");
	memcpy(b, ids, sizeof(b));
	strcpy(b[1].nets[1].iface, "eth7");
	refused(b, 2, "clone 1: net 1: field 'iface'", "clone 0 has 'eth1'");
}

static void test_derive(void **state)
{
	struct spk_clone_id base = {.vsock_cid = 100, .n_nets = 1}, out[300], *big;

	strcpy(base.vsock_uds, "/run/v");
	strcpy(base.nets[0].iface, "eth0");
	strcpy(base.nets[0].tap, "tap0");
	const uint8_t mac[6] = {0x06, 0, 0, 0, 0xff, 0xfe};
	memcpy(base.nets[0].mac, mac, 6);
	assert_int_equal(spk_clone_ids_derive(&base, 300, out), 0);
	assert_int_equal(out[0].vsock_cid, 100);
	assert_int_equal(out[299].vsock_cid, 399);
	assert_string_equal(out[7].vsock_uds, "/run/v.7");
	assert_string_equal(out[7].nets[0].tap, "tap0.7");
	assert_string_equal(out[7].nets[0].iface, "eth0");
	/* MAC + k over the last three bytes: 00:ff:fe + 2 = 01:00:00 */
	const uint8_t want[6] = {0x06, 0, 0, 0x01, 0x00, 0x00};
	assert_memory_equal(out[2].nets[0].mac, want, 6);
	assert_true(out[5].vmgenid[0] == 0 && out[5].vmgenid[15] == 0); /* random at the clone */

	/* a CID range past 2^32 - 2, a TAP that gets too long, n out of range */
	base.vsock_cid = UINT32_MAX - 5;
	assert_int_equal(spk_clone_ids_derive(&base, 6, out), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "field 'vsock_cid'"));
	assert_int_equal(spk_clone_ids_derive(&base, 5, out), 0);
	base.vsock_cid = 100;
	strcpy(base.nets[0].tap, "abcdefghijklm");
	assert_int_equal(spk_clone_ids_derive(&base, 10, out), 0); /* "abcdefghijklm.9": 15 bytes */
	assert_int_equal(spk_clone_ids_derive(&base, 11, out), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "abcdefghijklm.10 is longer than 15"));
	assert_int_equal(spk_clone_ids_derive(&base, 0, out), -EINVAL);
	assert_int_equal(spk_clone_ids_derive(NULL, 1, out), -EINVAL);
	assert_int_equal(spk_clone_ids_derive(&base, 1, NULL), -EINVAL);
	/* the most clones one call makes */
	big = calloc(SPK_CLONE_MAX, sizeof(*big));
	assert_non_null(big);
	strcpy(base.nets[0].tap, "t");
	assert_int_equal(spk_clone_ids_derive(&base, SPK_CLONE_MAX, big), 0);
	assert_int_equal(spk_clone_ids_derive(&base, SPK_CLONE_MAX + 1, big), -EINVAL);
	free(big);
}

static int never_build(void *ctx, uint32_t k, const struct spk_clone_id *id,
                       struct spk_clone_vm *out)
{
	(*(int *)ctx)++;
	return -EIO;
}

static void never_destroy(void *ctx, uint32_t k, struct spk_clone_vm *vm)
{
	(*(int *)ctx)++;
}

/* Bad arguments: refused before anything is built. */
static void test_clone_args(void **state)
{
	const struct spk_clone_ops ops = {never_build, never_destroy}, half = {never_build, NULL};
	struct spk_clone_id ids[2];
	struct spk_clone_vm out[2];
	int calls = 0;

	two(ids);
	assert_int_equal(spk_vm_clone(NULL, NULL, 2, ids, &ops, &calls, out), -EINVAL);
	assert_int_equal(spk_vm_clone("/nonexistent", NULL, 2, ids, NULL, &calls, out), -EINVAL);
	assert_int_equal(spk_vm_clone("/nonexistent", NULL, 2, ids, &half, &calls, out), -EINVAL);
	assert_int_equal(spk_vm_clone("/nonexistent", NULL, 2, ids, &ops, &calls, NULL), -EINVAL);
	assert_int_equal(spk_vm_clone("/nonexistent", NULL, 0, ids, &ops, &calls, out), -EINVAL);
	assert_int_equal(spk_vm_clone("/nonexistent", NULL, 2, NULL, &ops, &calls, out), -EINVAL);
	/* good identities, a state file that is not there */
	assert_true(spk_vm_clone("/nonexistent", NULL, 2, ids, &ops, &calls, out) < 0);
	assert_int_equal(calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_derive),
	    cmocka_unit_test(test_clone_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
