/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A Linux microVM as the sparkler program builds it: the configuration
 * (from the command line, a config file or the API), and the machine that
 * boots, runs and restarts it. Front ends (run.c, api.c) fill a config,
 * create a machine, and run it on some thread.
 */
#ifndef SPK_VMM_MACHINE_H
#define SPK_VMM_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <sparkler/ratelimit.h>

#include "vmm/vmm.h"

#define SPK_MACHINE_MAX_DRIVES 8
#define SPK_MACHINE_MAX_NETS 4
#define SPK_MACHINE_ID_MAX 64

struct spk_drive_config {
	char id[SPK_MACHINE_ID_MAX];
	char *path;
	bool read_only;
	bool root; /* is_root_device (Firecracker): only recorded */
	struct spk_rate_limit rate_limit; /* all zero: none */
};

struct spk_net_config {
	char id[SPK_MACHINE_ID_MAX];
	char tap[16]; /* IFNAMSIZ */
	uint8_t mac[6];
	bool has_mac;
	struct spk_rate_limit rx_rate_limit, tx_rate_limit; /* all zero: none */
	uint16_t mtu;                                       /* 0: the TAP's own */
	bool mmds; /* the metadata service answers on it (PUT /mmds/config) */
};

struct spk_vsock_config {
	bool enabled;
	uint32_t guest_cid;
	char *uds_path;
};

struct spk_mmds;
/* Firecracker's balloon (PUT /balloon): virtio-balloon when enabled. */
struct spk_balloon_config {
	bool enabled;
	uint32_t amount_mib; /* the target, at most the guest's memory */
	bool deflate_on_oom;
	uint32_t stats_interval_s; /* 0: no statistics */
	bool free_page_reporting;
	bool free_page_hinting;
};

/* Ordered by alignment (8-byte members, then 4-byte, then bytes): lint's
 * padding check. */
struct spk_machine_config {
	char *kernel;  /* required */
	char *initrd;  /* may be NULL */
	char *cmdline; /* NULL: SPK_MACHINE_DEFAULT_CMDLINE */
	uint64_t mem;
	uint64_t timeout; /* seconds, 0 for none */
	struct spk_drive_config drives[SPK_MACHINE_MAX_DRIVES];
	struct spk_net_config nets[SPK_MACHINE_MAX_NETS];
	struct spk_vsock_config vsock;
	/* the metadata store (src/mmds/, borrowed: it outlives the machine)
	 * for the interfaces with mmds set; NULL: none answers */
	struct spk_mmds *mmds;
	struct spk_rate_limit entropy_rate_limit; /* all zero: none */
	/* ---- snapshots (issue 15) ---- */
	/* Build the VM from this snapshot state file (and memory file; NULL:
	 * the one the state names) instead of booting the kernel: the kernel
	 * is not read, the rest of the config must be the snapshot's
	 * (spk_machine_config_from_snapshot). A reset ends such a VM. */
	char *restore_state;
	char *restore_mem;
	/* Guest memory served by an external page-fault handler at this Unix
	 * socket (Firecracker's Uffd handshake; restore_mem is then unused), or
	 * by the library's own userfaultfd thread (restore_uffd_own). */
	char *restore_uffd;

	uint32_t vcpus;
	enum spk_cpu_template template;
	int serial_fd; /* COM1 output; -1 for none */
	uint32_t n_drives;
	uint32_t n_nets;
	struct spk_balloon_config balloon;
	/* ---- PCI and virtio (issue 4): the PCI host bridge is always there;
	 * entropy below adds virtio-rng. ---- */
	/* virtio-console (hvc0 in the guest): its output goes to
	 * virtio_console_fd (-1: dropped), its input comes from
	 * spk_machine_console_input(). */
	int virtio_console_fd;

	/* A line for stderr once the first guest is built and about to run
	 * ("" for none): `run` says there which options it added on PVM. */
	char start_note[256];
	bool no_pvh;
	bool reboot; /* restart in place on reset */
	bool entropy;
	bool start_paused;
	bool virtio_console;
	/* KVM's dirty log from the first instruction (diff snapshots) */
	bool track_dirty_pages;
	bool restore_uffd_own;
};

#ifdef __aarch64__
/* arm64: ttyS0 is the 16550A over MMIO (machine_arm64.c) */
#define SPK_MACHINE_DEFAULT_CMDLINE "console=ttyS0 panic=1"
#else
#define SPK_MACHINE_DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=1"
#endif

/*
 * The arm64 platform (machine_arm64.c, the aarch64 build): machine.c
 * builds it instead of the PC, with the same devices on PCI.
 * check: what arm64 does not have (snapshots, CPU templates, --no-pvh,
 * more than 32 vCPUs), -EINVAL with the reason. vm: the VM with the
 * in-kernel GICv3 and RAM at 0x40000000. pci_host_config: ECAM, window
 * and INTx SPIs as the device tree says. boot: the kernel, initrd and
 * device tree into RAM, the vCPUs, vCPU 0 READY at the entry.
 */
#define SPK_ARM64_MACHINE_UART     0x09000000ull
#define SPK_ARM64_MACHINE_UART_SPI 1
#define SPK_ARM64_MACHINE_RTC      0x09010000ull
#define SPK_ARM64_MACHINE_RTC_SPI  2
#define SPK_ARM64_MACHINE_DEV_SIZE 0x1000ull
struct spk_pci_host_config;
int spk_arm64_machine_check(const struct spk_machine_config *c, char *err, size_t errlen);
int spk_arm64_machine_vm(const struct spk_machine_config *c, struct spk_vm **out);
struct spk_pci_host_config spk_arm64_pci_host_config(struct spk_vm *vm);
int spk_arm64_machine_boot(struct spk_vm *vm, const struct spk_machine_config *c,
                           const void *kernel, size_t kernel_size, const void *initrd,
                           size_t initrd_size);

/* Defaults: 1 vCPU, 512 MiB, host template, serial to stdout. */
void spk_machine_config_init(struct spk_machine_config *cfg);
/* Free the strings a config owns (kernel, initrd, cmdline, paths). */
void spk_machine_config_free(struct spk_machine_config *cfg);
/* Replace *dst by a copy of src (NULL clears it); -ENOMEM. */
int spk_config_set_str(char **dst, const char *src);

/* Check a config without touching KVM: ranges, counts, ids. 0, or -EINVAL
 * with a one-line reason in err. */
int spk_machine_config_check(const struct spk_machine_config *cfg, char *err, size_t errlen);

struct spk_machine;

/*
 * Read the kernel and initrd and make a machine (no VM yet). -errno with a
 * one-line reason in err; the config is copied.
 */
int spk_machine_new(const struct spk_machine_config *cfg, struct spk_machine **out, char *err,
		    size_t errlen);
void spk_machine_free(struct spk_machine *m);

/*
 * Build the VM and run it until it powers off, resets (and --reboot is
 * off), crashes, times out or is stopped from the host; returns an
 * SPK_STATUS_* and prints what happened on stderr. err receives a reason
 * for statuses other than OK.
 */
int spk_machine_run(struct spk_machine *m, char *err, size_t errlen);

/*
 * A debugger (the gdb stub, gdb.h), set before spk_machine_run; every hook
 * is optional. on_exit sees each exit first (SPK_ACT_DEFAULT leaves it to
 * the machine); vm_start is told of each VM before it runs and returns
 * whether to start it paused; vm_end follows its run with the status
 * (final: no restart follows).
 */
struct spk_machine_debugger {
	void *ctx;
	enum spk_action (*on_exit)(void *ctx, struct spk_vcpu *vcpu, struct spk_exit *e);
	bool (*vm_start)(void *ctx, struct spk_vm *vm);
	void (*vm_end)(void *ctx, int status, bool final);
};
void spk_machine_set_debugger(struct spk_machine *m, const struct spk_machine_debugger *d);

/* From any thread: stop the guest (the run returns SPK_STATUS_STOPPED). */
void spk_machine_stop(struct spk_machine *m);
/* From any thread, while it runs. -EINVAL when no VM is running. */
int spk_machine_pause(struct spk_machine *m);
int spk_machine_resume(struct spk_machine *m);
/* Host keyboard input for the virtio console (hvc0): how many bytes it
 * took (0 without a virtio console or a running VM). */
size_t spk_machine_console_input(struct spk_machine *m, const uint8_t *buf, size_t n);
/* Host keyboard input for COM1: how many bytes the UART took. */
size_t spk_machine_serial_input(struct spk_machine *m, const uint8_t *buf, size_t n);
/* Press Ctrl+Alt+Del on the i8042. -EINVAL when no VM is running. */
int spk_machine_ctrl_alt_del(struct spk_machine *m);
/* Press the ACPI power button (GPE 0; the guest's \_GPE._E00 notifies
 * PWRB). The guest decides what to do. -EINVAL when no VM is running. */
int spk_machine_power_button(struct spk_machine *m);
/* Give drive id's running disk the file at path (spk_virtio_blk_swap).
 * -EINVAL when no VM is running, -ENODEV without such a drive, else the
 * disk's -errno with spk_last_error(). */
int spk_machine_drive_swap(struct spk_machine *m, const char *id, const char *path);
/* Firecracker's PATCH of a rate limiter: the running disk, or network
 * interface (rx/tx NULL: that one unchanged), of that id takes the new
 * limit, and so does a rebuild. 0, -ENODEV (no such device), -EINVAL (not
 * running, or a bad limit: spk_last_error()). */
int spk_machine_drive_rate_limit(struct spk_machine *m, const char *id,
                                 const struct spk_rate_limit *l);
int spk_machine_net_rate_limits(struct spk_machine *m, const char *id,
                                const struct spk_rate_limit *rx, const struct spk_rate_limit *tx);

/* The balloon of the running VM (Firecracker's PATCH /balloon and
 * /balloon/statistics): a new target (MiB, at most the guest's memory) or
 * statistics interval (not from or to 0); a rebuild takes them too.
 * 0, -ENODEV (no balloon), -EINVAL (not running, or the device refused
 * the value: spk_last_error()), -ERANGE (a target above the memory). */
int spk_machine_balloon_target(struct spk_machine *m, uint32_t amount_mib);
int spk_machine_balloon_interval(struct spk_machine *m, uint32_t s);
/* Free page hinting: op 0 starts a run (ack: DONE as soon as the driver
 * says STOP), 1 ends it, 2 only reads; host and guest get the last
 * commands (spk_virtio_balloon_hint_status). -EINVAL also without hinting. */
int spk_machine_balloon_hint(struct spk_machine *m, int op, bool ack, uint32_t *host,
                             uint32_t *guest);
/* Its sizes, statistics and counters (sparkler/virtio_balloon.h). */
struct spk_virtio_balloon_stats;
int spk_machine_balloon_stats(struct spk_machine *m, struct spk_virtio_balloon_stats *out);
/*
 * Save the paused VM (PUT /snapshot/create): the state file (with the
 * machine's config, so a load needs nothing else) and the memory file,
 * full or diff (diff needs track_dirty_pages). -EINVAL when no VM runs,
 * -EBUSY when it is not paused, else spk_vm_snapshot's error; err gets
 * the reason. From any thread.
 */
int spk_machine_snapshot(struct spk_machine *m, const char *state, const char *mem, bool diff,
                         char *err, size_t errlen);
/*
 * The config a snapshot state file was saved with (vCPUs, memory, CPU
 * template, drives, network interfaces, vsock, entropy, console; the
 * kernel is not needed): into cfg (spk_machine_config_init'ed first; its
 * strings become the caller's), with restore_state set to state. The
 * whole file is checked first. -errno and a one-line reason in err.
 */
int spk_machine_config_from_snapshot(const char *state, struct spk_machine_config *cfg, char *err,
                                     size_t errlen);

/*
 * Make a config read from a snapshot (spk_machine_config_from_snapshot)
 * a clone's: its vsock CID and socket (id->vsock_cid 0: kept; the snapshot
 * must have a vsock device otherwise) and, for each of id's interfaces (by
 * the snapshot's interface id), its TAP and MAC. The identity is checked
 * as spk_clone_ids_check does (CID 3 to 2^32 - 2, TAP names, unicast
 * non-zero MACs, no interface twice). -EINVAL and a one-line reason.
 */
struct spk_clone_id;
int spk_machine_config_clone(struct spk_machine_config *cfg, const struct spk_clone_id *id,
                             char *err, size_t errlen);
/* The identity of clone k (1 to SPK_CLONE_MAX - 1) of the snapshot cfg was
 * read from, as spk_clone_ids_derive gives it: CID + k, "<socket>.<k>",
 * "<TAP>.<k>", MAC + k. -EINVAL and a reason. */
int spk_machine_clone_id(const struct spk_machine_config *cfg, uint32_t k,
                         struct spk_clone_id *out, char *err, size_t errlen);

enum spk_machine_state {
	SPK_MACHINE_NOT_STARTED = 0,
	SPK_MACHINE_RUNNING,
	SPK_MACHINE_PAUSED,
	SPK_MACHINE_HALTED,
};
enum spk_machine_state spk_machine_state(struct spk_machine *m);

/* Counters for metrics: exits by kind over all vCPUs of the current VM. */
void spk_machine_exit_counts(struct spk_machine *m, uint64_t counts[SPK_EXIT__COUNT]);

/* Bus accesses per device (by bus name) since the machine was made, over
 * every boot: up to n entries; returns how many devices there are. */
struct spk_machine_dev_count {
	char name[32];
	uint64_t reads, writes;
};
size_t spk_machine_device_counts(struct spk_machine *m, struct spk_machine_dev_count *out,
				 size_t n);

#endif
