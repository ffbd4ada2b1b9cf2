"""Helpers of the load benchmark (benches/load/run.py): the children it starts and ends,
free ports, process CPU and memory readings, wrk runs and their parsing, the size of the
stripped binary, criterion's estimates, and the configuration files of the proxies under
test (nginx, the gateway, Envoy)."""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


class Children:
    """Every long-lived process the benchmark starts (upstream, proxies, plugin servers).

    Each child is started in its own session, so its pid is also its process group, and
    ``stop`` ends the whole group: nginx workers, Envoy's threads and the gateway's
    plugins go with their parent. ``stop`` is idempotent; run.py calls it from its
    ``finally``, from ``atexit`` and after SIGTERM/SIGINT/SIGHUP. With ``pid_log`` every
    child (and, after ``record_tree``, every descendant) is appended to that file as
    ``PID PGID LABEL``, so a caller can check afterwards that none is left."""

    def __init__(self, pid_log=None):
        self.procs = []
        self.pid_log = pid_log
        self.stopped = False
        self.spawning = False
        self.pending = None

    def log(self, line):
        if self.pid_log:
            with open(self.pid_log, "a") as f:
                f.write(line + "\n")

    def spawn(self, label, cmd, log_path, env=None):
        # A signal between Popen and the append would lose the child: the handler defers
        # it (see ``interrupt``) until the child is recorded.
        self.spawning = True
        try:
            with open(log_path, "w") as err:
                proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                    env=env, start_new_session=True,
                )
            self.procs.append((label, proc))
            self.log(f"{proc.pid} {proc.pid} {label}")
        finally:
            self.spawning = False
        if self.pending:
            raise SystemExit(128 + self.pending)
        return proc

    def interrupt(self, signum):
        """Called by the signal handler: raises SystemExit now, or after a spawn."""
        if self.spawning:
            self.pending = signum
            return
        raise SystemExit(128 + signum)

    def record_tree(self):
        """Logs the descendants of every child (nginx workers, file:// plugins)."""
        for label, proc in self.procs:
            for pid in descendants(proc.pid):
                try:
                    pgid = os.getpgid(pid)
                except ProcessLookupError:
                    continue
                self.log(f"{pid} {pgid} {label}/child")

    def stop(self, grace=5.0):
        """SIGTERM to every child's process group, then SIGKILL to what is left."""
        if self.stopped:
            return
        self.stopped = True
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                kill_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for _, proc in reversed(self.procs):
            # Also after the leader exited: a worker or plugin may still hold the group.
            kill_group(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.log("stopped")


def kill_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def descendants(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []
    return children + [d for c in children for d in descendants(c)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_sum(pid, read):
    """Sum of ``read(pid)`` over ``pid`` and all its descendants; a process that is gone
    (or goes while it is read) counts what was read before."""
    total = 0
    try:
        total = read(pid)
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return total
    return total + sum(tree_sum(c, read) for c in children)


def _cpu_ticks_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _rss_kib_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return sum(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def cpu_ticks(pids):
    """User plus system CPU time of ``pids`` and all their descendants, in clock ticks."""
    return sum(tree_sum(pid, _cpu_ticks_of) for pid in pids)


def rss_kib(pids):
    """Resident set size of ``pids`` and all their descendants, in KiB."""
    return sum(tree_sum(pid, _rss_kib_of) for pid in pids)


def parse_duration(text):
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
    for unit in ("us", "ms", "s", "m"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    raise ValueError(f"unknown latency unit in {text!r}")


def parse_wrk(out):
    """Requests/sec, p50 and p99 (ms) and the error count from ``wrk --latency`` output."""
    result = {"errors": 0}
    for line in out.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(words[1])
        elif len(words) == 2 and words[0] == "50%":
            result["p50"] = parse_duration(words[1])
        elif len(words) == 2 and words[0] == "99%":
            result["p99"] = parse_duration(words[1])
        elif "requests in" in line:
            result["requests"] = int(words[0])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            result["errors"] += int(words[-1])
        elif line.strip().startswith("Socket errors:"):
            result["errors"] += sum(int(w.strip(",")) for w in words[3::2])
    if "rps" not in result or "p99" not in result:
        raise RuntimeError(f"could not read wrk output:\n{out}")
    return result


def run_wrk(scenario, threads, connections, duration, during=None):
    """One wrk run; also the CPU time the scenario's processes (and their descendants)
    used per request (µs), which, unlike req/s, hardly depends on what else the shared
    CPUs are doing, and the largest RSS of those processes sampled during the run.
    ``during`` is ``(seconds, action)``: ``action()`` runs once that far into the run
    (the failover scenario kills a target with it)."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    for h in scenario.headers:
        cmd += ["-H", h]
    cmd.append(scenario.url)
    pids = scenario.pids()
    before = cpu_ticks(pids)
    peak = 0
    # wrk prints a few hundred bytes at its end, so polling it cannot fill the pipe.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    try:
        while proc.poll() is None:
            time.sleep(0.05 if during else 0.25)
            peak = max(peak, rss_kib(pids))
            if during and time.monotonic() - start >= during[0]:
                action, during = during[1], None
                action()
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip()}")
    result = parse_wrk(out)
    result["rss_kib"] = peak
    if pids and result.get("requests"):
        ticks = cpu_ticks(pids) - before
        result["cpu_us"] = ticks / os.sysconf("SC_CLK_TCK") / result["requests"] * 1e6
    return result


def binary_size(path):
    """(unstripped bytes, stripped bytes, linkage) of an ELF binary: a copy is stripped
    with binutils' ``strip``; without ``strip`` the stripped size is None."""
    raw = os.path.getsize(path)
    stripped = None
    if shutil.which("strip"):
        with tempfile.TemporaryDirectory(prefix="mg-size-") as tmp:
            copy = os.path.join(tmp, "bin")
            shutil.copyfile(path, copy)
            subprocess.run(["strip", copy], check=True)
            stripped = os.path.getsize(copy)
    linkage = "unknown linkage"
    if shutil.which("file"):
        out = subprocess.run(["file", "-b", path], capture_output=True, text=True).stdout
        if "static" in out:
            linkage = "statically linked"
        elif "dynamically linked" in out:
            linkage = "dynamically linked"
    return raw, stripped, linkage


def criterion_estimates(directory):
    """Criterion's estimate (ns) of every benchmark under ``directory``
    (``GROUP/ID/new/estimates.json``), keyed by ``GROUP/ID``: the slope when criterion
    measured one (as its report prints it), else the mean."""
    out = {}
    for path in glob.glob(os.path.join(directory, "**", "new", "estimates.json"), recursive=True):
        bench = os.path.relpath(os.path.dirname(os.path.dirname(path)), directory)
        with open(path) as f:
            data = json.load(f)
        estimate = (data.get("slope") or data["mean"])["point_estimate"]
        out[bench] = {"ns": estimate, "mtime": os.path.getmtime(path)}
    return out


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def nginx_conf(work, name, workers, server_block):
    temp = " ".join(
        f"{k}_temp_path {work}/{name}-{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return write(
        f"{work}/{name}.conf",
        f"""daemon off;
master_process on;
worker_processes {workers};
pid {work}/{name}.pid;
error_log {work}/{name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  {temp}
  {server_block}
}}
""",
    )


def wait_http(port, body, proc, timeout=30.0):
    """Waits until ``GET /`` on ``port`` answers ``body`` (a restarted upstream); raises
    when ``proc`` exits or ``timeout`` passes."""
    import urllib.request

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the process on port {port} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                if resp.status == 200 and resp.read().decode() == body:
                    return
                last = f"status {resp.status}"
        except Exception as e:  # noqa: BLE001 - any failure means "not ready yet"
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on port {port}: {last}")


def gateway_toml(work, name, port, upstream, plugins, targets=None):
    """The gateway's config: one route to the group ``fixed`` over ``targets`` (ports;
    default the one ``upstream``)."""
    urls = ", ".join(f'"http://127.0.0.1:{t}"' for t in (targets or [upstream]))
    return write(
        f"{work}/{name}.toml",
        f"""[server]
listen = "127.0.0.1:{port}"
shutdown_timeout = "1s"
[plugin_runtime]
allow_internal_network_access = true
[admin]
listen = "127.0.0.1:{free_port()}"
data_dir = "{work}/{name}-data"
watch_config = false
[log]
level = "warn"
[[upstreams]]
name = "fixed"
targets = [{urls}]
[[routes]]
name = "all"
upstream = "fixed"
{plugins}
""",
    )


def envoy_conf(work, port, upstream):
    cluster_addr = {"socket_address": {"address": "127.0.0.1", "port_value": upstream}}
    conf = {
        "static_resources": {
            "listeners": [
                {
                    "name": "proxy",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                        "http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": "proxy",
                                        "route_config": {
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {"match": {"prefix": "/"}, "route": {"cluster": "fixed"}}
                                                    ],
                                                }
                                            ]
                                        },
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {
                                                    "@type": "type.googleapis.com/envoy.extensions."
                                                    "filters.http.router.v3.Router"
                                                },
                                            }
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "fixed",
                    "connect_timeout": "1s",
                    "type": "STATIC",
                    "load_assignment": {
                        "cluster_name": "fixed",
                        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": cluster_addr}}]}],
                    },
                }
            ],
        }
    }
    return write(f"{work}/envoy.json", json.dumps(conf))
