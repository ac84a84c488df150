/* SPDX-License-Identifier: Apache-2.0 */
/* KVM backend: CPUID from KVM_GET_SUPPORTED_CPUID, per-vCPU ids, policy hook. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/internal.h"
#include "kvm/kvm.h"

#define SPK_CPUID_MAX 256

/*
 * Start at KVM's own bound (KVM_MAX_CPUID_ENTRIES, 256 since Linux 5.x): each
 * try makes the host execute CPUID for every leaf, which traps when the host
 * is itself a VM (about 0.3 ms on an AMD EPYC cloud VM), so a first try that
 * is too small (64 against 75 entries there) doubled sparkler's start-up
 * CPUID cost.
 */
int spk_kvm_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out)
{
	for (uint32_t n = 256; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

		if (!c)
			return spk_fail(ENOMEM, "cpuid: out of memory");
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			*out = c;
			return 0;
		}
		int err = errno;
		free(c);
		if (err != E2BIG)
			return spk_fail(err, "kvm: KVM_GET_SUPPORTED_CPUID: %s", strerror(err));
	}
	return spk_fail(E2BIG, "kvm: KVM_GET_SUPPORTED_CPUID wants more than 4096 entries");
}

struct spk_cpuid_entry *spk_cpuid_find(struct spk_cpuid_entry *entries, uint32_t n,
				       uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; entries && i < n; i++) {
		struct spk_cpuid_entry *e = &entries[i];

		if (e->function != function)
			continue;
		if (!(e->flags & SPK_CPUID_FLAG_SIGNIFICANT_INDEX) || e->index == index)
			return e;
	}
	return NULL;
}

/* What every vCPU needs whatever the policy: its own APIC id. */
static void set_apic_ids(struct spk_cpuid_entry *e, uint32_t n, uint32_t id)
{
	for (uint32_t i = 0; i < n; i++) {
		switch (e[i].function) {
		case 1: /* EBX[31:24]: initial APIC id */
			e[i].ebx = (e[i].ebx & 0x00ffffffu) | ((id & 0xff) << 24);
			break;
		case 0xb:
		case 0x1f: /* EDX: x2APIC id */
			e[i].edx = id;
			break;
		default:
			break;
		}
	}
}

/*
 * Features KVM emulates but KVM_GET_SUPPORTED_CPUID leaves out (KVM's API
 * documentation, KVM_GET_SUPPORTED_CPUID): the in-kernel LAPIC's
 * TSC-deadline timer (leaf 1 ECX bit 24), which KVM reports through
 * KVM_CAP_TSC_DEADLINE_TIMER instead and which needs KVM_CREATE_IRQCHIP.
 * Without it Linux calibrates the LAPIC timer against the PIT, and on a
 * real KVM host ends up with no working timer ("APIC timer disabled due to
 * verification failure": timed sleeps never wake, power-off hangs).
 * Applied before the policy hook, so a template can still clear it.
 */
void spk_kvm_cpuid_add_emulated(struct spk_cpuid_entry *e, uint32_t n, bool tsc_deadline)
{
	struct spk_cpuid_entry *l1 = spk_cpuid_find(e, n, 1, 0);

	if (l1 && tsc_deadline)
		l1->ecx |= SPK_CPUID_1_ECX_TSC_DEADLINE;
}

int spk_kvm_set_vcpu_cpuid(struct spk_vcpu *vcpu)
{
	const struct spk_kvm_vm *vm = spk_kvm_vm(vcpu->vm);
	const struct kvm_cpuid2 *host = vm->supported_cpuid;
	uint32_t n = host->nent;
	struct spk_cpuid_entry *e;
	struct kvm_cpuid2 *c;
	int rc;

	if (n > SPK_CPUID_MAX)
		n = SPK_CPUID_MAX;
	e = calloc(SPK_CPUID_MAX, sizeof(*e));
	c = calloc(1, sizeof(*c) + SPK_CPUID_MAX * sizeof(c->entries[0]));
	if (!e || !c) {
		rc = spk_fail(ENOMEM, "cpuid: out of memory");
		goto out_free;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct kvm_cpuid_entry2 *k = &host->entries[i];

		e[i] = (struct spk_cpuid_entry){k->function, k->index, k->flags & 1u,
						k->eax,      k->ebx,   k->ecx,
						k->edx};
	}
	set_apic_ids(e, n, vcpu->id);
	spk_kvm_cpuid_add_emulated(
	    e, n,
	    vcpu->vm->irqchip == SPK_IRQCHIP_KERNEL &&
		ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0);
	if (vm->cpuid_policy) {
		rc = vm->cpuid_policy(vm->cpuid_opaque, vcpu->id, e, &n, SPK_CPUID_MAX);
		if (rc < 0 || n > SPK_CPUID_MAX) {
			rc = spk_fail(rc < 0 ? -rc : EINVAL,
				      "cpuid: the policy hook failed for vCPU %u (%d, %u entries)",
				      vcpu->id, rc, n);
			goto out_free;
		}
	}
	c->nent = n;
	for (uint32_t i = 0; i < n; i++)
		c->entries[i] = (struct kvm_cpuid_entry2){
			.function = e[i].function,
			.index = e[i].index,
			.flags = e[i].flags & SPK_CPUID_FLAG_SIGNIFICANT_INDEX,
			.eax = e[i].eax,
			.ebx = e[i].ebx,
			.ecx = e[i].ecx,
			.edx = e[i].edx,
		};
	rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_SET_CPUID2, c);
	if (rc < 0)
		rc = spk_fail(-rc, "kvm: KVM_SET_CPUID2 on vCPU %u: %s", vcpu->id, strerror(-rc));
out_free:
	free(e);
	free(c);
	return rc;
}
