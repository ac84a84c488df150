// SPDX-License-Identifier: Apache-2.0
/*
 * The core without KVM: src/core/ linked alone (libsparkler-core, see
 * meson.build) with a scripted fake backend defined here. That it links
 * at all proves the core needs nothing from a backend but spk_backend()
 * and the ops table; the tests drive the state machine, the run loop,
 * routing to the bus, hypercall dispatch, exit completion, kicks, stop
 * requests, the runner (CPU_UP, SYSTEM_DOWN, HALT) and destroy while
 * running through it. No /dev/kvm.
 *
 * Each fake vCPU follows a script: an array of steps, one per entry into
 * the "guest". A step names what the exit is; SPIN makes the entry wait
 * (for a kick) until the core's kick op fires, the way KVM_RUN only
 * returns on a signal. Every wait here is for a condition, never a time.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <sparkler/snapshot.h>

#include "core/backend.h"
#include "core/internal.h"

/* ---- the fake backend ---------------------------------------------------- */

enum fake_op {
	F_END = 0, /* script exhausted: a HALT, to catch runaway loops */
	F_SPIN,    /* wait inside "the guest" until kicked */
	F_PIO,     /* port, width, is_write, value */
	F_MMIO,    /* addr, width, is_write, value */
	F_SYSREG,  /* addr = id, is_write, value */
	F_HC,      /* nr, args[] */
	F_HALT,
	F_HANDLED,  /* the backend handles it itself */
	F_FAIL,     /* vcpu_enter fails (KVM_RUN's error) */
	F_WAIT_IRQ, /* wait inside "the guest" for a queued vector, then go on */
	F_BADROUTE  /* asks the core to route a HALT */
};

struct fake_step {
	enum fake_op op;
	uint64_t addr;
	unsigned width;
	bool is_write;
	uint64_t value;
	uint64_t nr;
	uint64_t args[6];
};

#define MAX_STEPS    64
#define MAX_COMPLETE 64

struct fake_completion {
	uint32_t flags;
	uint64_t value; /* data (LE), sysreg value, or the hypercall result */
};

struct fake_vcpu {
	const struct fake_step *script;
	unsigned next;
	atomic_bool kicked;  /* the immediate_exit of this backend */
	atomic_int spinning; /* inside an F_SPIN entry */
	uint8_t pio[8];      /* the "run area" of PIO data */
	struct fake_completion done[MAX_COMPLETE];
	atomic_uint n_done;
	bool wakeable; /* what vcpu_halt_wakeable answers */
	uint64_t start_entry, start_arg;
	atomic_int started;
	int injected[8]; /* vectors vcpu_enter injected (no in-kernel irqchip) */
	atomic_uint n_injected;
};

struct fake_vm {
	unsigned slots_added, slots_deleted, prepared;
	unsigned log_on, log_off, log_gets; /* dirty log ops, RAM slots only */
	uint64_t guest_dirty;               /* pages "the guest" wrote, bit per page */
	bool refuse_slots;
	uint32_t gsi;
	bool level;
};

/* Scripts by vCPU id, read by fake_vcpu_create (CPU_UP creates vCPUs). */
static const struct fake_step *scripts[4];
static atomic_int vcpus_destroyed, vms_destroyed;
static bool fail_vm_create;

static struct fake_vcpu *fv(struct spk_vcpu *vcpu)
{
	return vcpu->be;
}

static int fake_vm_create(struct spk_vm *vm, const struct spk_vm_config *cfg)
{
	(void)cfg;
	if (fail_vm_create)
		return spk_fail(ENODEV, "fake: no hypervisor today");
	vm->be = calloc(1, sizeof(struct fake_vm));
	return vm->be ? 0 : -ENOMEM;
}

static void fake_vm_destroy(struct spk_vm *vm)
{
	free(vm->be);
	vm->be = NULL;
	atomic_fetch_add(&vms_destroyed, 1);
}

static int fake_vm_prepare(struct spk_vm *vm)
{
	((struct fake_vm *)vm->be)->prepared++;
	return 0;
}

static int fake_slot_add(struct spk_vm *vm, struct spk_mem_slot *slot)
{
	struct fake_vm *f = vm->be;

	if (f->refuse_slots)
		return spk_fail(EINVAL, "fake: slot %u refused", slot->id);
	f->slots_added++;
	return 0;
}

static void fake_slot_del(struct spk_vm *vm, struct spk_mem_slot *slot)
{
	(void)slot;
	((struct fake_vm *)vm->be)->slots_deleted++;
}

static int fake_dirty_log(struct spk_vm *vm, struct spk_mem_slot *slot, bool on)
{
	struct fake_vm *f = vm->be;

	assert_false(slot->readonly);
	assert_int_equal(vm->dirty_log, on); /* set before the slots are asked */
	if (on)
		f->log_on++;
	else
		f->log_off++;
	return 0;
}

static int fake_dirty_get(struct spk_vm *vm, struct spk_mem_slot *slot, uint64_t *bits)
{
	struct fake_vm *f = vm->be;

	assert_false(slot->readonly);
	f->log_gets++;
	bits[0] |= f->guest_dirty;
	f->guest_dirty = 0;
	return 0;
}

static int fake_irq_line(struct spk_vm *vm, uint32_t gsi, bool level)
{
	struct fake_vm *f = vm->be;

	f->gsi = gsi;
	f->level = level;
	return 0;
}

static int fake_vcpu_create(struct spk_vcpu *vcpu)
{
	struct fake_vcpu *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->script = vcpu->id < 4 ? scripts[vcpu->id] : NULL;
	f->wakeable = true;
	vcpu->be = f;
	return 0;
}

static void fake_vcpu_destroy(struct spk_vcpu *vcpu)
{
	free(vcpu->be);
	vcpu->be = NULL;
	atomic_fetch_add(&vcpus_destroyed, 1);
}

static const struct fake_step *current(struct fake_vcpu *f)
{
	static const struct fake_step end = {.op = F_END};

	if (!f->script || f->next >= MAX_STEPS)
		return &end;
	return &f->script[f->next];
}

static int fake_enter(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct fake_vcpu *f = fv(vcpu);

	if (atomic_exchange(&f->kicked, false))
		return -EINTR;
	/* the core must have made it RUNNING before entering */
	if (spk_vcpu_state(vcpu) != SPK_VCPU_RUNNING) {
		spk_exit_set_internal(exit, SPK_INTERNAL_RUN_FAILED, 0, "fake: entered while %s",
		                      spk_vcpu_state_name(spk_vcpu_state(vcpu)));
		return -EIO;
	}
	/* inject what the core queued, as KVM_INTERRUPT would; not into a
	 * HALT step: that models `sti; hlt`, where a vector that arrives
	 * first is taken after the hlt (the runner's wait then returns at
	 * once), so the test's order cannot depend on which came first */
	int vector = current(f)->op == F_HALT ? -1 : spk_vcpu_irq_take(vcpu);
	if (vector >= 0) {
		unsigned n = atomic_load(&f->n_injected);

		if (n < 8)
			f->injected[n] = vector;
		atomic_store(&f->n_injected, n + 1);
		if (current(f)->op == F_WAIT_IRQ)
			f->next++;
	}
	switch (current(f)->op) {
	case F_WAIT_IRQ:
		/* like F_SPIN, but a queued vector (spk_vcpu_interrupt wakes the
		 * vCPU through the kick op) also ends the wait */
		while (!atomic_load(&f->kicked) && !spk_vcpu_irq_pending(vcpu))
			sched_yield();
		atomic_store(&f->kicked, false);
		return -EINTR;
	case F_SPIN:
		atomic_store(&f->spinning, 1);
		while (!atomic_load(&f->kicked))
			sched_yield();
		atomic_store(&f->spinning, 0);
		atomic_store(&f->kicked, false);
		return -EINTR; /* the step stays: spin again unless the core stops */
	case F_FAIL:
		f->next++;
		spk_exit_set_internal(exit, SPK_INTERNAL_RUN_FAILED, EIO, "fake: cannot enter");
		return -EIO;
	default:
		return 0;
	}
}

static enum spk_step fake_translate(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct fake_vcpu *f = fv(vcpu);
	const struct fake_step *s = current(f);

	f->next++;
	exit->pc = 0x1000 + f->next;
	switch (s->op) {
	case F_PIO:
		exit->kind = SPK_EXIT_PIO;
		exit->pio.port = (uint16_t)s->addr;
		exit->pio.width = (uint8_t)s->width;
		exit->pio.is_write = s->is_write;
		exit->pio.count = 1;
		memset(f->pio, 0, sizeof(f->pio));
		spk_put_le(f->pio, s->value, s->width);
		exit->pio.data = f->pio;
		return SPK_STEP_ROUTE;
	case F_MMIO:
		exit->kind = SPK_EXIT_MMIO;
		exit->mmio.addr = s->addr;
		exit->mmio.width = (uint8_t)s->width;
		exit->mmio.is_write = s->is_write;
		exit->mmio.reg = 3; /* an arm64-like backend knows it */
		exit->mmio.reg_width = 8;
		exit->mmio.sign_ext = false;
		spk_put_le(exit->mmio.data, s->value, 8);
		return SPK_STEP_ROUTE;
	case F_SYSREG:
		exit->kind = SPK_EXIT_SYSREG;
		exit->sysreg.id = s->addr;
		exit->sysreg.is_write = s->is_write;
		exit->sysreg.reg = -1;
		exit->sysreg.value = s->is_write ? s->value : 0;
		return SPK_STEP_ROUTE;
	case F_HC:
		exit->kind = SPK_EXIT_HYPERCALL;
		exit->hypercall.nr = s->nr;
		memcpy(exit->hypercall.args, s->args, sizeof(s->args));
		return SPK_STEP_ROUTE;
	case F_HANDLED:
		exit->kind = SPK_EXIT_NONE;
		return SPK_STEP_HANDLED;
	case F_BADROUTE:
		exit->kind = SPK_EXIT_HALT;
		return SPK_STEP_ROUTE;
	case F_HALT:
	case F_END:
	default:
		exit->kind = SPK_EXIT_HALT;
		exit->halt.cause = SPK_HALT_HLT;
		return SPK_STEP_EXIT;
	}
}

static void fake_complete(struct spk_vcpu *vcpu, const struct spk_exit *e)
{
	struct fake_vcpu *f = fv(vcpu);
	unsigned i = atomic_load(&f->n_done);
	struct fake_completion c = {.flags = e->priv.flags};

	switch (e->priv.flags) {
	case SPK_COMPLETE_MMIO:
		c.value = spk_get_le(e->mmio.data, 8);
		break;
	case SPK_COMPLETE_NPF:
		c.value = spk_get_le(e->npf.data, 8);
		break;
	case SPK_COMPLETE_SYSREG:
		c.value = e->sysreg.value;
		break;
	case SPK_COMPLETE_HC:
		c.value = e->hypercall.ret;
		break;
	case SPK_COMPLETE_HC_PRIV:
		c.value = e->priv.hc_ret;
		break;
	default:
		return; /* nothing to hand back: not recorded */
	}
	if (i < MAX_COMPLETE) {
		f->done[i] = c;
		atomic_store(&f->n_done, i + 1);
	}
}

static void fake_kick(struct spk_vcpu *vcpu)
{
	atomic_store(&fv(vcpu)->kicked, true);
}

static uint64_t fake_pc(struct spk_vcpu *vcpu)
{
	return 0xc0de;
}

static int fake_halt_wakeable(struct spk_vcpu *vcpu)
{
	return fv(vcpu)->wakeable;
}

static int fake_start(struct spk_vcpu *vcpu, uint64_t entry, uint64_t arg)
{
	struct fake_vcpu *f = fv(vcpu);

	f->start_entry = entry;
	f->start_arg = arg;
	atomic_store(&f->started, 1);
	return spk_vcpu_ready(vcpu);
}

static const struct spk_backend_ops fake_ops = {
    .name = "fake",
    .hypercall_port = 0xe4,
    .vm_create = fake_vm_create,
    .vm_destroy = fake_vm_destroy,
    .vm_prepare = fake_vm_prepare,
    .mem_slot_add = fake_slot_add,
    .mem_slot_del = fake_slot_del,
    .mem_dirty_log = fake_dirty_log,
    .mem_dirty_get = fake_dirty_get,
    .irq_line = fake_irq_line,
    .vcpu_create = fake_vcpu_create,
    .vcpu_destroy = fake_vcpu_destroy,
    .vcpu_enter = fake_enter,
    .vcpu_translate = fake_translate,
    .vcpu_complete = fake_complete,
    .vcpu_kick = fake_kick,
    .vcpu_pc = fake_pc,
    .vcpu_halt_wakeable = fake_halt_wakeable,
    .vcpu_start = fake_start,
    /* no interrupts controller, debug, registers or state: the core must
     * refuse those with a message, not crash */
};

const struct spk_backend_ops *spk_backend(void)
{
	return &fake_ops;
}

/* ---- helpers ------------------------------------------------------------------ */

static struct spk_vm *new_vm(uint32_t max_vcpus)
{
	struct spk_vm_config cfg = {.max_vcpus = max_vcpus};
	struct spk_vm *vm = NULL;

	assert_int_equal(spk_vm_create(&cfg, &vm), 0);
	assert_non_null(vm);
	return vm;
}

static struct spk_vcpu *new_vcpu(struct spk_vm *vm, uint32_t id, const struct fake_step *script)
{
	struct spk_vcpu *vcpu = NULL;

	scripts[id] = script;
	assert_int_equal(spk_vcpu_create(vm, id, &vcpu), 0);
	scripts[id] = NULL;
	return vcpu;
}

/* A PIO/MMIO device: a register that remembers the last write. */
struct reg_dev {
	pthread_mutex_t lock;
	uint64_t value;
	unsigned writes, reads;
	uint64_t last_offset;
};

static uint64_t reg_read(void *opaque, uint64_t offset, unsigned width,
                         const struct spk_bus_access *who)
{
	struct reg_dev *d = opaque;

	pthread_mutex_lock(&d->lock);
	d->reads++;
	d->last_offset = offset;
	uint64_t v = d->value;
	pthread_mutex_unlock(&d->lock);
	return v;
}

static void reg_write(void *opaque, uint64_t offset, unsigned width, uint64_t value,
                      const struct spk_bus_access *who)
{
	struct reg_dev *d = opaque;

	pthread_mutex_lock(&d->lock);
	d->writes++;
	d->last_offset = offset;
	d->value = value;
	pthread_mutex_unlock(&d->lock);
}

static const struct spk_bus_ops reg_ops = {.read = reg_read, .write = reg_write};

static uint64_t hc_add(struct spk_vcpu *vcpu, uint64_t nr, const uint64_t args[6], void *opaque)
{
	return args[0] + args[1];
}

/* ---- tests ------------------------------------------------------------------- */

static void test_create_destroy(void **state)
{
	struct spk_vm *vm;
	int before_vm = atomic_load(&vms_destroyed), before_vcpu = atomic_load(&vcpus_destroyed);

	(void)state;
	vm = new_vm(2);
	assert_ptr_equal(vm->ops, &fake_ops);
	assert_int_equal(spk_vm_max_vcpus(vm), 2);
	new_vcpu(vm, 0, NULL);
	new_vcpu(vm, 1, NULL);
	assert_int_equal(spk_vm_destroy(vm), 0);
	assert_int_equal(atomic_load(&vms_destroyed), before_vm + 1);
	assert_int_equal(atomic_load(&vcpus_destroyed), before_vcpu + 2);

	/* the backend's refusal comes back with its message, nothing left */
	fail_vm_create = true;
	vm = (struct spk_vm *)1;
	assert_int_equal(spk_vm_create(NULL, &vm), -ENODEV);
	assert_null(vm);
	assert_non_null(strstr(spk_last_error(), "no hypervisor"));
	fail_vm_create = false;
}

static void test_memory_slots(void **state)
{
	struct spk_vm *vm = new_vm(1);
	struct fake_vm *f = vm->be;
	void *host = NULL;

	(void)state;
	assert_int_equal(spk_vm_add_memory(vm, 0, 0x10000, SPK_MEM_RAM, "ram", &host), 0);
	assert_non_null(host);
	assert_int_equal(f->slots_added, 1);
	assert_int_equal(
	    spk_vm_add_memory(vm, 0x100000, 0x1000, SPK_MEM_UNPOPULATED, "later", NULL), 0);
	assert_int_equal(f->slots_added, 1); /* no slot until populated */
	assert_int_equal(spk_vm_populate_memory(vm, 0x100000), 0);
	assert_int_equal(f->slots_added, 2);
	/* the backend refuses: the region leaves the map again */
	f->refuse_slots = true;
	assert_int_equal(spk_vm_add_memory(vm, 0x200000, 0x1000, SPK_MEM_RAM, "refused", NULL),
	                 -EINVAL);
	assert_null(spk_mem_find(spk_vm_mem(vm), 0x200000));
	assert_int_equal(spk_vm_add_memory(vm, 0x300000, 0x1000, SPK_MEM_UNPOPULATED, "u", NULL),
	                 0);
	assert_int_equal(spk_vm_populate_memory(vm, 0x300000), -EINVAL);
	assert_null(spk_mem_find(spk_vm_mem(vm), 0x300000)->host);
	/* irq lines and MSIs need the in-kernel irqchip, checked by the core */
	assert_int_equal(spk_vm_irq_line(vm, 4, true), -EINVAL);
	assert_int_equal(spk_vm_signal_msi(vm, &(struct spk_msi){.addr = 0xfee00000}), -EINVAL);
	assert_int_equal(spk_vm_destroy(vm), 0);
}

/* The dirty log: the guest's pages from the backend, the monitor's own. */
static void test_dirty_log(void **state)
{
	struct spk_vm *vm = new_vm(1);
	struct fake_vm *f = vm->be;
	uint64_t ram_bits[1] = {0}, rom_bits[1] = {0};
	struct spk_snap_dirty d = {.n_regions = 2};
	uint8_t byte = 1;

	(void)state;
	assert_int_equal(spk_vm_add_memory(vm, 0, 0x10000, SPK_MEM_RAM, "ram", NULL), 0);
	assert_int_equal(spk_vm_add_memory(vm, 0x10000, 0x1000, SPK_MEM_READONLY, "rom", NULL), 0);
	d.region[0].gpa = 0;
	d.region[0].pages = 16;
	d.region[0].bits = ram_bits;
	d.region[1].gpa = 0x10000;
	d.region[1].pages = 1;
	d.region[1].bits = rom_bits;
	assert_int_equal(spk_vm_dirty_log_fetch(vm, &d), -EINVAL); /* not on */
	assert_int_equal(spk_vm_dirty_log_start(vm), 0);
	assert_int_equal(f->log_on, 1); /* the RAM slot, not the ROM */
	assert_int_equal(spk_vm_dirty_log_start(vm), -EALREADY);
	f->guest_dirty = 1u << 5;
	assert_int_equal(spk_mem_write(spk_vm_mem(vm), 3 * 4096 + 7, &byte, 1), 0);
	assert_int_equal(spk_vm_dirty_log_fetch(vm, &d), 0);
	assert_int_equal(ram_bits[0], (1u << 5) | (1u << 3));
	assert_int_equal(rom_bits[0], 0);
	assert_int_equal(f->log_gets, 1);
	/* a set that does not match the regions is refused before any read */
	d.region[0].pages = 15;
	assert_int_equal(spk_vm_dirty_log_fetch(vm, &d), -EINVAL);
	assert_int_equal(f->log_gets, 1);
	assert_int_equal(spk_vm_dirty_log_stop(vm), 0);
	assert_int_equal(f->log_off, 1);
	assert_int_equal(spk_vm_dirty_log_stop(vm), -EINVAL);
	assert_int_equal(spk_vm_destroy(vm), 0);
}

static void test_irqchip_ops(void **state)
{
	struct spk_vm_config cfg = {.irqchip = SPK_IRQCHIP_KERNEL};
	struct spk_vcpu *vcpu;
	struct spk_vm *vm;

	(void)state;
	assert_int_equal(spk_vm_create(&cfg, &vm), 0);
	vcpu = new_vcpu(vm, 0, NULL);
	assert_int_equal(spk_vm_irq_line(vm, 9, true), 0);
	assert_int_equal(((struct fake_vm *)vm->be)->gsi, 9);
	assert_true(((struct fake_vm *)vm->be)->level);
	assert_int_equal(spk_vm_signal_msi(vm, NULL), -EINVAL);
	/* ops the fake leaves NULL: refused with the backend's name */
	assert_int_equal(spk_vm_signal_msi(vm, &(struct spk_msi){.addr = 0xfee00000}), -ENOTSUP);
	assert_non_null(strstr(spk_last_error(), "fake"));
	assert_int_equal(spk_vcpu_interrupt(vcpu, 0x30), -ENOTSUP);
	struct spk_ioeventfd io = {.space = SPK_BUS_PIO, .addr = 0x80, .len = 1, .fd = 0};
	uint32_t gsi = 0;
	assert_int_equal(spk_vm_ioeventfd_add(vm, &io), -ENOTSUP);
	assert_int_equal(spk_vm_ioeventfd_del(vm, &io), -ENOTSUP);
	assert_int_equal(spk_vm_irqfd_add(vm, 5, 0), -ENOTSUP);
	assert_int_equal(spk_vm_irqfd_del(vm, 5, 0), -ENOTSUP);
	assert_int_equal(spk_vm_msi_route_add(vm, &(struct spk_msi){.addr = 0xfee00000}, &gsi),
	                 -ENOTSUP);
	assert_int_equal(spk_vm_msi_route_set(vm, 24, &(struct spk_msi){.addr = 0xfee00000}),
	                 -ENOTSUP);
	assert_int_equal(spk_vm_msi_route_del(vm, 24), -ENOTSUP);
	assert_non_null(strstr(spk_last_error(), "fake"));
	assert_int_equal(spk_vm_ioeventfd_add(NULL, &io), -EINVAL);
	assert_int_equal(spk_vm_irqfd_add(NULL, 5, 0), -EINVAL);
	assert_int_equal(spk_vm_msi_route_del(NULL, 24), -EINVAL);
	assert_false(spk_vcpu_irq_pending(vcpu)); /* not queued either */
	assert_int_equal(spk_vm_destroy(vm), 0);
}

static void test_state_machine(void **state)
{
	static const struct fake_step script[] = {{.op = F_HALT}};
	struct spk_vm *vm = new_vm(1);
	struct spk_vcpu *vcpu = new_vcpu(vm, 0, script);
	struct spk_exit exit;

	(void)state;
	assert_int_equal(spk_vcpu_state(vcpu), SPK_VCPU_CREATED);
	assert_int_equal(spk_vcpu_run(vcpu, &exit), -EINVAL); /* not READY */
	assert_non_null(strstr(spk_last_error(), "CREATED"));
	assert_int_equal(spk_vcpu_ready(vcpu), 0);
	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0);
	assert_int_equal(exit.kind, SPK_EXIT_HALT);
	assert_int_equal(exit.vcpu, 0);
	assert_int_equal(exit.pc, 0x1001);
	assert_int_equal(spk_vcpu_state(vcpu), SPK_VCPU_READY);
	assert_int_equal(((struct fake_vm *)vm->be)->prepared, 1);
	assert_int_equal(spk_vcpu_stop(vcpu), 0);
	assert_int_equal(spk_vcpu_run(vcpu, &exit), -EINVAL);
	/* what the fake backend lacks is refused by the core with a message */
	struct spk_x86_regs regs;
	struct spk_vcpu_debug dbg = {.enable = true};
	assert_int_equal(spk_vcpu_get_regs(vcpu, &regs), -ENOTSUP);
	assert_non_null(strstr(spk_last_error(), "fake"));
	assert_int_equal(spk_vcpu_set_debug(vcpu, &dbg), -ENOTSUP);
	assert_int_equal(spk_vcpu_get_regs(vcpu, NULL), -EINVAL);
	assert_int_equal(spk_vm_destroy(vm), 0);
}

static void test_route_pio_mmio_sysreg(void **state)
{
	static const struct fake_step script[] = {
	    {.op = F_PIO, .addr = 0x81, .width = 1, .is_write = true, .value = 0x42},
	    {.op = F_PIO, .addr = 0x80, .width = 2},                         /* read */
	    {.op = F_MMIO, .addr = 0xd0000008, .width = 4},                  /* read */
	    {.op = F_SYSREG, .addr = 0x10, .is_write = true, .value = 0x77}, /* write */
	    {.op = F_SYSREG, .addr = 0x10},                                  /* read */
	    {.op = F_HANDLED},
	    {.op = F_HALT},
	};
	struct reg_dev pio = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct reg_dev mmio = {.lock = PTHREAD_MUTEX_INITIALIZER, .value = 0x11223344};
	struct reg_dev msr = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct spk_vm *vm = new_vm(1);
	struct spk_vcpu *vcpu = new_vcpu(vm, 0, script);
	struct spk_vcpu_stats st;
	struct spk_exit exit;

	(void)state;
	assert_int_equal(
	    spk_bus_register(spk_vm_bus(vm), SPK_BUS_PIO, 0x80, 2, "pio", &reg_ops, &pio, 0), 0);
	assert_int_equal(spk_bus_register(spk_vm_bus(vm), SPK_BUS_MMIO, 0xd0000000, 0x1000, "mmio",
	                                  &reg_ops, &mmio, 0),
	                 0);
	assert_int_equal(
	    spk_bus_register(spk_vm_bus(vm), SPK_BUS_SYSREG, 0x10, 1, "msr", &reg_ops, &msr, 0), 0);
	assert_int_equal(spk_vcpu_ready(vcpu), 0);
	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0);
	assert_int_equal(exit.kind, SPK_EXIT_HALT);
	/* PIO: the write reached the device at its offset, the read came back
	 * in the backend's data buffer (no completion needed) */
	assert_int_equal(pio.writes, 1);
	assert_int_equal(pio.reads, 1);
	assert_int_equal(spk_get_le(fv(vcpu)->pio, 2), 0x42);
	/* MMIO read and SYSREG read: completed at once through the backend */
	struct fake_vcpu *f = fv(vcpu);
	assert_int_equal(atomic_load(&f->n_done), 2);
	assert_int_equal(f->done[0].flags, SPK_COMPLETE_MMIO);
	assert_int_equal(f->done[0].value & 0xffffffff, 0x11223344);
	assert_int_equal(mmio.last_offset, 8);
	assert_int_equal(f->done[1].flags, SPK_COMPLETE_SYSREG);
	assert_int_equal(f->done[1].value, 0x77);
	spk_vcpu_get_stats(vcpu, &st);
	assert_int_equal(st.count[SPK_EXIT_PIO], 2);
	assert_int_equal(st.count[SPK_EXIT_MMIO], 1);
	assert_int_equal(st.count[SPK_EXIT_SYSREG], 2);
	assert_int_equal(st.count[SPK_EXIT_NONE], 1);
	assert_int_equal(st.count[SPK_EXIT_HALT], 1);
	assert_int_equal(st.handled, 6);
	/* the bus froze before the first entry */
	assert_true(spk_bus_frozen(spk_vm_bus(vm)));
	assert_int_equal(spk_vm_destroy(vm), 0);
}

static void test_misses_and_completion(void **state)
{
	static const struct fake_step script[] = {
	    {.op = F_MMIO, .addr = 0xe0000000, .width = 4}, /* no device: NPF */
	    {.op = F_MMIO, .addr = 0x2000, .width = 2, .is_write = true, .value = 0xbeef}, /* ROM */
	    {.op = F_PIO, .addr = 0x300, .width = 1},                         /* IGNORE */
	    {.op = F_MMIO, .addr = 0xe0000000, .width = 8},                   /* EXIT */
	    {.op = F_SYSREG, .addr = 0x99},                                   /* SYSREG exit */
	    {.op = F_MMIO, .addr = 0xe0000000, .width = 1, .is_write = true}, /* FATAL */
	    {.op = F_BADROUTE},
	    {.op = F_FAIL},
	    {.op = F_HALT},
	};
	struct spk_vm *vm = new_vm(1);
	struct spk_vcpu *vcpu = new_vcpu(vm, 0, script);
	struct fake_vcpu *f = fv(vcpu);
	struct spk_exit exit;

	(void)state;
	assert_int_equal(spk_vm_add_memory(vm, 0x2000, 0x1000, SPK_MEM_READONLY, "rom", NULL), 0);
	assert_int_equal(spk_vcpu_ready(vcpu), 0);

	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0);
	assert_int_equal(exit.kind, SPK_EXIT_NESTED_PAGE_FAULT);
	assert_int_equal(exit.npf.addr, 0xe0000000);
	assert_int_equal(exit.npf.access, SPK_ACCESS_READ);
	assert_false(exit.npf.readonly);
	assert_int_equal(spk_exit_complete_read(&exit, 0xcafe), 0);

	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0);
	/* the completed value went to the guest before the next entry */
	assert_int_equal(atomic_load(&f->n_done), 1);
	assert_int_equal(f->done[0].flags, SPK_COMPLETE_NPF);
	assert_int_equal(f->done[0].value & 0xffff, 0xcafe);
	assert_int_equal(exit.kind, SPK_EXIT_NESTED_PAGE_FAULT);
	assert_true(exit.npf.readonly);
	assert_int_equal(exit.npf.access, SPK_ACCESS_WRITE);
	assert_int_equal(spk_get_le(exit.npf.data, 2), 0xbeef);

	assert_int_equal(spk_bus_set_miss_policy(spk_vm_bus(vm), SPK_BUS_MMIO, SPK_MISS_EXIT), 0);
	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0); /* the PIO read was ignored */
	assert_int_equal(fv(vcpu)->pio[0], 0xff);
	assert_int_equal(exit.kind, SPK_EXIT_MMIO);
	assert_int_equal(exit.mmio.width, 8);
	assert_int_equal(exit.mmio.reg, 3); /* what the backend knew stays */
	assert_int_equal(spk_exit_complete_read(&exit, 0x0102030405060708ull), 0);

	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0);
	assert_int_equal(f->done[1].flags, SPK_COMPLETE_MMIO);
	assert_int_equal(f->done[1].value, 0x0102030405060708ull);
	assert_int_equal(exit.kind, SPK_EXIT_SYSREG);
	assert_int_equal(exit.sysreg.id, 0x99);
	exit.sysreg.fault = true; /* the caller makes the guest take #GP */

	assert_int_equal(spk_bus_set_miss_policy(spk_vm_bus(vm), SPK_BUS_MMIO, SPK_MISS_FATAL), 0);
	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0);
	assert_int_equal(f->done[2].flags, SPK_COMPLETE_SYSREG);
	assert_int_equal(exit.kind, SPK_EXIT_INTERNAL_ERROR);
	assert_int_equal(exit.internal.code, SPK_INTERNAL_STRICT_MISS);

	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0);
	assert_int_equal(exit.kind, SPK_EXIT_INTERNAL_ERROR);
	assert_int_equal(exit.internal.code, SPK_INTERNAL_BAD_EXIT);
	assert_non_null(strstr(exit.internal.message, "HALT"));

	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0);
	assert_int_equal(exit.kind, SPK_EXIT_INTERNAL_ERROR);
	assert_int_equal(exit.internal.code, SPK_INTERNAL_RUN_FAILED);
	assert_int_equal(spk_vcpu_state(vcpu), SPK_VCPU_READY);

	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0);
	assert_int_equal(exit.kind, SPK_EXIT_HALT);
	assert_int_equal(spk_vm_destroy(vm), 0);
}

static void test_hypercalls(void **state)
{
	static const struct fake_step script[] = {
	    {.op = F_HC, .nr = SPK_HC_VCPU_ID},
	    {.op = F_HC, .nr = 0x100, .args = {40, 2}},
	    {.op = F_HC, .nr = 0x7f}, /* an unknown library number: ENOSYS */
	    {.op = F_HC, .nr = 0x101, .args = {1, 2, 3, 4, 5, 6}},
	    {.op = F_HC, .nr = SPK_HC_CPU_OFF},
	    {.op = F_HALT},
	};
	struct spk_vm *vm = new_vm(2);
	struct spk_vcpu *vcpu;
	struct spk_exit exit;

	(void)state;
	new_vcpu(vm, 0, NULL);
	vcpu = new_vcpu(vm, 1, script);
	struct fake_vcpu *f = fv(vcpu);
	assert_int_equal(spk_hypercall_register(spk_vm_hypercalls(vm), 0x100, "add", hc_add, NULL),
	                 0);
	assert_int_equal(spk_vcpu_ready(vcpu), 0);
	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0);
	/* three handled, each result handed back at once */
	assert_int_equal(atomic_load(&f->n_done), 3);
	assert_int_equal(f->done[0].flags, SPK_COMPLETE_HC_PRIV);
	assert_int_equal(f->done[0].value, 1); /* VCPU_ID */
	assert_int_equal(f->done[1].value, 42);
	assert_int_equal(f->done[2].value, SPK_HC_ENOSYS);
	/* nobody registered 0x101: the caller gets it and answers */
	assert_int_equal(exit.kind, SPK_EXIT_HYPERCALL);
	assert_int_equal(exit.hypercall.nr, 0x101);
	assert_int_equal(exit.hypercall.args[5], 6);
	assert_int_equal(exit.hypercall.ret, SPK_HC_ENOSYS);
	assert_int_equal(spk_exit_complete_read(&exit, 9), 0);
	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0);
	assert_int_equal(f->done[3].flags, SPK_COMPLETE_HC);
	assert_int_equal(f->done[3].value, 9);
	assert_int_equal(exit.kind, SPK_EXIT_CPU_DOWN);
	/* registrations are closed once the VM has run */
	assert_int_equal(spk_hypercall_register(spk_vm_hypercalls(vm), 0x102, "late", hc_add, NULL),
	                 -EBUSY);
	assert_int_equal(spk_vm_destroy(vm), 0);
}

static void test_return_handled(void **state)
{
	static const struct fake_step script[] = {
	    {.op = F_PIO, .addr = 0x300, .width = 1, .is_write = true},
	    {.op = F_HC, .nr = SPK_HC_VCPU_ID},
	    {.op = F_HALT},
	};
	struct spk_vm *vm = new_vm(1);
	struct spk_vcpu *vcpu = new_vcpu(vm, 0, script);
	struct spk_exit exit;

	(void)state;
	spk_vcpu_set_flags(vcpu, SPK_VCPU_RETURN_HANDLED);
	assert_int_equal(spk_vcpu_ready(vcpu), 0);
	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0);
	assert_int_equal(exit.kind, SPK_EXIT_NONE);
	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0);
	assert_int_equal(exit.kind, SPK_EXIT_NONE);
	assert_int_equal(spk_exit_complete_read(&exit, 5), -EINVAL); /* nothing to complete */
	assert_int_equal(spk_vcpu_run(vcpu, &exit), 0);
	assert_int_equal(exit.kind, SPK_EXIT_HALT);
	/* the hypercall's result went back once, not again at the next run */
	assert_int_equal(atomic_load(&fv(vcpu)->n_done), 1);
	assert_int_equal(spk_vm_destroy(vm), 0);
}

/* ---- threads: kicks, stops, destroy, two runs ------------------------------- */

struct runner_arg {
	struct spk_vcpu *vcpu;
	struct spk_exit exit;
	int rc;
};

static void *run_once(void *p)
{
	struct runner_arg *a = p;

	a->rc = spk_vcpu_run(a->vcpu, &a->exit);
	return NULL;
}

/* Wait (for a condition, not a time) until the vCPU spins in the guest. */
static void wait_spinning(struct spk_vcpu *vcpu)
{
	while (!atomic_load(&fv(vcpu)->spinning))
		sched_yield();
}

static void test_kick_while_running(void **state)
{
	static const struct fake_step script[] = {{.op = F_SPIN}};
	struct spk_vm *vm = new_vm(1);
	struct runner_arg a = {.vcpu = new_vcpu(vm, 0, script)};
	struct spk_exit exit;
	pthread_t t;

	(void)state;
	assert_int_equal(spk_vcpu_ready(a.vcpu), 0);
	assert_int_equal(pthread_create(&t, NULL, run_once, &a), 0);
	wait_spinning(a.vcpu);
	/* a second run of the same vCPU on another thread is refused */
	assert_int_equal(spk_vcpu_run(a.vcpu, &exit), -EBUSY);
	assert_int_equal(spk_vcpu_ready(a.vcpu), -EBUSY);
	assert_int_equal(spk_vcpu_kick(a.vcpu), 0);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.exit.kind, SPK_EXIT_CANCELLED);
	assert_int_equal(a.exit.pc, 0xc0de); /* asked of the backend */
	assert_int_equal(spk_vcpu_state(a.vcpu), SPK_VCPU_READY);

	/* a kick before the run cancels that run, and only that one */
	assert_int_equal(spk_vcpu_kick(a.vcpu), 0);
	assert_int_equal(spk_vcpu_run(a.vcpu, &exit), 0);
	assert_int_equal(exit.kind, SPK_EXIT_CANCELLED);

	/* a stop request ends the run with the kind asked for */
	assert_int_equal(pthread_create(&t, NULL, run_once, &a), 0);
	wait_spinning(a.vcpu);
	assert_int_equal(spk_vm_request_stop(vm, SPK_EXIT_RESET), 0);
	pthread_join(t, NULL);
	assert_int_equal(a.exit.kind, SPK_EXIT_RESET);
	assert_int_equal(a.exit.reset.source, SPK_SOURCE_DEVICE);
	assert_int_equal(spk_vm_destroy(vm), 0);
}

static void test_destroy_while_running(void **state)
{
	static const struct fake_step script[] = {{.op = F_SPIN}};
	struct spk_vm *vm = new_vm(1);
	struct runner_arg a = {.vcpu = new_vcpu(vm, 0, script)};
	int destroyed = atomic_load(&vcpus_destroyed);
	pthread_t t;

	(void)state;
	assert_int_equal(spk_vcpu_ready(a.vcpu), 0);
	assert_int_equal(pthread_create(&t, NULL, run_once, &a), 0);
	wait_spinning(a.vcpu);
	/* destroy kicks the vCPU and waits until the run has returned */
	assert_int_equal(spk_vm_destroy(vm), 0);
	assert_int_equal(atomic_load(&vcpus_destroyed), destroyed + 1);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.exit.kind, SPK_EXIT_CANCELLED);
	assert_int_equal(spk_vm_destroy(vm), -EINVAL); /* twice */
}

#define N_WRITES 50

static void test_two_threads(void **state)
{
	static struct fake_step script[N_WRITES + 1];
	struct reg_dev dev = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct spk_vm *vm = new_vm(2);
	struct runner_arg a[2];
	pthread_t t[2];

	(void)state;
	for (int i = 0; i < N_WRITES; i++)
		script[i] = (struct fake_step){
		    .op = F_MMIO, .addr = 0xd0000000, .width = 4, .is_write = true, .value = i};
	script[N_WRITES] = (struct fake_step){.op = F_HALT};
	assert_int_equal(spk_bus_register(spk_vm_bus(vm), SPK_BUS_MMIO, 0xd0000000, 0x1000, "dev",
	                                  &reg_ops, &dev, 0),
	                 0);
	for (int i = 0; i < 2; i++) {
		a[i] = (struct runner_arg){.vcpu = new_vcpu(vm, (uint32_t)i, script)};
		assert_int_equal(spk_vcpu_ready(a[i].vcpu), 0);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, run_once, &a[i]), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].rc, 0);
		assert_int_equal(a[i].exit.kind, SPK_EXIT_HALT);
		assert_int_equal(a[i].exit.vcpu, (uint32_t)i);
	}
	assert_int_equal(dev.writes, 2 * N_WRITES);
	assert_int_equal(((struct fake_vm *)vm->be)->prepared, 1); /* once, not per vCPU */
	assert_int_equal(spk_vm_destroy(vm), 0);
}

/* The runner: CPU_UP starts vCPU 1 through the backend, SYSTEM_OFF ends it. */
static void test_runner(void **state)
{
	static const struct fake_step boot[] = {
	    {.op = F_HC, .nr = SPK_HC_CPU_ON, .args = {7, 0x8000, 0}}, /* no such vCPU */
	    {.op = F_HC, .nr = SPK_HC_CPU_ON, .args = {1, 0x8000, 0x55}},
	    {.op = F_SPIN},
	};
	static const struct fake_step second[] = {
	    {.op = F_HC, .nr = SPK_HC_SYSTEM_OFF},
	};
	struct spk_vm *vm = new_vm(2);
	struct spk_vcpu *v0 = new_vcpu(vm, 0, boot);
	struct spk_run_result res;

	(void)state;
	scripts[1] = second; /* vCPU 1 is created by CPU_UP */
	assert_int_equal(spk_vcpu_ready(v0), 0);
	assert_int_equal(spk_vm_run(vm, NULL, NULL, &res), 0);
	scripts[1] = NULL;
	assert_int_equal(res.kind, SPK_EXIT_SYSTEM_DOWN);
	assert_false(res.unhandled);
	struct spk_vcpu *v1 = spk_vm_vcpu(vm, 1);
	assert_non_null(v1);
	assert_int_equal(fv(v1)->start_entry, 0x8000);
	assert_int_equal(fv(v1)->start_arg, 0x55);
	/* CPU_ON of vCPU 7 got an error back, before vCPU 1 existed (the
	 * result for vCPU 1 reaches the fake only if vCPU 0 runs once more
	 * before SYSTEM_OFF stops the VM: not asserted) */
	assert_true(atomic_load(&fv(v0)->n_done) >= 1);
	assert_int_equal(fv(v0)->done[0].flags, SPK_COMPLETE_HC_PRIV);
	assert_int_equal(fv(v0)->done[0].value, (uint64_t)-EINVAL);
	assert_int_equal(spk_vm_destroy(vm), 0);
}

/* HALT with interrupts off stops the vCPU; the run ends as CPU_DOWN. */
static void test_runner_halt(void **state)
{
	static const struct fake_step script[] = {{.op = F_HALT}};
	struct spk_vm *vm = new_vm(1);
	struct spk_vcpu *vcpu = new_vcpu(vm, 0, script);
	struct spk_run_result res;

	(void)state;
	fv(vcpu)->wakeable = false;
	assert_int_equal(spk_vcpu_ready(vcpu), 0);
	assert_int_equal(spk_vm_run(vm, NULL, NULL, &res), 0);
	assert_int_equal(res.kind, SPK_EXIT_CPU_DOWN);
	assert_int_equal(spk_vcpu_state(vcpu), SPK_VCPU_STOPPED);
	assert_int_equal(spk_vm_destroy(vm), 0);
}

/* Without an in-kernel irqchip the core queues vectors for the backend. */
static void test_interrupt_queue(void **state)
{
	struct spk_vm *vm = new_vm(1);
	struct spk_vcpu *vcpu = new_vcpu(vm, 0, NULL);

	(void)state;
	assert_false(spk_vcpu_irq_pending(vcpu));
	assert_int_equal(spk_vcpu_interrupt(vcpu, 0x20), 0);
	assert_int_equal(spk_vcpu_interrupt(vcpu, 0xf0), 0);
	assert_true(spk_vcpu_irq_pending(vcpu));
	assert_int_equal(spk_vcpu_irq_take(vcpu), 0xf0); /* highest first */
	spk_vcpu_irq_requeue(vcpu, 0xf0);
	assert_int_equal(spk_vcpu_irq_take(vcpu), 0xf0);
	assert_int_equal(spk_vcpu_irq_take(vcpu), 0x20);
	assert_int_equal(spk_vcpu_irq_take(vcpu), -1);
	assert_int_equal(spk_vm_destroy(vm), 0);
}

/* ---- the runner's other paths ------------------------------------------------ */

/* SEND_IPI queues the vector on the target; a halted vCPU with interrupts
 * on waits for it (spk_vcpu_wait_event) and runs on. */
static void test_runner_ipi_and_halt_wakeup(void **state)
{
	static const struct fake_step v0[] = {
	    {.op = F_HALT}, /* wakeable: waits for vCPU 1's IPI */
	    {.op = F_HC, .nr = SPK_HC_SEND_IPI, .args = {3, 0x41}}, /* no vCPU 3 */
	    {.op = F_HC, .nr = SPK_HC_SEND_IPI, .args = {1, 0x42}},
	    {.op = F_SPIN},
	};
	static const struct fake_step v1[] = {
	    {.op = F_HC, .nr = SPK_HC_SEND_IPI, .args = {0, 0x40}},
	    {.op = F_WAIT_IRQ},
	    {.op = F_HC, .nr = SPK_HC_SYSTEM_OFF},
	};
	struct spk_vm *vm = new_vm(4);
	struct spk_vcpu *a = new_vcpu(vm, 0, v0), *b = new_vcpu(vm, 1, v1);
	struct spk_run_result res;

	(void)state;
	assert_int_equal(spk_vcpu_ready(a), 0);
	assert_int_equal(spk_vcpu_ready(b), 0);
	assert_int_equal(spk_vm_run(vm, NULL, NULL, &res), 0);
	assert_int_equal(res.kind, SPK_EXIT_SYSTEM_DOWN);
	assert_int_equal(res.exit.vcpu, 1);
	/* vCPU 0 woke from HALT by the IPI and got its vector injected */
	assert_int_equal(atomic_load(&fv(a)->n_injected), 1);
	assert_int_equal(fv(a)->injected[0], 0x40);
	/* vCPU 1 waited for vCPU 0's IPI: only possible after the wakeup */
	assert_int_equal(atomic_load(&fv(b)->n_injected), 1);
	assert_int_equal(fv(b)->injected[0], 0x42);
	/* the IPI to a vCPU that does not exist came back as an error */
	assert_true(atomic_load(&fv(a)->n_done) >= 1);
	assert_true((int64_t)fv(a)->done[0].value < 0);
	assert_int_equal(spk_vm_destroy(vm), 0);
}

struct hooks {
	atomic_int thread_starts;
	atomic_int exits_seen;
	atomic_int starts;
	struct spk_vm *vm;
	int destroy_rc;
};

static void hook_thread_start(struct spk_vcpu *vcpu, void *opaque)
{
	struct hooks *h = opaque;

	atomic_fetch_add(&h->thread_starts, 1);
}

static int hook_start_vcpu(struct spk_vcpu *vcpu, uint64_t entry, uint64_t arg, void *opaque)
{
	struct hooks *h = opaque;

	atomic_fetch_add(&h->starts, 1);
	return spk_vcpu_ready(vcpu); /* not the backend's start */
}

/* on_exit: PIO exits continue, the UCALL stops the VM; a destroy from a
 * vCPU thread is refused (it would wait for itself). */
static enum spk_action hook_on_exit(struct spk_vcpu *vcpu, struct spk_exit *exit, void *opaque)
{
	struct hooks *h = opaque;

	atomic_fetch_add(&h->exits_seen, 1);
	switch (exit->kind) {
	case SPK_EXIT_PIO:
		spk_exit_complete_read(exit, 0x5a);
		return SPK_ACT_CONTINUE;
	case SPK_EXIT_HYPERCALL:
		h->destroy_rc = spk_vm_destroy(h->vm);
		return SPK_ACT_STOP_VM;
	default:
		return SPK_ACT_DEFAULT;
	}
}

static void test_runner_hooks(void **state)
{
	static const struct fake_step v0[] = {
	    {.op = F_HC, .nr = SPK_HC_CPU_ON, .args = {1, 0x9000, 1}},
	    {.op = F_SPIN},
	};
	static const struct fake_step v1[] = {
	    {.op = F_PIO, .addr = 0x300, .width = 1}, /* a miss that exits (policy EXIT) */
	    {.op = F_HC, .nr = SPK_HC_UCALL},
	};
	struct hooks h = {0};
	const struct spk_run_ops ops = {.on_exit = hook_on_exit,
	                                .thread_start = hook_thread_start,
	                                .start_vcpu = hook_start_vcpu};
	struct spk_vm *vm = new_vm(2);
	struct spk_vcpu *a = new_vcpu(vm, 0, v0);
	struct spk_run_result res;

	(void)state;
	h.vm = vm;
	assert_int_equal(spk_bus_set_miss_policy(spk_vm_bus(vm), SPK_BUS_PIO, SPK_MISS_EXIT), 0);
	assert_int_equal(spk_vcpu_ready(a), 0);
	scripts[1] = v1;
	assert_int_equal(spk_vm_run(vm, &ops, &h, &res), 0);
	scripts[1] = NULL;
	assert_int_equal(res.kind, SPK_EXIT_HYPERCALL);
	assert_false(res.unhandled);
	assert_int_equal(h.destroy_rc, -EDEADLK);
	assert_int_equal(atomic_load(&h.thread_starts), 2);
	assert_int_equal(atomic_load(&h.starts), 1);
	struct spk_vcpu *b = spk_vm_vcpu(vm, 1);
	assert_int_equal(atomic_load(&fv(b)->started), 0); /* the hook, not the backend */
	assert_int_equal(fv(b)->pio[0], 0x5a);             /* the on_exit completion */
	assert_true(atomic_load(&h.exits_seen) >= 3);
	assert_int_equal(spk_vm_destroy(vm), 0);
}

/* An exit nobody handles ends the run with a report; no READY vCPU is an
 * error; a second spk_vm_run of the same VM is refused. */
static void test_runner_unhandled(void **state)
{
	static const struct fake_step script[] = {
	    {.op = F_MMIO, .addr = 0xe0000000, .width = 4}, /* NESTED_PAGE_FAULT */
	};
	struct spk_vm *vm = new_vm(1);
	struct spk_vcpu *vcpu = new_vcpu(vm, 0, script);
	struct spk_run_result res;

	(void)state;
	assert_int_equal(spk_vm_run(vm, NULL, NULL, &res), -EINVAL); /* CREATED only */
	assert_int_equal(spk_vcpu_ready(vcpu), 0);
	assert_int_equal(spk_vm_run(vm, NULL, NULL, &res), 0);
	assert_true(res.unhandled);
	assert_int_equal(res.kind, SPK_EXIT_NESTED_PAGE_FAULT);
	assert_non_null(strstr(res.report, "NESTED_PAGE_FAULT"));
	assert_non_null(strstr(res.report, "vCPU 0"));
	assert_int_equal(spk_vm_run(NULL, NULL, NULL, &res), -EINVAL);
	assert_int_equal(spk_vm_run(vm, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(spk_vm_destroy(vm), 0);
}

struct vm_run_arg {
	struct spk_vm *vm;
	struct spk_run_result res;
	int rc;
};

static void *vm_run_thread(void *p)
{
	struct vm_run_arg *a = p;

	a->rc = spk_vm_run(a->vm, NULL, NULL, &a->res);
	return NULL;
}

/* spk_vm_destroy while spk_vm_run runs on another thread: the run ends
 * (CANCELLED, unhandled, the reason in the report), then the VM goes. */
static void test_destroy_during_vm_run(void **state)
{
	static const struct fake_step script[] = {{.op = F_SPIN}};
	struct vm_run_arg a = {.vm = new_vm(2)};
	struct spk_vcpu *v0 = new_vcpu(a.vm, 0, script), *v1 = new_vcpu(a.vm, 1, script);
	struct spk_run_result res;
	pthread_t t;

	(void)state;
	assert_int_equal(spk_vcpu_ready(v0), 0);
	assert_int_equal(spk_vcpu_ready(v1), 0);
	assert_int_equal(pthread_create(&t, NULL, vm_run_thread, &a), 0);
	wait_spinning(v0);
	wait_spinning(v1);
	assert_int_equal(spk_vm_run(a.vm, NULL, NULL, &res), -EBUSY); /* one at a time */
	assert_int_equal(spk_vm_destroy(a.vm), 0);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.res.kind, SPK_EXIT_CANCELLED);
	assert_true(a.res.unhandled);
	assert_non_null(strstr(a.res.report, "destroyed"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_destroy),
	    cmocka_unit_test(test_memory_slots),
	    cmocka_unit_test(test_irqchip_ops),
	    cmocka_unit_test(test_dirty_log),
	    cmocka_unit_test(test_state_machine),
	    cmocka_unit_test(test_route_pio_mmio_sysreg),
	    cmocka_unit_test(test_misses_and_completion),
	    cmocka_unit_test(test_hypercalls),
	    cmocka_unit_test(test_return_handled),
	    cmocka_unit_test(test_kick_while_running),
	    cmocka_unit_test(test_destroy_while_running),
	    cmocka_unit_test(test_two_threads),
	    cmocka_unit_test(test_runner),
	    cmocka_unit_test(test_runner_halt),
	    cmocka_unit_test(test_interrupt_queue),
	    cmocka_unit_test(test_runner_ipi_and_halt_wakeup),
	    cmocka_unit_test(test_runner_hooks),
	    cmocka_unit_test(test_runner_unhandled),
	    cmocka_unit_test(test_destroy_during_vm_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
