// SPDX-License-Identifier: Apache-2.0
/*
 * The NULL rule (vcpu.h, "The library's rules") for the public functions
 * that need no KVM: memory map, bus, hypercall table, ELF loader, event
 * loop, exits, the state machine. NULL handles and pointers are -EINVAL
 * with a message of the call's own; functions that return a value give
 * their documented neutral one; nothing crashes. (tests/guest/contract.c
 * does the same for the VM and vCPU functions, under KVM.)
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <sparkler/sparkler.h>

/* A failing call with a known message first: a call that sets none shows. */
static void sentinel(char *buf, size_t size)
{
	spk_vcpu_transition(NULL, SPK_VCPU_READY, "sentinel");
	snprintf(buf, size, "%s", spk_last_error());
}

#define EINVAL_MSG(call)                                                                           \
	do {                                                                                       \
		char before_[256];                                                                 \
		sentinel(before_, sizeof(before_));                                                \
		int rc_ = (call);                                                                  \
		if (rc_ != -EINVAL)                                                                \
			fail_msg("%s returned %d, not -EINVAL", #call, rc_);                       \
		if (strcmp(before_, spk_last_error()) == 0)                                        \
			fail_msg("%s set no message of its own", #call);                           \
	} while (0)

static void test_mem(void **unused)
{
	struct spk_mem *mem;
	const struct spk_mem_region *r = (const void *)1;
	uint8_t b = 0;
	char s[8];

	EINVAL_MSG(spk_mem_new(NULL));
	spk_mem_free(NULL);
	EINVAL_MSG(spk_mem_add(NULL, 0, 4096, SPK_MEM_RAM, &b, "x"));
	EINVAL_MSG(spk_mem_populate(NULL, 0, &b));
	assert_null(spk_mem_find(NULL, 0));
	assert_int_equal(spk_mem_regions(NULL, &r), 0);
	assert_null(r);
	assert_int_equal(spk_mem_regions(NULL, NULL), 0);
	assert_null(spk_mem_ptr(NULL, 0, 1, SPK_MEM_R));
	EINVAL_MSG(spk_mem_read(NULL, 0, &b, 1));
	EINVAL_MSG(spk_mem_write(NULL, 0, &b, 1));
	EINVAL_MSG(spk_mem_load(NULL, 0, &b, 1));
	EINVAL_MSG(spk_mem_read_str(NULL, 0, s, sizeof(s)));
	assert_int_equal(spk_mem_new(&mem), 0);
	EINVAL_MSG(spk_mem_populate(mem, 0, NULL));
	EINVAL_MSG(spk_mem_read(mem, 0, NULL, 1));
	EINVAL_MSG(spk_mem_write(mem, 0, NULL, 1));
	EINVAL_MSG(spk_mem_load(mem, 0, NULL, 1));
	EINVAL_MSG(spk_mem_read_str(mem, 0, NULL, 8));
	spk_mem_free(mem);
}

static void test_bus(void **unused)
{
	static const struct spk_bus_ops ops = {0};
	struct spk_bus *bus;
	uint64_t v;

	EINVAL_MSG(spk_bus_new(NULL));
	spk_bus_free(NULL);
	EINVAL_MSG(spk_bus_register(NULL, SPK_BUS_PIO, 0x80, 1, "x", &ops, NULL, 0));
	EINVAL_MSG(spk_bus_set_miss_policy(NULL, SPK_BUS_PIO, SPK_MISS_EXIT));
	spk_bus_freeze(NULL);
	assert_false(spk_bus_frozen(NULL));
	EINVAL_MSG(spk_bus_read(NULL, SPK_BUS_PIO, 0x80, 1, &v, NULL));
	EINVAL_MSG(spk_bus_write(NULL, SPK_BUS_PIO, 0x80, 1, 0, NULL));
	assert_null(spk_bus_owner(NULL, SPK_BUS_PIO, 0x80));
	spk_bus_for_each(NULL, SPK_BUS_PIO, NULL, NULL);
	assert_int_equal(spk_bus_new(&bus), 0);
	EINVAL_MSG(spk_bus_register(bus, SPK_BUS_PIO, 0x80, 1, NULL, &ops, NULL, 0));
	EINVAL_MSG(spk_bus_register(bus, SPK_BUS_PIO, 0x80, 1, "x", NULL, NULL, 0));
	EINVAL_MSG(spk_bus_register(bus, SPK_BUS__COUNT, 0x80, 1, "x", &ops, NULL, 0));
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0x80, 1, "x", &ops, NULL, 0), 0);
	EINVAL_MSG(spk_bus_read(bus, SPK_BUS_PIO, 0x80, 1, NULL, NULL));
	spk_bus_for_each(bus, SPK_BUS_PIO, NULL, NULL);
	spk_bus_free(bus);
}

static uint64_t hc(struct spk_vcpu *v, uint64_t nr, const uint64_t a[6], void *o)
{
	return 0;
}

static void test_hypercall_exit_loader(void **unused)
{
	struct spk_hypercall_table *t;
	struct spk_ucall uc;
	struct spk_elf_info info;
	struct spk_exit e = {0};
	uint8_t image[64] = {0};
	void *opaque;
	char buf[8];

	EINVAL_MSG(spk_hypercall_table_new(NULL));
	spk_hypercall_table_free(NULL);
	EINVAL_MSG(spk_hypercall_register(NULL, 0x100, "x", hc, NULL));
	spk_hypercall_freeze(NULL);
	assert_null(spk_hypercall_lookup(NULL, 0x100, &opaque, NULL));
	assert_int_equal(spk_hypercall_table_new(&t), 0);
	EINVAL_MSG(spk_hypercall_register(t, 0x100, NULL, hc, NULL));
	EINVAL_MSG(spk_hypercall_register(t, 0x100, "x", NULL, NULL));
	assert_int_equal(spk_hypercall_register(t, 0x100, "x", hc, NULL), 0);
	assert_non_null(spk_hypercall_lookup(t, 0x100, NULL, NULL));
	spk_hypercall_table_free(t);
	assert_null(spk_hypercall_name(12345));
	EINVAL_MSG(spk_ucall_decode(NULL, NULL, &uc));
	EINVAL_MSG(spk_ucall_decode(NULL, &e, NULL));

	EINVAL_MSG(spk_exit_complete_read(NULL, 0));
	assert_true(spk_exit_format(NULL, buf, sizeof(buf)) > 0);
	assert_true(spk_exit_format(&e, NULL, 0) > 0);
	assert_non_null(spk_exit_name((enum spk_exit_kind)1000));

	EINVAL_MSG(spk_elf_load(NULL, image, sizeof(image), &info));
	EINVAL_MSG(spk_elf_load_file(NULL, "/nonexistent", 1 << 20, &info));
	assert_non_null(spk_vcpu_state_name((enum spk_vcpu_state)99));
	EINVAL_MSG(spk_vcpu_transition(NULL, SPK_VCPU_READY, "x"));
	assert_null(spk_cpuid_find(NULL, 5, 0, 0));
}

static void test_evloop(void **unused)
{
	struct spk_evloop *l;

	EINVAL_MSG(spk_evloop_new("x", NULL));
	spk_evloop_free(NULL);
	EINVAL_MSG(spk_evloop_add(NULL, 0, 1, NULL, NULL));
	EINVAL_MSG(spk_evloop_mod(NULL, 0, 1));
	EINVAL_MSG(spk_evloop_del(NULL, 0));
	spk_evloop_on_start(NULL, NULL, NULL);
	EINVAL_MSG(spk_evloop_start(NULL));
	spk_evloop_stop(NULL);
	EINVAL_MSG(spk_evloop_run_once(NULL, 0));
	assert_false(spk_evloop_on_loop(NULL));
	assert_int_equal(spk_evloop_new(NULL, &l), 0); /* a NULL name is allowed */
	EINVAL_MSG(spk_evloop_add(l, 0, 1, NULL, NULL));
	spk_evloop_free(l);
}

/* The device models: constructors refuse a NULL config or out pointer,
 * every free takes NULL. (Their per-access functions are the exit path:
 * a non-NULL device is their precondition, as their headers say.) */
#define NEW_NULLS(prefix, cfg_type)                                                                \
	do {                                                                                       \
		static const struct cfg_type cfg_;                                                 \
		EINVAL_MSG(prefix##_new(NULL, NULL));                                              \
		EINVAL_MSG(prefix##_new(&cfg_, NULL));                                             \
		prefix##_free(NULL);                                                               \
	} while (0)

static void test_devices(void **unused)
{
	NEW_NULLS(spk_pci_host, spk_pci_host_config);
	NEW_NULLS(spk_pci_dev, spk_pci_dev_config);
	NEW_NULLS(spk_virtio, spk_virtio_config);
	NEW_NULLS(spk_virtio_rng, spk_virtio_rng_config);
	NEW_NULLS(spk_virtio_console, spk_virtio_console_config);
	NEW_NULLS(spk_virtio_blk, spk_virtio_blk_config);
	NEW_NULLS(spk_virtio_net, spk_virtio_net_config);
	NEW_NULLS(spk_virtio_vsock, spk_virtio_vsock_config);
	NEW_NULLS(spk_uart, spk_uart_config);
	NEW_NULLS(spk_i8042, spk_i8042_config);
	NEW_NULLS(spk_rtc, spk_rtc_config);
	NEW_NULLS(spk_acpi_pm, spk_acpi_pm_config);
	NEW_NULLS(spk_boot_timer, spk_boot_timer_config);
	spk_pci_dev_state_free(NULL);
}

/* A call that returns no error code: the message must be its own. */
#define MSG(call)                                                                                  \
	do {                                                                                       \
		char before_[256];                                                                 \
		sentinel(before_, sizeof(before_));                                                \
		call;                                                                              \
		if (strcmp(before_, spk_last_error()) == 0)                                        \
			fail_msg("%s set no message of its own", #call);                           \
	} while (0)

/* devices.h: the host-side calls of the legacy devices. */
static void test_legacy_devices(void **unused)
{
	static const struct spk_uart_config ucfg;
	struct spk_uart *u;
	uint8_t b = 'x';
	struct spk_irq_line l;

	(void)unused;
	MSG(assert_int_equal(spk_uart_receive(NULL, &b, 1), 0));
	MSG(assert_int_equal(spk_uart_rx_room(NULL), 0));
	assert_int_equal(spk_uart_new(&ucfg, &u), 0);
	size_t room = spk_uart_rx_room(u);
	assert_true(room > 0);
	MSG(assert_int_equal(spk_uart_receive(u, NULL, 1), 0));
	assert_int_equal(spk_uart_rx_room(u), room); /* the refused call took nothing */
	spk_uart_free(u);
	EINVAL_MSG(spk_i8042_ctrl_alt_del(NULL));
	MSG(spk_acpi_pm_set_ports(NULL, 1, 2, 3, 4));
	MSG(spk_acpi_pm_power_button(NULL));
	MSG(l = spk_vm_irq(NULL, 9));
	assert_null(l.set);
	spk_irq_set(&l, true); /* goes nowhere */
}

/* pci.h: the set-up, host-side and snapshot calls (the exit-path ones
 * take a non-NULL device as their precondition). */
static void test_pci(void **unused)
{
	static const struct spk_pci_dev_ops ops;
	static const struct spk_pci_dev_config dcfg = {.name = "t", .vendor = 0x1af4, .ops = &ops};
	struct spk_pci_dev *d;
	struct spk_pci_dev_state *st = NULL;
	uint8_t cap[4] = {0}, off;

	(void)unused;
	EINVAL_MSG(spk_pci_dev_add_bar(NULL, 0, 4096, 0));
	EINVAL_MSG(spk_pci_dev_add_cap(NULL, SPK_PCI_CAP_ID_VENDOR, cap, 4, NULL, false, &off));
	EINVAL_MSG(spk_pci_dev_add_msix(NULL, 1, 0, 0, 2048));
	EINVAL_MSG(spk_pci_host_add(NULL, NULL, -1, NULL));
	EINVAL_MSG(spk_pci_dev_state_save(NULL, NULL));
	EINVAL_MSG(spk_pci_dev_state_read(NULL, NULL, &st));
	assert_null(st);
	MSG(spk_pci_dev_state_apply(NULL, NULL));
	MSG(assert_null(spk_pci_dev_vm(NULL)));
	assert_string_equal(spk_pci_dev_name(NULL), "(no device)");
	MSG(assert_int_equal(spk_pci_host_cfg_read(NULL, 0, 0, 4), 0xffffffffu));
	MSG(spk_pci_host_cfg_write(NULL, 0, SPK_PCI_COMMAND, 2, 0));
	MSG(assert_null(spk_pc_pci_host_config(NULL).bus));

	assert_int_equal(spk_pci_dev_new(&dcfg, &d), 0);
	EINVAL_MSG(spk_pci_dev_add_cap(d, SPK_PCI_CAP_ID_VENDOR, NULL, 4, NULL, false, &off));
	EINVAL_MSG(spk_pci_host_add(NULL, d, -1, NULL));
	assert_null(spk_pci_dev_vm(d)); /* on no host: no VM */
	MSG(spk_pci_dev_state_apply(d, NULL));
	spk_pci_dev_free(d);
}

/* snapshot.h: every function (the frees take NULL). */
static void test_snapshot(void **unused)
{
	uint8_t u8;
	uint64_t u64;

	(void)unused;
	MSG(spk_snap_header_host(NULL));
	EINVAL_MSG(spk_snap_writer_new(NULL));
	EINVAL_MSG(spk_snap_writer_error(NULL));
	EINVAL_MSG(spk_snap_section_begin(NULL, SPK_SNAP_SEC_DEVICE));
	EINVAL_MSG(spk_snap_put_u8(NULL, "a", 1));
	EINVAL_MSG(spk_snap_writer_finish(NULL, NULL, NULL));
	EINVAL_MSG(spk_snap_open_buf(NULL, 0, NULL));
	EINVAL_MSG(spk_snap_open(NULL, NULL));
	MSG(assert_null(spk_snap_file_header(NULL)));
	MSG(assert_int_equal(spk_snap_file_sections(NULL), 0));
	MSG(spk_snap_file_dump(NULL, stdout, false));
	EINVAL_MSG(spk_snap_reader_new(NULL, 0, NULL));
	EINVAL_MSG(spk_snap_get_u8(NULL, "a", &u8));
	EINVAL_MSG(spk_snap_get_max(NULL, "a", 1, &u64));
	EINVAL_MSG(spk_snap_reader_done(NULL));
	EINVAL_MSG(spk_snap_devices_new(NULL));
	EINVAL_MSG(spk_snap_devices_add(NULL, NULL, NULL, NULL));
	EINVAL_MSG(spk_snap_dirty_new(NULL, NULL));
	EINVAL_MSG(spk_snap_dirty_mark(NULL, 0, 1));
	MSG(assert_int_equal(spk_snap_dirty_count(NULL), 0));
	EINVAL_MSG(spk_snap_mem_layout(NULL, NULL));
	spk_snap_writer_free(NULL);
	spk_snap_close(NULL);
	spk_snap_reader_free(NULL);
	spk_snap_devices_free(NULL);
	spk_snap_dirty_free(NULL);
	spk_snap_mem_layout_fini(NULL);
}

/* virtio.h's devices, virtio_blk.h, virtio_net.h, virtio_vsock.h: the
 * host-side calls besides new/free. */
static void test_virtio_devices(void **unused)
{
	struct spk_virtio_blk_stats bs;
	struct spk_virtio_net_stats ns;
	struct spk_virtio_vsock_stats vs;
	static const struct spk_rate_limit rl;
	uint8_t mac[6];

	(void)unused;
	MSG(assert_null(spk_virtio_blk_dev(NULL)));
	MSG(assert_null(spk_virtio_blk_engine_name(NULL)));
	MSG(assert_int_equal(spk_virtio_blk_size(NULL), 0));
	EINVAL_MSG(spk_virtio_blk_swap(NULL, "x"));
	EINVAL_MSG(spk_virtio_blk_set_rate_limit(NULL, &rl));
	memset(&bs, 0xff, sizeof(bs));
	MSG(spk_virtio_blk_get_stats(NULL, &bs));
	assert_int_equal(bs.reads, 0);
	MSG(spk_virtio_blk_get_stats(NULL, NULL));

	MSG(assert_null(spk_virtio_net_dev(NULL)));
	MSG(assert_null(spk_virtio_net_ifname(NULL)));
	memset(mac, 0xff, sizeof(mac));
	MSG(spk_virtio_net_mac(NULL, mac));
	assert_int_equal(mac[0] | mac[5], 0);
	EINVAL_MSG(spk_virtio_net_set_rate_limits(NULL, &rl, &rl));
	memset(&ns, 0xff, sizeof(ns));
	MSG(spk_virtio_net_get_stats(NULL, &ns));
	assert_int_equal(ns.rx_frames, 0);
	MSG(spk_virtio_net_get_stats(NULL, NULL));

	MSG(assert_null(spk_virtio_rng_dev(NULL)));
	MSG(assert_int_equal(spk_virtio_rng_bytes(NULL), 0));
	MSG(assert_null(spk_virtio_console_dev(NULL)));
	MSG(assert_int_equal(spk_virtio_console_input(NULL, mac, 1), 0));
	MSG(spk_virtio_console_resize(NULL, 80, 25));
	MSG(assert_int_equal(spk_virtio_status(NULL), 0));
	MSG(assert_null(spk_virtio_state_ops(NULL)));

	MSG(assert_null(spk_virtio_vsock_dev(NULL)));
	memset(&vs, 0xff, sizeof(vs));
	MSG(spk_virtio_vsock_get_stats(NULL, &vs));
	assert_int_equal(vs.open, 0);
	MSG(spk_virtio_vsock_get_stats(NULL, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mem),
	    cmocka_unit_test(test_bus),
	    cmocka_unit_test(test_hypercall_exit_loader),
	    cmocka_unit_test(test_evloop),
	    cmocka_unit_test(test_devices),
	    cmocka_unit_test(test_legacy_devices),
	    cmocka_unit_test(test_virtio_devices),
	    cmocka_unit_test(test_pci),
	    cmocka_unit_test(test_snapshot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
