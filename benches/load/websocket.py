#!/usr/bin/env python3
"""WebSocket benchmark (issue #19), run by hand, off CI: a `websockets` echo server on
127.0.0.1, reached directly and through the gateway's release binary, from one client
process.

It reports:
  * the echo round trip of a 32-byte text message on one connection, direct and through
    the gateway, p50 and p99 over --messages round trips, and what the gateway adds;
  * messages per second on one connection (--burst messages sent, then all read back);
  * 1,000 (--idle) idle WebSockets through the gateway at once: the gateway's RSS before
    and with them open, and bytes per connection; and its CPU while they sit idle.

Usage: python3 benches/load/websocket.py [--binary PATH] [--messages N] [--idle N]
Needs: python3 with the `websockets` package (pip install websockets), and the gateway
built with `cargo build --release` (or --binary). The client and the echo server are
Python, so their own cost is in both the direct and the gateway figures; the difference
is the gateway's.
"""

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from helpers import Children, free_port, rss_kib, cpu_ticks  # noqa: E402

ECHO = r"""
import asyncio, sys, websockets
async def echo(ws):
    try:
        async for m in ws:
            await ws.send(m)
    except websockets.ConnectionClosed:
        pass
async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), max_size=None,
                                ping_interval=None, compression=None):
        await asyncio.Future()
asyncio.run(main())
"""


def gateway_config(port, admin, upstream, work):
    return f"""
[server]
listen = "127.0.0.1:{port}"
[admin]
listen = "127.0.0.1:{admin}"
data_dir = "{work}/data"
[log]
level = "warn"
[[upstreams]]
name = "echo"
targets = ["http://127.0.0.1:{upstream}"]
[[routes]]
name = "ws"
upstream = "echo"
[routes.upgraded]
max_connections = 100000
"""


async def wait_port(port, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


async def round_trips(url, n):
    import websockets
    out = []
    async with websockets.connect(url, ping_interval=None, compression=None) as ws:
        msg = "x" * 32
        for _ in range(100):
            await ws.send(msg)
            await ws.recv()
        for _ in range(n):
            t = time.perf_counter()
            await ws.send(msg)
            await ws.recv()
            out.append((time.perf_counter() - t) * 1e6)
    out.sort()
    return out[len(out) // 2], out[int(len(out) * 0.99)]


async def throughput(url, n):
    import websockets
    async with websockets.connect(url, ping_interval=None, compression=None, max_queue=None) as ws:
        msg = "y" * 32
        t = time.perf_counter()

        async def send():
            for _ in range(n):
                await ws.send(msg)

        async def recv():
            for _ in range(n):
                await ws.recv()

        await asyncio.gather(send(), recv())
        return n / (time.perf_counter() - t)


async def idle(url, n, gw_pid):
    import websockets
    before = rss_kib([gw_pid])
    conns = []
    for i in range(n):
        conns.append(await websockets.connect(url, ping_interval=None, compression=None))
    await asyncio.sleep(1.0)
    with_them = rss_kib([gw_pid])
    t0 = cpu_ticks([gw_pid])
    await asyncio.sleep(5.0)
    idle_ticks = cpu_ticks([gw_pid]) - t0
    for c in conns:
        await c.close()
    return before, with_them, idle_ticks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "..", "target", "release", "microgateway"))
    ap.add_argument("--messages", type=int, default=5000, help="round trips per leg (default 5000)")
    ap.add_argument("--burst", type=int, default=20000, help="messages for the throughput figure")
    ap.add_argument("--idle", type=int, default=1000, help="idle connections held at once")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    if not os.path.exists(binary):
        raise SystemExit(f"{binary} is missing: cargo build --release (or --binary)")
    children = Children()
    signal.signal(signal.SIGTERM, lambda s, f: children.interrupt(s))
    work = tempfile.mkdtemp(prefix="mg-ws-bench-")
    try:
        echo_port, gw_port, admin_port = free_port(), free_port(), free_port()
        children.spawn("echo", [sys.executable, "-c", ECHO, str(echo_port)], os.path.join(work, "echo.log"))
        cfg = os.path.join(work, "gw.toml")
        with open(cfg, "w") as f:
            f.write(gateway_config(gw_port, admin_port, echo_port, work))
        gw = children.spawn("gateway", [binary, "--config", cfg], os.path.join(work, "gw.log"))
        asyncio.run(wait_port(echo_port))
        asyncio.run(wait_port(gw_port))
        direct = f"ws://127.0.0.1:{echo_port}/"
        through = f"ws://127.0.0.1:{gw_port}/"
        rows = []
        for label, url in (("direct", direct), ("gateway", through)):
            p50, p99 = asyncio.run(round_trips(url, args.messages))
            rate = asyncio.run(throughput(url, args.burst))
            rows.append((label, p50, p99, rate))
        print(f"echo round trip of 32 bytes, {args.messages} sequential round trips per leg; "
              f"messages/s of one connection over {args.burst} messages")
        print("| leg | p50 | p99 | messages/s |")
        print("|---|---:|---:|---:|")
        for label, p50, p99, rate in rows:
            print(f"| {label} | {p50:.0f} µs | {p99:.0f} µs | {rate:,.0f} |")
        (_, d50, d99, _), (_, g50, g99, _) = rows
        print(f"added by the gateway: p50 +{g50 - d50:.0f} µs, p99 +{g99 - d99:.0f} µs")
        before, with_them, ticks = asyncio.run(idle(through, args.idle, gw.pid))
        per = (with_them - before) * 1024 / max(args.idle, 1)
        hz = os.sysconf("SC_CLK_TCK")
        print(f"{args.idle} idle WebSockets: gateway RSS {before / 1024:.1f} MiB -> {with_them / 1024:.1f} MiB, "
              f"{per:,.0f} bytes per connection; CPU over 5 s idle: {ticks / hz * 1000:.0f} ms")
    finally:
        children.stop()


if __name__ == "__main__":
    main()
