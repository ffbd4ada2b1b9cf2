#!/usr/bin/env python3
"""Checks that an interrupted load benchmark leaves no process behind.

Starts benches/load/run.py three times with a pid log (--pid-log) and interrupts it
mid-run: SIGTERM, SIGINT, and its caller's `timeout`. After each, no process the run
started (nginx upstream and proxy with their workers, Envoy, the gateways, their file://
plugins, the grpc:// plugin server) may be alive and no process may be left in any of
their process groups. Other nginx or Envoy processes on the machine are not looked at.

Usage: python3 benches/load/interrupt_test.py [--release-dir DIR]
Exit status 0 when every case left nothing behind.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Every kind of child: the nginx instances (also the failover scenario's second target), Envoy, both out-of-process plugin kinds.
ONLY = "microgateway,mg-file-plugin,mg-grpc-plugin,nginx,envoy,mg-failover"


def read_log(path):
    entries, ready = [], False
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                words = line.split()
                if words == ["ready"]:
                    ready = True
                elif len(words) == 3:
                    entries.append((int(words[0]), int(words[1]), words[2]))
    return entries, ready


def alive(pid):
    """True when ``pid`` is a live process (not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def group_members(pgid):
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if alive(int(p))]


def case(name, release_dir, interrupt):
    with tempfile.TemporaryDirectory(prefix="mg-interrupt-") as tmp:
        pid_log = os.path.join(tmp, "pids")
        cmd = [sys.executable, os.path.join(HERE, "run.py"), "--no-build", "--rounds", "1",
               "--duration", "60", "--only", ONLY, "--pid-log", pid_log]
        if release_dir:
            cmd += ["--release-dir", release_dir]
        if interrupt == "timeout":
            cmd = ["timeout", "20"] + cmd
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "err"), "w"))
        deadline = time.monotonic() + 60
        while not read_log(pid_log)[1]:
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(tmp, "err")) as f:
                    sys.exit(f"{name}: run.py never got ready (rc {proc.poll()}):\n{f.read()}")
            time.sleep(0.2)
        time.sleep(3)  # mid-run: wrk is driving a scenario now
        if interrupt != "timeout":
            proc.send_signal(interrupt)
        rc = proc.wait(timeout=60)
        entries, _ = read_log(pid_log)
        labels = {label.split("/")[0] for _, _, label in entries}
        missing = {"nginx-upstream", "nginx", "envoy", "mg-file-plugin", "grpc-plugin-server"} - labels
        left = [f"{pid} ({label})" for pid, _, label in entries if alive(pid)]
        for pgid in sorted({g for _, g, _ in entries}):
            left += [f"{pid} (group {pgid})" for pid in group_members(pgid)]
        ok = not left and not missing and rc != 0
        print(f"{'ok' if ok else 'FAILED'}  {name}: run.py exited {rc}, {len(entries)} processes started"
              + (f", left: {', '.join(sorted(set(left)))}" if left else ", none left")
              + (f", never started: {', '.join(sorted(missing))}" if missing else ""))
        return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release-dir", help="passed to run.py (default its own default)")
    args = parser.parse_args()
    results = [
        case("SIGTERM mid-run", args.release_dir, signal.SIGTERM),
        case("SIGINT mid-run", args.release_dir, signal.SIGINT),
        case("timeout 20 run.py", args.release_dir, "timeout"),
    ]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
