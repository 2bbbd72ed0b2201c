#!/usr/bin/env python3
"""pinlb's side-by-side benchmark (`make bench`).

pinlb, nginx and HAProxy (each when installed) run in turn in front of the same upstream
apps on loopback, with equivalent configs: the tutorial's pin checks by header and cookie,
forwarding headers, round robin, health checks where the proxy has them, no access log.
Rounds are interleaved so that machine drift hits every proxy alike; the table shows
medians and the ratio to nginx.

Cases:
  keepalive   wrk, 50 keep-alive connections (the common case)
  close       wrk with `Connection: close`: a new connection per request
  websocket   many concurrent websocket echo round trips (examples/ws_bench.rs)

  bench/bench.py [--rounds 3] [--secs 5] [--conns 50] [--workers 1] [--cases keepalive,close,websocket]
"""
import argparse, json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
PINLB = os.path.join(TARGET, "release/pinlb")
DEMO = os.path.join(TARGET, "release/examples/demo_backend")
WS_BENCH = os.path.join(TARGET, "release/examples/ws_bench")
APPS = [19101, 19102, 19103]
WS_APPS = [19201, 19202, 19203]
PORTS = {"pinlb": 18184, "nginx": 18181, "haproxy": 18182}


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def rss_mib(pid):
    """Resident memory of a process and its children."""
    pids = [pid] + [int(p) for p in subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)],
                                                     capture_output=True, text=True).stdout.split()]
    kb = 0
    for p in pids:
        try:
            kb += next(int(l.split()[1]) for l in open(f"/proc/{p}/status") if l.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return kb / 1024


def wrk(port, secs, conns, close):
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency", f"http://127.0.0.1:{port}/"]
    if close:
        cmd += ["-H", "Connection: close"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def ms(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|timeout):? (\d+)", out))
    return {"rate": rps, "p50": ms(50), "p99": ms(99), "errors": errors}


def websocket(port, secs, conns):
    out = subprocess.run([WS_BENCH, f"ws://127.0.0.1:{port}/ws/", str(conns), str(secs)],
                         capture_output=True, text=True).stdout
    r = json.loads(out)
    return {"rate": r["messages_per_sec"], "p50": r["p50_ms"], "p99": r["p99_ms"], "errors": r["errors"]}


def configs(d, workers):
    app = "\n".join(f"        server 127.0.0.1:{p};" for p in APPS)
    ws = "\n".join(f"        server 127.0.0.1:{p};" for p in WS_APPS)
    open(f"{d}/apps.conf", "w").write(f"""worker_processes 1;
pid {d}/apps.pid;
error_log {d}/apps.err warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000;
""" + "\n".join(f'    server {{ listen 127.0.0.1:{p}; location / {{ return 200 "app{i + 1}\\n"; }} }}'
                for i, p in enumerate(APPS)) + "\n}\n")
    open(f"{d}/nginx.conf", "w").write(f"""worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/nginx.err warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream app_servers {{
{app}
        keepalive 64;
    }}
    upstream ws_servers {{
{ws}
    }}
    server {{
        listen 127.0.0.1:{PORTS["nginx"]};
        location / {{
            if ($http_app = "app1") {{ proxy_pass http://127.0.0.1:{APPS[0]}; }}
            if ($cookie_app = "app1") {{ proxy_pass http://127.0.0.1:{APPS[0]}; }}
            proxy_pass http://app_servers;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
        location /ws/ {{
            proxy_pass http://ws_servers;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;
        }}
    }}
}}
""")
    servers = "\n".join(f"    server app{i + 1} 127.0.0.1:{p} check" for i, p in enumerate(APPS))
    ws_servers = "\n".join(f"    server ws{i + 1} 127.0.0.1:{p}" for i, p in enumerate(WS_APPS))
    open(f"{d}/haproxy.cfg", "w").write(f"""global
    nbthread {workers}
    # HAProxy raises its fd limit to about 2 x maxconn: keep that under common hard limits.
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h
    option forwardfor
    option http-keep-alive
frontend fe
    bind 127.0.0.1:{PORTS["haproxy"]}
    use_backend ws if {{ path_beg /ws/ }}
    use_backend app1 if {{ req.hdr(app) -m str app1 }} or {{ req.cook(app) -m str app1 }}
    default_backend app_servers
backend app1
    server app1 127.0.0.1:{APPS[0]}
backend app_servers
    balance roundrobin
    http-reuse always
{servers}
backend ws
    balance roundrobin
{ws_servers}
""")
    json.dump({
        "threads": workers,
        "listeners": [{"addr": f"127.0.0.1:{PORTS['pinlb']}"}],
        "admin": {"addr": "127.0.0.1:18194"},
        "pid_file": f"{d}/pinlb.pid",
        "shutdown": {"upgrade_sock": f"{d}/pinlb.sock"},
        "access_log": {"path": "off"},
        "upstreams": {
            "app_servers": {
                "servers": [{"name": f"app{i + 1}", "addr": f"127.0.0.1:{p}"} for i, p in enumerate(APPS)],
                "health_check": {"type": "http", "path": "/", "interval_ms": 1000, "fails": 2},
            },
            "ws_servers": {"servers": [{"name": f"ws{i + 1}", "addr": f"127.0.0.1:{p}"} for i, p in enumerate(WS_APPS)]},
        },
        "routes": [
            {"path": "/", "upstream": "app_servers", "pin": {"header": "app", "cookie": "app"}},
            {"path": "/ws/", "upstream": "ws_servers"},
        ],
    }, open(f"{d}/pinlb.json", "w"), indent=2)


def main():
    ap = argparse.ArgumentParser(description="pinlb, nginx and HAProxy side by side")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--cases", default="keepalive,close,websocket")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench needs wrk: apt-get install -y wrk (and nginx, haproxy to compare)")
    for binary in (PINLB, DEMO, WS_BENCH):
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: run `make bench` (it builds the release binaries)")
    d = tempfile.mkdtemp(prefix="pinlb-bench-")
    procs = []

    def start(cmd):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(f"{d}/stderr.log", "a"),
                             start_new_session=True)
        procs.append(p)
        return p
    try:
        configs(d, a.workers)
        if shutil.which("nginx"):
            start(["nginx", "-c", f"{d}/apps.conf", "-g", "daemon off;"])
        else:
            start([DEMO] + [f"app{i + 1}=127.0.0.1:{p}" for i, p in enumerate(APPS)])
        start([DEMO] + [f"ws{i + 1}=127.0.0.1:{p}" for i, p in enumerate(WS_APPS)])
        targets = {"pinlb": start([PINLB, "-c", f"{d}/pinlb.json"])}
        if shutil.which("nginx"):
            targets["nginx"] = start(["nginx", "-c", f"{d}/nginx.conf", "-g", "daemon off;"])
        if shutil.which("haproxy"):
            targets["haproxy"] = start(["haproxy", "-f", f"{d}/haproxy.cfg", "-db"])
        for port in APPS + WS_APPS + [PORTS[t] for t in targets]:
            if not wait_port(port):
                # The folder goes with the exit: show what the proxies said.
                log = open(f"{d}/stderr.log", errors="replace").read()[-2000:]
                sys.exit(f"nothing listens on {port}; the proxies' stderr:\n{log}")
        time.sleep(1)
        cases = a.cases.split(",")
        print(f"# {a.rounds} rounds x {a.secs}s, {a.conns} connections, {a.workers} worker(s) per proxy, "
              f"loopback, {os.cpu_count()} CPUs; medians")
        for case in cases:
            results = {t: [] for t in targets}
            rss = {t: 0.0 for t in targets}
            for _ in range(a.rounds):
                for name, proc in targets.items():
                    port = PORTS[name]
                    if case == "websocket":
                        results[name].append(websocket(port, a.secs, a.conns))
                    else:
                        results[name].append(wrk(port, a.secs, a.conns, close=(case == "close")))
                    rss[name] = max(rss[name], rss_mib(proc.pid))
            unit = "msg/s" if case == "websocket" else "req/s"
            base = statistics.median(r["rate"] for r in results.get("nginx", results["pinlb"]))
            print(f"\n## {case}")
            print(f"{'proxy':<10}{unit:>10}{'vs nginx':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'RSS MiB':>9}")
            for name, rows in results.items():
                rate = statistics.median(r["rate"] for r in rows)
                print(f"{name:<10}{rate:>10.0f}{rate / base:>10.2f}"
                      f"{statistics.median(r['p50'] for r in rows):>9.2f}"
                      f"{statistics.median(r['p99'] for r in rows):>9.2f}"
                      f"{sum(r['errors'] for r in rows):>8}{rss[name]:>9.1f}")
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
