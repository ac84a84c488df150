#!/usr/bin/env python3
"""Seed corpus for fuzz_config: Firecracker config files, complete and
minimal, and the ways they are refused (syntax, types, unknown fields and
sections, ranges, files, duplicates, too many drives). Paths under
/tmp/sparkler-fuzz-config are files fuzz_config makes at start. Writes
fuzz/corpus/config/."""
import json
import os

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "config")
os.makedirs(out, exist_ok=True)
D = "/tmp/sparkler-fuzz-config"
TB = {"size": 100, "refill_time": 10, "one_time_burst": 1}
BOOT = {"kernel_image_path": D + "/vmlinux", "initrd_path": D + "/initrd",
        "boot_args": "console=ttyS0 reboot=k panic=1"}


def drive(i, **kw):
    d = {"drive_id": "drive%d" % i, "path_on_host": D + "/disk.img", "is_root_device": i == 0,
         "is_read_only": False}
    d.update(kw)
    return d


cases = {
    "minimal": {"boot-source": {"kernel_image_path": D + "/vmlinux"}},
    "full": {
        "boot-source": BOOT,
        "machine-config": {"vcpu_count": 2, "mem_size_mib": 256, "smt": False,
                           "track_dirty_pages": True, "cpu_template": "T2", "huge_pages": "None"},
        "drives": [drive(0, rate_limiter={"bandwidth": TB, "ops": TB}, cache_type="Writeback",
                         io_engine="Async", partuuid="0eaa91a0-01"),
                   drive(1, path_on_host=D + "/ro.img", is_read_only=True)],
        "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0",
                                "guest_mac": "06:00:ac:10:00:02", "mtu": 1500,
                                "rx_rate_limiter": {"bandwidth": TB}, "tx_rate_limiter": {}}],
        "vsock": {"guest_cid": 3, "uds_path": "/tmp/v.sock", "vsock_id": "vsock0"},
        "entropy": {"rate_limiter": {"ops": TB}},
        "balloon": {"amount_mib": 64, "deflate_on_oom": True, "stats_polling_interval_s": 1,
                    "free_page_reporting": True, "free_page_hinting": False},
        "serial": {"serial_out_path": "/tmp/serial.out"},
        "logger": {"log_path": "/tmp/fc.log", "level": "Debug", "show_level": True,
                   "show_log_origin": True, "module": "vmm"},
        "metrics": {"metrics_path": "/tmp/fc.metrics"},
    },
    "nulls": {"boot-source": {"kernel_image_path": D + "/vmlinux", "initrd_path": None,
                              "boot_args": None},
              "machine-config": {"vcpu_count": 1, "mem_size_mib": 128, "smt": None}},
    "mmds": {"mmds-config": {"network_interfaces": ["eth0"], "version": "V2",
                             "ipv4_address": "169.254.170.2", "imds_compat": False},
             "boot-source": BOOT,
             "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0"}]},
    "mmds_bad": {"boot-source": BOOT, "mmds-config": {"network_interfaces": ["eth1"]}},
    "array": [],
    "types": {"boot-source": BOOT, "machine-config": {"vcpu_count": "2", "mem_size_mib": 1.5}},
    "unknown_field": {"boot-source": dict(BOOT, kernel="x")},
    "unknown_section": {"boot-source": BOOT, "gpu": {}},
    "unsupported": {"boot-source": BOOT, "pmem": {}},
    "balloon_bad": {"boot-source": BOOT, "balloon": {"amount_mib": 129, "deflate_on_oom": 1}},
    "no_boot": {"machine-config": {"vcpu_count": 1, "mem_size_mib": 64}},
    "missing_kernel": {"boot-source": {"kernel_image_path": "/nonexistent/vmlinux"}},
    "range": {"boot-source": BOOT, "machine-config": {"vcpu_count": 33, "mem_size_mib": 1}},
    "smt_odd": {"boot-source": BOOT, "machine-config": {"vcpu_count": 3, "mem_size_mib": 64,
                                                        "smt": True}},
    "dup_drive": {"boot-source": BOOT, "drives": [drive(0), drive(0)]},
    "two_roots": {"boot-source": BOOT, "drives": [drive(0), dict(drive(1), is_root_device=True)]},
    "nine_drives": {"boot-source": BOOT, "drives": [drive(i) for i in range(9)]},
    "bad_id": {"boot-source": BOOT, "drives": [drive(0, drive_id="a-b")]},
    "bad_mac": {"boot-source": BOOT, "network-interfaces": [
        {"iface_id": "e", "host_dev_name": "tap0", "guest_mac": "zz:00:00:00:00:00"}]},
    "bad_cid": {"boot-source": BOOT, "vsock": {"guest_cid": 2, "uds_path": ""}},
    "rate_limiter": {"boot-source": BOOT, "entropy": {"rate_limiter": {"bandwidth": {"size": -1}}}},
    "socket": {"boot-source": BOOT, "drives": [drive(0, socket="/tmp/vhost.sock")]},
    "template": {"boot-source": BOOT, "machine-config": {"vcpu_count": 1, "mem_size_mib": 64,
                                                         "cpu_template": "V1N1"}},
    "level": {"boot-source": BOOT, "logger": {"level": "Loud"}},
    "nets_object": {"boot-source": BOOT, "network-interfaces": {}},
}
raw = {
    "syntax": b'{"boot-source": {',
    "trailing": b'{"boot-source": {"kernel_image_path": "%s/vmlinux"}} x' % D.encode(),
    "duplicate": b'{"boot-source": {}, "boot-source": {}}',
    "nul": b'{"boot-source": {"kernel_image_path": "a\\u0000b"}}',
    "newline_key": b'{"boot-source": {"kernel_image_path": "%s/vmlinux"}, "a\\nb": 1}' % D.encode(),
    "escape_value": b'{"boot-source": {"kernel_image_path": "/x\\u001b[31m\\nred"}}',
    "utf8": '{"boot-source": {"kernel_image_path": "/nonexistent/\u00e9\u6f22"}}'.encode(),
    "bad_utf8": b'{"boot-source": {"kernel_image_path": "/\xff\xfe"}}',
    "empty": b"",
    "deep": b"[" * 200 + b"]" * 200,
}
for name, data in cases.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(json.dumps(data).encode())
for name, data in raw.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print("wrote %d inputs to %s" % (len(cases) + len(raw), out))
