#!/usr/bin/env python3
"""Instructions and first-level cache misses per proxied request under the bench's load
(wrk over 50 keep-alive connections), for pinlb, nginx and the minimal hyper proxy when it
is built: bench/callgrind.sh with CALLGRIND_WRK and CALLGRIND_CACHE, one proxy after the
other in front of the same three apps.

    bench/callgrind-cache.py [--conns 50] [--secs 10] [--hyper-bin PATH]

Requests per second follow the misses more than the instructions: with 50 connections in
flight, a connection's state and the code of the request path have left the first-level
caches by the time its next event comes. The counts are valgrind's simulation (32 KiB,
8-way caches as the host's), the same on every run of one binary, unlike requests/s.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

import configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))

# callgrind.sh's apps, in the place of the bench's (bench/configs.py).
CALLGRIND_APPS = [19001, 19002, 19003]


def nginx_conf(d):
    """The bench's nginx config (bench/configs.py) in one process, in front of callgrind.sh's
    apps; returns its path."""
    configs.nginx(d, 1, None)
    path = f"{d}/nginx.conf"
    with open(path) as f:
        conf = f.read()
    for bench_port, port in zip(configs.APPS, CALLGRIND_APPS):
        conf = conf.replace(f"127.0.0.1:{bench_port};", f"127.0.0.1:{port};")
    with open(path, "w") as f:
        f.write("master_process off;\ndaemon off;\n" + conf)
    return path


COUNTS = re.compile(
    r"^(\d+) instructions per request.*\n(\d+) instruction-cache misses, (\d+) data-cache read "
    r"misses, (\d+) data-cache write misses",
    re.M,
)


def measure(name, port, cmd, args):
    env = dict(os.environ, CALLGRIND_WRK=str(args.conns), CALLGRIND_SECS=str(args.secs),
               CALLGRIND_CACHE="1", CALLGRIND_PORT=str(port))
    run = subprocess.run([os.path.join(ROOT, "bench/callgrind.sh"), "--", *cmd], env=env,
                         capture_output=True, text=True, timeout=600)
    found = COUNTS.search(run.stdout)
    if run.returncode != 0 or not found:
        sys.exit(f"{name}: callgrind.sh failed:\n{run.stdout}{run.stderr}")
    return [int(x) for x in found.groups()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--hyper-bin", default="/tmp/anchor-hyper/target/release/hyperlb")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="callgrind-cache-") as d:
        proxies = [
            ("nginx", configs.PORTS["nginx"], ["nginx", "-c", nginx_conf(d)]),
            ("pinlb", 18084, [f"{TARGET}/release/pinlb", "-c", os.path.join(ROOT, "bench/callgrind.json")]),
        ]
        if os.path.exists(args.hyper_bin):
            proxies.insert(1, ("hyper", configs.PORTS["hyper"], [args.hyper_bin]))
        rows = [(name, measure(name, port, cmd, args)) for name, port, cmd in proxies]
    base = dict(rows)["nginx"]
    print(f"# per proxied request, wrk -c{args.conns} for {args.secs} s; x = times nginx's")
    print(f"{'proxy':<8}{'instructions':>14}{'':>7}{'I1 misses':>11}{'':>7}{'D1 read':>9}{'':>7}{'D1 write':>10}{'':>7}")
    for name, counts in rows:
        cells = "".join(f"{c:>{w}}{c / b:>6.1f}x" for c, b, w in zip(counts, base, (14, 11, 9, 10)))
        print(f"{name:<8}{cells}")


if __name__ == "__main__":
    main()
