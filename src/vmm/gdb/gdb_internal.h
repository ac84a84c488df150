/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gdb stub's own header: its state, shared by the protocol side
 * (gdb.c: socket, session, commands) and the VM side (gdb_target.c:
 * memory, breakpoints, DEBUG exits, pause and resume). Not for embedders:
 * they use gdb.h.
 *
 * States (g->state, under g->lock):
 *   FREE      no debugger: the VM runs, no debug state is set
 *   RUNNING   gdb resumed the VM and waits for a stop reply
 *   STOPPING  someone (a vCPU with a DEBUG exit, or the stub for Ctrl-C or
 *             a new connection) is pausing every vCPU
 *   STOPPED   the VM is paused; gdb reads and writes it
 *   ENDED     the VM is gone for good
 * Only RUNNING -> STOPPING is open to vCPU threads; the stub thread makes
 * every other transition, so pauses and resumes never cross.
 */
#ifndef SPK_VMM_GDB_INTERNAL_H
#define SPK_VMM_GDB_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/gdb/gdb.h"
#include "vmm/gdb/gdb_proto.h"
#include "vmm/gdb/gdb_x86.h"

#define MAX_VCPUS     256
#define MAX_POINTS    64
#define EMU_WATCH_MAX 64 /* bytes one emulated watchpoint may cover */
#define REPLY_MAX     GDB_PACKET_MAX
#define DR6_BS        (1ull << 14)
#define SIGINT_GDB    2
#define SIGTRAP_GDB   5

enum state { ST_FREE, ST_RUNNING, ST_STOPPING, ST_STOPPED, ST_ENDED };

enum why { WHY_SIGNAL, WHY_SWBREAK, WHY_HWBREAK, WHY_WATCH, WHY_RWATCH, WHY_AWATCH };

struct stop {
	bool valid;
	/* an instruction breakpoint in a debug register stopped the vCPU before
	 * the instruction at linear address pc: the next resume steps over it */
	bool exec_bp;
	uint32_t vcpu;
	int sig;
	enum why why;
	uint64_t addr; /* watchpoints: what was hit */
	uint64_t pc;
};

/* One breakpoint or watchpoint gdb inserted (Z type, addr, kind). */
struct point {
	bool used;
	int type;
	uint64_t addr, len;
	unsigned refs;
	uint8_t drs; /* debug registers it holds (bit i: DRi) */
	/* int3 in guest memory (Z0 where KVM can run int3) */
	bool int3;
	uint64_t gpa;
	uint8_t orig;
	/* a write watchpoint compared after every single-step (PVM) */
	bool emulated;
	int npieces;
	uint64_t piece_gpa[2], piece_len[2];
	uint8_t old[EMU_WATCH_MAX];
};

/* What gdb asked of one vCPU at the last resume. */
struct vcpu_ctl {
	bool step;  /* report the next single-step */
	bool range; /* ... unless pc is in [start, end) */
	uint64_t start, end;
	struct stop pending; /* a watchpoint hit while another vCPU stopped the VM */
};

/* A vCPU stepping over the instruction breakpoint it stopped at: the debug
 * registers at pc are off for one single-step, then armed again. Kept
 * across resumes until that step's DEBUG exit comes (plan_step_over). */
struct step_over {
	bool on;
	uint64_t pc;
};

struct dr_slot {
	struct gdb_x86_dr dr;
	unsigned refs;
};

struct spk_gdb {
	struct spk_gdb_config cfg;
	char where[160]; /* "tcp:127.0.0.1:1234" as it ended up */
	char *unix_path; /* to unlink */
	int listen_fd, client_fd;
	int wake[2]; /* vCPU threads and the embedder wake the stub thread */
	pthread_t thread;
	bool have_thread;

	pthread_mutex_t vm_lock; /* held by the stub thread while it uses g->vm */
	pthread_mutex_t lock;    /* everything below; vCPU threads take it */
	pthread_cond_t cond;     /* state changed */
	struct spk_vm *vm;
	bool vm_live; /* between spk_gdb_vm_start and spk_gdb_vm_end */
	bool started_once;
	bool quit, final_end;
	int exit_status;
	enum state state;
	bool stop_owed; /* gdb waits for a stop reply */
	struct stop stop;
	struct vcpu_ctl cpu[MAX_VCPUS];
	struct step_over over[MAX_VCPUS];
	struct point points[MAX_POINTS];
	struct dr_slot drs[4];
	struct spk_vcpu_debug common; /* what every vCPU gets at a resume */
	unsigned n_emulated;
	bool pvm; /* int3 and data breakpoints do not work in guest kernel mode */

	/* the stub thread's own */
	struct gdb_rx rx;
	bool session, noack, swbreak_ok, hwbreak_ok;
	int64_t g_tid, c_tid;
	char reply[REPLY_MAX + 1];
	char out[REPLY_MAX + 8]; /* the last framed reply, for '-' */
	size_t out_len;
	uint8_t mem[GDB_PACKET_MAX]; /* m, M and X data */
	char xml[GDB_X86_XML_MAX];
};

/* ---- gdb.c ---- */
void stub_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- gdb_target.c: everything below runs on the stub thread with g->vm_lock held ---- */
void stub_wake(struct spk_gdb *g);
void stub_set_state(struct spk_gdb *g, enum state s); /* with g->lock held */
struct spk_vcpu *stub_vcpu_of_tid(struct spk_gdb *g, int64_t tid);
/* The vCPU gdb's register and memory commands mean (Hg, else the stopped one). */
struct spk_vcpu *stub_gen_vcpu(struct spk_gdb *g);
int stub_get_state(struct spk_vcpu *v, struct gdb_x86_state *s);
bool stub_user_mode(struct spk_vcpu *v);
/* Read up to len bytes at gva; how many could be read (0: none). */
uint64_t stub_read_virt(struct spk_gdb *g, const struct spk_x86_sregs *s, uint64_t gva,
                        uint8_t *buf, uint64_t len);
int stub_write_virt(struct spk_gdb *g, const struct spk_x86_sregs *s, uint64_t gva,
                    const uint8_t *buf, uint64_t len);
int stub_point_insert(struct spk_gdb *g, int type, uint64_t addr, uint64_t len,
                      const struct spk_x86_sregs *s);
int stub_point_remove(struct spk_gdb *g, int type, uint64_t addr, uint64_t len);
void stub_compute_common(struct spk_gdb *g); /* with g->lock held */
int stub_apply_debug(struct spk_gdb *g);
/* Stop a running (or free-running) VM with signal sig: 0, or -1 if it is gone. */
int stub_stop(struct spk_gdb *g, int sig);
/* Resume with the step settings in g->cpu; false if a kept stop is due instead. */
bool stub_resume(struct spk_gdb *g);
/* The session is over: no debug state, the VM runs on. */
void stub_release(struct spk_gdb *g);

#endif
