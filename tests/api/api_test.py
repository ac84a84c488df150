#!/usr/bin/env python3
"""sparkler's Firecracker-compatible API, driven by a real client (curl
--unix-socket) the way Firecracker users drive it. Every response body is
checked against the schemas in schemas.py (the spec's, in our own form).

  http  everything that needs no VM: the command line and the socket file,
        every endpoint before boot, bad JSON, unknown fields, wrong types,
        huge bodies, slow clients, 20 clients at once, config file errors.
  vm    needs /dev/kvm (else exit 77): a VM configured and started only
        through the API (a guest-SDK program stands in for the kernel),
        pause/resume, metrics, the VM's end, a failed start, config files.

usage: api_test.py SPARKLER GUEST_DIR http|vm"""
import concurrent.futures
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from schemas import validate  # noqa: E402

SPARKLER, GUEST_DIR, MODE = sys.argv[1], sys.argv[2], sys.argv[3]
TICKER = os.path.join(GUEST_DIR, "t_ticker.elf")      # prints "tick N" on COM1 forever
SYSTEM_OFF = os.path.join(GUEST_DIR, "t_system_off.elf")  # powers off at once
TRIPLE = os.path.join(GUEST_DIR, "t_triple_fault.elf")    # resets at once
CAD = os.path.join(GUEST_DIR, "t_ctrl_alt_del.elf")  # waits for Ctrl+Alt+Del, powers off
SRC_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUTTON = os.path.join(GUEST_DIR, "t_power_button.elf")  # waits for the power button, S5
CAD_SET1 = "1d 38 e0 53 e0 d3 b8 9d"  # Ctrl, Alt, Del down; Del, Alt, Ctrl up (set 1)
LOG_LINE = re.compile(r"^\S+ \[([^:\]]+):([^:\]]*):([A-Z]+)(?::([^:\]]+):(\d+))?\] (.*)$")
BODY_LIMIT = 51200
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


# ---- a client ---------------------------------------------------------------------------

class Reply:
    def __init__(self, status, text, curl_rc=0):
        self.status, self.text, self.curl_rc = status, text, curl_rc
        try:
            self.json = json.loads(text) if text else None
        except ValueError:
            self.json = None

    @property
    def fault(self):
        return (self.json or {}).get("fault_message", "") if isinstance(self.json, dict) else ""

    def __repr__(self):
        return "%s %s" % (self.status, self.text[:300])


def curl(sock, method, path, body=None, extra=(), timeout=15):
    """One request through curl; body is a dict/list (sent as JSON) or str."""
    args = ["curl", "-s", "-S", "--unix-socket", sock, "-X", method, "--max-time", "10",
            "-o", "-", "-w", "\n%{http_code}"] + list(extra)
    data = None
    if body is not None:
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        data = data.encode() if isinstance(data, str) else data
        args += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    args.append("http://localhost" + path)
    r = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    out = r.stdout.decode(errors="replace")
    text, _, code = out.rpartition("\n")
    return Reply(int(code) if code.isdigit() else 0, text, r.returncode)


def expect(reply, status, schema, what, needle=None):
    """status, a body that fits the schema (none for 204), the needle in the
    fault message."""
    problems = []
    if status == 204:
        if reply.text:
            problems.append("a 204 with a body")
    elif reply.json is None:
        problems.append("no JSON body")
    else:
        problems += validate(reply.json, schema if status < 300 else "Error")
    if needle and needle not in reply.fault:
        problems.append("fault message lacks %r" % needle)
    return check(reply.status == status and not problems,
                 "%s -> %d%s (got %r %s)" % (what, status, " '%s'" % needle if needle else "",
                                             reply, "; ".join(problems)))


def raw_request(sock_path, data, timeout=5.0):
    """Send raw bytes, read one response: (status, headers dict, body)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    s.sendall(data)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    want = int(headers.get("content-length", "0"))
    while len(body) < want:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    s.close()
    return status, headers, body.decode(errors="replace")


# ---- the process ------------------------------------------------------------------------

class Sparkler:
    def __init__(self, tmp, args=(), sock=True, name="api.sock", stdin=subprocess.DEVNULL):
        self.sock = os.path.join(tmp, name) if sock else None
        cmd = [SPARKLER] + (["--api-sock", self.sock] if sock else []) + list(args)
        self.stale = os.path.lexists(self.sock) if sock else False  # a file it replaces
        self.p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.out = self.err = ""

    def wait_socket(self):
        """What Firecracker users' scripts do: wait for the file, then
        connect at once. The file appears only once the server accepts, so
        the first connect must succeed. No deadline of ours: the process
        ends or the file comes (meson's timeout bounds a hang)."""
        while self.stale:  # the file was there before: until it answers
            if self.p.poll() is not None:
                return False
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(self.sock)
                return True
            except OSError:
                time.sleep(0.005)
        while not os.path.exists(self.sock):
            if self.p.poll() is not None:
                return False
            time.sleep(0.005)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock)
            return True
        except OSError as e:
            print("connect right after the socket appeared: %s" % e)
            return False
        finally:
            s.close()

    def call(self, method, path, body=None, **kw):
        return curl(self.sock, method, path, body, **kw)

    def finish(self, sig=signal.SIGTERM, timeout=20):
        if self.p.stdin:
            self.p.stdin.close()
            self.p.stdin = None
        if self.p.poll() is None and sig:
            self.p.send_signal(sig)
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
        self.out, self.err = out.decode(errors="replace"), err.decode(errors="replace")
        return self.p.returncode


def started(tmp, args=(), **kw):
    s = Sparkler(tmp, args, **kw)
    if not check(s.wait_socket(), "sparkler %s serves its socket" % " ".join(args)):
        s.finish(signal.SIGKILL)
        raise SystemExit(1)
    return s


def run_status(args, timeout=30):
    r = subprocess.run([SPARKLER] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, text=True)
    return r.returncode, r.stderr


# ---- http: the command line and the socket file -------------------------------------------

def cli(tmp):
    regular = os.path.join(tmp, "not-a-socket")
    open(regular, "w").write("keep me")
    # a path that fits sun_path, in a directory that leaves no room for the
    # temporary name the socket is bound under before it is renamed there
    deep = os.path.join(tmp, "d" * max(1, 104 - len(tmp)))
    os.makedirs(deep, exist_ok=True)
    cases = [
        (["api"], "--api-sock PATH is required"),
        (["--no-api"], "needs --config-file"),
        (["--api-sock"], "--api-sock"),
        (["--api-sock", os.path.join(tmp, "x"), "--bogus"], "--bogus"),
        (["--api-sock", os.path.join(tmp, "x"), "extra"], "extra"),
        (["--api-sock", os.path.join(tmp, "x"), "--level", "Loud"], "--level"),
        (["--api-sock", os.path.join(tmp, "x"), "--id", "bad id!"], "--id"),
        (["--api-sock", regular], "not a socket"),
        (["--api-sock", "/nonexistent-dir/api.sock"], "No such file"),
        (["--api-sock", os.path.join(tmp, "y" * 120)], "1 to 107 bytes"),
        (["--api-sock", os.path.join(deep, "a")], "no room for a temporary name"),
        (["--config-file", "x.json", "--no-api", "--api-sock", "a"], "contradict"),
    ]
    for args, needle in cases:
        rc, err = run_status(args)
        lines = err.strip().splitlines()
        check(rc == 2 and len(lines) == 1 and needle in err,
              "sparkler %s -> status 2, one line naming '%s' (got %d %r)" %
              (" ".join(args), needle, rc, err.strip()))
    check(open(regular).read() == "keep me", "a regular file at --api-sock is left alone")

    # a stale socket (its listener is gone) is replaced; a live one is not
    stale = os.path.join(tmp, "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()
    p = started(tmp, name="stale.sock")
    check(p.call("GET", "/").status == 200, "a stale socket file is replaced and served")
    left = [f for f in os.listdir(tmp) if f.startswith(".spk-")]
    check(not left, "the temporary name the socket was bound under is gone: %s" % left)
    rc, err = run_status(["--api-sock", stale])
    check(rc == 2 and "another process is listening" in err,
          "a second sparkler on a live socket is refused: %d %r" % (rc, err.strip()))
    rc = p.finish()
    check(rc == 5 and not os.path.exists(stale),
          "SIGTERM before boot: status 5 and the socket file is removed (%d)" % rc)
    p = started(tmp, name="stale.sock")  # the same path serves again
    p.finish()
    rc = subprocess.run([SPARKLER, "api", "--help"], stdout=subprocess.PIPE).returncode
    check(rc == 0, "sparkler api --help")


# ---- http: every endpoint before boot ---------------------------------------------------------

def happy_paths(tmp):
    kernel = os.path.join(tmp, "vmlinux")
    open(kernel, "wb").write(b"\x7fELF not really")
    initrd = os.path.join(tmp, "initrd")
    open(initrd, "wb").write(b"\0" * 4096)
    disk = os.path.join(tmp, "disk.img")
    open(disk, "wb").write(b"\0" * (1 << 20))
    log = os.path.join(tmp, "fc.log")
    metrics = os.path.join(tmp, "fc.metrics")
    p = started(tmp, ["--id", "test-vm_1"])
    info = p.call("GET", "/")
    expect(info, 200, "InstanceInfo", "GET /")
    check(info.json and info.json["state"] == "Not started" and info.json["id"] == "test-vm_1",
          "GET / before boot: Not started, the --id")
    expect(p.call("GET", "/version"), 200, "FirecrackerVersion", "GET /version")
    r = p.call("GET", "/machine-config")
    expect(r, 200, "MachineConfiguration", "GET /machine-config")
    check(r.json == {"vcpu_count": 1, "mem_size_mib": 128, "smt": False,
                     "track_dirty_pages": False, "huge_pages": "None"},
          "Firecracker's defaults: 1 vCPU, 128 MiB (%r)" % r.json)
    tb = {"size": 1000, "refill_time": 100, "one_time_burst": 5}
    puts = [
        ("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 256, "smt": False,
                                    "cpu_template": "T2", "track_dirty_pages": True}),
        ("PATCH", "/machine-config", {"mem_size_mib": 64}),
        ("PUT", "/boot-source", {"kernel_image_path": kernel, "initrd_path": initrd,
                                 "boot_args": "console=ttyS0 reboot=k"}),
        ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": disk,
                                   "is_root_device": True, "is_read_only": False,
                                   "cache_type": "Writeback", "io_engine": "Sync",
                                   "rate_limiter": {"bandwidth": tb}}),
        ("PUT", "/drives/data_1", {"drive_id": "data_1", "path_on_host": disk,
                                   "is_root_device": False, "is_read_only": True,
                                   "partuuid": None}),
        ("PUT", "/drives/data_1", {"drive_id": "data_1", "path_on_host": disk,
                                   "is_root_device": False, "is_read_only": True}),
        ("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "tap0",
                                             "guest_mac": "06:00:AC:10:00:02", "mtu": 1500,
                                             "rx_rate_limiter": {"ops": tb}}),
        ("PUT", "/vsock", {"guest_cid": 3, "uds_path": os.path.join(tmp, "v.sock")}),
        ("PUT", "/entropy", {"rate_limiter": {"bandwidth": tb}}),
        ("PUT", "/balloon", {"amount_mib": 64, "deflate_on_oom": True,
                             "stats_polling_interval_s": 1}),
        ("PUT", "/balloon", {"amount_mib": 16, "deflate_on_oom": False,
                             "stats_polling_interval_s": 5, "free_page_reporting": True,
                             "free_page_hinting": False}),
        ("PUT", "/serial", {"serial_out_path": os.path.join(tmp, "serial.out")}),
        ("PUT", "/logger", {"log_path": log, "level": "debug", "show_level": True,
                            "show_log_origin": False}),
        ("PUT", "/metrics", {"metrics_path": metrics, "emit_id": True,
                             "properties": {"team": "sparkler"}}),
    ]
    for method, path, body in puts:
        expect(p.call(method, path, body), 204, None, "%s %s" % (method, path))
    r = p.call("GET", "/vm/config")
    expect(r, 200, "FullVmConfiguration", "GET /vm/config")
    c = r.json or {}
    check(c.get("machine-config", {}).get("mem_size_mib") == 64 and
          c["machine-config"].get("vcpu_count") == 2 and
          c["machine-config"].get("cpu_template") == "T2" and
          c["machine-config"].get("track_dirty_pages") is True,
          "PATCH /machine-config changed only the memory: %r" % c.get("machine-config"))
    check(c.get("boot-source") == {"kernel_image_path": kernel, "initrd_path": initrd,
                                   "boot_args": "console=ttyS0 reboot=k"},
          "GET /vm/config gives the boot source back")
    drives = {d["drive_id"]: d for d in c.get("drives", [])}
    check(len(c.get("drives", [])) == 2 and drives.get("rootfs", {}).get("cache_type") ==
          "Writeback" and drives["rootfs"].get("rate_limiter") == {"bandwidth": tb} and
          drives.get("data_1", {}).get("is_read_only") is True,
          "both drives, updated in place, with their rate limiter: %r" % c.get("drives"))
    nets = c.get("network-interfaces", [])
    check(len(nets) == 1 and nets[0].get("guest_mac") == "06:00:ac:10:00:02" and
          nets[0].get("mtu") == 1500, "the interface and its MAC: %r" % nets)
    check(c.get("vsock", {}).get("guest_cid") == 3 and "rate_limiter" in c.get("entropy", {}),
          "vsock and entropy are recorded")
    balloon = {"amount_mib": 16, "deflate_on_oom": False, "stats_polling_interval_s": 5,
               "free_page_hinting": False, "free_page_reporting": True}
    check(c.get("balloon") == balloon, "the second PUT /balloon replaced the first: %r" %
          c.get("balloon"))
    r = p.call("GET", "/balloon")
    expect(r, 200, "Balloon", "GET /balloon")
    check(r.json == balloon, "GET /balloon gives the PUT back: %r" % r.json)
    check(c.get("logger", {}).get("level") == "Debug" and
          c.get("metrics", {}).get("properties") == {"team": "sparkler"},
          "logger and metrics are recorded")
    expect(p.call("PUT", "/actions", {"action_type": "FlushMetrics"}), 204, None,
           "FlushMetrics before boot")
    lines = open(metrics).read().splitlines()
    line = json.loads(lines[-1]) if lines else {}
    problems = validate(line, "MetricsLine")
    check(lines and not problems and line.get("event") == "FlushMetrics" and
          line.get("id") == "test-vm_1" and line.get("properties") == {"team": "sparkler"},
          "a FlushMetrics line fits the metrics schema %s" % problems)
    expect(p.call("PUT", "/metrics", {"metrics_path": metrics}), 400, None,
           "PUT /metrics twice", "Reinitialization of metrics not allowed")
    rc = p.finish()
    logged = open(log).read()
    check("The API server received a PUT request on \"/metrics\"" in logged and
          ":INFO]" in logged, "the log file has the requests, with levels")
    last = json.loads(open(metrics).read().splitlines()[-1])
    check(rc == 5 and last.get("event") == "exit", "a metrics line at exit (%d)" % rc)


# ---- http: log levels and origins ------------------------------------------------------------

def log_lines(path):
    """(level, file, line, message) of each line of a logger file with
    show_level on; a line that does not parse is a failure."""
    out = []
    for l in open(path).read().splitlines():
        m = LOG_LINE.match(l)
        if not check(m is not None, "a log line parses: %r" % l):
            continue
        out.append((m.group(3), m.group(4), int(m.group(5) or 0), m.group(6)))
    return out


def origin_ok(lines):
    """Every line names file:line of a spk_log call in our own sources."""
    bad = []
    for level, f, n, msg in lines:
        try:
            src = open(os.path.join(SRC_ROOT, f)).read().splitlines() if f else []
        except OSError:
            src = []
        # the call may span lines: the named line opens it
        if not (0 < n <= len(src) and "spk_log" in src[n - 1]):
            bad.append((f, n, msg[:60]))
    return bad


def logger_levels(tmp):
    """PUT /logger level: Warning hides the INFO lines, Info shows them
    without DEBUG ones, Debug adds the request bodies; show_log_origin
    names the source file and line of each log call."""
    seen = {}
    for level in ["Warning", "Info", "Debug"]:
        log = os.path.join(tmp, "level-%s.log" % level)
        p = started(tmp, name="lvl.sock")
        expect(p.call("PUT", "/logger", {"log_path": log, "level": level, "show_level": True,
                                         "show_log_origin": True}), 204, None,
               "PUT /logger level %s with origins" % level)
        expect(p.call("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}), 204,
               None, "PUT /machine-config at level %s" % level)
        expect(p.call("PUT", "/machine-config", {"vcpu_count": "one"}), 400, None,
               "a refused request at level %s" % level)
        p.call("GET", "/machine-config")
        p.finish()
        lines = log_lines(log)
        seen[level] = lines
        levels = sorted({l[0] for l in lines})
        bad = origin_ok(lines)
        check(not bad, "level %s: every line names the file:line of its spk_log call %r" %
              (level, bad[:3]))
        if level == "Warning":
            check(all(l[0] in ("WARN", "ERROR") for l in lines),
                  "level Warning: no INFO or DEBUG line (%r)" % levels)
        elif level == "Info":
            check("INFO" in levels and "DEBUG" not in levels,
                  "level Info: INFO lines, no DEBUG line (%r)" % levels)
        else:
            check("INFO" in levels and "DEBUG" in levels, "level Debug: INFO and DEBUG lines "
                  "(%r)" % levels)
    got = [l for l in seen["Info"] if l[3].startswith(
        'The API server received a PUT request on "/machine-config"')]
    check(len(got) == 2 and all(g[0] == "INFO" and g[1] == "src/vmm/api/api_handler.c"
                                for g in got),
          "level Info: both PUTs logged as INFO from src/vmm/api/api_handler.c (%r)" % got[:2])
    check(not any("received a" in l[3] for l in seen["Warning"]),
          "level Warning: the same requests leave no request line")
    bodies = [l for l in seen["Debug"] if l[3].startswith("Request body:")]
    check(len(bodies) == 2 and all(b[0] == "DEBUG" for b in bodies) and
          '"one"' in bodies[1][3], "level Debug: each PUT's body as a DEBUG line (%r)" %
          [b[3] for b in bodies])


# ---- http: refusals ---------------------------------------------------------------------------

def refusals(tmp):
    disk = os.path.join(tmp, "disk2.img")
    open(disk, "wb").write(b"\0" * 4096)
    ro = os.path.join(tmp, "ro.img")
    open(ro, "wb").write(b"\0" * 4096)
    os.chmod(ro, 0o444)
    p = started(tmp, name="refuse.sock")
    de = "An error occurred when deserializing the json body of a request"
    drive = {"drive_id": "d", "path_on_host": disk, "is_root_device": False}
    cases = [
        ("PUT", "/machine-config", '{"vcpu_count": 2,', 400, de),
        ("PUT", "/machine-config", '[1, 2]', 400, "expected an object"),
        ("PUT", "/machine-config", '{"vcpu_count": 1, "mem_size_mib": 64} x', 400, de),
        ("PUT", "/machine-config", '{"vcpu_count": 1, "vcpu_count": 2, "mem_size_mib": 64}',
         400, "duplicate"),
        ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64, "foo": 1}, 400,
         "unknown field `foo`"),
        ("PUT", "/machine-config", {"vcpu_count": "1", "mem_size_mib": 64}, 400,
         "$.vcpu_count: expected an integer, got a string"),
        ("PUT", "/machine-config", {"vcpu_count": 1.5, "mem_size_mib": 64}, 400,
         "expected an integer"),
        ("PUT", "/machine-config", {"mem_size_mib": 64}, 400,
         "$.vcpu_count: missing required field"),
        ("PUT", "/machine-config", {"vcpu_count": 33, "mem_size_mib": 64}, 400,
         "out of range"),
        ("PUT", "/machine-config", {"vcpu_count": 0, "mem_size_mib": 64}, 400, "out of range"),
        ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 1}, 400, "out of range"),
        ("PUT", "/machine-config", {"vcpu_count": 3, "mem_size_mib": 64, "smt": True}, 400,
         "even number"),
        ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64,
                                    "cpu_template": "Z9"}, 400, "unknown variant `Z9`"),
        ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64,
                                    "huge_pages": "2M"}, 400, "not supported"),
        ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 2 ** 70}, 400, de),
        ("PATCH", "/machine-config", {}, 400, "Empty PATCH request"),
        ("PUT", "/boot-source", {"kernel_image_path": "/nonexistent/vmlinux"}, 400,
         "$.kernel_image_path: /nonexistent/vmlinux: cannot open the kernel image"),
        ("PUT", "/boot-source", {"kernel_image_path": tmp}, 400, "not a regular file"),
        ("PUT", "/boot-source", {"kernel_image_path": disk, "initrd_path": "/nope"}, 400,
         "$.initrd_path"),
        ("PUT", "/boot-source", {"kernel_image_path": disk, "boot_args": 5}, 400,
         "$.boot_args: expected a string"),
        ("PUT", "/drives/d", dict(drive, drive_id="e"), 400, "does not match"),
        ("PUT", "/drives/d", dict(drive, is_root_device="yes"), 400, "expected a boolean"),
        ("PUT", "/drives/d", {"drive_id": "d", "path_on_host": disk}, 400,
         "$.is_root_device: missing required field"),
        ("PUT", "/drives/d", dict(drive, path_on_host="/nonexistent"), 400,
         "$.path_on_host: /nonexistent"),
        ("PUT", "/drives/d", dict(drive, path_on_host=ro), 400,
         "for reading and writing") if os.geteuid() != 0 else None,
        ("PUT", "/drives/d", dict(drive, socket="/tmp/vhost"), 400, "vhost-user"),
        ("PUT", "/drives/d", dict(drive, cache_type="Fast"), 400, "unknown variant"),
        ("PUT", "/drives/d", dict(drive, rate_limiter={"ops": {"size": -1,
                                                               "refill_time": 1}}), 400,
         "$.rate_limiter.ops.size: -1 is out of range"),
        ("PUT", "/drives/d", dict(drive, rate_limiter={"ops": {"size": 1}}), 400,
         "$.rate_limiter.ops.refill_time: missing"),
        # enforced limits: a bucket that holds nothing or never refills is refused
        ("PUT", "/drives/d", dict(drive, rate_limiter={"ops": {"size": 0,
                                                               "refill_time": 1}}), 400,
         "$.rate_limiter.ops.size: 0 is out of range"),
        ("PUT", "/drives/d", dict(drive, rate_limiter={"bandwidth": {"size": 10,
                                                                     "refill_time": 0}}), 400,
         "$.rate_limiter.bandwidth.refill_time: 0 is out of range"),
        ("PUT", "/drives/d", dict(drive, rate_limiter={"bandwidth": {
            "size": 10, "refill_time": 1000000000001}}), 400,
         "$.rate_limiter.bandwidth.refill_time: 1000000000001 is out of range"),
        ("PUT", "/drives/d", dict(drive, rate_limiter={"bandwidth": {
            "size": 10, "refill_time": 5, "one_time_burst": -1}}), 400,
         "$.rate_limiter.bandwidth.one_time_burst: -1 is out of range"),
        ("PUT", "/drives/d-1", dict(drive, drive_id="d-1"), 400, "alphanumeric"),
        ("PUT", "/drives/", drive, 400, "The ID cannot be empty"),
        ("PUT", "/network-interfaces/n", {"iface_id": "n", "host_dev_name": "t" * 16},
         400, "not a network device name"),
        ("PUT", "/network-interfaces/n", {"iface_id": "n", "host_dev_name": "tap9",
                                          "guest_mac": "06:00:zz:00:00:01"}, 400,
         "not a MAC address"),
        ("PUT", "/network-interfaces/n", {"iface_id": "n", "host_dev_name": "tap9",
                                          "mtu": 20}, 400, "$.mtu: 20 is out of range"),
        ("PUT", "/vsock", {"guest_cid": 2, "uds_path": "/tmp/v"}, 400, "$.guest_cid"),
        ("PUT", "/vsock", {"guest_cid": 3}, 400, "$.uds_path: missing"),
        ("PUT", "/serial", {"serial_out_path": 1}, 400, "expected a string"),
        ("PUT", "/logger", {"level": "Loud"}, 400, "unknown variant `Loud`"),
        ("PUT", "/logger", {"log_path": "/nonexistent/dir/log"}, 400,
         "Logger cannot be initialized"),
        ("PUT", "/metrics", {"emit_id": True}, 400, "$.metrics_path: missing"),
        ("PUT", "/metrics", {"metrics_path": "/m", "properties": {"a": 1}}, 400,
         "$.properties.a: expected a string"),
        ("PUT", "/entropy", {"rate_limiter": 5}, 400, "expected an object"),
        ("PUT", "/actions", {"action_type": "Explode"}, 400, "unknown variant `Explode`"),
        ("PUT", "/actions", {"action_type": "InstanceStart"}, 400,
         "without kernel configuration"),
        ("PUT", "/actions", {"action_type": "SendCtrlAltDel"}, 400,
         "not supported before starting the microVM"),
        ("PATCH", "/vm", {"state": "Paused"}, 400, "not supported before starting"),
        ("PATCH", "/drives/d", {"drive_id": "d"}, 400, "not supported before starting"),
        ("PATCH", "/network-interfaces/n", {"iface_id": "n"}, 400,
         "not supported before starting"),
        ("GET", "/balloon", None, 400, "No balloon device found."),
        ("PUT", "/balloon", {"amount_mib": 1}, 400, "$.deflate_on_oom: missing"),
        ("PUT", "/balloon", {"amount_mib": -1, "deflate_on_oom": True}, 400,
         "$.amount_mib: -1 is out of range"),
        ("PUT", "/balloon", {"amount_mib": 129, "deflate_on_oom": True}, 400,
         "Amount of pages requested is too large."),
        ("PUT", "/balloon", {"amount_mib": 1 << 40, "deflate_on_oom": True}, 400,
         "out of range"),
        ("PUT", "/balloon", {"amount_mib": 1, "deflate_on_oom": "yes"}, 400,
         "expected a boolean"),
        ("PUT", "/balloon", {"amount_mib": 1, "deflate_on_oom": True,
                             "stats_polling_interval_s": 65536}, 400, "out of range"),
        ("PUT", "/balloon", {"amount_mib": 1, "deflate_on_oom": True, "must_tell_host": True},
         400, "unknown field `must_tell_host`"),
        ("PUT", "/balloon", {"amount_mib": 1, "deflate_on_oom": True,
                             "free_page_hinting": 1}, 400, "expected a boolean"),
        ("PATCH", "/balloon/hinting/start", None, 400, "not supported before starting"),
        ("GET", "/balloon/hinting/status", None, 400, "not supported before starting"),
        ("PUT", "/balloon/hinting/stop", {}, 405, None),
        ("PATCH", "/balloon", {"amount_mib": 1}, 400, "not supported before starting"),
        ("GET", "/balloon/statistics", None, 400, "not supported before starting"),
        ("PATCH", "/balloon/statistics", {"stats_polling_interval_s": 1}, 400,
         "not supported before starting"),
        ("PUT", "/balloon/statistics", {"stats_polling_interval_s": 1}, 405, None),
        ("PUT", "/snapshot/create", {"mem_file_path": "a", "snapshot_path": "b"}, 400,
         "not supported"),
        ("GET", "/nonexistent", None, 404, "Invalid request method and/or path"),
        ("GET", "/drives/d/extra", None, 404, "Invalid request method and/or path"),
        ("DELETE", "/machine-config", None, 405, "Invalid request method and/or path"),
        ("POST", "/actions", {"action_type": "FlushMetrics"}, 405, None),
        ("GET", "/boot-source", None, 405, None),
        ("PUT", "/version", {"a": 1}, 405, None),
        ("PUT", "/machine-config", None, 400, "Empty PUT request"),
        ("GET", "/", "{}", 400, "GET request cannot have a body"),
        ("PUT", "/boot-source", '{"kernel_image_path": "a\\u0000b"}', 400, de),
        ("PUT", "/boot-source", b'{"kernel_image_path": "\xff\xfe"}', 400, de),
    ]
    for case in filter(None, cases):
        method, path, body, status, needle = case
        shown = body if isinstance(body, (str, bytes)) else json.dumps(body)
        expect(p.call(method, path, body), status, None,
               "%s %s %.70s" % (method, path, shown if body is not None else ""), needle)
    # duplicates across resources
    expect(p.call("PUT", "/drives/a", dict(drive, drive_id="a", is_root_device=True)), 204,
           None, "a root drive")
    expect(p.call("PUT", "/drives/b", dict(drive, drive_id="b", is_root_device=True)), 400,
           None, "a second root drive", "A root block device already exists")
    for i in range(7):
        p.call("PUT", "/drives/x%d" % i, dict(drive, drive_id="x%d" % i))
    expect(p.call("PUT", "/drives/x9", dict(drive, drive_id="x9")), 400, None,
           "a ninth drive", "at most 8 drives")
    expect(p.call("PUT", "/network-interfaces/n1", {"iface_id": "n1", "host_dev_name": "tap1",
                                                     "guest_mac": "06:00:00:00:00:01"}),
           204, None, "an interface")
    expect(p.call("PUT", "/network-interfaces/n2", {"iface_id": "n2", "host_dev_name": "tap1"}),
           400, None, "a second interface on the same tap", "already used by interface n1")
    expect(p.call("PUT", "/network-interfaces/n2", {"iface_id": "n2", "host_dev_name": "tap2",
                                                     "guest_mac": "06:00:00:00:00:01"}),
           400, None, "a second interface with the same MAC", "already used")
    # a refused body changes nothing
    before = p.call("GET", "/machine-config").json
    p.call("PUT", "/machine-config", {"vcpu_count": 4, "mem_size_mib": 64, "huge_pages": "2M"})
    check(p.call("GET", "/machine-config").json == before, "a refused PUT changes nothing")
    headers(p)
    huge_bodies(p)
    p.finish()


def headers(p):
    st, h, body = raw_request(p.sock, b"DELETE /vm HTTP/1.1\r\nHost: localhost\r\n\r\n")
    check(st == 405 and h.get("allow") == "PATCH", "a 405 says Allow: PATCH (%d %r)" % (st, h))
    st, h, body = raw_request(p.sock, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    check(st == 200 and h.get("content-type") == "application/json",
          "bodies are Content-Type: application/json")
    st, h, body = raw_request(p.sock, b"GET /version HTTP/1.0\r\n\r\n")
    check(st == 200 and "firecracker_version" in body, "HTTP/1.0 without Host works")
    st, h, body = raw_request(p.sock, b"GET /version HTTP/1.1\r\n\r\n")
    check(st == 200, "HTTP/1.1 without Host works (Firecracker's clients omit it)")
    st, h, body = raw_request(p.sock, b"GARBAGE\r\n\r\n")
    check(st == 400 or st == 0, "a request line that is not HTTP is refused (%d)" % st)


def huge_bodies(p):
    big = {"vcpu_count": 1, "mem_size_mib": 64, "pad": "x" * 100000}
    expect(p.call("PUT", "/machine-config", big), 400, None, "a 100 KB body",
           "larger than the limit of %d" % BODY_LIMIT)
    r = p.call("PUT", "/machine-config", big, extra=["-H", "Transfer-Encoding: chunked"])
    expect(r, 400, None, "a 100 KB chunked body", "larger than the limit")
    r = p.call("PUT", "/machine-config", "x" * (8 << 20),
               extra=["-H", "Transfer-Encoding: chunked"])
    check(r.status in (0, 100, 400), "an 8 MB chunked body: refused or cut off (%d)" % r.status)
    st, h, body = raw_request(p.sock, b"PUT /machine-config HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Length: 99999999999\r\n\r\n")
    check(st == 400 and "larger than the limit" in body,
          "a huge Content-Length is refused before the body (%d)" % st)
    # headers past libmicrohttpd's buffer
    st, h, body = raw_request(p.sock, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 +
                              b"\r\n\r\n")
    check(st in (0, 413, 431, 400), "huge headers are refused (%d)" % st)
    expect(p.call("GET", "/"), 200, "InstanceInfo", "the server still answers after all that")


# ---- http: slow clients, many clients -------------------------------------------------------------

def slow_clients(tmp, p=None, watch=None):
    """Stalled requests hold only their own connections: others are served
    at once (and the VM, when watch() measures it, keeps going); the
    server closes the stalled ones after its timeout."""
    own = p is None
    if own:
        p = started(tmp, name="slow.sock")
    stalled = []
    for data in [b"PUT /machine-config HTTP/1.1\r\nHost: x\r\nContent-Le",
                 b"PUT /machine-config HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"vc",
                 b"G"]:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(p.sock)
        s.sendall(data)
        stalled.append(s)
    before = watch() if watch else None
    t0 = time.monotonic()
    ok = all(p.call("GET", "/").status == 200 for _ in range(10))
    took = time.monotonic() - t0
    check(ok and took < 5, "10 requests beside 3 stalled ones: answered in %.2f s" % took)
    if watch:
        check(wait_for(lambda: watch() > before, 30),
              "the VM runs on beside stalled clients (%r -> %r)" % (before, watch()))
    if own:
        t0 = time.monotonic()
        closed = 0
        for s in stalled:
            s.settimeout(20)
            try:
                data = s.recv(4096)
                closed += 1 if not data or data.startswith(b"HTTP/1.1 4") else 0
            except OSError:
                closed += 1
        took = time.monotonic() - t0
        check(closed == 3 and took < 16,
              "the server drops stalled connections after its timeout (%d in %.1f s)" %
              (closed, took))
    for s in stalled:
        s.close()
    if own:
        p.finish()


def slowloris(tmp):
    """As many connections as the server takes (64), each trickling a
    header byte every 2 s (never silent long enough for the 10 s
    inactivity timeout): the server cuts each once its request is 15 s
    old, and a normal client gets through while they keep trickling."""
    log = os.path.join(tmp, "slowloris.log")
    p = started(tmp, ["--log-path", log, "--level", "Info"], name="loris.sock")
    conns = []
    for i in range(64):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(p.sock)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        conns.append(s)
    alive = list(conns)
    sent = {id(s): 0 for s in conns}
    served = None
    end = time.monotonic() + 60
    last = 0.0
    while time.monotonic() < end and (alive or served is None):
        if time.monotonic() - last >= 2:
            last = time.monotonic()
            for s in list(alive):
                try:
                    s.sendall(b"a")
                    sent[id(s)] += 1
                except OSError:
                    alive.remove(s)
        if served is None:
            r = p.call("GET", "/", extra=("--max-time", "1"))
            if r.status == 200:
                served = time.monotonic()
        time.sleep(0.5)
    cut = 0
    for s in conns:
        s.settimeout(5)
        try:
            data = s.recv(4096)
            cut += 1 if not data or not data.startswith(b"HTTP/1.1 200") else 0
        except OSError:
            cut += 1
        s.close()
    check(cut == 64 and not alive,
          "64 trickling connections (%d-%d bytes each, one per 2 s) were all cut by the server"
          % (min(sent.values()), max(sent.values())))
    check(served is not None, "a normal client got through beside them")
    expect(p.call("GET", "/"), 200, "InstanceInfo", "GET / once they are gone")
    p.finish()
    logged = open(log).read()
    check(logged.count("not complete after 15 s") >= 64,
          "the log says why, once per connection (%d)" % logged.count("not complete after"))


def many_clients(tmp, p=None, watch=None):
    own = p is None
    if own:
        p = started(tmp, name="many.sock")
    before = watch() if watch else None

    def client(i):
        results = []
        for j in range(5):
            if p.call("GET", "/").status != 200:
                results.append("GET / %d" % i)
            r = p.call("GET", "/machine-config")
            if r.status != 200 or validate(r.json, "MachineConfiguration"):
                results.append("GET /machine-config %d" % i)
            r = p.call("PUT", "/actions", {"action_type": "Nope%d" % i})
            if r.status != 400 or validate(r.json, "Error"):
                results.append("bad action %d" % i)
        return results

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as ex:
        errors = sum(ex.map(client, range(20)), [])
    took = time.monotonic() - t0
    check(not errors, "20 clients at once, 300 requests, every answer right in %.1f s %s" %
          (took, errors[:5]))
    # 20 connections open at the same time, each sending its request
    socks = []
    for i in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(p.sock)
        socks.append(s)
    for s in socks:
        s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
    answered = sum(1 for s in socks if s.recv(4096).startswith(b"HTTP/1.1 200"))
    for s in socks:
        s.close()
    check(answered == 20, "20 open connections answered (%d)" % answered)
    if watch:
        check(watch() > before, "the VM ran on through 20 clients (%r -> %r)" %
              (before, watch()))
    if own:
        p.finish()


# ---- http: config files that are refused ---------------------------------------------------------

def mmds(tmp):
    """The MMDS data store and its configuration, Firecracker's way."""
    meta = os.path.join(tmp, "meta.json")
    with open(meta, "w") as f:
        json.dump({"latest": {"meta-data": {"ami-id": "ami-1"}}}, f)
    p = started(tmp, ["--mmds-size-limit", "200", "--metadata", meta], name="mmds.sock")
    r = p.call("GET", "/mmds")
    check(r.status == 200 and r.json == {"latest": {"meta-data": {"ami-id": "ami-1"}}},
          "GET /mmds gives --metadata's contents (got %r)" % r)
    expect(p.call("PUT", "/mmds", {"a": {"b": "c", "d": "e"}, "n": 1}), 204, None, "PUT /mmds")
    expect(p.call("PATCH", "/mmds", {"a": {"d": None, "f": "g"}, "n": [1, 2]}), 204, None,
           "PATCH /mmds (RFC 7396)")
    r = p.call("GET", "/mmds")
    check(r.json == {"a": {"b": "c", "f": "g"}, "n": [1, 2]},
          "the merge patch removed, added and replaced (got %r)" % r)
    big = {"x": "y" * 300}
    expect(p.call("PUT", "/mmds", big), 413, None, "PUT /mmds over --mmds-size-limit",
           "MMDS limit exceeded")
    expect(p.call("PATCH", "/mmds", big), 413, None, "PATCH /mmds over the limit",
           "doesn't fit")
    check(p.call("GET", "/mmds").json == r.json, "a refused PUT or PATCH changes nothing")
    expect(p.call("PUT", "/mmds", "{not json"), 400, None, "PUT /mmds bad JSON",
           "deserializing")
    expect(p.call("GET", "/mmds", "{}"), 400, None, "GET /mmds with a body")
    expect(p.call("DELETE", "/mmds"), 405, None, "DELETE /mmds")
    expect(p.call("GET", "/mmds/config"), 405, None, "GET /mmds/config")
    # /mmds/config: the interfaces must exist, the address be link-local
    cfg = {"network_interfaces": ["eth0"]}
    expect(p.call("PUT", "/mmds/config", cfg), 400, None, "/mmds/config before the interface",
           "does not correspond to any existing network interface")
    expect(p.call("PUT", "/network-interfaces/eth0",
                  {"iface_id": "eth0", "host_dev_name": "tap-mmds"}), 204, None,
           "PUT /network-interfaces/eth0")
    for body, needle in [
            ({"network_interfaces": []}, "is empty"),
            ({}, "missing field `network_interfaces`"),
            ({"network_interfaces": "eth0"}, "invalid type"),
            ({"network_interfaces": [1]}, "invalid type"),
            ({"network_interfaces": ["eth0"], "version": "V3"}, "unknown variant"),
            ({"network_interfaces": ["eth0"], "ipv4_address": "10.0.0.1"}, "not link local"),
            ({"network_interfaces": ["eth0"], "ipv4_address": "169.254.0.1"}, "not link local"),
            ({"network_interfaces": ["eth0"], "ipv4_address": "nope"}, "not link local"),
            ({"network_interfaces": ["eth0"], "imds_compat": "yes"}, "invalid type"),
            ({"network_interfaces": ["eth0"], "extra": 1}, "unknown field `extra`")]:
        expect(p.call("PUT", "/mmds/config", body), 400, None, "PUT /mmds/config %s" %
               json.dumps(body), needle)
    # V1 (also an omitted version) works but is deprecated, as Firecracker answers it
    hdrs = os.path.join(tmp, "mmds-config.headers")
    for body in [{"network_interfaces": ["eth0"]},
                 {"network_interfaces": ["eth0"], "version": "V1"}]:
        expect(p.call("PUT", "/mmds/config", body, extra=("-D", hdrs)), 204, None,
               "PUT /mmds/config %s" % json.dumps(body))
        check("deprecation: true" in open(hdrs).read().lower(),
              "PUT /mmds/config %s answers Deprecation: true" % json.dumps(body))
    expect(p.call("PUT", "/mmds/config", {"network_interfaces": ["eth0"], "version": "V2",
                                          "ipv4_address": "169.254.170.2",
                                          "imds_compat": True}, extra=("-D", hdrs)), 204, None,
           "PUT /mmds/config V2")
    check("deprecation" not in open(hdrs).read().lower(), "V2 is not deprecated")
    r = p.call("GET", "/vm/config")
    expect(r, 200, "FullVmConfiguration", "GET /vm/config with mmds-config")
    check(r.json and r.json.get("mmds-config") ==
          {"version": "V2", "network_interfaces": ["eth0"], "ipv4_address": "169.254.170.2",
           "imds_compat": True}, "GET /vm/config has the mmds-config (got %r)" % r)
    # the interface PUT again keeps its MMDS
    p.call("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "tap-m2"})
    check(p.call("GET", "/vm/config").json.get("mmds-config", {}).get("network_interfaces") ==
          ["eth0"], "a re-PUT interface keeps the MMDS")
    p.finish()
    # the command line's refusals
    for args, needle in [(["--mmds-size-limit", "0"], "--mmds-size-limit"),
                         (["--metadata", os.path.join(tmp, "none.json")], "--metadata"),
                         (["--mmds-size-limit", "10", "--metadata", meta], "size limit")]:
        rc, err = run_status(["--api-sock", os.path.join(tmp, "x.sock")] + args)
        check(rc == 2 and needle in err, "%s -> status 2 and '%s' (got %d %r)" %
              (" ".join(args), needle, rc, err.strip()))


def config_file_errors(tmp):
    disk = os.path.join(tmp, "cfg.img")
    open(disk, "wb").write(b"\0" * 4096)
    good_boot = {"kernel_image_path": disk}

    def write(name, content):
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
        return path

    cases = [
        (write("syntax.json", '{"boot-source": {'), "line 1"),
        (write("array.json", "[]"), "$: expected an object"),
        (write("unknown.json", {"boot-source": good_boot, "gpu": {}}),
         "unknown section `gpu`"),
        (write("balloon.json", {"boot-source": good_boot, "balloon": {}}),
         "$.balloon.amount_mib: missing"),
        (write("balloon2.json", {"boot-source": good_boot, "machine-config": {
            "vcpu_count": 1, "mem_size_mib": 64}, "balloon": {
            "amount_mib": 65, "deflate_on_oom": False}}),
         "$.balloon: 65 MiB in 64 MiB of memory: Amount of pages requested is too large."),
        (write("noboot.json", {"machine-config": {"vcpu_count": 1, "mem_size_mib": 64}}),
         "$.boot-source: missing"),
        (write("kernel.json", {"boot-source": {"kernel_image_path": "/nonexistent"}}),
         "$.boot-source.kernel_image_path: /nonexistent"),
        (write("type.json", {"boot-source": good_boot, "drives": [
            {"drive_id": "a", "path_on_host": disk, "is_root_device": False},
            {"drive_id": "b", "path_on_host": disk, "is_root_device": False,
             "is_read_only": "no"}]}), "$.drives[1].is_read_only: expected a boolean"),
        (write("dup.json", {"boot-source": good_boot, "drives": [
            {"drive_id": "a", "path_on_host": disk, "is_root_device": False},
            {"drive_id": "a", "path_on_host": disk, "is_root_device": False}]}),
         "$.drives[1]: drive_id a appears twice"),
        (write("mmds.json", {"boot-source": good_boot, "mmds-config": {
            "network_interfaces": ["eth9"]}}), "$.mmds-config: MMDS config error"),
        (write("mmds2.json", {"boot-source": good_boot, "mmds-config": {
            "network_interfaces": ["eth0"], "version": "V9"},
            "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0"}]}),
         "$.mmds-config: version: unknown variant"),
        (write("nets.json", {"boot-source": good_boot, "network-interfaces": {}}),
         "$.network-interfaces: expected an array"),
        (write("mc.json", {"boot-source": good_boot, "machine-config": {"vcpu_count": 1}}),
         "$.machine-config.mem_size_mib: missing"),
        (write("logger.json", {"boot-source": good_boot,
                               "logger": {"log_path": "/nonexistent/x/log"}}),
         "log_path /nonexistent/x/log"),
        (os.path.join(tmp, "missing.json"), "No such file"),
    ]
    for path, needle in cases:
        rc, err = run_status(["--config-file", path, "--no-api"])
        lines = err.strip().splitlines()
        check(rc == 2 and len(lines) == 1 and needle in err and os.path.basename(path) in err,
              "--config-file %s -> status 2, one line naming the file and '%s' (got %d %r)" %
              (os.path.basename(path), needle, rc, err.strip()))


# ---- vm: a VM through the API ------------------------------------------------------------------

def ticks(path):
    """The guest's whole "tick N" lines so far: a line still being written
    (no newline yet, as at a pause or a kill) is not counted."""
    try:
        return [l for l in open(path).read().split("\n")[:-1] if l.startswith("tick ")]
    except OSError:
        return []


def flush(p, metrics):
    p.call("PUT", "/actions", {"action_type": "FlushMetrics"})
    return json.loads(open(metrics).read().splitlines()[-1])


def full_boot(tmp):
    """Configured and started only through the API; then every post-boot
    rule, pause/resume, clients beside a running VM, SIGTERM."""
    serial = os.path.join(tmp, "ticker.out")
    metrics = os.path.join(tmp, "vm.metrics")
    log = os.path.join(tmp, "vm.log")
    disk = os.path.join(tmp, "vm.img")
    open(disk, "wb").write(b"\0" * 65536)
    # InstanceStart opens the TAP (made if missing, which needs root): a name of our own
    tap = "spka%d" % (os.getpid() % 1000000)
    p = started(tmp, name="vm.sock", stdin=subprocess.PIPE)
    for method, path, body in [
        ("PUT", "/logger", {"log_path": log, "level": "Info"}),
        ("PUT", "/metrics", {"metrics_path": metrics}),
        ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}),
        ("PUT", "/boot-source", {"kernel_image_path": TICKER}),
        ("PUT", "/serial", {"serial_out_path": serial}),
        ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": disk,
                                   "is_root_device": True, "is_read_only": False}),
        ("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": tap}),
        ("PUT", "/vsock", {"guest_cid": 3, "uds_path": os.path.join(tmp, "vsock.sock")}),
        ("PUT", "/entropy", {"rate_limiter": {"bandwidth": {"size": 4096, "refill_time": 100},
                                              "ops": {"size": 10, "refill_time": 100}}}),
        ("PUT", "/balloon", {"amount_mib": 8, "deflate_on_oom": True,
                             "stats_polling_interval_s": 5, "free_page_hinting": True}),
    ]:
        expect(p.call(method, path, body), 204, None, "%s %s" % (method, path))
    t0 = time.monotonic()
    expect(p.call("PUT", "/actions", {"action_type": "InstanceStart"}), 204, None,
           "InstanceStart")
    print("InstanceStart took %.1f ms" % ((time.monotonic() - t0) * 1000))
    r = p.call("GET", "/")
    expect(r, 200, "InstanceInfo", "GET / after boot")
    check(r.json and r.json["state"] == "Running", "the state is Running: %r" % r.json)
    check(wait_for(lambda: len(ticks(serial)) > 0, 30),
          "the guest's serial output reaches serial_out_path")
    line = json.loads(open(metrics).read().splitlines()[0])
    check(line.get("event") == "start" and not validate(line, "MetricsLine"),
          "a metrics line at start")
    p.p.stdin.write(b"hi")
    p.p.stdin.flush()

    def got():
        return [l for l in open(serial).read().split("\n")[:-1] if l.startswith("got ")]
    wait_for(lambda: len(got()) >= 2, 30)
    check(got() == ["got h", "got i"], "stdin reaches the guest's COM1: %r" % got())
    post_boot_rules(p, disk)
    pause_resume(p, serial, metrics)
    many_clients(tmp, p, watch=lambda: len(ticks(serial)))
    slow_clients(tmp, p, watch=lambda: len(ticks(serial)))
    expect(p.call("PUT", "/actions", {"action_type": "SendCtrlAltDel"}), 204, None,
           "SendCtrlAltDel")
    m = flush(p, metrics)
    check(m["vcpu"]["exits"].get("pio", 0) > 0 and m["vcpu"]["exits_total"] > 0 and
          m["devices"].get("com1", {}).get("writes", 0) > 0,
          "metrics count PIO exits and COM1 writes since the last line (%r, %r)" %
          (m["vcpu"]["exits"].get("pio"), m["devices"].get("com1")))
    # Firecracker's counters reset at each flush: two lines in a row, the
    # second counts only the FlushMetrics request itself
    check(m.get("balloon", {}).get("target_pages") == 4096 and
          m["balloon"].get("inflate_count") == 0,
          "metrics have the balloon's target, nothing inflated: %r" % m.get("balloon"))
    m1, m2 = flush(p, metrics), flush(p, metrics)
    check(m2["api_server"]["requests"] == 1 and m2["api_server"]["ok"] == 1 and
          m2["api_server"]["client_errors"] == 0,
          "api_server counts the requests since the last line: %r" % m2["api_server"])
    rc = p.finish()
    lines = open(metrics).read().splitlines()
    last = json.loads(lines[-1])
    check(rc == 5 and not os.path.exists(p.sock), "SIGTERM: status 5, the socket removed (%d)"
          % rc)
    check(last["event"] == "exit" and all(not validate(json.loads(l), "MetricsLine")
                                          for l in lines),
          "%d metrics lines, all fit the schema, the last at exit" % len(lines))
    n = [int(t.split()[1]) for t in ticks(serial)]
    check(n == list(range(len(n))), "no serial output was lost: ticks 0..%d in order" %
          (len(n) - 1))
    logged = open(log).read()
    check("the microVM started" in logged and "paused" in logged,
          "the log file has the start and the pause")
    check("virtio-blk rootfs: now %s (256 sectors)" % os.path.join(tmp, "vm2.img") in logged,
          "the log has the swapped disk's new capacity (128 KiB: 256 sectors)")


def balloon_after_boot(p):
    """The running balloon (no driver in the ticker guest: actual stays 0)."""
    expect(p.call("PATCH", "/balloon", {"amount_mib": 16}), 204, None, "PATCH /balloon")
    r = p.call("GET", "/balloon")
    expect(r, 200, "Balloon", "GET /balloon after boot")
    check(r.json and r.json["amount_mib"] == 16, "GET /balloon has the new target: %r" % r.json)
    expect(p.call("PATCH", "/balloon", {"amount_mib": 65}), 400, None,
           "PATCH /balloon above the memory", "Amount of pages requested is too large.")
    expect(p.call("PATCH", "/balloon", {"amount_mib": 1, "deflate_on_oom": False}), 400, None,
           "PATCH /balloon with a fixed option", "unknown field `deflate_on_oom`")
    r = p.call("GET", "/balloon/statistics")
    expect(r, 200, "BalloonStats", "GET /balloon/statistics")
    check(r.json and r.json["target_pages"] == 4096 and r.json["target_mib"] == 16 and
          r.json["actual_pages"] == 0, "the statistics have target and actual: %r" % r.json)
    expect(p.call("PATCH", "/balloon/statistics", {"stats_polling_interval_s": 0}), 400, None,
           "PATCH /balloon/statistics to 0", "Cannot enable/disable the statistics after boot.")
    expect(p.call("PATCH", "/balloon/statistics", {"stats_polling_interval_s": 2}), 204, None,
           "PATCH /balloon/statistics to 2 s")
    r = p.call("GET", "/balloon")
    check(r.json and r.json["stats_polling_interval_s"] == 2 and r.json["amount_mib"] == 16,
          "GET /balloon has the new interval: %r" % r.json)
    # free page hinting: a run, its status, its end (no driver answers here)
    expect(p.call("PATCH", "/balloon/hinting/start", {"acknowledge_on_stop": False}), 204, None,
           "PATCH /balloon/hinting/start")
    r = p.call("GET", "/balloon/hinting/status")
    expect(r, 200, "BalloonHintingStatus", "GET /balloon/hinting/status")
    check(r.json == {"host_cmd": 2, "guest_cmd": 0}, "the first run is command 2: %r" % r.json)
    expect(p.call("PATCH", "/balloon/hinting/start", {"acknowledge_on_stop": 1}), 400, None,
           "hinting start with a bad body", "expected a boolean")
    expect(p.call("PATCH", "/balloon/hinting/stop"), 204, None,
           "PATCH /balloon/hinting/stop without a body")
    r = p.call("GET", "/balloon/hinting/status")
    check(r.json == {"host_cmd": 1, "guest_cmd": 0}, "stopped: DONE (1): %r" % r.json)
    expect(p.call("PATCH", "/balloon/hinting/start"), 204, None,
           "PATCH /balloon/hinting/start without a body")
    check(p.call("GET", "/balloon/hinting/status").json == {"host_cmd": 3, "guest_cmd": 0},
          "the next run is command 3")


def post_boot_rules(p, disk):
    after = "not supported after starting the microVM"
    for method, path, body in [
        ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}),
        ("PATCH", "/machine-config", {"mem_size_mib": 128}),
        ("PUT", "/boot-source", {"kernel_image_path": TICKER}),
        ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": disk,
                                   "is_root_device": True}),
        ("PUT", "/network-interfaces/eth1", {"iface_id": "eth1", "host_dev_name": "tap1"}),
        ("PUT", "/vsock", {"guest_cid": 4, "uds_path": "/tmp/x"}),
        ("PUT", "/entropy", {}),
        ("PUT", "/balloon", {"amount_mib": 1, "deflate_on_oom": True}),
        ("PUT", "/serial", {}),
        ("PUT", "/logger", {"level": "Debug"}),
        ("PUT", "/metrics", {"metrics_path": "/tmp/m"}),
        ("PUT", "/actions", {"action_type": "InstanceStart"}),
    ]:
        expect(p.call(method, path, body), 400, None, "%s %s after boot" % (method, path), after)
    # no interface has the MMDS: after boot Firecracker has no data store to use
    for method, body in [("GET", None), ("PUT", {"a": 1}), ("PATCH", {"a": 1})]:
        expect(p.call(method, "/mmds", body), 400, None,
               "%s /mmds after a boot without MMDS" % method,
               "MMDS error: The MMDS data store is not initialized.")
    expect(p.call("PATCH", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": disk}),
           204, None, "PATCH /drives after boot")
    expect(p.call("PATCH", "/drives/nope", {"drive_id": "nope"}), 400, None,
           "PATCH of an unknown drive", "no drive nope")
    drive_swap(p, disk)
    balloon_after_boot(p)
    # a new rate limit for the running disk, and back to none
    expect(p.call("PATCH", "/drives/rootfs", {"drive_id": "rootfs", "rate_limiter": {
        "bandwidth": {"size": 1 << 20, "one_time_burst": 1 << 20, "refill_time": 100},
        "ops": {"size": 100, "refill_time": 1000}}}), 204, None,
           "PATCH /drives with a rate limiter after boot")
    expect(p.call("PATCH", "/drives/rootfs", {"drive_id": "rootfs", "rate_limiter": {
        "ops": {"size": 0, "refill_time": 1000}}}), 400, None,
           "PATCH /drives with a zero-size bucket", "0 is out of range")
    expect(p.call("PATCH", "/drives/rootfs", {"drive_id": "rootfs", "rate_limiter": {}}),
           204, None, "PATCH /drives: an empty rate limiter lifts the limit")
    expect(p.call("PATCH", "/network-interfaces/eth0",
                  {"iface_id": "eth0", "tx_rate_limiter": {"ops": {"size": 5,
                                                                   "refill_time": 10}}}),
           204, None, "PATCH /network-interfaces after boot")
    c = p.call("GET", "/vm/config")
    expect(c, 200, "FullVmConfiguration", "GET /vm/config after boot")
    check((c.json or {}).get("network-interfaces", [{}])[0].get("tx_rate_limiter") is not None,
          "the patched rate limiter is recorded")


def open_files(pid):
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out.add(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            pass
    return out


def drive_swap(p, disk):
    """PATCH /drives with a new path_on_host after boot: the running disk
    takes the file (sparkler holds it open and no longer the old one, and
    logs the new capacity); a file whose size is not a multiple of 512 is
    refused with the reason and the disk keeps its file."""
    tmp = os.path.dirname(disk)
    odd = os.path.join(tmp, "odd.img")
    open(odd, "wb").write(b"\0" * 1000)
    new = os.path.join(tmp, "vm2.img")
    open(new, "wb").write(b"\x5a" * (128 << 10))
    cfg_path = lambda: [d.get("path_on_host") for d in
                        (p.call("GET", "/vm/config").json or {}).get("drives", [])]
    expect(p.call("PATCH", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": odd}), 400,
           None, "PATCH /drives to a 1000-byte file", "not a multiple of 512")
    files = open_files(p.p.pid)
    check(disk in files and odd not in files and cfg_path() == [disk],
          "refused: the disk keeps its file, the config its path (%r)" % cfg_path())
    expect(p.call("PATCH", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": new}), 204,
           None, "PATCH /drives to a new 128 KiB file after boot")
    files = open_files(p.p.pid)
    check(new in files and disk not in files and cfg_path() == [new],
          "the running disk now holds the new file, not the old one, and the config says so")
    expect(p.call("PATCH", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": disk}), 204,
           None, "PATCH /drives back to the first file")
    files = open_files(p.p.pid)
    check(disk in files and new not in files, "and back: the second file is closed")


def pause_resume(p, serial, metrics):
    expect(p.call("PATCH", "/vm", {"state": "Paused"}), 204, None, "PATCH /vm Paused")
    r = p.call("GET", "/")
    check(r.json and r.json["state"] == "Paused", "GET / says Paused: %r" % r.json)
    a, m1 = len(ticks(serial)), flush(p, metrics)
    time.sleep(0.6)
    b, m2 = len(ticks(serial)), flush(p, metrics)
    check(a == b and m2["vcpu"]["exits_total"] == 0 and m2["vmm"]["state"] == "Paused",
          "paused: no serial output, no exits for 0.6 s (%d -> %d lines)" % (a, b))
    expect(p.call("PATCH", "/vm", {"state": "Paused"}), 204, None, "pausing twice is fine")
    expect(p.call("PATCH", "/vm", {"state": "Sleeping"}), 400, None, "PATCH /vm Sleeping",
           "unknown variant `Sleeping`")
    expect(p.call("PATCH", "/vm", {"state": "Resumed"}), 204, None, "PATCH /vm Resumed")
    wait_for(lambda: len(ticks(serial)) > b, 30)
    c, m3 = len(ticks(serial)), flush(p, metrics)
    r = p.call("GET", "/")
    check(c > b and m3["vcpu"]["exits_total"] > 0 and
          r.json["state"] == "Running", "resumed: output and exits go on (%d -> %d)" % (b, c))


def vm_ends(tmp):
    """The guest powers off (or resets): sparkler exits with its status,
    the socket goes, later requests find nobody."""
    for kernel, status, what in [(SYSTEM_OFF, 0, "powers off"), (TRIPLE, 3, "resets")]:
        metrics = os.path.join(tmp, "end-%d.metrics" % status)
        p = started(tmp, ["--metrics-path", metrics], name="end.sock")
        p.call("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32})
        p.call("PUT", "/boot-source", {"kernel_image_path": kernel})
        expect(p.call("PUT", "/actions", {"action_type": "InstanceStart"}), 204, None,
               "InstanceStart of a guest that %s" % what)
        rc = p.finish(sig=None, timeout=20)
        check(rc == status, "the guest %s: sparkler exits with status %d (%d, %r)" %
              (what, status, rc, p.err.strip()))
        check(not os.path.exists(p.sock), "the socket file is gone")
        r = p.call("GET", "/")
        check(r.curl_rc == 7 and r.status == 0,
              "a request after the VM exited finds no server (curl %d)" % r.curl_rc)
        last = json.loads(open(metrics).read().splitlines()[-1])
        check(last["event"] == "exit" and last["vmm"]["state"] == "Exited",
              "the last metrics line says the VM exited")


def wait_for(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def ctrl_alt_del(tmp):
    """SendCtrlAltDel reaches the guest: t_ctrl_alt_del polls the i8042
    (at CPL0: the API's Linux-style boot GDT has no user segments), prints the bytes it got and powers off; sparkler exits 0.
    Its logger (level Warning, origins on) holds the WARN line of the
    guest's read of the hole, naming machine.c, and no INFO line."""
    serial = os.path.join(tmp, "cad.out")
    log = os.path.join(tmp, "cad.log")
    p = started(tmp, name="cad.sock")
    for method, path, body in [
        ("PUT", "/logger", {"log_path": log, "level": "Warning", "show_level": True,
                            "show_log_origin": True}),
        ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32}),
        ("PUT", "/boot-source", {"kernel_image_path": CAD}),
        ("PUT", "/serial", {"serial_out_path": serial}),
        ("PUT", "/actions", {"action_type": "InstanceStart"}),
    ]:
        expect(p.call(method, path, body), 204, None, "%s %s" % (method, path))
    out = lambda: open(serial).read() if os.path.exists(serial) else ""
    check(wait_for(lambda: "cad: waiting" in out(), 20),
          "the guest polls the i8042 (%r)" % out())
    check(p.p.poll() is None and "cad: got" not in out(),
          "without Ctrl+Alt+Del the guest waits")
    expect(p.call("PUT", "/actions", {"action_type": "SendCtrlAltDel"}), 204, None,
           "SendCtrlAltDel to a guest that waits for it")
    rc = p.finish(sig=None, timeout=30)
    got = [l for l in out().splitlines() if l.startswith("cad: got")]
    check(got == ["cad: got " + CAD_SET1],
          "the guest read Ctrl+Alt+Del's set-1 scancodes from port 0x60 (%r)" % got)
    check(rc == 0 and "cad: powering off" in out(),
          "then it powered off: sparkler exits 0 (%d, %r)" % (rc, p.err.strip()[-200:]))
    lines = log_lines(log)
    warns = [l for l in lines if l[0] == "WARN" and "hits no device" in l[3]]
    check(len(warns) == 1 and warns[0][1] == "src/vmm/machine/machine.c" and not origin_ok(warns),
          "level Warning: the guest's hole read is one WARN line from src/vmm/machine/machine.c:N "
          "(%r)" % warns)
    check(not any(l[0] in ("INFO", "DEBUG") for l in lines),
          "level Warning: no INFO or DEBUG line while a VM starts and stops (%r)" %
          sorted({l[0] for l in lines}))


def power_button(tmp):
    """SIGPWR to the API process presses the guest's ACPI power button, as
    lxc-stop asks a container to shut down: before a VM exists it is
    ignored (the process serves on); once t_power_button waits on GPE 0,
    it sees the press, clears it and powers off, and sparkler exits 0."""
    serial = os.path.join(tmp, "pb.out")
    p = started(tmp, name="pb.sock")
    p.p.send_signal(signal.SIGPWR)
    r = p.call("GET", "/")
    check(r.json and r.json["state"] == "Not started" and p.p.poll() is None,
          "SIGPWR before InstanceStart is ignored: the API still serves, Not started")
    for method, path, body in [
        ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32}),
        ("PUT", "/boot-source", {"kernel_image_path": BUTTON}),
        ("PUT", "/serial", {"serial_out_path": serial}),
        ("PUT", "/actions", {"action_type": "InstanceStart"}),
    ]:
        expect(p.call(method, path, body), 204, None, "%s %s" % (method, path))
    out = lambda: open(serial).read() if os.path.exists(serial) else ""
    check(wait_for(lambda: "pb: waiting" in out(), 20),
          "the guest enabled GPE 0 and polls its status (%r)" % out())
    p.p.send_signal(signal.SIGPWR)
    rc = p.finish(sig=None, timeout=30)
    check(rc == 0 and "pb: pressed" in out(),
          "SIGPWR pressed the power button: the guest powered off, status 0 (%d, %r, %r)" %
          (rc, out(), p.err.strip()[-300:]))
    check("SIGPWR: no VM running, ignored" in p.err and
          "SIGPWR: pressed the power button" in p.err and "stopping" not in p.err,
          "stderr: one line for the ignored SIGPWR, one for the press (%r)" %
          p.err.strip()[-300:])


def failed_start(tmp):
    junk = os.path.join(tmp, "junk-kernel")
    open(junk, "wb").write(os.urandom(8192))
    p = started(tmp, name="junk.sock")
    p.call("PUT", "/boot-source", {"kernel_image_path": junk})
    expect(p.call("PUT", "/actions", {"action_type": "InstanceStart"}), 400, None,
           "InstanceStart of a file that is no kernel", "Failed to start the microVM")
    r = p.call("GET", "/")
    check(r.json and r.json["state"] == "Not started", "a failed start leaves Not started")
    p.call("PUT", "/boot-source", {"kernel_image_path": TICKER})
    expect(p.call("PUT", "/actions", {"action_type": "InstanceStart"}), 204, None,
           "InstanceStart after fixing the boot source")
    check(p.call("GET", "/").json["state"] == "Running", "then it runs")
    p.finish()


def config_files(tmp):
    path = os.path.join(tmp, "off.json")
    json.dump({"boot-source": {"kernel_image_path": SYSTEM_OFF},
               "machine-config": {"vcpu_count": 1, "mem_size_mib": 32}}, open(path, "w"))
    rc, err = run_status(["--config-file", path, "--no-api"])
    check(rc == 0, "--config-file --no-api boots a guest that powers off: status 0 (%d %r)" %
          (rc, err.strip()))
    junk = os.path.join(tmp, "junk.bin")
    open(junk, "wb").write(os.urandom(8192))
    path = os.path.join(tmp, "junk.json")
    json.dump({"boot-source": {"kernel_image_path": junk}}, open(path, "w"))
    rc, err = run_status(["--config-file", path, "--no-api"])
    check(rc == 2 and len(err.strip().splitlines()) == 1 and "junk.json: cannot boot" in err,
          "a config file whose kernel is no kernel: status 2, one line (%d %r)" %
          (rc, err.strip()))
    serial = os.path.join(tmp, "cfg-ticker.out")
    path = os.path.join(tmp, "ticker.json")
    json.dump({"boot-source": {"kernel_image_path": TICKER, "boot_args": "console=ttyS0"},
               "machine-config": {"vcpu_count": 2, "mem_size_mib": 64},
               "serial": {"serial_out_path": serial},
               "balloon": {"amount_mib": 4, "deflate_on_oom": False,
                           "stats_polling_interval_s": 0},
               "drives": [], "network-interfaces": []}, open(path, "w"))
    metrics = os.path.join(tmp, "cfg.metrics")
    p = started(tmp, ["--config-file", path, "--metrics-path", metrics, "--metrics-interval",
                      "1"], name="cfg.sock")
    r = p.call("GET", "/")
    check(r.json and r.json["state"] == "Running", "--config-file with --api-sock: Running")
    expect(p.call("PATCH", "/vm", {"state": "Paused"}), 204, None, "pause a 2-vCPU VM")
    check(p.call("GET", "/").json["state"] == "Paused", "both vCPUs held: Paused")
    expect(p.call("PATCH", "/vm", {"state": "Resumed"}), 204, None, "resume a 2-vCPU VM")
    def events():
        return [json.loads(l)["event"] for l in open(metrics).read().split("\n")[:-1]]
    wait_for(lambda: "periodic" in events(), 30)
    events = events()
    check(events[:1] == ["start"] and "periodic" in events,
          "--metrics-interval 1: a line at start, then periodic ones %r" % events)
    c = p.call("GET", "/vm/config").json or {}
    check(c.get("machine-config", {}).get("vcpu_count") == 2,
          "GET /vm/config shows the config file's machine")
    check(c.get("balloon", {}).get("amount_mib") == 4, "and its balloon: %r" % c.get("balloon"))
    expect(p.call("GET", "/balloon/statistics"), 400, None, "statistics of a balloon without",
           "Statistics for the balloon device are not enabled")
    expect(p.call("PATCH", "/balloon/statistics", {"stats_polling_interval_s": 1}), 400, None,
           "statistics turned on after boot", "Cannot enable/disable the statistics after boot.")
    expect(p.call("PATCH", "/balloon", {"amount_mib": 2}), 204, None,
           "PATCH /balloon of a config-file balloon")
    expect(p.call("PATCH", "/balloon/hinting/start"), 400, None, "hinting without it",
           "The balloon free hinting was not enabled")
    expect(p.call("PUT", "/boot-source", {"kernel_image_path": TICKER}), 400, None,
           "PUT /boot-source after a config-file boot", "not supported after starting")
    check(wait_for(lambda: len(ticks(serial)) > 0, 30),
          "the config file's serial path gets the output")
    check(p.finish() == 5, "SIGTERM ends it with status 5")


def main():
    if subprocess.run(["curl", "--version"], stdout=subprocess.DEVNULL).returncode != 0:
        print("SKIP: curl is not installed")
        return 77
    with tempfile.TemporaryDirectory(prefix="sparkler-api-") as tmp:
        if MODE == "http":
            cli(tmp)
            happy_paths(tmp)
            logger_levels(tmp)
            refusals(tmp)
            mmds(tmp)
            many_clients(tmp)
            config_file_errors(tmp)
            slow_clients(tmp)
            slowloris(tmp)
        else:
            if not os.access("/dev/kvm", os.R_OK | os.W_OK):
                print("SKIP: /dev/kvm is not usable")
                return 77
            kind = subprocess.run([SPARKLER, "kvm-info"], stdout=subprocess.PIPE,
                                  text=True).stdout.strip()
            print("host: %s" % kind)
            if "usable" not in kind:
                print("SKIP: KVM is not usable")
                return 77
            full_boot(tmp)
            vm_ends(tmp)
            ctrl_alt_del(tmp)
            power_button(tmp)
            failed_start(tmp)
            config_files(tmp)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
