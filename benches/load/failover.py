"""The failover scenario of the load benchmark (issue #17, point 9): the gateway with
one upstream group of two targets, the fixed upstream and a second nginx answering the
same body. Each round measures a healthy run and then a run in which the second target
is killed (SIGKILL to its nginx's process group) one third into the run; the target is
started again before the next round. Failed requests are wrk's non-2xx responses plus
its socket errors."""

import signal

from helpers import free_port, gateway_toml, kill_group, nginx_conf, wait_http

NAME = "mg-failover"


class Victim:
    """The second target: an nginx in its own process group, killed and restarted."""

    def __init__(self, work, children, body):
        self.work = work
        self.children = children
        self.body = body
        self.port = free_port()
        escaped = body.replace('"', '\\"')
        self.conf = nginx_conf(
            work,
            "upstream-b",
            1,
            f"server {{ listen 127.0.0.1:{self.port} backlog=4096; keepalive_requests 1000000; "
            f'location / {{ default_type application/json; return 200 "{escaped}"; }} }}',
        )
        self.restarts = 0
        self.proc = None
        self.start()

    def start(self):
        self.proc = self.children.spawn(
            f"nginx-upstream-b-{self.restarts}",
            ["nginx", "-e", f"{self.work}/upstream-b-stderr.log", "-c", self.conf],
            f"{self.work}/upstream-b-{self.restarts}.out",
        )
        self.restarts += 1

    def kill(self):
        kill_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def ensure_running(self):
        if self.proc.poll() is not None:
            self.start()
        wait_http(self.port, self.body, self.proc)


def start(work, args, children, upstream, body, scenario_cls):
    """Starts the second target and the gateway over both; returns the scenario."""
    victim = Victim(work, children, body)
    wait_http(victim.port, body, victim.proc)
    port = free_port()
    toml = gateway_toml(work, NAME, port, upstream, "", targets=[upstream, victim.port])
    proc = children.spawn(NAME, [f"{args.release_dir}/microgateway", "--config", toml],
                          f"{work}/{NAME}.log")
    scenario = scenario_cls(NAME, "microgateway, 2 targets (failover)", port, proc)
    scenario.victim = victim
    return scenario


def kill_run(scenario, args, run_wrk, log):
    """One -c64 run with the second target killed a third into it; the target is
    started again afterwards (and answering) before this returns."""
    victim = scenario.victim
    victim.ensure_running()
    at = args.duration / 3
    log(f"== {scenario.label}: -t{args.threads} -c{args.connections}, SIGKILL of target 2 at {at:.1f} s")
    result = run_wrk(scenario, args.threads, args.connections, args.duration, during=(at, victim.kill))
    victim.ensure_running()
    return result


def summary(scenario):
    """The kill runs' figures: failed requests (summed), requests (summed), p99 (median)."""
    runs = scenario.kill_runs
    if not runs:
        return None
    p99 = sorted(r["p99"] for r in runs)[len(runs) // 2]
    return {
        "failed": sum(r["errors"] for r in runs),
        "requests": sum(r.get("requests", 0) for r in runs),
        "p99": p99,
        "runs": len(runs),
    }
