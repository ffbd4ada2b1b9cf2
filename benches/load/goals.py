"""The goals of issue #16 as checks over one run of the load benchmark (benches/load/run.py).

Every check compares figures measured side by side in the same run; ``checks`` returns
``(goal, name, status, value)`` rows where status is PASS, MISS or SKIP (the figure was
not measured in this run, e.g. a scenario left out with ``--only``)."""

import time

MB = 1e6  # every size is printed in MB of 10^6 bytes (RSS is read in KiB)
# Goal thresholds, as issue #16 states them.
API_KEY_CPU = 0.05  # builtin api_key: CPU/req within 5 % of the plain route
HOOK_RPS = 0.5  # a route with one hook serves >= 0.5x the plain route's req/s
HOOK_CPU_US = 40.0  # <= 40 us of CPU per hook call, both processes together
HOOK_P50_US = 50.0  # <= 50 us added p50 latency at -c1
IN_PROCESS_NS = 30.0  # in-process hook <= 30 ns (cargo bench --bench pipeline)
IDLE_RSS_MB = 15.0  # idle RSS < 15 MB
BINARY_MB = 20.0  # stripped binary <= 20 MB

# The criterion ids of goal 4: the in-process hook's cost is request_stages/1 (one
# `builtin://pass` hook) minus request_stages/0 (the same request with no hook).
BENCH_NO_HOOK = "request_stages/0"
BENCH_ONE_HOOK = "request_stages/1"
BENCH_FIVE_HOOKS = "request_stages/5"
BENCH_HEADERS = "one_hook/in_process"


def status(ok):
    return "PASS" if ok else "MISS"


def _mb(kib):
    return kib * 1024 / MB


def goal1(by, c1):
    mg, nginx = by.get("microgateway"), by.get("nginx")
    if not (mg and nginx):
        return [(1, "plain route vs nginx", "SKIP", "needs scenarios microgateway and nginx")]
    rows = [
        (1, "plain route req/s >= 1.0x nginx (-c64)", status(mg.rps >= nginx.rps),
         f"{mg.rps / nginx.rps:.2f}x ({mg.rps:.0f} vs {nginx.rps:.0f})"),
    ]
    if mg.cpu_us and nginx.cpu_us:
        rows.append((1, "plain route CPU/req <= nginx's (-c64)", status(mg.cpu_us <= nginx.cpu_us),
                     f"{mg.cpu_us:.1f} us vs {nginx.cpu_us:.1f} us"))
    if c1:
        ok = mg.c1["p50"] <= nginx.c1["p50"]
        rows.append((1, "plain route p50 <= nginx's (-c1)", status(ok),
                     f"{mg.c1['p50'] * 1000:.0f} us vs {nginx.c1['p50'] * 1000:.0f} us"))
    else:
        rows.append((1, "plain route p50 <= nginx's (-c1)", "SKIP", "--no-c1"))
    return rows


def goal2(by):
    mg, key = by.get("microgateway"), by.get("mg-api-key")
    if not (mg and key and mg.cpu_us and key.cpu_us):
        return [(2, "builtin api_key CPU/req within 5 % of plain", "SKIP",
                 "needs scenarios microgateway and mg-api-key")]
    extra = key.cpu_us / mg.cpu_us - 1
    return [(2, "builtin api_key CPU/req within 5 % of plain", status(extra <= API_KEY_CPU),
             f"{extra * 100:+.1f} % ({mg.cpu_us:.1f} -> {key.cpu_us:.1f} us)")]


def goal3(by, c1):
    mg = by.get("microgateway")
    rows = []
    for name, kind in (("mg-file-plugin", "file://"), ("mg-grpc-plugin", "grpc://")):
        hook = by.get(name)
        if not (mg and hook):
            rows.append((3, f"one {kind} hook", "SKIP", f"needs scenarios microgateway and {name}"))
            continue
        ratio = hook.rps / mg.rps
        rows.append((3, f"{kind} hook route req/s >= 0.5x plain", status(ratio >= HOOK_RPS),
                     f"{ratio:.2f}x ({hook.rps:.0f} vs {mg.rps:.0f})"))
        if hook.cpu_us and mg.cpu_us:
            extra = hook.cpu_us - mg.cpu_us
            rows.append((3, f"{kind} hook CPU per call <= 40 us (gateway + plugin)",
                         status(extra <= HOOK_CPU_US),
                         f"{extra:.1f} us ({mg.cpu_us:.1f} -> {hook.cpu_us:.1f} us/req)"))
        if c1:
            added = (hook.c1["p50"] - mg.c1["p50"]) * 1000
            rows.append((3, f"{kind} hook added p50 <= 50 us (-c1)", status(added <= HOOK_P50_US),
                         f"{added:+.0f} us ({mg.c1['p50'] * 1000:.0f} -> {hook.c1['p50'] * 1000:.0f} us)"))
        else:
            rows.append((3, f"{kind} hook added p50 <= 50 us (-c1)", "SKIP", "--no-c1"))
    return rows


def goal4(estimates, source):
    one, zero = estimates.get(BENCH_ONE_HOOK), estimates.get(BENCH_NO_HOOK)
    if not (one and zero):
        return [(4, "in-process hook <= 30 ns", "SKIP",
                 f"no {BENCH_NO_HOOK} and {BENCH_ONE_HOOK} estimates ({source}); run with --criterion")]
    cost = one["ns"] - zero["ns"]
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(one["mtime"]))
    value = f"{cost:.1f} ns ({BENCH_ONE_HOOK} {one['ns']:.1f} - {BENCH_NO_HOOK} {zero['ns']:.1f} ns"
    five = estimates.get(BENCH_FIVE_HOOKS)
    if five:
        value += f"; 5 hooks: {(five['ns'] - zero['ns']) / 5:.1f} ns each"
    headers = estimates.get(BENCH_HEADERS)
    if headers:
        value += f"; {BENCH_HEADERS} {headers['ns']:.1f} ns"
    value += f"; {source}, {when})"
    return [(4, "in-process hook <= 30 ns", status(cost <= IN_PROCESS_NS), value)]


def goal5(by):
    mg, nginx = by.get("microgateway"), by.get("nginx")
    rows = []
    if mg and nginx and mg.loaded_rss and nginx.loaded_rss:
        rows.append((5, "plain route RSS under load <= nginx's (master + workers)",
                     status(mg.loaded_rss <= nginx.loaded_rss),
                     f"{_mb(mg.loaded_rss):.1f} MB vs {_mb(nginx.loaded_rss):.1f} MB"))
    else:
        rows.append((5, "plain route RSS under load <= nginx's", "SKIP",
                     "needs scenarios microgateway and nginx"))
    if mg and mg.idle_rss:
        rows.append((5, "idle RSS < 15 MB", status(_mb(mg.idle_rss) < IDLE_RSS_MB),
                     f"{_mb(mg.idle_rss):.1f} MB"))
    else:
        rows.append((5, "idle RSS < 15 MB", "SKIP", "needs scenario microgateway"))
    return rows


def goal6(size):
    path, raw, stripped, linkage = size
    if stripped is None:
        return [(6, "stripped binary <= 20 MB", "SKIP", f"no strip(1) to strip {path}")]
    return [(6, "stripped binary <= 20 MB", status(stripped / MB <= BINARY_MB),
             f"{stripped / MB:.1f} MB stripped ({raw / MB:.1f} MB as built, {linkage}: {path})")]


FLEET = "(#20)"  # issue #20: Redis-backed limits cost < 10 % req/s against in process
FLEET_RPS = 0.9


def goal_fleet(by, burst):
    local, redis = by.get("mg-rate-limit"), by.get("mg-rate-limit-redis")
    if not (local and redis):
        rows = [(FLEET, "Redis-backed rate limit req/s >= 0.9x in process", "SKIP",
                 "needs scenarios mg-rate-limit and mg-rate-limit-redis (and redis-server)")]
    else:
        ratio = redis.rps / local.rps
        value = f"{ratio:.2f}x ({redis.rps:.0f} vs {local.rps:.0f} req/s)"
        if redis.cpu_us and local.cpu_us:
            value += f"; CPU/req {redis.cpu_us:.1f} us vs {local.cpu_us:.1f} us"
        rows = [(FLEET, "Redis-backed rate limit req/s >= 0.9x in process", status(ratio >= FLEET_RPS), value)]
    for name, (admitted, size, sent) in (burst or {}).items():
        rows.append((FLEET, f"3-gateway burst, shared {name} (info)", "INFO",
                     f"admitted {admitted} of {sent} against a limit of {size} "
                     f"(overshoot {admitted - size:+d})"))
    return rows


FAILOVER = "0 (#17)"  # issue #17's goal: no failed request while one of two targets dies


def goal_failover(by):
    s = by.get("mg-failover")
    name = "failed requests with one of two targets killed = 0"
    if not (s and s.kill_runs):
        return [(FAILOVER, name, "SKIP", "needs scenario mg-failover")]
    failed = sum(r["errors"] for r in s.kill_runs)
    requests = sum(r.get("requests", 0) for r in s.kill_runs)
    p99 = sorted(r["p99"] for r in s.kill_runs)[len(s.kill_runs) // 2]
    return [
        (FAILOVER, name, status(failed == 0),
         f"{failed} failed of {requests} requests in {len(s.kill_runs)} runs"),
        (FAILOVER, "added p99 with one target killed (info)", "INFO",
         f"{p99 - s.p99:+.2f} ms ({p99:.2f} ms vs {s.p99:.2f} ms healthy)"),
    ]


def checks(scenarios, c1, estimates, criterion_source, size, burst=None):
    by = {s.name: s for s in scenarios}
    return (goal1(by, c1) + goal2(by) + goal3(by, c1) + goal4(estimates, criterion_source)
            + goal5(by) + goal6(size) + goal_failover(by) + goal_fleet(by, burst))


def summary(rows):
    """Each goal's state: MISS when a check missed, else SKIP when one was not measured."""
    out = {}
    for goal in [*range(1, 7), FAILOVER, FLEET]:
        states = [r[2] for r in rows if r[0] == goal]
        out[goal] = "MISS" if "MISS" in states else ("SKIP" if "SKIP" in states else "PASS")
    return out


def print_checks(rows):
    for goal, name, state, value in rows:
        print(f"{state}  goal {goal}: {name}: {value}")
    print()
    print("   ".join(f"goal {goal}: {state}" for goal, state in summary(rows).items()))
