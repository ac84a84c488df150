/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Snapshots: the file format, the device state interface and guest memory
 * files. docs/snapshots.md describes the format byte by byte.
 *
 * A snapshot is two files: the state file (this format: a header, then
 * sections, each with a type, a length and a CRC32) and the memory file
 * (the guest's RAM regions one after another, sparse: pages that were
 * never written are holes).
 *
 * Every section's payload is a list of named, typed fields, so a file
 * describes itself (`sparkler snapshot-info FILE` prints it) and every
 * error names the section and the field. A file is untrusted input: it
 * is read whole, and its structure (lengths, CRCs, section order, field
 * encoding, the header) is checked by spk_snap_open*() before any of it
 * is handed to a device. Devices then check every value they read and
 * apply nothing until all of their section has been read and checked.
 *
 * The contract (the library's rules: vcpu.h): every function here refuses
 * NULL handles and pointers with a message in spk_last_error(): -EINVAL,
 * or the neutral value it names (NULL, 0, nothing done); the frees, close
 * and spk_snap_mem_layout_fini take NULL. A writer, a reader, a file and
 * a dirty bitmap are one thread's at a time; none is signal-safe. Snapshots are
 * taken with the VM paused and loaded before it first runs. Each object
 * is the caller's, from its _new/_open to its _free/_close.
 *
 * arm64 (the kvm-arm64 backend, arm64.h): no snapshots yet. spk_vm_snapshot,
 * spk_vm_restore, spk_snap_reset_new and the dirty log refuse with -ENOTSUP
 * and a message saying so; the file format functions work on any host.
 */
#ifndef SPARKLER_SNAPSHOT_H
#define SPARKLER_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <sparkler/mem.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPK_SNAP_MAGIC          "SPKSNAP\n" /* 8 bytes, no NUL */
#define SPK_SNAP_FORMAT_VERSION 1
/* Limits a reader enforces (a state file holds no guest memory). */
#define SPK_SNAP_MAX_FILE     (64u << 20)
#define SPK_SNAP_MAX_SECTIONS 4096
#define SPK_SNAP_NAME_MAX     64 /* field, device and kind names, with the NUL */
#define SPK_SNAP_STR_MAX      4096

/*
 * Section types, in the order they must appear. A type marked "once"
 * appears at most once; the others may repeat, one after another. A type
 * this version does not know is refused (a newer file).
 */
enum spk_snap_type {
	SPK_SNAP_SEC_HEADER = 1,  /* once, first: who wrote the file, on what host */
	SPK_SNAP_SEC_VM = 2,      /* once: VM-wide state (the backend's: clock, irqchip) */
	SPK_SNAP_SEC_VCPU = 3,    /* one per vCPU (the backend's) */
	SPK_SNAP_SEC_MEMORY = 4,  /* once: the memory file and its regions */
	SPK_SNAP_SEC_DEVICE = 5,  /* one per device, spk_snap_save_device() */
	SPK_SNAP_SEC_END = 0x7fff /* once, last: the number of sections before it */
};

/* Field types. */
enum spk_snap_ftype {
	SPK_SNAP_U8 = 1,
	SPK_SNAP_U16 = 2,
	SPK_SNAP_U32 = 3,
	SPK_SNAP_U64 = 4,
	SPK_SNAP_BYTES = 5, /* up to 2^32 - 1 bytes */
	SPK_SNAP_STR = 6,   /* printable ASCII, up to SPK_SNAP_STR_MAX - 1 bytes */
};

const char *spk_snap_type_name(uint32_t type);  /* "device", or "unknown" */
const char *spk_snap_ftype_name(uint32_t type); /* "u32", or "unknown" */

/* One CPUID leaf as the guest saw it. */
struct spk_snap_cpuid {
	uint32_t function, index, eax, ebx, ecx, edx;
};

/* One KVM capability and what KVM_CHECK_EXTENSION answered. */
struct spk_snap_cap {
	uint32_t cap;
	uint32_t value;
};

#define SPK_SNAP_MAX_CPUID 256
#define SPK_SNAP_MAX_CAPS  256

/* The HEADER section, as read (and as written by spk_snap_put_header). */
struct spk_snap_header {
	uint32_t format_version;   /* of the file; filled by the reader */
	char sparkler_version[32]; /* "0.1.0" */
	char cpu_vendor[16];       /* "GenuineIntel" */
	uint32_t cpu_family, cpu_model, cpu_stepping;
	char host_kernel[128]; /* uname -r */
	uint64_t created;      /* Unix time */
	uint32_t n_cpuid;      /* the guest's CPUID (the backend fills it) */
	struct spk_snap_cpuid cpuid[SPK_SNAP_MAX_CPUID];
	uint32_t n_caps; /* KVM capabilities (the backend fills them) */
	struct spk_snap_cap caps[SPK_SNAP_MAX_CAPS];
};

/*
 * Can this host run the guest a header describes? host: the CPUID this
 * host's KVM supports (KVM_GET_SUPPORTED_CPUID: the backend's to get), n
 * entries. The CPU vendor must be the same, and every feature bit the guest
 * saw (leaves 0x1 ECX/EDX, 0x7.0 EBX/ECX/EDX, 0x7.1 EAX, 0xd.1 EAX,
 * 0x80000001 ECX/EDX, 0x80000008 EBX; bits that reflect the guest's own
 * control registers, OSXSAVE and OSPKE, and the hypervisor bit excepted)
 * must be supported. -EINVAL and one line naming the leaf, register and
 * bit: "snapshot: field 'cpuid': leaf 0x7.0 EBX bit 5 ..." A header with no
 * CPUID (n_cpuid 0) is checked for the vendor only.
 */
int spk_snap_check_cpuid(const struct spk_snap_header *h, const struct spk_snap_cpuid *host,
                         size_t n);

/* Fill sparkler_version, the host CPU (the CPUID instruction), the host
 * kernel (uname) and created; n_cpuid and n_caps are set to 0. */
void spk_snap_header_host(struct spk_snap_header *h);

/* ---- writing ---------------------------------------------------------------------- */

struct spk_snap_writer;

int spk_snap_writer_new(struct spk_snap_writer **out);
void spk_snap_writer_free(struct spk_snap_writer *w);

/*
 * Errors are sticky: the first failure (a bad name, a string too long,
 * a section not open, out of memory) is kept and every later call returns
 * it, so save functions may check only their last call. Field names are
 * 1..63 bytes of [a-z0-9_.].
 */
int spk_snap_writer_error(const struct spk_snap_writer *w);
/* The HEADER section; must be the first section written. */
int spk_snap_put_header(struct spk_snap_writer *w, const struct spk_snap_header *h);
/* Open and close a section; types must come in the order of enum
 * spk_snap_type (END is added by spk_snap_writer_finish). */
int spk_snap_section_begin(struct spk_snap_writer *w, uint32_t type);
int spk_snap_section_end(struct spk_snap_writer *w);
int spk_snap_put_u8(struct spk_snap_writer *w, const char *name, uint8_t v);
int spk_snap_put_u16(struct spk_snap_writer *w, const char *name, uint16_t v);
int spk_snap_put_u32(struct spk_snap_writer *w, const char *name, uint32_t v);
int spk_snap_put_u64(struct spk_snap_writer *w, const char *name, uint64_t v);
int spk_snap_put_bytes(struct spk_snap_writer *w, const char *name, const void *p, size_t len);
int spk_snap_put_str(struct spk_snap_writer *w, const char *name, const char *s);
/*
 * Close the file (the END section) and give its bytes (owned by w, valid
 * until it is freed). After this nothing more may be written.
 */
int spk_snap_writer_finish(struct spk_snap_writer *w, const void **buf, size_t *len);
/* finish, then write path (created 0600 or truncated); fsync it and its
 * directory when do_fsync. */
int spk_snap_writer_save(struct spk_snap_writer *w, const char *path, bool do_fsync);

/* ---- reading ---------------------------------------------------------------------- */

struct spk_snap_file;

/*
 * Parse and check a whole state file: magic, format version (at most
 * SPK_SNAP_FORMAT_VERSION), every section's header, length (no overflow,
 * inside the file), CRC32, type (known), order, the field encoding of
 * every payload, the HEADER's fields and the END section's count.
 * Refused with -EINVAL (-EFBIG beyond SPK_SNAP_MAX_FILE) and one line in
 * spk_last_error() naming the section (index, type, offset) and field.
 * spk_snap_open_buf copies buf.
 */
int spk_snap_open_buf(const void *buf, size_t len, struct spk_snap_file **out);
int spk_snap_open(const char *path, struct spk_snap_file **out);
void spk_snap_close(struct spk_snap_file *f);

/* The file's header, owned by f. NULL f: NULL. */
const struct spk_snap_header *spk_snap_file_header(const struct spk_snap_file *f);

struct spk_snap_section_info {
	uint32_t type;
	uint64_t offset; /* of the section header in the file */
	uint64_t length; /* of the payload */
	uint32_t crc;
	uint32_t fields;
	/* DEVICE sections: the device's kind ("uart8250") and name ("com1"); else "" */
	char kind[SPK_SNAP_NAME_MAX];
	char name[SPK_SNAP_NAME_MAX];
};
/* How many sections f has (NULL f: 0). */
size_t spk_snap_file_sections(const struct spk_snap_file *f);
int spk_snap_file_section(const struct spk_snap_file *f, size_t i,
                          struct spk_snap_section_info *out);

/* Print the header and every section with its fields (snapshot-info). */
void spk_snap_file_dump(const struct spk_snap_file *f, FILE *out, bool fields);

/* A cursor over one section's fields, read in the order they were written. */
struct spk_snap_reader;

int spk_snap_reader_new(const struct spk_snap_file *f, size_t section,
                        struct spk_snap_reader **out);
void spk_snap_reader_free(struct spk_snap_reader *r);

/*
 * Read the next field: it must have this name and type, else -EINVAL
 * naming the section, the field and what was found. get_bytes wants
 * exactly len bytes; get_blob gives a pointer into the file (valid while
 * it is open) and the length; get_str copies at most max - 1 bytes and
 * the NUL (-EINVAL if longer).
 */
int spk_snap_get_u8(struct spk_snap_reader *r, const char *name, uint8_t *v);
int spk_snap_get_u16(struct spk_snap_reader *r, const char *name, uint16_t *v);
int spk_snap_get_u32(struct spk_snap_reader *r, const char *name, uint32_t *v);
int spk_snap_get_u64(struct spk_snap_reader *r, const char *name, uint64_t *v);
int spk_snap_get_bytes(struct spk_snap_reader *r, const char *name, void *buf, size_t len);
int spk_snap_get_blob(struct spk_snap_reader *r, const char *name, const void **p, size_t *len);
int spk_snap_get_str(struct spk_snap_reader *r, const char *name, char *buf, size_t max);
/* get_u* with a check that the value is at most max (a bool: max 1). */
int spk_snap_get_max(struct spk_snap_reader *r, const char *name, uint64_t max, uint64_t *v);
/* The same into a narrower variable. */
int spk_snap_get_u8_max(struct spk_snap_reader *r, const char *name, uint8_t max, uint8_t *v);
int spk_snap_get_u16_max(struct spk_snap_reader *r, const char *name, uint16_t max, uint16_t *v);
int spk_snap_get_u32_max(struct spk_snap_reader *r, const char *name, uint32_t max, uint32_t *v);
int spk_snap_get_bool(struct spk_snap_reader *r, const char *name, bool *v);
/* A number with no bits outside mask. */
int spk_snap_get_mask(struct spk_snap_reader *r, const char *name, uint64_t mask, uint64_t *v);
/* Refuse a field's value: -EINVAL and "snapshot: section N (device 'com1',
 * uart8250): field 'ier': <why>" in spk_last_error(). */
int spk_snap_bad(struct spk_snap_reader *r, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Every field read? -EINVAL naming the first one left. */
int spk_snap_reader_done(struct spk_snap_reader *r);

/* ---- device state ----------------------------------------------------------------- */

/*
 * What every device model implements, so a snapshot saves it and a
 * restore (or an in-place reset) loads it.
 *
 * save: write the device's fields (spk_snap_put_*). The device must be
 *   quiescent (the VM paused, its I/O drained): a device with work in
 *   flight refuses with -EBUSY.
 * load: read every field into a temporary, check each one (ranges, enums,
 *   sizes, addresses against guest memory), call spk_snap_reader_done(),
 *   and only then apply them. On any failure the device is unchanged.
 *   Host-side resources (files, TAPs, sockets, the host's wall clock)
 *   stay the loading device's own.
 */
struct spk_dev_state_ops {
	const char *kind; /* "uart8250": saved, and checked on load */
	uint32_t version; /* of the device's field list: checked on load */
	int (*save)(void *opaque, struct spk_snap_writer *w);
	int (*load)(void *opaque, struct spk_snap_reader *r);
};

/* A DEVICE section for the device called name (unique in a snapshot). */
int spk_snap_save_device(struct spk_snap_writer *w, const char *name,
                         const struct spk_dev_state_ops *ops, void *opaque);
/*
 * Find the DEVICE section called name, check its kind and version against
 * ops, and load it. -ENOENT if the file has no such device.
 */
int spk_snap_load_device(const struct spk_snap_file *f, const char *name,
                         const struct spk_dev_state_ops *ops, void *opaque);

/*
 * A machine's devices, for saving and loading all of them: each added once
 * with its name and ops (NULL ops are refused, so a machine cannot add a
 * device and forget its state). save writes them in the order added. load
 * first matches the file against the set, refusing (-EINVAL, one line) a
 * device section the set does not have, a device of the set the file does
 * not have, or a kind that differs, and only then loads each in order.
 * Each device's load is all or nothing; a device that refuses stops the
 * load there (the devices before it are loaded: restore into a new VM).
 */
struct spk_snap_devices;
int spk_snap_devices_new(struct spk_snap_devices **out);
void spk_snap_devices_free(struct spk_snap_devices *d);
int spk_snap_devices_add(struct spk_snap_devices *d, const char *name,
                         const struct spk_dev_state_ops *ops, void *opaque);
int spk_snap_devices_save(const struct spk_snap_devices *d, struct spk_snap_writer *w);
/*
 * A device that has work in flight (a disk's requests) also gives a
 * quiesce function: finish that work now. spk_vm_snapshot quiesces every
 * device first, before it saves the vCPUs and memory, so what the
 * completions write (used rings in guest memory, interrupts in the LAPIC)
 * is in the snapshot. name: a device added before (-ENOENT otherwise);
 * one quiesce per device. spk_snap_devices_quiesce calls them in order
 * (0, or the first -errno).
 */
int spk_snap_devices_add_quiesce(struct spk_snap_devices *d, const char *name,
                                 int (*quiesce)(void *opaque), void *opaque);
int spk_snap_devices_quiesce(const struct spk_snap_devices *d);
int spk_snap_devices_load(const struct spk_snap_devices *d, const struct spk_snap_file *f);

/* ---- guest memory files ----------------------------------------------------------- */

enum {
	SPK_SNAP_MEM_FSYNC = 1u << 0, /* fsync the memory file before returning */
};

/*
 * Write every populated region of mem (RAM and READONLY) to path, one
 * after another at page-aligned offsets; all-zero pages are left as holes
 * (the file is sparse). Adds the MEMORY section (the file's name as
 * given, its size, and per region gpa, size, type, offset, name) to w.
 */
int spk_snap_mem_save(struct spk_snap_writer *w, const struct spk_mem *mem, const char *path,
                      unsigned flags);

/*
 * A dirty-page set: one bit per 4 KiB page of each region of a memory
 * layout, in region order. Filled from KVM's dirty log
 * (spk_vm_dirty_log_fetch, below) or by a caller that knows.
 */
struct spk_snap_dirty {
	size_t n_regions;
	struct {
		uint64_t gpa, pages;
		uint64_t *bits;
	} region[SPK_MEM_MAX_REGIONS];
};
int spk_snap_dirty_new(const struct spk_mem *mem, struct spk_snap_dirty **out);
void spk_snap_dirty_free(struct spk_snap_dirty *d);
/* Mark [gpa, gpa + len) dirty; -EINVAL outside every region. */
int spk_snap_dirty_mark(struct spk_snap_dirty *d, uint64_t gpa, uint64_t len);
/* Pages marked dirty (NULL d: 0). */
uint64_t spk_snap_dirty_count(const struct spk_snap_dirty *d);

/*
 * KVM's dirty log: which pages of a VM's memory were written, for diff
 * snapshots and in-place reset.
 *
 * spk_vm_dirty_log_start: record writes from now on, starting from an
 * empty set: the guest's (KVM_MEM_LOG_DIRTY_PAGES on every RAM slot, also
 * slots added or populated later while the log is on) and the monitor's
 * own (spk_mem_write, spk_mem_load, spk_mem_ptr with SPK_MEM_W, virtqueue
 * used rings, and spk_mem_mark_dirty). 0; -EINVAL (NULL or dead VM),
 * -EALREADY (already on: the set is not cleared), or KVM's refusal of a
 * slot (then the log stays off and every slot as it was).
 *
 * spk_vm_dirty_log_fetch: OR the pages written since the start or the
 * previous fetch into d, and clear them in the VM, so the next fetch
 * names only later writes. d must come from spk_snap_dirty_new() on the
 * VM's memory after its last memory change (the same populated regions,
 * in order), else -EINVAL naming the region, before anything is read.
 * The set is complete when the VM is paused and its devices quiescent
 * (what a snapshot needs); while vCPUs or device threads run, a page
 * written during the fetch is in this fetch or the next. Uses
 * KVM_CLEAR_DIRTY_LOG where KVM has KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
 * else KVM_GET_DIRTY_LOG alone. -EINVAL (NULLs, log not on), -ENOMEM, or
 * KVM's error: then every page of the regions not read yet is marked in
 * d, so no write is lost (a superset).
 *
 * spk_vm_dirty_log_stop: slots back to no logging; -EINVAL when not on.
 * Pages already recorded are dropped.
 *
 * All three are thread-safe (the VM's lock), also while vCPUs run; not
 * signal-safe. A VM starts with the log off.
 */
struct spk_vm;
struct spk_snap_dirty;
int spk_vm_dirty_log_start(struct spk_vm *vm);
int spk_vm_dirty_log_fetch(struct spk_vm *vm, struct spk_snap_dirty *d);
int spk_vm_dirty_log_stop(struct spk_vm *vm);
/* Is the log on? false also for NULL or a dead VM (with a message). */
bool spk_vm_dirty_log_on(struct spk_vm *vm);

/*
 * A diff memory file: like spk_snap_mem_save, but only the pages set in
 * dirty are written (the rest are holes); the MEMORY section says which
 * pages the file holds (a "dirty" bitmap per region) so a loader applies
 * it over its base.
 */
int spk_snap_mem_save_diff(struct spk_snap_writer *w, const struct spk_mem *mem,
                           const struct spk_snap_dirty *dirty, const char *path, unsigned flags);

/* The memory layout a state file describes (its MEMORY section). */
struct spk_snap_mem_layout {
	char file[SPK_SNAP_STR_MAX]; /* the memory file's name as saved */
	uint64_t file_size;
	bool diff; /* only the pages in dirty are in the file */
	size_t n_regions;
	struct {
		uint64_t gpa, size, offset; /* offset: in the memory file */
		enum spk_mem_type type;
		char name[SPK_SNAP_NAME_MAX];
	} region[SPK_MEM_MAX_REGIONS];
	struct spk_snap_dirty
	    *dirty; /* diff files: which pages; freed by spk_snap_mem_layout_fini */
};

/*
 * Read and check the MEMORY section: sorted regions that do not overlap,
 * page-aligned, known types, offsets and sizes inside file_size without
 * overflow, diff bitmaps of the right length. -ENOENT without one.
 */
int spk_snap_mem_layout(const struct spk_snap_file *f, struct spk_snap_mem_layout *out);
void spk_snap_mem_layout_fini(struct spk_snap_mem_layout *l);

/*
 * Restore guest memory from a full memory file open at fd (read-only is
 * enough): mem must have exactly the layout's regions (same gpa, size,
 * type: else -EINVAL naming the region), and the file exactly file_size
 * bytes. Each region's host memory is replaced, at the same address, by
 * a MAP_PRIVATE mapping of the file: pages load on first touch and the
 * guest's writes never reach the file. The KVM slots keep pointing at the
 * same addresses, so this may run after the VM's memory was added and
 * before a vCPU runs.
 */
int spk_snap_mem_restore(const struct spk_snap_mem_layout *l, int fd, const struct spk_mem *mem);

/*
 * Apply a diff memory file (layout l, at fd) over mem: copy the pages it
 * holds. The same checks as spk_snap_mem_restore.
 */
int spk_snap_mem_apply_diff(const struct spk_snap_mem_layout *l, int fd, const struct spk_mem *mem);

/*
 * In-place reset, memory part: copy the pages set in dirty back from the
 * full memory file of l at fd (holes read as zeros). With the dirty set
 * from the dirty log started at the snapshot (spk_vm_dirty_log_fetch)
 * this returns memory to the snapshot bit for bit. The copy-back is not
 * in the dirty log (it writes host memory directly).
 */
int spk_snap_mem_reset(const struct spk_snap_mem_layout *l, int fd, const struct spk_mem *mem,
                       const struct spk_snap_dirty *dirty);

/* ---- whole VMs ------------------------------------------------------------------- */

enum {
	SPK_SNAP_DIFF = 1u << 0,  /* memory: only the pages the dirty log names */
	SPK_SNAP_FSYNC = 1u << 1, /* fsync both files and their directory */
};

/*
 * Save a VM that does not run (every vCPU that exists READY, CREATED or
 * STOPPED: pause a spk_vm_run() first; -EBUSY when one is RUNNING): the
 * state file at state_path gets the HEADER (this host, the CPUID vCPU 0's
 * guest sees, KVM's capabilities), the VM section (VM clock; with the
 * in-kernel irqchip both PICs, the IOAPIC, the PIT), a VCPU section per
 * vCPU (registers, system registers, FPU/XSAVE, XCRs, the MSRs KVM lists
 * that it can read for the vCPU, LAPIC, pending events, debug registers,
 * MP state, TSC frequency; docs/snapshots.md), the MEMORY section, then
 * the devices of devs in their order (devs NULL: none), END. Guest memory
 * goes to mem_path: every page (sparse), or with SPK_SNAP_DIFF only the
 * pages the dirty log names, which must be on (-EINVAL). With the log on,
 * every snapshot fetches and clears it, so a diff holds the pages written
 * since the previous snapshot. A vCPU's last exit is finished first (no
 * guest instruction runs). Devices refuse with -EBUSY while they have
 * work in flight (virtio devices quiesce first: blk takes what the
 * driver made available and waits for its requests). Devices that take
 * input from the host on their event loop (virtio-net from the TAP,
 * vsock from its sockets, the console, a rate limiter's refill) keep
 * doing so during the call: a frame written to guest memory after the
 * memory was saved makes a file whose device state and memory disagree,
 * which the restore refuses. Stop those loops around the call
 * (spk_evloop_stop, then spk_evloop_start), as sparkler's machine does
 * for PUT /snapshot/create. -EINVAL (NULLs, flags, a VM without vCPUs),
 * -errno of a file; the files may then be partly written. Not thread-safe
 * against anything that runs or changes the VM.
 */
int spk_vm_snapshot(struct spk_vm *vm, const struct spk_snap_devices *devs, const char *state_path,
                    const char *mem_path, unsigned flags);

/*
 * Load a state file into vm, built the same way as the saved one and not
 * run yet: the same memory regions, the same vCPU ids created (CREATED or
 * READY), the same irqchip mode, devs with the same devices (NULL: the
 * file must have none... or they are not loaded: see below). Checked
 * before anything changes: the whole file (spk_snap_open), this host's
 * CPUID against the guest's (spk_snap_check_cpuid), the vCPU sections
 * against the vCPUs, the memory layout against the VM's. Then memory
 * (MAP_PRIVATE of the full file, see spk_snap_mem_restore: mem_path, or
 * NULL for the file the state names; for a diff state file mem_path is
 * its base's full memory file and the diff's pages are applied over it),
 * the VM section, every vCPU (READY after), the devices (devs NULL: not
 * loaded). -EINVAL with one line naming the section and field; a refusal
 * by KVM or a device after memory was loaded leaves the VM half restored:
 * destroy it.
 */
int spk_vm_restore(struct spk_vm *vm, const struct spk_snap_devices *devs, const char *state_path,
                   const char *mem_path);

/*
 * Restore options: where guest memory comes from.
 *
 * SPK_SNAP_BACKEND_FILE (the default, spk_vm_restore): the memory file is
 * mapped MAP_PRIVATE over guest memory (spk_snap_mem_restore).
 *
 * SPK_SNAP_BACKEND_UFFD: guest memory becomes anonymous memory registered
 * with userfaultfd, and a thread the library owns serves every first
 * touch (the guest's, KVM's, the devices') from the memory file:
 * UFFDIO_COPY of the page, UFFDIO_ZEROPAGE for a page of zeros (holes).
 * The VM owns the thread: spk_vm_destroy (or another restore) stops and
 * joins it. A page the monitor gives back (madvise DONTNEED, the balloon)
 * is zero when touched again (UFFD_EVENT_REMOVE), not the file's. With
 * prefetch, the pages of a working-set file (spk_vm_uffd_working_set_save)
 * are copied in before this returns, so before any vCPU runs. With record,
 * the thread notes every page it serves, in order, for
 * spk_vm_uffd_working_set_save. A diff state file: its base's full file
 * is served and the diff's pages copied over it.
 *
 * SPK_SNAP_BACKEND_UFFD_EXTERNAL: Firecracker's handshake. Guest memory is
 * registered the same way, then the library connects to the Unix socket
 * uffd_socket and sends, in one message, the JSON array of the regions
 * (GuestRegionUffdMapping: base_host_virt_addr, size, offset in the memory
 * file, page_size and its deprecated twin page_size_kib, both in bytes)
 * with the userfaultfd as SCM_RIGHTS. That process serves the faults
 * (events: PAGEFAULT and REMOVE); mem_path is not read. The library then
 * touches the first page of each region itself and waits for it to be
 * served, so a handler that does not take the descriptor, or exits before
 * serving (watched through a pidfd of the socket's peer, SO_PEERCRED),
 * fails the restore with -EPIPE and a line naming it, never a hang. A
 * handler that exits later leaves the vCPUs waiting on their faults (as
 * Firecracker's do): spk_vm_destroy still ends them. Diff files are
 * refused (the handler serves one file).
 *
 * Needs userfaultfd for kernel faults (KVM's): the userfaultfd(2) system
 * call where /proc/sys/vm/unprivileged_userfaultfd is 1 or the process has
 * CAP_SYS_PTRACE, else /dev/userfaultfd (read-write access). A uffd made
 * with UFFD_USER_MODE_ONLY would not see KVM's faults and is never used.
 */
enum spk_snap_mem_backend {
	SPK_SNAP_BACKEND_FILE = 0,
	SPK_SNAP_BACKEND_UFFD = 1,
	SPK_SNAP_BACKEND_UFFD_EXTERNAL = 2,
};

struct spk_snap_restore_opts {
	enum spk_snap_mem_backend backend;
	const char *uffd_socket; /* UFFD_EXTERNAL: the handler's Unix socket */
	const char *prefetch;    /* UFFD: a working-set file to copy in first (NULL: none) */
	bool record;             /* UFFD: record the pages served (the working set) */
};

/*
 * spk_vm_restore with options (NULL opts: the File backend, exactly
 * spk_vm_restore). Everything is checked first as there, and for UFFD
 * userfaultfd itself (spk_snap_uffd_check) and the working-set file, so a
 * host without userfaultfd refuses before anything changes. -EINVAL (bad
 * options, a working set of another memory file), -EPERM/-ENOSYS
 * (userfaultfd unusable, saying why), -ENOENT/-ECONNREFUSED (no handler at
 * uffd_socket), -EPIPE (the handler hung up or exited).
 */
int spk_vm_restore_opts(struct spk_vm *vm, const struct spk_snap_devices *devs,
                        const char *state_path, const char *mem_path,
                        const struct spk_snap_restore_opts *opts);

/* Can this process use userfaultfd for KVM's faults? 0, or -errno with a
 * line in spk_last_error() naming why (the sysctl, the device, the error). */
int spk_snap_uffd_check(void);

struct spk_snap_uffd_stats {
	uint64_t faults;     /* page faults served (UFFD backend) */
	uint64_t copied;     /* pages copied from the file, faults and prefetch */
	uint64_t zeroed;     /* pages served as zeros (holes, removed pages) */
	uint64_t prefetched; /* pages copied by the prefetch */
	uint64_t removed;    /* pages given back (UFFD_EVENT_REMOVE) */
	uint64_t errors;     /* pages the file could not give (served as zeros) */
};
/* The library's handler's counts; -ENOENT when vm's memory is not served
 * by it (File backend, or the external handler's). */
int spk_vm_uffd_stats(struct spk_vm *vm, struct spk_snap_uffd_stats *out);

/*
 * Write the working set recorded since the restore (record on): the
 * pages served, in the order first touched, as memory-file offsets, to
 * path (0600). The format (docs/snapshots.md): "SPKWSET\n", u32 version 1,
 * u32 page size 4096, u64 the memory file's size, u64 n, n u64 offsets,
 * u32 CRC-32 of everything before it; little-endian. A prefetch refuses a
 * file whose size, CRC, offsets or memory file size do not fit. -ENOENT
 * when vm is not served by the library's handler, -EINVAL without record.
 */
int spk_vm_uffd_working_set_save(struct spk_vm *vm, const char *path);

/*
 * In-place reset. spk_snap_reset_new takes a snapshot of a VM that does
 * not run (as spk_vm_snapshot, kept in memory; guest memory goes to
 * mem_path, or NULL: an anonymous memfd) and leaves the dirty log on
 * (started, or fetched and cleared if it was on). spk_snap_reset_apply,
 * with the VM not running again: fetch the log, copy back the pages it
 * names (spk_snap_mem_reset), reload the VM section, every vCPU (READY)
 * and devs; the VM is then the snapshot's again, memory bit for bit, and
 * the log counts from there. spk_snap_reset_pages: how many pages the
 * last apply copied back. The reset point is the caller's until
 * spk_snap_reset_free (NULL: nothing); it keeps vm and devs, which must
 * outlive it. One thread at a time.
 */
struct spk_snap_reset;
int spk_snap_reset_new(struct spk_vm *vm, const struct spk_snap_devices *devs, const char *mem_path,
                       struct spk_snap_reset **out);
int spk_snap_reset_apply(struct spk_snap_reset *s);
uint64_t spk_snap_reset_pages(const struct spk_snap_reset *s);
void spk_snap_reset_free(struct spk_snap_reset *s);

/* ---- the VM generation ID ------------------------------------------------------- */

/*
 * An ACPI VM generation ID (Microsoft's paper; what Linux's vmgenid driver
 * reads): 16 bytes in guest memory at the address the DSDT's \_SB.VGEN
 * ADDR method returns (struct spk_acpi_config's vmgenid_addr), changed by
 * the monitor whenever the VM runs again from a saved point, with a
 * notification (a GPE: spk_acpi_pm_raise_gpe) so the guest reseeds its
 * RNG. The sparkler PC has it at SPK_PC_VMGENID, GPE SPK_PC_GPE_VMGENID.
 *
 * spk_vmgenid_new: cfg->mem is borrowed (it must outlive the device), gpa
 * 16-byte aligned inside one region; writes a random ID there, without a
 * notification (the guest reads it at boot). notify (may be NULL) is
 * called after every change, outside the device's lock.
 * spk_vmgenid_set: write id (NULL: 16 fresh random bytes from getrandom),
 * then notify. spk_vmgenid_get: the ID the device last wrote (its own
 * copy: the guest may scribble over the page). spk_vmgenid_changes: how
 * many times set (or a load) changed it.
 *
 * As a device of a snapshot (spk_vmgenid_state_ops, kind "vmgenid"): save
 * writes the address and the ID; load checks the address and gives the VM
 * a new random ID (spk_vmgenid_set(g, NULL)): every restore, clone and
 * in-place reset is a new generation. Add it to the device set after the
 * device its notify raises (the PM device: its load would clear the GPE).
 * Thread-safe; not signal-safe.
 */
#define SPK_VMGENID_LEN 16
struct spk_vmgenid;
struct spk_vmgenid_config {
	struct spk_mem *mem;
	uint64_t gpa;
	int (*notify)(void *ctx); /* 0 or -errno (then set returns it) */
	void *notify_ctx;
};
int spk_vmgenid_new(const struct spk_vmgenid_config *cfg, struct spk_vmgenid **out);
void spk_vmgenid_free(struct spk_vmgenid *g);
int spk_vmgenid_set(struct spk_vmgenid *g, const uint8_t id[SPK_VMGENID_LEN]);
int spk_vmgenid_get(struct spk_vmgenid *g, uint8_t id[SPK_VMGENID_LEN]);
uint64_t spk_vmgenid_address(const struct spk_vmgenid *g); /* NULL: 0 */
uint64_t spk_vmgenid_changes(struct spk_vmgenid *g);       /* NULL: 0 */
const struct spk_dev_state_ops *spk_vmgenid_state_ops(void);

/* ---- clones ---------------------------------------------------------------------- */

/*
 * Clones: N VMs from one snapshot, each with an identity of its own, their
 * memory shared copy-on-write (each maps the same memory file MAP_PRIVATE:
 * a page is read once into the page cache and stays shared until a clone
 * writes it; the file is never written).
 *
 * What must differ between clones is what the guest or the host network
 * tells apart: the VM generation ID (the guest reseeds its RNG), the vsock
 * CID and its socket, each network interface's TAP and MAC. virtio-rng
 * holds no state to reseed (every request is served from getrandom()).
 *
 * The library does not know how the embedder builds a VM, so the caller
 * gives a build function: make clone k's VM as the snapshot's VM was
 * made (same memory, vCPUs, irqchip, devices), with the identity's CID,
 * socket, TAPs and MACs for its devices; the library then restores the
 * snapshot into it and gives it its generation ID.
 */
#define SPK_CLONE_MAX      1024 /* clones one call makes */
#define SPK_CLONE_MAX_NETS 8
#define SPK_CLONE_PATH_MAX 108 /* a Unix socket path with its NUL (sun_path) */
#define SPK_CLONE_TAP_MAX  16  /* IFNAMSIZ, with the NUL */

struct spk_clone_net {
	char iface[SPK_SNAP_NAME_MAX]; /* the interface's id in the snapshot ("eth0") */
	char tap[SPK_CLONE_TAP_MAX];   /* the clone's TAP */
	uint8_t mac[6];                /* the clone's guest MAC */
};

struct spk_clone_id {
	uint8_t vmgenid[SPK_VMGENID_LEN]; /* all zero: a random one */
	uint32_t vsock_cid;               /* 0: no vsock; else 3 to 2^32 - 2 */
	char vsock_uds[SPK_CLONE_PATH_MAX];
	uint32_t n_nets;
	struct spk_clone_net nets[SPK_CLONE_MAX_NETS];
};

/*
 * Check n identities (1 to SPK_CLONE_MAX) as clones of one snapshot need
 * them: CIDs 3 to 2^32 - 2 (or all 0), no two alike, a socket path each
 * (1 to 107 bytes, no two alike); the same interface ids in every clone,
 * each once, TAP names of 1 to 15 bytes without '/' or spaces, MACs
 * unicast and not all zero, no TAP and no MAC twice among all clones;
 * VMGENIDs (where given) unlike. 0, or -EINVAL naming the clone and field.
 */
int spk_clone_ids_check(const struct spk_clone_id *ids, uint32_t n);

/*
 * n identities from one template, for clone k (0-based): the CID base's
 * plus k (base 0: none), the socket "<base's path>.<k>", each interface's
 * TAP "<base's TAP>.<k>" and MAC the base's with k added to its last three
 * bytes, a random VMGENID; then checked as spk_clone_ids_check does
 * (a TAP name that gets too long, a CID past 2^32 - 2: -EINVAL).
 */
int spk_clone_ids_derive(const struct spk_clone_id *base, uint32_t n, struct spk_clone_id *out);

/* One clone as the build function makes it (vm required; devs and genid
 * may be NULL: no devices, no generation ID); user is the caller's. */
struct spk_clone_vm {
	struct spk_vm *vm;
	struct spk_snap_devices *devs;
	struct spk_vmgenid *genid;
	void *user;
};

struct spk_clone_ops {
	/* Make clone k with identity id into *out; 0, or -errno, which the
	 * call returns with "clone K: the build function failed: <strerror>". */
	int (*build)(void *ctx, uint32_t k, const struct spk_clone_id *id,
	             struct spk_clone_vm *out);
	/* Undo one build (its VM not run): on a failure, every clone made so far. */
	void (*destroy)(void *ctx, uint32_t k, struct spk_clone_vm *vm);
};

/*
 * Make n clones of the snapshot at state (and mem: NULL for the memory
 * file the state names, see spk_vm_restore) into out[0..n-1]: the
 * identities are checked (spk_clone_ids_check) and the state file read
 * and checked before the first build; then for each clone build,
 * spk_vm_restore, and its generation ID set (ids[k].vmgenid, or random
 * when all zero; with a notification). The clones are READY, not run;
 * they are the caller's (destroy them as it built them). On any failure
 * every clone made so far is destroyed (ops->destroy, last first), out is
 * zeroed, and the error names the clone: nothing is left half-made.
 * -EINVAL (NULLs, n, identities, the file), or the build's or restore's
 * error. Not thread-safe against the caller's own use of the clones.
 */
int spk_vm_clone(const char *state, const char *mem, uint32_t n, const struct spk_clone_id *ids,
                 const struct spk_clone_ops *ops, void *ctx, struct spk_clone_vm *out);

#ifdef __cplusplus
}
#endif
#endif
