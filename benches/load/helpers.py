"""Helpers of the load benchmark (benches/load/run.py): free ports, process CPU and
memory readings, wrk runs and their parsing, and the configuration files of the proxies
under test (nginx, the gateway, Envoy)."""

import json
import os
import socket
import subprocess


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


def cpu_ticks(pid):
    """User plus system CPU time of ``pid`` and all its descendants, in clock ticks."""
    return tree_sum(pid, _cpu_ticks_of)


def rss_kib(pid):
    """Resident set size of ``pid`` and all its descendants, in KiB."""
    return tree_sum(pid, _rss_kib_of)


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


def run_wrk(scenario, args, duration):
    """One wrk run; also the CPU time the scenario's processes used per request (µs),
    which, unlike req/s, hardly depends on what else the shared CPUs are doing."""
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--latency"]
    for h in scenario.headers:
        cmd += ["-H", h]
    cmd.append(scenario.url)
    pid = scenario.pid()
    before = cpu_ticks(pid) if pid else 0
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = parse_wrk(out)
    if pid and result.get("requests"):
        ticks = cpu_ticks(pid) - before
        result["cpu_us"] = ticks / os.sysconf("SC_CLK_TCK") / result["requests"] * 1e6
    return result


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
        f"""worker_processes {workers};
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


def gateway_toml(work, name, port, upstream, plugins):
    return write(
        f"{work}/{name}.toml",
        f"""[server]
listen = "127.0.0.1:{port}"
[admin]
listen = "127.0.0.1:{free_port()}"
data_dir = "{work}/{name}-data"
watch_config = false
[log]
level = "warn"
[[upstreams]]
name = "fixed"
targets = ["http://127.0.0.1:{upstream}"]
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
