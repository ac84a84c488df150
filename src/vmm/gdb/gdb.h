/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A gdb stub for sparkler's VMs: the GDB remote serial protocol on a TCP
 * or Unix socket, served by its own thread; threads are vCPUs.
 *
 * It is driven by the exit model only. The embedder passes every exit to
 * spk_gdb_on_exit() first (DEBUG exits are the stub's), and tells the stub
 * when a VM starts and ends. A vCPU that stops (breakpoint, step,
 * watchpoint) pauses the whole VM with spk_vm_pause() from its own thread
 * and hands the stop to the stub; gdb's continue resumes every vCPU.
 *
 * Breakpoints: Z1 and, where KVM cannot run int3 in guest kernel mode (PVM
 * hosts), Z0 too, use the four debug registers through
 * KVM_SET_GUEST_DEBUG; elsewhere Z0 writes int3 into guest memory.
 * Watchpoints use debug registers, except on PVM hosts, where KVM's
 * emulator of guest kernel code does not check data breakpoints: there a
 * write watchpoint single-steps the vCPUs that run kernel code and compares
 * the watched bytes after every instruction, and read/access watchpoints
 * are refused.
 */
#ifndef SPK_VMM_GDB_H
#define SPK_VMM_GDB_H

#include <stdbool.h>
#include <stddef.h>

#include <sparkler/sparkler.h>

struct spk_gdb;

struct spk_gdb_config {
	const char *listen; /* "tcp:[HOST:]PORT" (HOST defaults to 127.0.0.1) or "unix:PATH" */
	bool no_wait;       /* run at once; gdb may attach later */
	/* gdb's kill: end the VM (called on the stub's thread). */
	void (*kill)(void *opaque);
	void *opaque;
};

/* Check a --gdb address without opening anything: 0, or -1 with a reason in err. */
int spk_gdb_check_listen(const char *spec, char *err, size_t errlen);

/*
 * Open the socket, say where it listens on stderr, and start the stub's
 * thread. 0, or -errno with a one-line reason in err.
 */
int spk_gdb_start(const struct spk_gdb_config *cfg, struct spk_gdb **out, char *err, size_t errlen);

/*
 * A VM is built and about to run (before spk_vm_run). Returns whether to
 * start it paused (spk_run_ops.start_paused): the first time, unless
 * no_wait, so that gdb sees the first instruction.
 */
bool spk_gdb_vm_start(struct spk_gdb *g, struct spk_vm *vm);

/*
 * Every exit, from the vCPU's thread, before the embedder's own handling.
 * DEBUG exits are the stub's (SPK_ACT_CONTINUE); everything else returns
 * SPK_ACT_DEFAULT: handle it as without a debugger.
 */
enum spk_action spk_gdb_on_exit(struct spk_gdb *g, struct spk_vcpu *vcpu, struct spk_exit *e);

/*
 * spk_vm_run() returned; the VM is about to be destroyed. status is the
 * exit status gdb is told (W packet) when final, i.e. no VM follows (a
 * `run --reboot` restart is not final: the session goes on).
 */
void spk_gdb_vm_end(struct spk_gdb *g, int status, bool final);

/* Close the connection and the socket, and end the thread. */
void spk_gdb_free(struct spk_gdb *g);

#endif
