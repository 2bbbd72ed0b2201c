#!/usr/bin/env python3
"""pinlb's side-by-side benchmark (`make bench`): runs the proxies, the cases and the rounds,
prints a table per case and writes bench/results.svg (bench/chart.py).

pinlb, nginx and HAProxy (each when installed) run in turn in front of the same upstream
apps on loopback, with equivalent configs (bench/configs.py): the tutorial's pin checks by
header and cookie, forwarding headers, round robin, health checks where the proxy has them,
no access log, one worker each unless --workers says otherwise. Two anchors join the plain
HTTP cases when their binaries exist (../shared/bench/build-anchor.sh builds them): Pingora's
load-balancer example and a minimal hyper proxy. Rounds are interleaved so that machine
drift hits every proxy alike; the tables show medians and the ratio to nginx.

Cases (tool; what a row measures):
  keepalive   wrk, 50 keep-alive connections (the common case)
  close       wrk with `Connection: close`: a new connection per request
  websocket   many concurrent websocket echo round trips (examples/ws_bench.rs)
  https       wrk over TLS, 50 keep-alive connections, HTTP/1.1
  handshake   wrk over TLS with `Connection: close`: a full TLS handshake per request.
              wrk keeps the session of the connection it closes and offers it on the next
              (so does h2load): measured, 99% of its handshakes were resumptions. The servers
              therefore resume nothing (no tickets, no session cache), and the bench checks
              that with openssl s_client before it measures. wrk's latency starts when
              the request is written, after the handshake.
  h2          h2load -c10 -m10 over TLS with ALPN h2: HTTP/2, 10 streams in flight on each
              of 10 connections; p50/p99 from h2load's per-request log
All TLS cases use one ECDSA P-256 certificate made with openssl for the run, TLSv1.3.

  bench/bench.py [--rounds 3] [--secs 5] [--conns 50] [--workers 1]
                 [--cases keepalive,close,websocket,https,handshake,h2]
                 [--pingora-bin PATH] [--hyper-bin PATH] [--svg bench/results.svg]
"""
import argparse, datetime, json, os, shutil, signal, socket, subprocess, sys, tempfile, time

import configs, loadgen

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
PINLB = os.path.join(TARGET, "release/pinlb")
DEMO = os.path.join(TARGET, "release/examples/demo_backend")
WS_BENCH = os.path.join(TARGET, "release/examples/ws_bench")
VENV = os.path.join(TARGET, "bench-venv")
ORDER = ["nginx", "haproxy", "pingora-example", "hyper", "pinlb"]
TLS_CASES = {"https", "handshake", "h2"}
# Which proxies each case can run: the anchors proxy plain HTTP/1.1 only.
PLAIN_ONLY = {"pingora-example", "hyper"}
LABELS = {"keepalive": "keep-alive", "close": "new connection", "websocket": "websocket",
          "https": "https keep-alive", "handshake": "TLS handshake", "h2": "HTTP/2"}


def run_case(case, name, a):
    """One measurement of one proxy in one case."""
    port, tls_port = configs.PORTS[name], configs.TLS_PORTS.get(name)
    if case == "keepalive":
        return loadgen.wrk(f"http://127.0.0.1:{port}/", a.secs, a.conns, close=False)
    if case == "close":
        return loadgen.wrk(f"http://127.0.0.1:{port}/", a.secs, a.conns, close=True)
    if case == "websocket":
        return loadgen.websocket(WS_BENCH, f"ws://127.0.0.1:{port}/ws/", a.secs, a.conns)
    if case == "https":
        return loadgen.wrk(f"https://127.0.0.1:{tls_port}/", a.secs, a.conns, close=False)
    if case == "handshake":
        return loadgen.wrk(f"https://127.0.0.1:{tls_port}/", a.secs, a.conns, close=True)
    if case == "h2":
        return loadgen.h2load(f"https://127.0.0.1:{tls_port}/", a.secs, clients=10, streams=10)
    raise ValueError(f"unknown case {case}")


def runs_case(name, case):
    return case in ("keepalive", "close") or name not in PLAIN_ONLY


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while not listening(port):
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


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


def make_cert(d):
    """A self-signed ECDSA P-256 pair for localhost, the one every TLS listener serves."""
    cert, key = f"{d}/bench.pem", f"{d}/bench.key"
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def check_tools(cases):
    needs = {"wrk": "wrk"}
    if TLS_CASES & set(cases):
        needs["openssl"] = "openssl"
    if "h2" in cases:
        needs["h2load"] = "nghttp2-client"
    missing = [pkg for tool, pkg in needs.items() if not shutil.which(tool)]
    if missing:
        sys.exit(f"bench needs {' '.join(missing)}: apt-get install -y {' '.join(missing)} "
                 "(and nginx, haproxy to compare)")
    for binary in (PINLB, DEMO, WS_BENCH):
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: run `make bench` (it builds the release binaries)")


class Processes:
    """The processes the bench started, each in its own process group, all ended on exit."""

    def __init__(self, d):
        self.d, self.procs = d, []

    def start(self, cmd):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(f"{self.d}/stderr.log", "a"),
                             start_new_session=True)
        self.procs.append(p)
        return p

    def exited(self):
        time.sleep(0.5)
        return [" ".join(p.args[:3]) for p in self.procs if p.poll() is not None]

    def stop(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def start_targets(d, a, procs, cert, absent):
    """Writes the configs and starts the apps and every proxy there is; returns {name: process}
    and fills `absent` with the proxies that do not run and why."""
    anchors = {"pingora-example": [a.pingora_bin, "-c", f"{d}/pingora.yaml"], "hyper": [a.hyper_bin]}
    for name, cmd in list(anchors.items()):
        busy = [p for p in configs.ANCHOR_APPS + [configs.PORTS[name]] if listening(p)]
        if not os.path.exists(cmd[0]):
            absent[name] = f"not built (../shared/bench/build-anchor.sh; looked for {cmd[0]})"
        elif busy:
            # The anchors' ports are compiled in and shared with ../shared/bench/run.py.
            absent[name] = f"ports in use ({', '.join(map(str, busy))}: another bench running?)"
        else:
            continue
        del anchors[name]
    ours = configs.APPS + configs.WS_APPS + [configs.PORTS[n] for n in ("pinlb", "nginx", "haproxy")]
    busy = [p for p in ours + list(configs.TLS_PORTS.values()) if listening(p)]
    if busy:
        sys.exit(f"ports {', '.join(map(str, busy))} are in use: is another bench running?")
    app_ports = configs.apps(d, bool(anchors))
    configs.nginx(d, a.workers, cert)
    configs.haproxy(d, a.workers, cert)
    configs.pinlb(d, a.workers, cert)
    configs.pingora_example(d, a.workers)
    if shutil.which("nginx"):
        procs.start(["nginx", "-c", f"{d}/apps.conf", "-g", "daemon off;"])
    elif anchors:
        sys.exit("the anchors' upstream apps need nginx")
    else:
        procs.start([DEMO] + [f"app{i + 1}=127.0.0.1:{p}" for i, p in enumerate(configs.APPS)])
    procs.start([DEMO] + [f"ws{i + 1}=127.0.0.1:{p}" for i, p in enumerate(configs.WS_APPS)])
    targets = {"pinlb": procs.start([PINLB, "-c", f"{d}/pinlb.json"])}
    for name, cmd in (("nginx", ["nginx", "-c", f"{d}/nginx.conf", "-g", "daemon off;"]),
                      ("haproxy", ["haproxy", "-f", f"{d}/haproxy.cfg", "-db"])):
        if shutil.which(cmd[0]):
            targets[name] = procs.start(cmd)
        else:
            absent[name] = "not installed"
    for name, cmd in anchors.items():
        targets[name] = procs.start(cmd)
    ports = app_ports + configs.WS_APPS + [configs.PORTS[t] for t in targets]
    ports += [configs.TLS_PORTS[t] for t in targets if cert and t in configs.TLS_PORTS]
    # A process that failed to bind one port may hold another for a moment before it exits.
    down = [port for port in ports if not wait_port(port)] + procs.exited()
    if down:
        # The folder goes with the exit: show what the proxies said.
        log = open(f"{d}/stderr.log", errors="replace").read()[-2000:]
        sys.exit(f"not running: {down}; the stderr of the bench's processes:\n{log}")
    return {name: targets[name] for name in ORDER if name in targets}


def check_no_resumption(targets):
    for name in targets:
        if name in configs.TLS_PORTS and loadgen.resumes_sessions(configs.TLS_PORTS[name]):
            sys.exit(f"{name} resumed a TLS session on {configs.TLS_PORTS[name]}: "
                     "the handshake case would not measure full handshakes")


def measure(case, targets, a):
    """Interleaved rounds of one case; {name: median row with RSS}."""
    names = [n for n in targets if runs_case(n, case)]
    rows, rss = {n: [] for n in names}, {n: 0.0 for n in names}
    for _ in range(a.rounds):
        for name in names:
            rows[name].append(run_case(case, name, a))
            rss[name] = max(rss[name], rss_mib(targets[name].pid))
    return {n: dict(loadgen.median_row(rows[n]), rss=rss[n]) for n in names}


def print_case(case, result):
    unit = "msg/s" if case == "websocket" else "req/s"
    base = result.get("nginx", result["pinlb"])["rate"]
    print(f"\n## {case}")
    print(f"{'proxy':<16}{unit:>10}{'vs nginx':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'RSS MiB':>9}")
    for name, r in result.items():
        print(f"{name:<16}{r['rate']:>10.0f}{r['rate'] / base:>10.2f}{r['p50']:>9.2f}{r['p99']:>9.2f}"
              f"{r['errors']:>8}{r['rss']:>9.1f}", flush=True)


def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} CPUs ({model})"


def write_chart(report, svg):
    """Saves the numbers and renders the chart with pygal from a venv under the target dir
    (bench/chart-requirements.txt pins it), made on first use."""
    data = os.path.join(TARGET, "bench-results.json")
    with open(data, "w") as f:
        json.dump(report, f, indent=2)
    python = os.path.join(VENV, "bin/python")
    reqs = os.path.join(ROOT, "bench/chart-requirements.txt")
    stamp = os.path.join(VENV, "requirements.txt")
    try:
        if not os.path.exists(stamp) or open(stamp).read() != open(reqs).read():
            subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
            subprocess.run([python, "-m", "pip", "install", "-q", "-r", reqs], check=True)
            shutil.copyfile(reqs, stamp)
        subprocess.run([python, os.path.join(ROOT, "bench/chart.py"), data, svg], check=True)
    except subprocess.CalledProcessError as e:
        sys.exit(f"no chart: {' '.join(e.cmd)} failed; the numbers are in {data} "
                 f"(`{python} bench/chart.py {data} {svg}` draws them)")
    print(f"\nwrote {os.path.relpath(svg)} (numbers: {data})")


def parse_args():
    ap = argparse.ArgumentParser(description="pinlb, nginx and HAProxy side by side")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--cases", default=",".join(LABELS))
    ap.add_argument("--pingora-bin", default="/tmp/anchor-pingora/target/release/probe")
    ap.add_argument("--hyper-bin", default="/tmp/anchor-hyper/target/release/hyperlb")
    ap.add_argument("--svg", default=os.path.join(ROOT, "bench/results.svg"))
    a = ap.parse_args()
    a.cases = a.cases.split(",")
    unknown = [c for c in a.cases if c not in LABELS]
    if unknown:
        ap.error(f"unknown case {', '.join(unknown)}; cases: {', '.join(LABELS)}")
    return a


def main():
    a = parse_args()
    check_tools(a.cases)
    d = tempfile.mkdtemp(prefix="pinlb-bench-")
    procs = Processes(d)
    absent = {}
    try:
        cert = make_cert(d) if TLS_CASES & set(a.cases) else None
        targets = start_targets(d, a, procs, cert, absent)
        if cert:
            check_no_resumption(targets)
        time.sleep(1)
        setup = (f"{a.rounds} round(s) x {a.secs}s, {a.conns} connections (h2: 10 x 10 streams), "
                 f"{a.workers} worker(s) per proxy, loopback, medians")
        print(f"# {setup}; {machine()}")
        results = {}
        for case in a.cases:
            results[case] = measure(case, targets, a)
            print_case(case, results[case])
    finally:
        procs.stop()
        shutil.rmtree(d, ignore_errors=True)
    for name, why in absent.items():
        print(f"absent: {name}: {why}")
    for case, rows in results.items():
        for name, r in rows.items():
            if r["errors"]:
                print(f"WARNING: {name} had {r['errors']} errors in {case}: its numbers are not comparable")
    write_chart({"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "machine": machine(), "setup": setup, "labels": LABELS, "order": ORDER,
                 "absent": absent, "results": results}, a.svg)


if __name__ == "__main__":
    main()
