"""The fleet scenarios of the load benchmark (issue #20): the api_key + rate_limit route
with its bucket in process (`mg-rate-limit`) and in Redis (`mg-rate-limit-redis`, a
Debian redis-server started here on loopback), side by side in the same rounds; and a
burst across three gateways sharing one Redis, reporting how many requests a shared
limit admitted against its size (the overshoot).

Goal (issue #20): the Redis-backed limit costs < 10 % req/s against in process.
"""

import concurrent.futures
import http.client
import json
import os
import shutil
import time

import socket

from helpers import free_port, gateway_toml

NAMES = ["mg-rate-limit", "mg-rate-limit-redis"]
KEY = "sk-fleet-1"
# A bucket the benchmark never empties: what is measured is the bookkeeping.
NEVER_EMPTY = "requests_per_second = 1000000000, burst = 1000000000"
BURST_LIMIT = 300
BURST_EACH = 200


def plugins(limit):
    return f"""[[plugins]]
name = "keys"
command = "builtin://api_key"
hook_type = "auth"
config = {{ keys = [{{ key = "{KEY}", identity = "load", app_id = "bench" }}] }}
[[plugins]]
name = "limit"
command = "builtin://rate_limit"
hook_type = "post_auth"
config = {{ key = "app", {limit} }}
"""


def start_redis(work, children):
    """Starts redis-server on a free port (no persistence); returns the port, or None
    when redis-server is not installed."""
    if not shutil.which("redis-server"):
        return None
    port = free_port()
    children.spawn("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", work], f"{work}/redis.log")
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server did not listen on {port}")


def cluster(redis, prefix):
    return f'\n[cluster]\nredis_url = "redis://127.0.0.1:{redis}"\nkey_prefix = "{prefix}:"\n'


def start(gateway, work, children, wanted, log):
    """Adds the two rate-limit scenarios through run.py's ``gateway`` starter."""
    header = [f"Authorization: Bearer {KEY}"]
    gateway("mg-rate-limit", "microgateway + api_key + rate_limit (in process)",
            plugins(NEVER_EMPTY), headers=header)
    if "mg-rate-limit-redis" not in wanted:
        return None
    redis = start_redis(work, children)
    if redis is None:
        log("redis-server not found (apt-get install redis-server): mg-rate-limit-redis is skipped")
        return None
    gateway("mg-rate-limit-redis", "microgateway + api_key + rate_limit (Redis, [cluster])",
            plugins(NEVER_EMPTY) + cluster(redis, "bench"), headers=header)
    return redis


def _wait_listening(port, proc, timeout=30.0):
    """Waits for the proxy listener (bound once the plugins and the cluster are set up),
    without a request that would spend the limit under test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway on port {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port}")


def _post(port, path, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {KEY}",
                                                     "Content-Type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


def burst(release, work, children, redis, upstream):
    """Three gateways on one Redis, each sent BURST_EACH requests at once, against a
    shared bucket of BURST_LIMIT (refilled at 1/s) and an llm_policy request budget of
    BURST_LIMIT: returns {limit: (admitted, size)}."""
    policy = (f'[[plugins]]\nname = "policy"\ncommand = "builtin://llm_policy"\nhook_type = "post_auth"\n'
              f'routes = ["all"]\nconfig = {{ window = "1h", requests_per_window = {BURST_LIMIT} }}\n')
    results = {}
    for name, extra, path in (
        ("rate_limit", plugins(f"requests_per_second = 1, burst = {BURST_LIMIT}"), "/"),
        ("llm_policy requests_per_window", plugins(NEVER_EMPTY) + policy, "/"),
    ):
        prefix = f"burst-{len(results)}-{os.getpid()}"
        ports = []
        for i in range(3):
            port = free_port()
            label = f"fleet-{len(results)}-{i}"
            toml = gateway_toml(work, label, port, upstream, extra + cluster(redis, prefix))
            proc = children.spawn(label, [f"{release}/microgateway", "--config", toml], f"{work}/{label}.log")
            _wait_listening(port, proc)
            ports.append(port)
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        with concurrent.futures.ThreadPoolExecutor(max_workers=96) as pool:
            calls = [pool.submit(_post, p, path, body) for p in ports for _ in range(BURST_EACH)]
            statuses = [c.result() for c in calls]
        results[name] = (statuses.count(200), BURST_LIMIT, len(statuses))
    return results
