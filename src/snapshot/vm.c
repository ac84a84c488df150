// SPDX-License-Identifier: Apache-2.0
/*
 * Whole VMs: save a paused VM to a state file and a memory file, restore
 * them into a VM built the same way (in this process or another), and
 * reset a VM in place to a snapshot kept in memory.
 *
 * A state file holds, in this order: the HEADER (host, the CPUID the guest
 * saw, KVM's capabilities), the VM section (clock, in-kernel irqchip), one
 * VCPU section per vCPU (field "id" first, then the backend's fields), the
 * MEMORY section, the devices, END. Restore checks the whole file and the
 * host (CPUID) before it changes anything, then loads memory, the VM, the
 * vCPUs and the devices in that order (the devices' checks read the rings
 * in guest memory; the irqchip must be in place before the LAPICs).
 *
 * The vCPU and VM fields are the backend's (src/kvm/state.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sparkler/snapshot.h>
#include <sparkler/vcpu.h>
#include <sparkler/vm.h>

#include "core/backend.h"
#include "core/internal.h"
#include "kvm/state.h"
#include "snapshot/snap_internal.h"

/* vm is a live VM (spk_vm_mem checks it); else false with a message. */
static bool vm_live(struct spk_vm *vm, const char *what)
{
	if (!vm) {
		spk_fail(EINVAL, "snapshot: cannot %s: the VM is NULL", what);
		return false;
	}
	return spk_vm_mem(vm) != NULL;
}

/* Every vCPU of vm that exists, none RUNNING; the first one in *first. */
static int check_stopped(struct spk_vm *vm, struct spk_vcpu **first, const char *what)
{
	uint32_t max = spk_vm_max_vcpus(vm);

	*first = NULL;
	for (uint32_t i = 0; i < max; i++) {
		struct spk_vcpu *v = spk_vm_vcpu(vm, i);
		enum spk_vcpu_state st;

		if (!v)
			continue;
		st = spk_vcpu_state(v);
		if (st == SPK_VCPU_RUNNING)
			return spk_fail(EBUSY,
			                "snapshot: cannot %s: vCPU %u is running (pause the VM)",
			                what, i);
		if (st == SPK_VCPU_INVALID)
			return spk_fail(EINVAL, "snapshot: cannot %s: vCPU %u is INVALID", what, i);
		if (!*first)
			*first = v;
	}
	if (!*first)
		return spk_fail(EINVAL, "snapshot: cannot %s: the VM has no vCPU", what);
	return 0;
}

/* HEADER, VM and VCPU sections into w. */
static int save_cpu_state(struct spk_vm *vm, struct spk_vcpu *first, struct spk_snap_writer *w)
{
	struct spk_snap_header *h = calloc(1, sizeof(*h));
	uint32_t max = spk_vm_max_vcpus(vm);
	int rc;

	if (!h)
		return spk_fail(ENOMEM, "snapshot: out of memory");
	spk_snap_header_host(h);
	rc = spk_kvm_header_fill(first, h);
	if (rc == 0)
		rc = spk_snap_put_header(w, h);
	free(h);
	if (rc < 0)
		return rc;
	if ((rc = spk_snap_section_begin(w, SPK_SNAP_SEC_VM)) < 0 ||
	    (rc = spk_kvm_vm_state_save(vm, w)) < 0 || (rc = spk_snap_section_end(w)) < 0)
		return rc;
	for (uint32_t i = 0; i < max; i++) {
		struct spk_vcpu *v = spk_vm_vcpu(vm, i);

		if (!v)
			continue;
		if ((rc = spk_snap_section_begin(w, SPK_SNAP_SEC_VCPU)) < 0 ||
		    (rc = spk_snap_put_u32(w, "id", i)) < 0 ||
		    (rc = spk_kvm_vcpu_state_save(v, w)) < 0 || (rc = spk_snap_section_end(w)) < 0)
			return rc;
	}
	return 0;
}

static int save_to(struct spk_vm *vm, const struct spk_snap_devices *devs,
                   struct spk_snap_writer *w, const char *mem_path, unsigned flags)
{
	struct spk_snap_dirty *dirty = NULL;
	struct spk_vcpu *first;
	unsigned mflags = (flags & SPK_SNAP_FSYNC) ? SPK_SNAP_MEM_FSYNC : 0;
	int rc;

	if ((rc = check_stopped(vm, &first, "take a snapshot")) < 0)
		return rc;
	/* devices first: a disk request still in flight completes now, so its
	 * used-ring entry is in the memory saved below and its interrupt in
	 * the LAPIC (and in the dirty log) */
	if (devs && (rc = spk_snap_devices_quiesce(devs)) < 0)
		return rc;
	if ((flags & SPK_SNAP_DIFF) || spk_vm_dirty_log_on(vm)) {
		/* the log is fetched (and cleared) by every snapshot: a diff holds
		 * the pages written since the previous one */
		if ((rc = spk_snap_dirty_new(spk_vm_mem(vm), &dirty)) < 0 ||
		    (rc = spk_vm_dirty_log_fetch(vm, dirty)) < 0)
			goto out;
	}
	if ((rc = save_cpu_state(vm, first, w)) < 0)
		goto out;
	if (flags & SPK_SNAP_DIFF)
		rc = spk_snap_mem_save_diff(w, spk_vm_mem(vm), dirty, mem_path, mflags);
	else
		rc = spk_snap_mem_save(w, spk_vm_mem(vm), mem_path, mflags);
	if (rc == 0 && devs)
		rc = spk_snap_devices_save(devs, w);
out:
	spk_snap_dirty_free(dirty);
	return rc;
}

int spk_vm_snapshot(struct spk_vm *vm, const struct spk_snap_devices *devs, const char *state_path,
                    const char *mem_path, unsigned flags)
{
	struct spk_snap_writer *w;
	int rc;

	if (!vm_live(vm, "take a snapshot"))
		return -EINVAL;
	if (!state_path || !mem_path)
		return spk_fail(EINVAL,
		                "snapshot: a snapshot needs a state path and a memory path");
	if (flags & ~(unsigned)(SPK_SNAP_DIFF | SPK_SNAP_FSYNC))
		return spk_fail(EINVAL, "snapshot: unknown flags 0x%x", flags);
	if ((flags & SPK_SNAP_DIFF) && !spk_vm_dirty_log_on(vm))
		return spk_fail(EINVAL, "snapshot: a diff snapshot needs the dirty log on "
		                        "(spk_vm_dirty_log_start, or track_dirty_pages)");
	if ((rc = spk_snap_writer_new(&w)) < 0)
		return rc;
	rc = save_to(vm, devs, w, mem_path, flags);
	if (rc == 0)
		rc = spk_snap_writer_save(w, state_path, flags & SPK_SNAP_FSYNC);
	spk_snap_writer_free(w);
	return rc;
}

/* ---- restore ------------------------------------------------------------------------ */

/*
 * The host can run the guest the header describes: every feature bit the
 * guest saw is in what the restoring VM's vCPU sees (KVM_GET_CPUID2, the
 * VM's own CPUID policy applied: not KVM_GET_SUPPORTED_CPUID, which on PVM
 * lacks host bits its guests still see).
 */
static int check_host(struct spk_vcpu *first, const struct spk_snap_file *f)
{
	struct spk_snap_cpuid *host = calloc(SPK_SNAP_MAX_CPUID, sizeof(*host));
	size_t n = 0;
	int rc;

	if (!host)
		return spk_fail(ENOMEM, "snapshot: out of memory");
	rc = spk_kvm_vcpu_cpuid(first, host, SPK_SNAP_MAX_CPUID, &n);
	if (rc == 0)
		rc = spk_snap_check_cpuid(spk_snap_file_header(f), host, n);
	free(host);
	return rc;
}

/* Section index of the VM section and of vCPU id's section; -ENOENT. */
static int find_vcpu_section(const struct spk_snap_file *f, uint32_t id, size_t *at)
{
	size_t n = spk_snap_file_sections(f);

	for (size_t i = 0; i < n; i++) {
		struct spk_snap_section_info info;
		struct spk_snap_reader *r;
		uint32_t got = UINT32_MAX;

		if (spk_snap_file_section(f, i, &info) < 0 || info.type != SPK_SNAP_SEC_VCPU)
			continue;
		if (spk_snap_reader_new(f, i, &r) < 0)
			return -ENOMEM;
		int rc = spk_snap_get_u32(r, "id", &got);
		spk_snap_reader_free(r);
		if (rc < 0)
			return rc;
		if (got == id) {
			*at = i;
			return 0;
		}
	}
	return -ENOENT;
}

static int find_section(const struct spk_snap_file *f, uint32_t type, size_t *at)
{
	size_t n = spk_snap_file_sections(f);

	for (size_t i = 0; i < n; i++) {
		struct spk_snap_section_info info;

		if (spk_snap_file_section(f, i, &info) == 0 && info.type == type) {
			*at = i;
			return 0;
		}
	}
	return -ENOENT;
}

/* The file's vCPU sections and the VM's vCPUs are the same ids. */
static int match_vcpus(struct spk_vm *vm, const struct spk_snap_file *f)
{
	size_t n = spk_snap_file_sections(f), at;
	uint32_t max = spk_vm_max_vcpus(vm), in_file = 0, in_vm = 0;
	int rc;

	for (size_t i = 0; i < n; i++) {
		struct spk_snap_section_info info;

		if (spk_snap_file_section(f, i, &info) == 0 && info.type == SPK_SNAP_SEC_VCPU)
			in_file++;
	}
	for (uint32_t id = 0; id < max; id++) {
		if (!spk_vm_vcpu(vm, id))
			continue;
		in_vm++;
		rc = find_vcpu_section(f, id, &at);
		if (rc == -ENOENT)
			return spk_fail(
			    EINVAL,
			    "snapshot: vcpu: the VM has vCPU %u, the file no section for it", id);
		if (rc < 0)
			return rc;
	}
	if (in_file != in_vm)
		return spk_fail(EINVAL,
		                "snapshot: vcpu: the file has %u vCPU sections, the VM %u vCPUs "
		                "(field 'id')",
		                in_file, in_vm);
	return 0;
}

static int load_vm_section(struct spk_vm *vm, const struct spk_snap_file *f, bool check_only)
{
	struct spk_snap_reader *r;
	size_t at;
	int rc;

	if (find_section(f, SPK_SNAP_SEC_VM, &at) < 0)
		return spk_fail(EINVAL, "snapshot: the file has no vm section");
	if ((rc = spk_snap_reader_new(f, at, &r)) < 0)
		return rc;
	rc = spk_kvm_vm_state_load(vm, r, check_only);
	spk_snap_reader_free(r);
	return rc;
}

/* Every vCPU's section into it (check_only: read and check them all). */
static int load_vcpus(struct spk_vm *vm, const struct spk_snap_file *f, bool check_only)
{
	uint32_t max = spk_vm_max_vcpus(vm);

	for (uint32_t id = 0; id < max; id++) {
		struct spk_vcpu *v = spk_vm_vcpu(vm, id);
		struct spk_snap_reader *r;
		uint32_t got;
		size_t at;
		int rc;

		if (!v)
			continue;
		if ((rc = find_vcpu_section(f, id, &at)) < 0 ||
		    (rc = spk_snap_reader_new(f, at, &r)) < 0)
			return rc;
		rc = spk_snap_get_u32(r, "id", &got);
		if (rc == 0)
			rc = spk_kvm_vcpu_state_load(v, r, check_only);
		spk_snap_reader_free(r);
		if (rc == 0 && !check_only && spk_vcpu_state(v) != SPK_VCPU_READY)
			rc = spk_vcpu_ready(v);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int open_mem(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return spk_fail(errno, "snapshot: memory file %s: %s", path, strerror(errno));
	return fd;
}

/* The pages of the diff file the state names, over the base already in place. */
static int apply_diff_file(struct spk_vm *vm, const struct spk_snap_mem_layout *l)
{
	int dfd = open_mem(l->file), rc;

	if (dfd < 0)
		return dfd;
	rc = spk_snap_mem_apply_diff(l, dfd, spk_vm_mem(vm));
	close(dfd);
	return rc;
}

/* Guest memory from the file(s): a full file, or a base and the diff the state names. */
static int restore_memory(struct spk_vm *vm, const struct spk_snap_mem_layout *l,
                          const char *mem_path)
{
	struct spk_snap_mem_layout base = {0};
	int fd, rc;

	if (!l->diff) {
		if ((fd = open_mem(mem_path ? mem_path : l->file)) < 0)
			return fd;
		rc = spk_snap_mem_restore(l, fd, spk_vm_mem(vm));
		close(fd);
		return rc;
	}
	if (!mem_path)
		return spk_fail(EINVAL,
		                "snapshot: memory: %s is a diff (field 'diff'): give the base "
		                "snapshot's full memory file",
		                l->file);
	/* the base: the diff's layout without its bitmap, over the full file */
	base = *l;
	base.diff = false;
	base.dirty = NULL;
	if ((fd = open_mem(mem_path)) < 0)
		return fd;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		rc = spk_fail(errno, "snapshot: memory file %s: %s", mem_path, strerror(errno));
		close(fd);
		return rc;
	}
	base.file_size = (uint64_t)st.st_size;
	rc = spk_snap_mem_restore(&base, fd, spk_vm_mem(vm));
	close(fd);
	return rc < 0 ? rc : apply_diff_file(vm, l);
}

/* The options make sense together; NULL is the File backend. */
static int check_opts(const struct spk_snap_restore_opts *o)
{
	if (!o)
		return 0;
	if (o->backend != SPK_SNAP_BACKEND_FILE && o->backend != SPK_SNAP_BACKEND_UFFD &&
	    o->backend != SPK_SNAP_BACKEND_UFFD_EXTERNAL)
		return spk_fail(EINVAL, "snapshot: unknown memory backend %d", (int)o->backend);
	if ((o->backend == SPK_SNAP_BACKEND_UFFD_EXTERNAL) != (o->uffd_socket != NULL))
		return spk_fail(EINVAL, "snapshot: a Uffd handler socket goes with the external "
		                        "userfaultfd backend, and only with it");
	if ((o->prefetch || o->record) && o->backend != SPK_SNAP_BACKEND_UFFD)
		return spk_fail(EINVAL, "snapshot: prefetch and record need the library's "
		                        "userfaultfd backend (SPK_SNAP_BACKEND_UFFD)");
	return 0;
}

/*
 * Everything a userfaultfd restore needs before memory changes: the
 * descriptor, the memory file (the full one, or a diff's base), the
 * working set, the handler's connection.
 */
static int uffd_prepare(struct spk_vm *vm, const struct spk_snap_mem_layout *l,
                        const char *mem_path, const struct spk_snap_restore_opts *o,
                        struct spk_snap_uffd **u)
{
	const struct spk_mem_region *r[SPK_MEM_MAX_REGIONS];
	struct spk_snap_mem_layout base = *l;
	struct stat st;
	int fd = -1, rc;

	base.diff = false;
	base.dirty = NULL;
	if (o->backend == SPK_SNAP_BACKEND_UFFD_EXTERNAL) {
		if (l->diff)
			return spk_fail(
			    EINVAL,
			    "snapshot: memory: %s is a diff (field 'diff'): an external "
			    "Uffd handler serves one full memory file",
			    l->file);
	} else {
		if (l->diff && !mem_path)
			return spk_fail(EINVAL,
			                "snapshot: memory: %s is a diff (field 'diff'): give the "
			                "base snapshot's full memory file",
			                l->file);
		if ((fd = open_mem(mem_path ? mem_path : l->file)) < 0)
			return fd;
		if (fstat(fd, &st) < 0) {
			rc = spk_fail(errno, "snapshot: memory file: %s", strerror(errno));
			close(fd);
			return rc;
		}
		if (l->diff)
			base.file_size = (uint64_t)st.st_size;
	}
	if ((rc = spk_snap_mem_match(&base, fd, spk_vm_mem(vm), r)) < 0) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	return spk_snap_uffd_new(&base, fd, o, u); /* owns fd */
}

/* Guest memory through userfaultfd; a diff's pages then copied over its base. */
static int uffd_memory(struct spk_vm *vm, const struct spk_snap_mem_layout *l,
                       struct spk_snap_uffd *u)
{
	int rc;

	if ((rc = spk_snap_uffd_start(u, vm)) < 0 || !l->diff)
		return rc;
	return apply_diff_file(vm, l);
}

int spk_vm_restore_opts(struct spk_vm *vm, const struct spk_snap_devices *devs,
                        const char *state_path, const char *mem_path,
                        const struct spk_snap_restore_opts *opts)
{
	struct spk_snap_mem_layout l = {0};
	struct spk_snap_file *f = NULL;
	struct spk_snap_uffd *u = NULL;
	struct spk_vcpu *first;
	bool uffd = opts && opts->backend != SPK_SNAP_BACKEND_FILE;
	int rc;

	if (!vm_live(vm, "restore a snapshot"))
		return -EINVAL;
	if (!state_path)
		return spk_fail(EINVAL, "snapshot: restore needs a state file");
	if ((rc = check_opts(opts)) < 0 ||
	    (rc = check_stopped(vm, &first, "restore a snapshot")) < 0)
		return rc;
	/* everything checked before anything changes */
	if ((rc = spk_snap_open(state_path, &f)) < 0 || (rc = check_host(first, f)) < 0 ||
	    (rc = match_vcpus(vm, f)) < 0 || (rc = spk_snap_mem_layout(f, &l)) < 0 ||
	    (rc = load_vm_section(vm, f, true)) < 0 || (rc = load_vcpus(vm, f, true)) < 0 ||
	    (uffd && (rc = uffd_prepare(vm, &l, mem_path, opts, &u)) < 0))
		goto out;
	if (uffd) {
		rc = uffd_memory(vm, &l, u); /* u is the VM's, or freed */
	} else {
		spk_snap_uffd_detach(vm); /* a handler of an earlier restore */
		rc = restore_memory(vm, &l, mem_path);
	}
	if (rc < 0 || (rc = load_vm_section(vm, f, false)) < 0 ||
	    (rc = load_vcpus(vm, f, false)) < 0)
		goto out;
	if (devs)
		rc = spk_snap_devices_load(devs, f);
	if (rc == 0 && uffd)
		rc = spk_snap_uffd_loaded(vm);
out:
	spk_snap_mem_layout_fini(&l);
	spk_snap_close(f);
	return rc;
}

int spk_vm_restore(struct spk_vm *vm, const struct spk_snap_devices *devs, const char *state_path,
                   const char *mem_path)
{
	return spk_vm_restore_opts(vm, devs, state_path, mem_path, NULL);
}

/* ---- in-place reset ------------------------------------------------------------------ */

struct spk_snap_reset {
	struct spk_vm *vm;
	const struct spk_snap_devices *devs;
	struct spk_snap_file *f; /* the state, kept in memory */
	struct spk_snap_mem_layout l;
	int mem_fd; /* the full memory file (a memfd unless a path was given) */
	struct spk_snap_dirty *dirty;
};

void spk_snap_reset_free(struct spk_snap_reset *s)
{
	if (!s)
		return;
	if (s->mem_fd >= 0)
		close(s->mem_fd);
	spk_snap_mem_layout_fini(&s->l);
	spk_snap_close(s->f);
	spk_snap_dirty_free(s->dirty);
	free(s);
}

int spk_snap_reset_new(struct spk_vm *vm, const struct spk_snap_devices *devs, const char *mem_path,
                       struct spk_snap_reset **out)
{
	struct spk_snap_writer *w = NULL;
	struct spk_snap_reset *s;
	char path[64];
	const void *buf;
	size_t len;
	int rc;

	if (!out)
		return spk_fail(EINVAL, "snapshot: reset point without an out pointer");
	*out = NULL;
	if (!vm_live(vm, "make a reset point"))
		return -EINVAL;
	if (!(s = calloc(1, sizeof(*s))))
		return spk_fail(ENOMEM, "snapshot: out of memory");
	s->vm = vm;
	s->devs = devs;
	s->mem_fd = -1;
	if (!mem_path) {
		int mfd = memfd_create("spk-reset-mem", MFD_CLOEXEC);

		if (mfd < 0) {
			rc = spk_fail(errno, "snapshot: memfd_create: %s", strerror(errno));
			goto err;
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
		mem_path = path;
		s->mem_fd = mfd;
	}
	if ((rc = spk_snap_writer_new(&w)) < 0)
		goto err;
	if ((rc = save_to(vm, devs, w, mem_path, 0)) < 0 ||
	    (rc = spk_snap_writer_finish(w, &buf, &len)) < 0 ||
	    (rc = spk_snap_open_buf(buf, len, &s->f)) < 0 ||
	    (rc = spk_snap_mem_layout(s->f, &s->l)) < 0)
		goto err;
	if (s->mem_fd < 0 && (s->mem_fd = open_mem(mem_path)) < 0) {
		rc = s->mem_fd;
		goto err;
	}
	/* the log counts from the snapshot: save_to fetched (cleared) a log that
	 * was on; otherwise it starts now, the VM still paused */
	if ((rc = spk_snap_dirty_new(spk_vm_mem(vm), &s->dirty)) < 0 ||
	    (!spk_vm_dirty_log_on(vm) && (rc = spk_vm_dirty_log_start(vm)) < 0))
		goto err;
	spk_snap_writer_free(w);
	*out = s;
	return 0;
err:
	spk_snap_writer_free(w);
	spk_snap_reset_free(s);
	return rc;
}

static void dirty_clear(struct spk_snap_dirty *d)
{
	for (size_t k = 0; k < d->n_regions; k++)
		memset(d->region[k].bits, 0, (d->region[k].pages / 64 + 1) * sizeof(uint64_t));
}

int spk_snap_reset_apply(struct spk_snap_reset *s)
{
	struct spk_vcpu *first;
	int rc;

	if (!s)
		return spk_fail(EINVAL, "snapshot: reset without a reset point");
	if (!vm_live(s->vm, "reset in place"))
		return -EINVAL;
	if ((rc = check_stopped(s->vm, &first, "reset in place")) < 0)
		return rc;
	/* every vCPU's last exit finished first: KVM's completion of an `ins`
	 * writes guest memory, which must come before the copy-back */
	for (uint32_t i = 0; i < spk_vm_max_vcpus(s->vm); i++)
		if (spk_vm_vcpu(s->vm, i) && (rc = spk_vcpu_flush_exit(spk_vm_vcpu(s->vm, i))) < 0)
			return rc;
	dirty_clear(s->dirty);
	if ((rc = spk_vm_dirty_log_fetch(s->vm, s->dirty)) < 0 ||
	    (rc = spk_snap_mem_reset(&s->l, s->mem_fd, spk_vm_mem(s->vm), s->dirty)) < 0 ||
	    (rc = load_vm_section(s->vm, s->f, false)) < 0 ||
	    (rc = load_vcpus(s->vm, s->f, false)) < 0)
		return rc;
	if (s->devs)
		rc = spk_snap_devices_load(s->devs, s->f);
	return rc;
}

uint64_t spk_snap_reset_pages(const struct spk_snap_reset *s)
{
	return s ? spk_snap_dirty_count(s->dirty) : 0;
}
