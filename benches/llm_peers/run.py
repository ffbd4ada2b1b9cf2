#!/usr/bin/env python3
"""microgateway against LiteLLM proxy and Portkey's gateway on LLM traffic, by hand (not
in CI).

What it measures. One fake OpenAI-compatible provider (nginx answering a fixed
chat.completion with usage, and a fixed SSE stream of 20 chat.completion.chunk events
ending in `data: [DONE]`, each only when the provider key is presented) sits behind each
gateway in turn, and wrk POSTs chat completions (a Lua script sets the body) to:

  direct             the fake provider itself (the baseline of the added latency)
  microgateway       an `openai` LLM upstream (key injection, usage metering) and the
                     production-like route: `builtin://api_key` in `auth` and
                     `builtin://llm_policy` in `post_auth` (allowlist, request size,
                     request and token budgets per app), as in benches/llm.rs
  microgateway-bare  the same upstream with no plugins (the bare LLM route)
  litellm            LiteLLM proxy (PyPI `litellm[proxy]`, pinned by --litellm-version;
                     --litellm-workers workers, under gunicorn when more than one, as
                     LiteLLM advises; the master key as the client key, no database)
  portkey            Portkey's gateway (npm `@portkey-ai/gateway`, one Node process, with
                     @hono/node-server pinned to 1.14.1, see peers.py; the provider and
                     its address come in `x-portkey-*` headers, no client auth)

for each of two answers, `json` (a non-streaming completion) and `sse` (`"stream": true`).
For every gateway and answer it reports req/s at `wrk -t2 -c32` (--connections), the CPU
time of the gateway's whole process tree (utime + stime from /proc, workers included)
per request at that load, its peak RSS, and p50 and p99 at `wrk -t1 -c1` with what the
gateway adds to the direct figures; also each gateway's CPU use while idle, which CPU
per request includes. Runs are interleaved (each round runs every gateway
once per answer and load) and each figure is the median over --rounds rounds. It prints a
markdown table.

How to run it (needs wrk and nginx: apt-get install -y wrk nginx; node and npm for
Portkey; python3 -m venv for LiteLLM; unshare and ip from util-linux and iproute2):

  python3 benches/llm_peers/run.py                        # build, install, 3 rounds of 10 s
  python3 benches/llm_peers/run.py --rounds 2 --duration 5
  python3 benches/llm_peers/run.py --no-build --only microgateway,portkey

It builds the gateway with `cargo build --release --locked --bin microgateway` (in
$CARGO_TARGET_DIR when set) unless --no-build, installs LiteLLM into a venv and Portkey
with npm under --peers-dir (default /tmp/mg-llm-peers, reused by later runs; never in the
repository) and skips a peer, with a note, that cannot be installed. Only the installs
reach the network (the package registries). Everything else runs in a new network
namespace that has nothing but loopback (`unshare --net`), so no gateway can phone home;
the report counts the packets that were refused for having no route (--no-netns runs on
the host's network instead, still all on 127.0.0.1). Every child runs in its own process
group and is ended on exit, SIGINT, SIGTERM and SIGHUP. The exit status is 1 when a
request failed (a non-2xx answer or a socket error).
"""

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the repository (here or in benches/load)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "benches", "load"))

from helpers import Children, cpu_ticks, free_port, nginx_conf, parse_wrk, rss_kib  # noqa: E402

import peers  # noqa: E402

GATEWAYS = ["microgateway", "microgateway-bare", "litellm", "portkey"]
MODES = ("json", "sse")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Target:
    """One thing wrk is pointed at: the fake provider or a gateway, with its processes,
    its port and the headers of each answer's requests."""

    def __init__(self, name, label, procs, port, headers):
        self.name = name
        self.label = label
        self.procs = procs
        self.port = port  # an int, or {mode: int} for the provider's two servers
        self.headers = headers  # mode -> list of "Name: value"
        self.runs = {m: [] for m in MODES}
        self.c1_runs = {m: [] for m in MODES}
        self.sample = {}
        self.idle_cpu = 0.0

    def url(self, mode):
        port = self.port[mode] if isinstance(self.port, dict) else self.port
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    def pids(self):
        return [p.pid for p in self.procs if p.poll() is None]

    def check(self, mode):
        """One request; returns a short description of a valid answer or raises."""
        req = urllib.request.Request(self.url(mode), data=peers.request_body(mode).encode(), method="POST")
        req.add_header("Content-Type", "application/json")
        for h in self.headers[mode]:
            k, v = h.split(": ", 1)
            req.add_header(k, v)
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read().decode()
            kind = resp.headers.get("content-type", "")
        if mode == "json":
            content = json.loads(body)["choices"][0]["message"]["content"]
            if "fake provider" not in content:
                raise RuntimeError(f"unexpected answer: {body[:200]}")
            return f"{len(body)} bytes"
        events = [line for line in body.splitlines() if line.startswith("data:")]
        text = ""
        for e in events[:-1]:
            for choice in json.loads(e[5:]).get("choices", []):
                text += (choice.get("delta") or {}).get("content") or ""
        if events[-1].strip() != "data: [DONE]" or "tok16" not in text or "event-stream" not in kind:
            raise RuntimeError(f"unexpected stream ({kind}): {body[:300]}")
        return f"{len(events) - 1} events + [DONE], {len(body)} bytes"

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{self.label}: exited with {p.returncode}")
            try:
                for mode in MODES:
                    self.sample[mode] = self.check(mode)
                return
            except Exception as e:  # noqa: BLE001 - any failure means "not ready yet"
                last = e
            time.sleep(0.25)
        raise RuntimeError(f"{self.label} gave no valid answer on {self.url('json')}: {last}")


def run_wrk(target, mode, lua, threads, connections, duration):
    """One wrk run: req/s, p50/p99 (ms), errors, and the CPU time (µs) of the target's
    process tree per request and the peak RSS of that tree (KiB)."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s",
           "-s", lua[mode]]
    for h in target.headers[mode]:
        cmd += ["-H", h]
    cmd.append(target.url(mode))
    pids = target.pids()
    before = cpu_ticks(pids)
    peak = 0
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None:
            time.sleep(0.25)
            peak = max(peak, rss_kib(pids))
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip()}")
    result = parse_wrk(out)
    result["rss_kib"] = peak
    if result.get("requests"):
        ticks = cpu_ticks(pids) - before
        result["cpu_us"] = ticks / os.sysconf("SC_CLK_TCK") / result["requests"] * 1e6
    return result


def no_route_packets():
    """Packets the kernel refused for having no route (IPv4 + IPv6): in a namespace with
    only loopback, every attempt to reach anything outside (DNS included) counts here."""
    total = 0
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Ip:")]
    total += int(rows[1][rows[0].index("OutNoRoutes")])
    try:
        with open("/proc/net/snmp6") as f:
            for line in f:
                if line.startswith("Ip6OutNoRoutes"):
                    total += int(line.split()[1])
    except FileNotFoundError:
        pass
    return total


def write_lua(work):
    paths = {}
    for mode in MODES:
        paths[mode] = os.path.join(work, f"{mode}.lua")
        with open(paths[mode], "w") as f:
            f.write('wrk.method = "POST"\n'
                    'wrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = [==[{peers.request_body(mode)}]==]\n")
    return paths


def start_all(work, args, state, children, netlog):
    """Starts the fake provider and every wanted gateway; returns the targets in order."""
    providers = {m: free_port() for m in MODES}
    blocks = " ".join(peers.provider_server_block(providers[m], m) for m in MODES)
    conf = nginx_conf(work, "provider", 1, blocks)
    proc = children.spawn("provider", ["nginx", "-e", f"{work}/provider-stderr.log", "-c", conf],
                          f"{work}/provider.log")
    auth = f"Authorization: Bearer {peers.PROVIDER_KEY}"
    targets = [Target("direct", "provider direct (nginx, 1 worker)", [proc], providers,
                      {m: [auth] for m in MODES})]
    wanted = args.only
    binary = state["binary"]
    for name, policy in (("microgateway", True), ("microgateway-bare", False)):
        if name not in wanted:
            continue
        port = free_port()
        toml = peers.microgateway_toml(work, name, port, providers, policy)
        env = {"PATH": os.environ.get("PATH", ""), "MG_BENCH_OPENAI_KEY": peers.PROVIDER_KEY}
        proc = children.spawn(name, [binary, "--config", toml], f"{work}/{name}.log", env=env)
        label = "microgateway (api_key + llm_policy)" if policy else "microgateway (bare LLM route)"
        client = [f"Authorization: Bearer {peers.CLIENT_KEY}"] if policy else []
        targets.append(Target(name, label, [proc], port, {m: client + [f"Host: {m}.llm"] for m in MODES}))
    if "litellm" in wanted and state.get("litellm"):
        port = free_port()
        yaml = peers.litellm_yaml(work, providers)
        cmd = [state["litellm"]["exe"], "--config", yaml, "--host", "127.0.0.1", "--port", str(port),
               "--num_workers", str(args.litellm_workers), "--telemetry", "False"]
        if args.litellm_workers > 1:
            # LiteLLM's multi-worker mode: gunicorn with uvicorn workers and the app preloaded.
            # Plain uvicorn workers get 5 s to answer the supervisor's health check; an import
            # of LiteLLM takes longer than that on a busy 2-CPU machine, so uvicorn kills and
            # restarts them in a loop, and the restarts' CPU would count against LiteLLM.
            cmd.append("--run_gunicorn")
        proc = children.spawn("litellm", cmd, f"{work}/litellm.log", env=peers.litellm_env(work))
        label = (f"LiteLLM {state['litellm']['version']} ({args.litellm_workers} gunicorn workers)"
                 if args.litellm_workers > 1 else f"LiteLLM {state['litellm']['version']} (1 uvicorn process)")
        targets.append(Target("litellm", label, [proc], port,
                              {m: [f"Authorization: Bearer {peers.CLIENT_KEY}"] for m in MODES}))
    if "portkey" in wanted and state.get("portkey"):
        port = free_port()
        cmd = ["node", state["portkey"]["entry"], f"--port={port}", "--headless"]
        proc = children.spawn("portkey", cmd, f"{work}/portkey.log", env=peers.portkey_env(work))
        label = f"Portkey {state['portkey']['version']} (1 Node process)"
        targets.append(Target("portkey", label, [proc], port, {
            m: [auth, "x-portkey-provider: openai",
                f"x-portkey-custom-host: http://127.0.0.1:{providers[m]}/v1"] for m in MODES}))
    for t in targets:
        before = no_route_packets()
        start = time.monotonic()
        t.wait_ready(args.start_timeout)
        netlog[f"{t.name} start"] = no_route_packets() - before
        log(f"== ready after {time.monotonic() - start:.1f} s: {t.label}: "
            + "; ".join(f"{m}: {t.sample[m]}" for m in MODES))
    children.record_tree()
    return targets


def idle_cpu(targets, seconds=5.0):
    """CPU each target's process tree uses while nothing is sent (background tasks), as a
    share of one CPU; measured for all targets at once, after they answered once."""
    before = {t.name: cpu_ticks(t.pids()) for t in targets}
    time.sleep(seconds)
    tck = os.sysconf("SC_CLK_TCK")
    for t in targets:
        t.idle_cpu = (cpu_ticks(t.pids()) - before[t.name]) / tck / seconds


def measure(targets, args, lua):
    log("== idle CPU: 5 s with no traffic")
    idle_cpu(targets)
    log(f"== warm-up: 2 s per gateway and answer at -c{args.connections}")
    for mode in MODES:
        for t in targets:
            run_wrk(t, mode, lua, args.threads, args.connections, 2)
    for r in range(args.rounds):
        for mode in MODES:
            for t in targets:
                log(f"== round {r + 1}/{args.rounds}, {mode}: {t.label} (-t{args.threads} -c{args.connections})")
                t.runs[mode].append(run_wrk(t, mode, lua, args.threads, args.connections, args.duration))
            for t in targets:
                log(f"== round {r + 1}/{args.rounds}, {mode}: {t.label} (-t1 -c1)")
                t.c1_runs[mode].append(run_wrk(t, mode, lua, 1, 1, args.c1_duration))


def fmt_ms(ms):
    if abs(ms) < 0.1:
        return f"{ms * 1000:.1f} µs"
    return f"{ms * 1000:.0f} µs" if abs(ms) < 1 else f"{ms:.2f} ms"


def fmt_added(ms):
    return ("+" if ms >= 0 else "−") + fmt_ms(abs(ms))


def median(runs, key):
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def summary(t, mode):
    runs, c1 = t.runs[mode], t.c1_runs[mode]
    return {
        "rps": median(runs, "rps"),
        "cpu_us": median(runs, "cpu_us"),
        "rss_kib": max((r["rss_kib"] for r in runs), default=0),
        "c32_p50": median(runs, "p50"),
        "c32_p99": median(runs, "p99"),
        "p50": median(c1, "p50"),
        "p99": median(c1, "p99"),
        "c1_rps": median(c1, "rps"),
        "errors": sum(r["errors"] for r in runs + c1),
        "requests": sum(r.get("requests", 0) for r in runs + c1),
    }


def report(targets, args, state, netlog, load_before):
    out = []
    w = out.append
    direct = targets[0]
    w(f"`{state['command']}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
    w("")
    w(f"`wrk -t{args.threads} -c{args.connections} -d{args.duration}s` for req/s, CPU per request and RSS; "
      f"`wrk -t1 -c1 -d{args.c1_duration}s` for p50 and p99; median of {args.rounds} interleaved rounds; "
      f"{os.cpu_count()} CPUs shared by wrk, the fake provider and the gateway under test; load average "
      f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after.")
    w("")
    w(f"| gateway | answer | req/s (-c{args.connections}) | CPU/req | peak RSS | p50 (-c1) | added p50 "
      "| p99 (-c1) | added p99 | errors |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = {}
    for mode in MODES:
        base = summary(direct, mode)
        for t in targets:
            s = summary(t, mode)
            results.setdefault(t.name, {})[mode] = s
            added = t is not direct
            cpu = fmt_ms(s["cpu_us"] / 1000) if s["cpu_us"] is not None else "-"
            w(f"| {t.label} | {mode} | {s['rps']:.0f} | {cpu} | {s['rss_kib'] / 1024:.0f} MiB "
              f"| {fmt_ms(s['p50'])} | {fmt_added(s['p50'] - base['p50']) if added else '—'} "
              f"| {fmt_ms(s['p99'])} | {fmt_added(s['p99'] - base['p99']) if added else '—'} | {s['errors']} |")
    w("")
    w("CPU/req and peak RSS are those of the gateway's process tree (for `direct`, the fake provider's nginx). "
      "What each client received: " + "; ".join(
          f"{t.name}: {t.sample.get('sse', '-')}" for t in targets) + ". CPU while idle (5 s without "
      "requests, which CPU/req includes at the same rate): " + ", ".join(
          f"{t.name} {t.idle_cpu * 100:.1f} %" for t in targets) + " of one CPU.")
    skipped = [f"{k}: {v}" for k, v in state.get("skipped", {}).items()]
    if skipped:
        w("")
        w("Skipped: " + "; ".join(skipped) + ".")
    text = "\n".join(out)
    print(text)
    blocked = sum(netlog.values())
    where = "in a network namespace with only loopback" if state["netns"] else "on the host network (--no-netns)"
    print(f"\nrun {where}; packets refused for having no route: {blocked}"
          + (f" ({', '.join(f'{k}: {v}' for k, v in netlog.items() if v)})" if blocked else ""))
    if state["binary"]:
        print(f"binary: {state['binary']}")
    for k, v in state["versions"].items():
        print(f"{k}: {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": {k: v for k, v in vars(args).items() if k != "inner"}, "state": state,
                       "no_route_packets": netlog, "results": results,
                       "idle_cpu": {t.name: t.idle_cpu for t in targets},
                       "runs": {t.name: {"c32": t.runs, "c1": t.c1_runs} for t in targets}}, f, indent=2)
    return not any(s["errors"] for r in results.values() for s in r.values())


def inner(args):
    """The measurement: starts everything, runs wrk, prints the report."""
    with open(args.inner) as f:
        state = json.load(f)
    if state["netns"]:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    children = Children()
    install_signal_handlers(children)
    netlog = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mg-llm-peers-") as work:
        try:
            lua = write_lua(work)
            targets = start_all(work, args, state, children, netlog)
            before = no_route_packets()
            measure(targets, args, lua)
            netlog["during the runs"] = no_route_packets() - before
        except Exception:
            for name in ("litellm", "portkey", "microgateway", "microgateway-bare"):
                path = os.path.join(work, f"{name}.log")
                if os.path.exists(path) and os.path.getsize(path):
                    with open(path, errors="replace") as f:
                        log(f"-- last lines of {name}'s log:\n" + "".join(f.readlines()[-15:]))
            raise
        finally:
            children.stop()
            if args.logs:
                os.makedirs(args.logs, exist_ok=True)
                for name in os.listdir(work):
                    if name.endswith((".log", ".toml", ".yaml", ".conf")):
                        shutil.copy(os.path.join(work, name), args.logs)
    return 0 if report(targets, args, state, netlog, load_before) else 1


def install_signal_handlers(children):
    def on_signal(signum, _frame):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        log(f"== {signal.Signals(signum).name}: stopping every child")
        children.interrupt(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)


def build(args):
    target_dir = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    binary = args.binary or os.path.join(target_dir, "release", "microgateway")
    if not args.no_build and not args.binary:
        log(f"== cargo build --release --locked --bin microgateway (target dir {target_dir})")
        res = subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "microgateway"], cwd=ROOT)
        if res.returncode != 0:
            sys.exit(f"cargo build failed (exit {res.returncode}); fix the build or use --no-build / --binary")
    if not os.access(binary, os.X_OK):
        sys.exit(f"no gateway binary at {binary} (build it, or give --binary)")
    return os.path.abspath(binary)


def tool_version(cmd):
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (res.stdout + res.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def outer(args):
    """Build, installs (network), then the measurement in a loopback-only namespace."""
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"missing {tool}: apt-get install -y wrk nginx")
    netns = not args.no_netns
    if netns and (not shutil.which("unshare") or not shutil.which("ip")
                  or subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0):
        sys.exit("cannot make a network namespace (unshare --net; needs root, util-linux and iproute2); "
                 "run with --no-netns to measure on the host network")
    peers_dir = os.path.abspath(args.peers_dir)
    if os.path.commonpath([peers_dir, ROOT]) == ROOT:
        sys.exit(f"--peers-dir {peers_dir} is inside the repository; pick a scratch directory")
    os.makedirs(peers_dir, exist_ok=True)
    binary = build(args) if {"microgateway", "microgateway-bare"} & set(args.only) else None
    command = " ".join(["python3", os.path.relpath(os.path.abspath(__file__), os.getcwd())]
                       + [shlex.quote(a) for a in sys.argv[1:]])
    state = {"netns": netns, "binary": binary, "skipped": {}, "versions": {}, "command": command}
    if binary:
        state["versions"]["microgateway"] = tool_version([binary, "--version"])
    if "litellm" in args.only:
        try:
            exe, version = peers.install_litellm(peers_dir, args.litellm_version, log)
            state["litellm"] = {"exe": exe, "version": version}
            state["versions"]["LiteLLM"] = f"litellm[proxy] {version} ({exe})"
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            state["skipped"]["LiteLLM"] = str(e)
            log(f"== LiteLLM skipped: {e}")
    if "portkey" in args.only:
        try:
            entry, version, hono = peers.install_portkey(peers_dir, args.portkey_version, log)
            state["portkey"] = {"entry": entry, "version": version}
            state["versions"]["Portkey"] = (f"@portkey-ai/gateway {version} ({hono}), "
                                            f"node {tool_version(['node', '--version'])}")
        except (RuntimeError, OSError) as e:
            state["skipped"]["Portkey"] = str(e)
            log(f"== Portkey skipped: {e}")
    state["versions"]["nginx"] = tool_version(["nginx", "-v"])
    state["versions"]["wrk"] = tool_version(["wrk", "-v"])
    with tempfile.NamedTemporaryFile("w", prefix="mg-llm-peers-state-", suffix=".json", delete=False) as f:
        json.dump(state, f)
        state_file = f.name
    try:
        argv = [a for a in sys.argv[1:]]
        cmd = [sys.executable, os.path.abspath(__file__), *argv, "--inner", state_file]
        if not netns:
            args.inner = state_file
            return inner(args)
        # The measurement stays in this process group, so a terminal's Ctrl-C reaches it;
        # SIGTERM and SIGHUP sent to this process are passed on. It ends its own children.
        proc = subprocess.Popen(["unshare", "--net", "--", *cmd])

        def forward(signum, _frame):
            try:
                proc.send_signal(signum)
            except ProcessLookupError:
                pass

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, forward)
        return proc.wait()
    finally:
        os.unlink(state_file)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per -c32 wrk run (default 10)")
    parser.add_argument("--c1-duration", type=int, help="seconds per -t1 -c1 wrk run (default: --duration)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections of the load runs (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads of the load runs (default 2)")
    parser.add_argument("--no-build", action="store_true", help="do not run cargo build; use the binary as it is")
    parser.add_argument("--binary", help="microgateway binary to measure (default $CARGO_TARGET_DIR or "
                        "target, /release/microgateway; implies --no-build)")
    parser.add_argument("--only", default=",".join(GATEWAYS),
                        help="comma-separated gateways (default all): " + ", ".join(GATEWAYS))
    parser.add_argument("--litellm-version", default="1.82.6",
                        help="litellm[proxy] version (default %(default)s, the last release before the "
                        "compromised 1.82.7/1.82.8 uploads; those are refused)")
    parser.add_argument("--litellm-workers", type=int, default=os.cpu_count() or 1,
                        help="LiteLLM uvicorn workers (default: the CPU count, %(default)s)")
    parser.add_argument("--portkey-version", default="1.15.2", help="@portkey-ai/gateway version (default %(default)s)")
    parser.add_argument("--peers-dir", default="/tmp/mg-llm-peers",
                        help="where the LiteLLM venv and the Portkey npm install go (default %(default)s)")
    parser.add_argument("--start-timeout", type=float, default=180,
                        help="seconds a gateway may take to answer correctly after its start (default 180)")
    parser.add_argument("--no-netns", action="store_true",
                        help="measure on the host network instead of a loopback-only network namespace")
    parser.add_argument("--json", help="also write every figure and run as JSON to this file")
    parser.add_argument("--logs", help="copy every child's log and configuration to this directory at the end")
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.c1_duration = args.c1_duration or args.duration
    args.only = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = set(args.only) - set(GATEWAYS)
    if unknown:
        parser.error(f"unknown gateway(s): {', '.join(sorted(unknown))}")
    args.json = args.json and os.path.abspath(args.json)
    args.logs = args.logs and os.path.abspath(args.logs)
    return args


def main():
    args = parse_args()
    sys.exit(inner(args) if args.inner else outer(args))


if __name__ == "__main__":
    main()
