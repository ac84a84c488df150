// SPDX-License-Identifier: Apache-2.0
/*
 * vCPU and VM state of the x86-64 KVM backend, for snapshots: the fields
 * of a VCPU section and of the VM section (docs/snapshots.md has the list).
 *
 * KVM's own structures (kvm_regs, kvm_sregs2, kvm_xsave, kvm_lapic_state,
 * kvm_vcpu_events, kvm_debugregs, kvm_xcrs, kvm_pit_state2, the irqchips)
 * are part of its stable ABI and are saved as bytes fields, each checked
 * for its exact length on load; the things that vary by host (which MSRs,
 * which FPU format, sregs or sregs2) are saved with what they are so a
 * loader can refuse what its KVM cannot take, naming the field.
 *
 * Saving first finishes the exit the vCPU last made: KVM completes a port
 * or MMIO access (and applies registers changed through the shared run
 * area) only when it is entered again, so the vCPU is entered once with
 * immediate_exit set, which runs no guest instruction (KVM's API
 * documentation, "the corresponding operations are complete ... only after
 * userspace has re-entered the kernel").
 *
 * Loading reads and checks every field first and then applies them in
 * the order KVM needs (as QEMU does): registers, FPU, XCRs, system
 * registers, MSRs (the TSC deadline after the LAPIC), MP state, LAPIC,
 * events, debug registers. What KVM refuses is an error naming the field
 * (an MSR by its index); the vCPU is then INVALID, as after any refused
 * setup (the snapshot is restored into a fresh VM: throw it away).
 *
 * The TSC: IA32_TSC is one of the saved MSRs. KVM takes a host-initiated
 * write of it as "the guest's TSC reads this now" and sets the offset, so
 * the restored guest's TSC goes on from the saved value; it never goes
 * back, and the time the snapshot spent on disk does not pass for it. The
 * kvmclock continues from KVM_GET_CLOCK's value the same way (VM section).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <sparkler/snapshot.h>

#include "core/internal.h"
#include "kvm/kvm.h"
#include "kvm/state.h"

#define MSR_IA32_TSC          0x10u
#define MSR_IA32_TSC_DEADLINE 0x6e0u
#define MAX_MSRS              1024u
#define XSAVE_MIN             4096u
#define XSAVE_MAX             (1u << 20)

enum { SREGS1 = 1, SREGS2 = 2 };
enum { FPU_LEGACY = 1, FPU_XSAVE = 2 };

static int vm_cap(const struct spk_vm *vm, long cap)
{
	int v = ioctl(spk_kvm_vm(vm)->vm_fd, KVM_CHECK_EXTENSION, cap);

	return v < 0 ? 0 : v;
}

/* Bytes of KVM_GET_XSAVE2's buffer (0: no XSAVE at all). */
static uint32_t xsave_size(const struct spk_vm *vm)
{
	int n = vm_cap(vm, KVM_CAP_XSAVE2);

	if (n >= (int)XSAVE_MIN)
		return (uint32_t)n;
	return vm_cap(vm, KVM_CAP_XSAVE) ? XSAVE_MIN : 0;
}

/* ---- finishing the last exit ---------------------------------------------------- */

int spk_kvm_vcpu_flush_exit(struct spk_vcpu *vcpu)
{
	int rc, err;

	spk_vcpu_complete_last(vcpu);
	__atomic_store_n(&spk_kvm_vcpu(vcpu)->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	rc = ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_RUN, 0);
	err = errno;
	__atomic_store_n(&spk_kvm_vcpu(vcpu)->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	if (rc == 0)
		return spk_fail(EIO, "kvm: vCPU %u: entering to finish its last exit ran the guest",
		                vcpu->id);
	if (err != EINTR)
		return spk_fail(err, "kvm: vCPU %u: KVM_RUN to finish its last exit: %s", vcpu->id,
		                strerror(err));
	return 0;
}

/* ---- MSRs ---------------------------------------------------------------------- */

/* KVM_GET_MSR_INDEX_LIST: *out (malloc'd) and its count. */
static int msr_index_list(const struct spk_vm *vm, uint32_t **out, uint32_t *n)
{
	struct kvm_msr_list probe = {.nmsrs = 0}, *l;
	int rc = spk_kvm_ioctl(spk_kvm_vm(vm)->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe);

	if (rc < 0 && rc != -E2BIG)
		return spk_fail(-rc, "kvm: KVM_GET_MSR_INDEX_LIST: %s", strerror(-rc));
	if (probe.nmsrs > MAX_MSRS)
		return spk_fail(E2BIG, "kvm: KVM lists %u MSRs, at most %u are saved", probe.nmsrs,
		                MAX_MSRS);
	l = calloc(1, sizeof(*l) + (probe.nmsrs + 1) * sizeof(uint32_t));
	if (!l)
		return spk_fail(ENOMEM, "kvm: out of memory");
	l->nmsrs = probe.nmsrs;
	rc = spk_kvm_ioctl(spk_kvm_vm(vm)->kvm_fd, KVM_GET_MSR_INDEX_LIST, l);
	if (rc < 0) {
		free(l);
		return spk_fail(-rc, "kvm: KVM_GET_MSR_INDEX_LIST: %s", strerror(-rc));
	}
	*n = l->nmsrs;
	*out = malloc((l->nmsrs + 1) * sizeof(uint32_t));
	if (*out)
		memcpy(*out, l->indices, l->nmsrs * sizeof(uint32_t));
	free(l);
	return *out ? 0 : spk_fail(ENOMEM, "kvm: out of memory");
}

static struct kvm_msrs *msrs_alloc(uint32_t n)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + (n + 1) * sizeof(struct kvm_msr_entry));

	if (m)
		m->nmsrs = n;
	return m;
}

/*
 * Read every MSR KVM lists; one KVM cannot read for this vCPU (its CPUID
 * lacks the feature) is left out. *out holds the ones read.
 */
static int msrs_read(struct spk_vcpu *vcpu, struct kvm_msrs **out)
{
	uint32_t *idx = NULL, n = 0, got = 0;
	struct kvm_msrs *all, *one;
	int rc = msr_index_list(vcpu->vm, &idx, &n);

	if (rc < 0)
		return rc;
	all = msrs_alloc(n);
	one = msrs_alloc(1);
	if (!all || !one) {
		rc = spk_fail(ENOMEM, "kvm: out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		one->nmsrs = 1;
		one->entries[0] = (struct kvm_msr_entry){.index = idx[i]};
		rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_GET_MSRS, one);
		if (rc < 0) {
			rc = spk_fail(-rc, "kvm: vCPU %u: KVM_GET_MSRS 0x%x: %s", vcpu->id, idx[i],
			              strerror(-rc));
			goto out;
		}
		if (rc == 1)
			all->entries[got++] = one->entries[0];
	}
	all->nmsrs = got;
	*out = all;
	all = NULL;
	rc = 0;
out:
	free(one);
	free(all);
	free(idx);
	return rc;
}

/* Set entries [from, from + n) of m; an MSR KVM refuses is named. */
static int msrs_write(struct spk_vcpu *vcpu, const struct kvm_msrs *m, bool deadline,
                      struct spk_snap_reader *r)
{
	struct kvm_msrs *one = msrs_alloc(1);
	int rc = 0;

	if (!one)
		return spk_fail(ENOMEM, "kvm: out of memory");
	for (uint32_t i = 0; i < m->nmsrs && rc == 0; i++) {
		const struct kvm_msr_entry *e = &m->entries[i];

		if ((e->index == MSR_IA32_TSC_DEADLINE) != deadline)
			continue;
		one->nmsrs = 1;
		one->entries[0] = *e;
		rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_SET_MSRS, one);
		if (rc != 1) {
			/* refused, but already so (an MSR of a PV feature this VM
			 * lacks, saved at its reset value): nothing to change */
			one->entries[0].data = ~e->data;
			if (spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_GET_MSRS, one) == 1 &&
			    one->entries[0].data == e->data)
				rc = 1;
		}
		if (rc != 1)
			rc = spk_snap_bad(r, "msrs", "MSR 0x%x = 0x%llx: KVM refused it (%s)",
			                  e->index, (unsigned long long)e->data,
			                  rc < 0 ? strerror(-rc) : "not set");
		else
			rc = 0;
	}
	free(one);
	return rc;
}

/* ---- vCPU save ----------------------------------------------------------------- */

struct vcpu_state {
	struct kvm_regs regs;
	uint8_t sregs_kind;
	struct kvm_sregs sregs;
	struct kvm_sregs2 sregs2;
	uint8_t fpu_kind;
	struct kvm_fpu fpu;
	uint8_t *xsave;
	uint32_t xsave_len;
	bool has_xcrs;
	struct kvm_xcrs xcrs;
	struct kvm_msrs *msrs;
	bool has_lapic;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_debugregs debugregs;
	struct kvm_mp_state mp;
	uint32_t tsc_khz;
};

static void state_free(struct vcpu_state *s)
{
	free(s->xsave);
	free(s->msrs);
}

#define GET(vcpu, req, arg, what)                                                                  \
	do {                                                                                       \
		int rc_ = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, (req), (arg));                     \
		if (rc_ < 0) {                                                                     \
			rc = spk_fail(-rc_, "kvm: vCPU %u: %s: %s", (vcpu)->id, (what),            \
			              strerror(-rc_));                                             \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

static int vcpu_read(struct spk_vcpu *vcpu, struct vcpu_state *s)
{
	struct spk_vm *vm = vcpu->vm;
	int rc = 0;

	GET(vcpu, KVM_GET_REGS, &s->regs, "KVM_GET_REGS");
	if (vm_cap(vm, KVM_CAP_SREGS2)) {
		s->sregs_kind = SREGS2;
		GET(vcpu, KVM_GET_SREGS2, &s->sregs2, "KVM_GET_SREGS2");
	} else {
		s->sregs_kind = SREGS1;
		GET(vcpu, KVM_GET_SREGS, &s->sregs, "KVM_GET_SREGS");
	}
	s->xsave_len = xsave_size(vm);
	if (s->xsave_len) {
		s->fpu_kind = FPU_XSAVE;
		s->xsave = calloc(1, s->xsave_len);
		if (!s->xsave)
			return spk_fail(ENOMEM, "kvm: out of memory");
		if (s->xsave_len > XSAVE_MIN)
			GET(vcpu, KVM_GET_XSAVE2, s->xsave, "KVM_GET_XSAVE2");
		else
			GET(vcpu, KVM_GET_XSAVE, s->xsave, "KVM_GET_XSAVE");
	} else {
		s->fpu_kind = FPU_LEGACY;
		GET(vcpu, KVM_GET_FPU, &s->fpu, "KVM_GET_FPU");
	}
	s->has_xcrs = vm_cap(vm, KVM_CAP_XCRS);
	if (s->has_xcrs)
		GET(vcpu, KVM_GET_XCRS, &s->xcrs, "KVM_GET_XCRS");
	if ((rc = msrs_read(vcpu, &s->msrs)) < 0)
		goto out;
	s->has_lapic = vm->irqchip == SPK_IRQCHIP_KERNEL;
	if (s->has_lapic)
		GET(vcpu, KVM_GET_LAPIC, &s->lapic, "KVM_GET_LAPIC");
	GET(vcpu, KVM_GET_VCPU_EVENTS, &s->events, "KVM_GET_VCPU_EVENTS");
	GET(vcpu, KVM_GET_DEBUGREGS, &s->debugregs, "KVM_GET_DEBUGREGS");
	GET(vcpu, KVM_GET_MP_STATE, &s->mp, "KVM_GET_MP_STATE");
	int khz = ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_GET_TSC_KHZ, 0);
	s->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
out:
	return rc;
}

int spk_kvm_vcpu_state_save(struct spk_vcpu *vcpu, struct spk_snap_writer *w)
{
	struct vcpu_state s = {0};
	int rc;

	if ((rc = spk_kvm_vcpu_flush_exit(vcpu)) < 0 || (rc = vcpu_read(vcpu, &s)) < 0)
		goto out;
	spk_snap_put_bytes(w, "regs", &s.regs, sizeof(s.regs));
	spk_snap_put_u8(w, "sregs_kind", s.sregs_kind);
	if (s.sregs_kind == SREGS2)
		spk_snap_put_bytes(w, "sregs", &s.sregs2, sizeof(s.sregs2));
	else
		spk_snap_put_bytes(w, "sregs", &s.sregs, sizeof(s.sregs));
	spk_snap_put_u8(w, "fpu_kind", s.fpu_kind);
	if (s.fpu_kind == FPU_XSAVE)
		spk_snap_put_bytes(w, "fpu", s.xsave, s.xsave_len);
	else
		spk_snap_put_bytes(w, "fpu", &s.fpu, sizeof(s.fpu));
	spk_snap_put_bytes(w, "xcrs", &s.xcrs, s.has_xcrs ? sizeof(s.xcrs) : 0);
	spk_snap_put_bytes(w, "msrs", s.msrs->entries, s.msrs->nmsrs * sizeof(s.msrs->entries[0]));
	spk_snap_put_bytes(w, "lapic", &s.lapic, s.has_lapic ? sizeof(s.lapic) : 0);
	spk_snap_put_bytes(w, "events", &s.events, sizeof(s.events));
	spk_snap_put_bytes(w, "debugregs", &s.debugregs, sizeof(s.debugregs));
	spk_snap_put_u32(w, "mp_state", s.mp.mp_state);
	rc = spk_snap_put_u32(w, "tsc_khz", s.tsc_khz);
out:
	state_free(&s);
	return rc;
}

/* ---- vCPU load ----------------------------------------------------------------- */

/* A bytes field of exactly len bytes (or 0 when optional) into dst. */
static int get_exact(struct spk_snap_reader *r, const char *name, void *dst, size_t len,
                     bool optional, bool *present)
{
	const void *p;
	size_t n;
	int rc = spk_snap_get_blob(r, name, &p, &n);

	if (rc)
		return rc;
	if (optional && n == 0) {
		*present = false;
		return 0;
	}
	if (n != len)
		return spk_snap_bad(r, name, "%zu bytes, KVM's structure has %zu", n, len);
	memcpy(dst, p, len);
	if (present)
		*present = true;
	return 0;
}

static int read_fpu(struct spk_vcpu *vcpu, struct spk_snap_reader *r, struct vcpu_state *s)
{
	uint32_t host = xsave_size(vcpu->vm);
	const void *p;
	size_t n;
	int rc;

	if ((rc = spk_snap_get_u8(r, "fpu_kind", &s->fpu_kind)))
		return rc;
	if (s->fpu_kind == FPU_LEGACY)
		return get_exact(r, "fpu", &s->fpu, sizeof(s->fpu), false, NULL);
	if (s->fpu_kind != FPU_XSAVE)
		return spk_snap_bad(r, "fpu_kind", "%u is neither 1 (fpu) nor 2 (xsave)",
		                    s->fpu_kind);
	if ((rc = spk_snap_get_blob(r, "fpu", &p, &n)))
		return rc;
	if (!host)
		return spk_snap_bad(r, "fpu", "an XSAVE area, and this KVM has no KVM_CAP_XSAVE");
	if (n < XSAVE_MIN || n > XSAVE_MAX)
		return spk_snap_bad(r, "fpu", "an XSAVE area of %zu bytes (%u to %u)", n, XSAVE_MIN,
		                    XSAVE_MAX);
	if (n > host)
		for (size_t i = host; i < n; i++)
			if (((const uint8_t *)p)[i])
				return spk_snap_bad(r, "fpu",
				                    "XSAVE state at byte %zu, beyond the %u bytes "
				                    "this KVM's guests have",
				                    i, host);
	s->xsave_len = host;
	s->xsave = calloc(1, host);
	if (!s->xsave)
		return spk_fail(ENOMEM, "kvm: out of memory");
	memcpy(s->xsave, p, n < host ? n : host);
	return 0;
}

static int read_msrs(struct spk_snap_reader *r, struct vcpu_state *s)
{
	const struct kvm_msr_entry *e;
	const void *p;
	size_t n;
	int rc = spk_snap_get_blob(r, "msrs", &p, &n);

	if (rc)
		return rc;
	if (n % sizeof(*e) || n / sizeof(*e) > MAX_MSRS)
		return spk_snap_bad(r, "msrs", "%zu bytes: not a list of at most %u MSRs", n,
		                    MAX_MSRS);
	s->msrs = msrs_alloc((uint32_t)(n / sizeof(*e)));
	if (!s->msrs)
		return spk_fail(ENOMEM, "kvm: out of memory");
	memcpy(s->msrs->entries, p, n);
	for (uint32_t i = 0; i < s->msrs->nmsrs; i++)
		if (s->msrs->entries[i].reserved)
			return spk_snap_bad(r, "msrs", "MSR 0x%x: reserved bits set",
			                    s->msrs->entries[i].index);
	return 0;
}

#define EVENT_FLAGS                                                                                \
	(KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |                       \
	 KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM | KVM_VCPUEVENT_VALID_PAYLOAD |      \
	 KVM_VCPUEVENT_VALID_TRIPLE_FAULT)

static int vcpu_parse(struct spk_vcpu *vcpu, struct spk_snap_reader *r, struct vcpu_state *s)
{
	bool has_lapic = vcpu->vm->irqchip == SPK_IRQCHIP_KERNEL;
	int rc;

	if ((rc = get_exact(r, "regs", &s->regs, sizeof(s->regs), false, NULL)) ||
	    (rc = spk_snap_get_u8(r, "sregs_kind", &s->sregs_kind)))
		return rc;
	if (s->sregs_kind == SREGS2) {
		if (!vm_cap(vcpu->vm, KVM_CAP_SREGS2))
			return spk_snap_bad(
			    r, "sregs_kind",
			    "saved as kvm_sregs2, and this KVM has no KVM_CAP_SREGS2");
		rc = get_exact(r, "sregs", &s->sregs2, sizeof(s->sregs2), false, NULL);
	} else if (s->sregs_kind == SREGS1) {
		rc = get_exact(r, "sregs", &s->sregs, sizeof(s->sregs), false, NULL);
	} else {
		return spk_snap_bad(r, "sregs_kind", "%u is neither 1 (sregs) nor 2 (sregs2)",
		                    s->sregs_kind);
	}
	if (rc || (rc = read_fpu(vcpu, r, s)) ||
	    (rc = get_exact(r, "xcrs", &s->xcrs, sizeof(s->xcrs), true, &s->has_xcrs)) ||
	    (rc = read_msrs(r, s)) ||
	    (rc = get_exact(r, "lapic", &s->lapic, sizeof(s->lapic), true, &s->has_lapic)) ||
	    (rc = get_exact(r, "events", &s->events, sizeof(s->events), false, NULL)) ||
	    (rc = get_exact(r, "debugregs", &s->debugregs, sizeof(s->debugregs), false, NULL)) ||
	    (rc = spk_snap_get_u32_max(r, "mp_state", KVM_MP_STATE_SUSPENDED, &s->mp.mp_state)) ||
	    (rc = spk_snap_get_u32(r, "tsc_khz", &s->tsc_khz)))
		return rc;
	if (s->has_xcrs && !vm_cap(vcpu->vm, KVM_CAP_XCRS))
		return spk_snap_bad(r, "xcrs", "saved, and this KVM has no KVM_CAP_XCRS");
	if (s->has_xcrs && s->xcrs.nr_xcrs > KVM_MAX_XCRS)
		return spk_snap_bad(r, "xcrs", "nr_xcrs %u, at most %d", s->xcrs.nr_xcrs,
		                    KVM_MAX_XCRS);
	if (s->has_lapic != has_lapic)
		return spk_snap_bad(r, "lapic", "%s, and this VM %s the in-kernel irqchip",
		                    s->has_lapic ? "saved" : "not saved",
		                    has_lapic ? "has" : "does not have");
	if (s->events.flags & ~(uint32_t)EVENT_FLAGS)
		return spk_snap_bad(r, "events", "flags 0x%x has unknown bits", s->events.flags);
	if (s->debugregs.flags)
		return spk_snap_bad(r, "debugregs", "flags 0x%llx (must be 0)",
		                    (unsigned long long)s->debugregs.flags);
	return spk_snap_reader_done(r);
}

#define SET(vcpu, req, arg, field)                                                                 \
	do {                                                                                       \
		int rc_ = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, (req), (arg));                     \
		if (rc_ < 0) {                                                                     \
			rc = spk_snap_bad(r, (field), "KVM refused it (%s)", strerror(-rc_));      \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

static void check_tsc_khz(struct spk_vcpu *vcpu, uint32_t saved)
{
	int khz = ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_GET_TSC_KHZ, 0);

	if (saved == 0 || khz <= 0 || (uint32_t)khz == saved)
		return;
	if (vm_cap(vcpu->vm, KVM_CAP_TSC_CONTROL) &&
	    ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_SET_TSC_KHZ, (unsigned long)saved) == 0)
		return;
	spk_log(SPK_LOG_WARN,
	        "kvm: vCPU %u: the snapshot's TSC ran at %u kHz, this host's at %d kHz and KVM "
	        "cannot scale it: the guest's TSC runs at the host's rate from here",
	        vcpu->id, saved, khz);
}

static int vcpu_apply(struct spk_vcpu *vcpu, struct spk_snap_reader *r, struct vcpu_state *s)
{
	int rc = 0;

	check_tsc_khz(vcpu, s->tsc_khz);
	if (s->sregs_kind == SREGS2)
		SET(vcpu, KVM_SET_SREGS2, &s->sregs2, "sregs");
	else
		SET(vcpu, KVM_SET_SREGS, &s->sregs, "sregs");
	SET(vcpu, KVM_SET_REGS, &s->regs, "regs");
	if (s->fpu_kind == FPU_XSAVE)
		SET(vcpu, KVM_SET_XSAVE, s->xsave, "fpu");
	else
		SET(vcpu, KVM_SET_FPU, &s->fpu, "fpu");
	if (s->has_xcrs)
		SET(vcpu, KVM_SET_XCRS, &s->xcrs, "xcrs");
	if ((rc = msrs_write(vcpu, s->msrs, false, r)) < 0)
		goto out;
	SET(vcpu, KVM_SET_MP_STATE, &s->mp, "mp_state");
	if (s->has_lapic)
		SET(vcpu, KVM_SET_LAPIC, &s->lapic, "lapic");
	if ((rc = msrs_write(vcpu, s->msrs, true, r)) < 0)
		goto out;
	s->events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	SET(vcpu, KVM_SET_VCPU_EVENTS, &s->events, "events");
	SET(vcpu, KVM_SET_DEBUGREGS, &s->debugregs, "debugregs");
out:
	return rc;
}

int spk_kvm_vcpu_state_load(struct spk_vcpu *vcpu, struct spk_snap_reader *r, bool check_only)
{
	struct vcpu_state s = {0};
	int rc = vcpu_parse(vcpu, r, &s);

	if (rc == 0 && !check_only) {
		/*
		 * Whatever the vCPU was in the middle of is replaced, but KVM
		 * must be done with it first: an exit the library answered
		 * itself (SPK_VCPU_RETURN_HANDLED) leaves registers in the
		 * shared run area marked dirty, and a port or MMIO access
		 * leaves KVM a completion to make; both happen at the next
		 * KVM_RUN and would undo the registers loaded here (seen: an
		 * in-place reset after a console hypercall kept the old rip).
		 * So the vCPU is entered once with immediate_exit first.
		 */
		if ((rc = spk_kvm_vcpu_flush_exit(vcpu)) == 0) {
			spk_kvm_vcpu(vcpu)->last_from_kvm_hypercall = false;
			if ((rc = vcpu_apply(vcpu, r, &s)) < 0)
				spk_vcpu_invalidate(vcpu);
		}
	}
	state_free(&s);
	return rc;
}

/* ---- the VM: clock and in-kernel irqchip ------------------------------------------------ */

static int get_chip(struct spk_vm *vm, uint32_t id, struct kvm_irqchip *c)
{
	*c = (struct kvm_irqchip){.chip_id = id};
	int rc = spk_kvm_ioctl(spk_kvm_vm(vm)->vm_fd, KVM_GET_IRQCHIP, c);

	return rc < 0 ? spk_fail(-rc, "kvm: KVM_GET_IRQCHIP %u: %s", id, strerror(-rc)) : 0;
}

static const char *const chip_field[3] = {"pic_master", "pic_slave", "ioapic"};

int spk_kvm_vm_state_save(struct spk_vm *vm, struct spk_snap_writer *w)
{
	struct kvm_clock_data clock = {0};
	struct kvm_pit_state2 pit = {0};
	struct kvm_irqchip chip[3];
	bool kernel = vm->irqchip == SPK_IRQCHIP_KERNEL;
	int rc = spk_kvm_ioctl(spk_kvm_vm(vm)->vm_fd, KVM_GET_CLOCK, &clock);

	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_GET_CLOCK: %s", strerror(-rc));
	for (uint32_t i = 0; kernel && i < 3; i++)
		if ((rc = get_chip(vm, i, &chip[i])) < 0)
			return rc;
	if (kernel && (rc = spk_kvm_ioctl(spk_kvm_vm(vm)->vm_fd, KVM_GET_PIT2, &pit)) < 0)
		return spk_fail(-rc, "kvm: KVM_GET_PIT2: %s", strerror(-rc));
	spk_snap_put_u64(w, "clock", clock.clock);
	spk_snap_put_u8(w, "irqchip", kernel);
	for (uint32_t i = 0; i < 3; i++)
		spk_snap_put_bytes(w, chip_field[i], &chip[i].chip,
		                   kernel ? sizeof(chip[i].chip) : 0);
	return spk_snap_put_bytes(w, "pit", &pit, kernel ? sizeof(pit) : 0);
}

int spk_kvm_vm_state_load(struct spk_vm *vm, struct spk_snap_reader *r, bool check_only)
{
	struct kvm_clock_data clock = {0};
	struct kvm_pit_state2 pit = {0};
	struct kvm_irqchip chip[3] = {{.chip_id = 0}, {.chip_id = 1}, {.chip_id = 2}};
	bool kernel = vm->irqchip == SPK_IRQCHIP_KERNEL, saved = false, present = false;
	int rc;

	uint64_t at;

	if ((rc = spk_snap_get_u64(r, "clock", &at)) ||
	    (rc = spk_snap_get_bool(r, "irqchip", &saved)))
		return rc;
	if (saved != kernel)
		return spk_snap_bad(r, "irqchip", "%s, and this VM %s the in-kernel irqchip",
		                    saved ? "saved" : "not saved",
		                    kernel ? "has" : "does not have");
	for (uint32_t i = 0; i < 3; i++) {
		if ((rc = get_exact(r, chip_field[i], &chip[i].chip, sizeof(chip[i].chip), true,
		                    &present)))
			return rc;
		if (present != kernel)
			return spk_snap_bad(r, chip_field[i], "%s with irqchip %u",
			                    present ? "present" : "missing", kernel);
	}
	if ((rc = get_exact(r, "pit", &pit, sizeof(pit), true, &present)))
		return rc;
	if (present != kernel)
		return spk_snap_bad(r, "pit", "%s with irqchip %u", present ? "present" : "missing",
		                    kernel);
	if ((rc = spk_snap_reader_done(r)) || check_only)
		return rc;
	clock.clock = at;
	for (uint32_t i = 0; kernel && i < 3; i++)
		if ((rc = spk_kvm_ioctl(spk_kvm_vm(vm)->vm_fd, KVM_SET_IRQCHIP, &chip[i])) < 0)
			return spk_snap_bad(r, chip_field[i], "KVM refused it (%s)", strerror(-rc));
	if (kernel && (rc = spk_kvm_ioctl(spk_kvm_vm(vm)->vm_fd, KVM_SET_PIT2, &pit)) < 0)
		return spk_snap_bad(r, "pit", "KVM refused it (%s)", strerror(-rc));
	if ((rc = spk_kvm_ioctl(spk_kvm_vm(vm)->vm_fd, KVM_SET_CLOCK, &clock)) < 0)
		return spk_snap_bad(r, "clock", "KVM refused it (%s)", strerror(-rc));
	return 0;
}

/* ---- the header's host facts -------------------------------------------------------- */

static const uint32_t header_caps[] = {
    KVM_CAP_IRQCHIP,
    KVM_CAP_XSAVE,
    KVM_CAP_XSAVE2,
    KVM_CAP_XCRS,
    KVM_CAP_SREGS2,
    KVM_CAP_TSC_CONTROL,
    KVM_CAP_ADJUST_CLOCK,
    KVM_CAP_VCPU_EVENTS,
    KVM_CAP_DEBUGREGS,
    KVM_CAP_MP_STATE,
    KVM_CAP_PIT2,
    KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
    KVM_CAP_X86_USER_SPACE_MSR,
};

int spk_kvm_vcpu_cpuid(struct spk_vcpu *vcpu, struct spk_snap_cpuid *out, size_t max, size_t *n)
{
	struct kvm_cpuid2 *c;
	int rc;

	c = calloc(1, sizeof(*c) + max * sizeof(struct kvm_cpuid_entry2));
	if (!c)
		return spk_fail(ENOMEM, "kvm: out of memory");
	c->nent = (uint32_t)max;
	rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_GET_CPUID2, c);
	if (rc < 0) {
		free(c);
		return spk_fail(-rc, "kvm: vCPU %u: KVM_GET_CPUID2: %s", vcpu->id, strerror(-rc));
	}
	*n = c->nent;
	for (uint32_t i = 0; i < c->nent; i++)
		out[i] = (struct spk_snap_cpuid){c->entries[i].function, c->entries[i].index,
		                                 c->entries[i].eax,      c->entries[i].ebx,
		                                 c->entries[i].ecx,      c->entries[i].edx};
	free(c);
	return 0;
}

int spk_kvm_header_fill(struct spk_vcpu *vcpu, struct spk_snap_header *h)
{
	size_t n = 0;
	int rc = spk_kvm_vcpu_cpuid(vcpu, h->cpuid, SPK_SNAP_MAX_CPUID, &n);

	if (rc < 0)
		return rc;
	h->n_cpuid = (uint32_t)n;
	h->n_caps = 0;
	for (size_t i = 0; i < SPK_ARRAY_SIZE(header_caps); i++)
		h->caps[h->n_caps++] = (struct spk_snap_cap){
		    header_caps[i], (uint32_t)vm_cap(vcpu->vm, header_caps[i])};
	return 0;
}
