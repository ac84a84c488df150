"""The response bodies of Firecracker's API (firecracker-api.yaml, swagger 2.0,
v1.17.0-dev), written down in our own form for the tests, plus the shape of
sparkler's metrics lines. Stricter than the spec where it helps: an object
here lists every property it may have (a property the spec does not define
is an error: sparkler must not invent fields), and `required` is checked.

A schema is a dict: {"type": "object"|"array"|"string"|"integer"|"boolean",
"properties": {...}, "required": [...], "items": schema, "enum": [...],
"minimum": n, "maximum": n, "open": True (any extra property allowed),
"values": schema (every property's value, for maps)}, or a name of SCHEMAS.
"""

TOKEN_BUCKET = {
    "type": "object",
    "required": ["refill_time", "size"],
    "properties": {
        "one_time_burst": {"type": "integer", "minimum": 0},
        "refill_time": {"type": "integer", "minimum": 0},
        "size": {"type": "integer", "minimum": 0},
    },
}

RATE_LIMITER = {
    "type": "object",
    "properties": {"bandwidth": TOKEN_BUCKET, "ops": TOKEN_BUCKET},
}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["fault_message"],  # optional in the spec; always there here
        "properties": {"fault_message": {"type": "string"}},
    },
    "InstanceInfo": {
        "type": "object",
        "required": ["app_name", "id", "state", "vmm_version"],
        "properties": {
            "app_name": {"type": "string"},
            "id": {"type": "string"},
            "state": {"type": "string", "enum": ["Not started", "Running", "Paused"]},
            "vmm_version": {"type": "string"},
        },
    },
    "FirecrackerVersion": {
        "type": "object",
        "required": ["firecracker_version"],
        "properties": {"firecracker_version": {"type": "string"}},
    },
    "MachineConfiguration": {
        "type": "object",
        "required": ["mem_size_mib", "vcpu_count"],
        "properties": {
            "cpu_template": {"type": "string",
                             "enum": ["C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None"]},
            "smt": {"type": "boolean"},
            "mem_size_mib": {"type": "integer"},
            "track_dirty_pages": {"type": "boolean"},
            "vcpu_count": {"type": "integer", "minimum": 1, "maximum": 32},
            "huge_pages": {"type": "string", "enum": ["None", "Transparent", "2M"]},
        },
    },
    "BootSource": {
        "type": "object",
        "required": ["kernel_image_path"],
        "properties": {
            "boot_args": {"type": "string"},
            "initrd_path": {"type": "string"},
            "kernel_image_path": {"type": "string"},
        },
    },
    "Drive": {
        "type": "object",
        "required": ["drive_id", "is_root_device"],
        "properties": {
            "drive_id": {"type": "string"},
            "partuuid": {"type": "string"},
            "is_root_device": {"type": "boolean"},
            "cache_type": {"type": "string", "enum": ["Unsafe", "Writeback"]},
            "is_read_only": {"type": "boolean"},
            "path_on_host": {"type": "string"},
            "rate_limiter": RATE_LIMITER,
            "io_engine": {"type": "string", "enum": ["Sync", "Async"]},
            "socket": {"type": "string"},
        },
    },
    "NetworkInterface": {
        "type": "object",
        "required": ["host_dev_name", "iface_id"],
        "properties": {
            "guest_mac": {"type": "string"},
            "host_dev_name": {"type": "string"},
            "iface_id": {"type": "string"},
            "mtu": {"type": "integer", "minimum": 68, "maximum": 65535},
            "rx_rate_limiter": RATE_LIMITER,
            "tx_rate_limiter": RATE_LIMITER,
        },
    },
    "Vsock": {
        "type": "object",
        "required": ["guest_cid", "uds_path"],
        "properties": {
            "guest_cid": {"type": "integer", "minimum": 3},
            "uds_path": {"type": "string"},
            "vsock_id": {"type": "string"},
        },
    },
    "Balloon": {
        "type": "object",
        "required": ["amount_mib", "deflate_on_oom"],
        "properties": {
            "amount_mib": {"type": "integer", "minimum": 0},
            "deflate_on_oom": {"type": "boolean"},
            "stats_polling_interval_s": {"type": "integer", "minimum": 0},
            "free_page_hinting": {"type": "boolean"},
            "free_page_reporting": {"type": "boolean"},
        },
    },
    "BalloonStats": {
        "type": "object",
        "required": ["target_pages", "actual_pages", "target_mib", "actual_mib"],
        "properties": {k: {"type": "integer", "minimum": 0} for k in [
            "target_pages", "actual_pages", "target_mib", "actual_mib", "swap_in",
            "swap_out", "major_faults", "minor_faults", "free_memory", "total_memory",
            "available_memory", "disk_caches", "hugetlb_allocations", "hugetlb_failures",
            "oom_kill", "alloc_stall", "async_scan", "direct_scan", "async_reclaim",
            "direct_reclaim"]},
    },
    "BalloonHintingStatus": {
        "type": "object",
        "required": ["host_cmd"],
        "properties": {"host_cmd": {"type": "integer", "minimum": 0},
                       "guest_cmd": {"type": "integer", "minimum": 0}},
    },
    "EntropyDevice": {"type": "object", "properties": {"rate_limiter": RATE_LIMITER}},
    "MmdsConfig": {
        "type": "object",
        "required": ["network_interfaces"],
        "properties": {
            "version": {"type": "string", "enum": ["V1", "V2"]},
            "network_interfaces": {"type": "array", "items": {"type": "string"}},
            "ipv4_address": {"type": "string"},
            "imds_compat": {"type": "boolean"},
        },
    },
    "Logger": {
        "type": "object",
        "properties": {
            "level": {"type": "string",
                      "enum": ["Error", "Warning", "Info", "Debug", "Trace", "Off"]},
            "log_path": {"type": "string"},
            "show_level": {"type": "boolean"},
            "show_log_origin": {"type": "boolean"},
            "module": {"type": "string"},
        },
    },
    "Metrics": {
        "type": "object",
        "required": ["metrics_path"],
        "properties": {
            "metrics_path": {"type": "string"},
            "emit_id": {"type": "boolean"},
            "properties": {"type": "object", "values": {"type": "string"}},
        },
    },
    "FullVmConfiguration": {
        "type": "object",
        "properties": {
            # cpu-config, memory-hotplug, pmem: sparkler has none of them,
            # so they never appear (checked: not listed)
            "mmds-config": "MmdsConfig",
            "balloon": "Balloon",
            "drives": {"type": "array", "items": "Drive"},
            "boot-source": "BootSource",
            "logger": "Logger",
            "machine-config": "MachineConfiguration",
            "metrics": "Metrics",
            "network-interfaces": {"type": "array", "items": "NetworkInterface"},
            "vsock": "Vsock",
            "entropy": "EntropyDevice",
        },
    },
    # sparkler's own: one metrics line
    "MetricsLine": {
        "type": "object",
        "required": ["utc_timestamp_ms", "event", "vmm", "api_server", "vcpu", "devices"],
        "properties": {
            "utc_timestamp_ms": {"type": "integer", "minimum": 0},
            "event": {"type": "string",
                      "enum": ["start", "periodic", "FlushMetrics", "exit"]},
            "id": {"type": "string"},
            "properties": {"type": "object", "values": {"type": "string"}},
            "vmm": {
                "type": "object",
                "required": ["version", "state", "uptime_ms"],
                "properties": {
                    "version": {"type": "string"},
                    "state": {"type": "string",
                              "enum": ["Not started", "Running", "Paused", "Exited"]},
                    "uptime_ms": {"type": "integer", "minimum": 0},
                },
            },
            "api_server": {
                "type": "object",
                "required": ["requests", "ok", "client_errors", "server_errors"],
                "properties": {k: {"type": "integer", "minimum": 0}
                               for k in ["requests", "ok", "client_errors", "server_errors"]},
            },
            "vcpu": {
                "type": "object",
                "required": ["exits", "exits_total"],
                "properties": {
                    "exits": {"type": "object",
                              "values": {"type": "integer", "minimum": 0}},
                    "exits_total": {"type": "integer", "minimum": 0},
                },
            },
            "balloon": {
                "type": "object",
                "required": ["inflate_count", "deflate_count", "stats_updates_count",
                             "stats_update_fails", "free_page_report_count",
                             "free_page_report_freed", "free_page_hint_count",
                             "free_page_hint_freed", "bad_pfns", "target_pages",
                             "actual_pages"],
                "values": {"type": "integer", "minimum": 0},
            },
            "devices": {
                "type": "object",
                "values": {
                    "type": "object",
                    "required": ["reads", "writes"],
                    "properties": {"reads": {"type": "integer", "minimum": 0},
                                   "writes": {"type": "integer", "minimum": 0}},
                },
            },
        },
    },
}

_PY_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool,
}


def _type_ok(value, t):
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _PY_TYPES[t])


def validate(value, schema, path="$"):
    """A list of problems, each naming the JSON path; empty when value fits."""
    if isinstance(schema, str):
        schema = SCHEMAS[schema]
    t = schema["type"]
    if not _type_ok(value, t):
        return ["%s: expected %s, got %r" % (path, t, value)]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append("%s: %r is not one of %r" % (path, value, schema["enum"]))
    if "minimum" in schema and value < schema["minimum"]:
        problems.append("%s: %r is below %r" % (path, value, schema["minimum"]))
    if "maximum" in schema and value > schema["maximum"]:
        problems.append("%s: %r is above %r" % (path, value, schema["maximum"]))
    if t == "array":
        for i, item in enumerate(value):
            problems += validate(item, schema["items"], "%s[%d]" % (path, i))
    if t == "object":
        problems += _validate_object(value, schema, path)
    return problems


def _validate_object(value, schema, path):
    problems = []
    props = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in value:
            problems.append("%s: missing required property %s" % (path, key))
    for key, v in value.items():
        sub = "%s.%s" % (path, key)
        if key in props:
            problems += validate(v, props[key], sub)
        elif "values" in schema:
            problems += validate(v, schema["values"], sub)
        elif not schema.get("open"):
            problems.append("%s: not a property of this schema" % sub)
    return problems
