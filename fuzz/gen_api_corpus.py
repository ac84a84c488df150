#!/usr/bin/env python3
"""Seed corpus for fuzz_api: request sequences as Firecracker clients send
them ("METHOD PATH\\nBODY", NUL between requests), good and bad. Paths under
/tmp/sparkler-fuzz-api are files fuzz_api makes at start. Writes
fuzz/corpus/api/."""
import json
import os

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "api")
os.makedirs(out, exist_ok=True)
D = "/tmp/sparkler-fuzz-api"
TB = {"size": 100, "refill_time": 10, "one_time_burst": 1}


def req(method, path, body=None):
    if body is None:
        return "%s %s" % (method, path)
    text = body if isinstance(body, str) else json.dumps(body)
    return "%s %s\n%s" % (method, path, text)


def seq(*reqs):
    return "\0".join(reqs).encode()


boot = req("PUT", "/boot-source", {"kernel_image_path": D + "/vmlinux", "initrd_path":
                                   D + "/initrd", "boot_args": "console=ttyS0"})
start = req("PUT", "/actions", {"action_type": "InstanceStart"})
cases = {
    "get_root": seq(req("GET", "/")),
    "get_all": seq(req("GET", "/version"), req("GET", "/machine-config"),
                   req("GET", "/vm/config")),
    "machine_config": seq(req("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 256,
                                                         "smt": True, "cpu_template": "T2"}),
                          req("PATCH", "/machine-config", {"mem_size_mib": 64})),
    "full_boot": seq(req("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}),
                     boot,
                     req("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host":
                                                   D + "/disk.img", "is_root_device": True,
                                                   "is_read_only": False,
                                                   "rate_limiter": {"bandwidth": TB}}),
                     req("PUT", "/network-interfaces/eth0", {"iface_id": "eth0",
                                                             "host_dev_name": "tap0",
                                                             "guest_mac": "06:00:00:00:00:01",
                                                             "mtu": 1500}),
                     req("PUT", "/vsock", {"guest_cid": 3, "uds_path": "/tmp/v.sock"}),
                     req("PUT", "/entropy", {"rate_limiter": {"ops": TB}}),
                     start, req("GET", "/vm/config")),
    "pause_resume": seq(boot, start, req("PATCH", "/vm", {"state": "Paused"}),
                        req("GET", "/"), req("PATCH", "/vm", {"state": "Resumed"})),
    "post_boot": seq(boot, start, req("PATCH", "/drives/rootfs", {"drive_id": "rootfs"}),
                     req("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}),
                     req("PATCH", "/network-interfaces/eth0", {"iface_id": "eth0",
                                                               "rx_rate_limiter": {}})),
    "exited": seq(boot, start, req("PUT", "/actions", {"action_type": "SendCtrlAltDel"}),
                  req("GET", "/"), req("GET", "/vm/config"), req("PATCH", "/vm",
                                                                  {"state": "Paused"})),
    "failed_start": seq(req("PUT", "/boot-source", {"kernel_image_path": D + "/fail-kernel"}),
                        start, req("GET", "/")),
    "mmds": seq(req("PUT", "/mmds", {"latest": {"meta-data": {"ami-id": "ami-1"}}}),
                req("PATCH", "/mmds", {"latest": {"x": None, "meta-data": {"b": [1, 2]}}}),
                req("GET", "/mmds"), req("PUT", "/mmds", [1, 2]), req("GET", "/mmds/")),
    "mmds_config": seq(req("PUT", "/network-interfaces/eth0", {"iface_id": "eth0",
                                                               "host_dev_name": "tap0"}),
                       req("PUT", "/mmds/config", {"network_interfaces": ["eth0"],
                                                   "version": "V2",
                                                   "ipv4_address": "169.254.170.2",
                                                   "imds_compat": True}),
                       req("GET", "/vm/config"), boot, start,
                       req("PUT", "/mmds/config", {"network_interfaces": ["eth0"]}),
                       req("PATCH", "/mmds", {"a": 1})),
    "logger_metrics": seq(req("PUT", "/logger", {"level": "Debug", "log_path": "/tmp/l",
                                                 "show_level": True, "module": "x"}),
                          req("PUT", "/metrics", {"metrics_path": "/tmp/m", "emit_id": True,
                                                  "properties": {"a": "b"}}),
                          req("PUT", "/actions", {"action_type": "FlushMetrics"}),
                          req("PUT", "/serial", {"serial_out_path": "/tmp/s",
                                                 "rate_limiter": TB})),
    "balloon": seq(req("GET", "/balloon"),
                   req("PUT", "/balloon", {"amount_mib": 16, "deflate_on_oom": True,
                                           "stats_polling_interval_s": 1,
                                           "free_page_reporting": True}),
                   req("GET", "/balloon"), boot, start, req("GET", "/balloon/statistics"),
                   req("PATCH", "/balloon", {"amount_mib": 8}),
                   req("PATCH", "/balloon/statistics", {"stats_polling_interval_s": 0}),
                   req("PATCH", "/balloon/statistics", {"stats_polling_interval_s": 5}),
                   req("PATCH", "/balloon", {"amount_mib": -1})),
    "bad_json": seq(req("PUT", "/machine-config", '{"vcpu_count": 1,'),
                    req("PUT", "/machine-config", '{"a":1,"a":2}'),
                    req("PUT", "/machine-config", '[]')),
    "unknown": seq(req("GET", "/nope"), req("DELETE", "/vm"), req("PUT", "/balloon", {}),
                   req("GET", "/drives/a/b"), req("PUT", "/drives/", {}),
                   req("PUT", "/drives/a-b", {})),
    "types": seq(req("PUT", "/machine-config", {"vcpu_count": "1", "mem_size_mib": 1.5}),
                 req("PUT", "/drives/d", {"drive_id": "d", "is_root_device": "no"}),
                 req("PUT", "/vsock", {"guest_cid": 2, "uds_path": ""})),
}
for name, data in cases.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print("wrote %d inputs to %s" % (len(cases), out))
