#!/usr/bin/env python3
"""Soak test: mixed load through pinlb while its backends die and come back, its config
is reloaded every few seconds and its binary is upgraded once. Reports what was sent,
what failed, and pinlb's memory at the start and the end.

  bench/soak.py [--secs 600] [--pinlb target/release/pinlb]
                [--backend target/release/examples/demo_backend]

Load (bounded: each worker sends one request at a time): keep-alive clients (some pinned
by the `app` header or cookie), a new connection per request, and websockets that echo a
few messages. Chaos: a backend killed every 15 s and restarted 5 s later, `pinlb -s reload`
every 4 s (weights alternate), `pinlb -s upgrade` at half time.

A failure is an error status pinlb sends (5xx) or a connection pinlb breaks. A websocket
cut because its own backend was killed is counted apart: nginx cuts those too.
"""
import argparse, base64, http.client, json, os, random, signal, socket, subprocess, sys
import tempfile, threading, time

APPS = ["app1", "app2", "app3"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}

    def add(self, key, n=1):
        with self.lock:
            self.c[key] = self.c.get(key, 0) + n

    def get(self, key):
        with self.lock:
            return self.c.get(key, 0)


class Backends:
    """One demo_backend process per app, so that each can be killed on its own."""

    def __init__(self, binary, ports):
        self.binary, self.ports, self.procs = binary, ports, {}
        for app in APPS:
            self.start(app)

    def start(self, app):
        spec = f"{app}=127.0.0.1:{self.ports[app]}"
        self.procs[app] = subprocess.Popen([self.binary, spec], stderr=subprocess.DEVNULL)
        wait_port(self.ports[app])

    def kill(self, app):
        p = self.procs.pop(app, None)
        if p:
            p.kill()
            p.wait()

    def stop(self):
        for app in list(self.procs):
            self.kill(app)


def config(listen, admin, ports, tmp, weights):
    servers = [{"name": a, "addr": f"127.0.0.1:{ports[a]}", "weight": w}
               for a, w in zip(APPS, weights)]
    return {
        "listeners": [{"addr": f"127.0.0.1:{listen}"}],
        "upstreams": {"web": {"servers": servers, "health_check": {
            "type": "http", "path": "/health", "interval_ms": 500, "timeout_ms": 500,
            "fails": 1, "passes": 1}}},
        "routes": [{"path": "/", "upstream": "web",
                    "pin": {"header": "app", "cookie": "app"}}],
        "access_log": {"path": "off"},
        "admin": {"addr": f"127.0.0.1:{admin}"},
        "pid_file": os.path.join(tmp, "pinlb.pid"),
        "shutdown": {"upgrade_sock": os.path.join(tmp, "upgrade.sock"),
                     "grace_period_ms": 30000},
    }


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pinlb_pid(tmp):
    try:
        return int(open(os.path.join(tmp, "pinlb.pid")).read().strip())
    except (OSError, ValueError):
        return 0


def http_worker(port, stop, counts, keepalive, pin):
    conn = None
    while not stop.is_set():
        headers = {}
        if pin == "header":
            headers["app"] = random.choice(APPS)
        elif pin == "cookie":
            headers["Cookie"] = f"app={random.choice(APPS)}"
        if not keepalive:
            headers["Connection"] = "close"
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/", headers=headers)
            r = conn.getresponse()
            r.read()
            counts.add("sent")
            if r.status >= 500:
                counts.add(f"failed: status {r.status}")
            if not keepalive or r.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            counts.add("sent")
            counts.add(f"failed: {type(e).__name__}")
            if conn:
                conn.close()
            conn = None
    if conn:
        conn.close()


def ws_frame(payload):
    mask = os.urandom(4)
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + data


def ws_read(f):
    head = f.read(2)
    if len(head) < 2:
        raise ConnectionError("websocket closed")
    n = head[1] & 0x7F
    return f.read(n)


def ws_worker(port, stop, counts, killed_at):
    while not stop.is_set():
        started = time.time()
        try:
            s = socket.create_connection(("127.0.0.1", port), 10)
            s.settimeout(10)
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall((f"GET /ws HTTP/1.1\r\nHost: pinlb\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                       f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
            f = s.makefile("rb")
            status = f.readline()
            while f.readline() not in (b"\r\n", b""):
                pass
            counts.add("websockets")
            if b" 101 " not in status:
                counts.add(f"failed: websocket answered {status.split()[1:2]}")
                s.close()
                continue
            for i in range(5):
                msg = f"m{i}".encode()
                s.sendall(ws_frame(msg))
                if ws_read(f) != msg:
                    counts.add("failed: websocket echo differs")
                    break
                time.sleep(0.2)
            s.close()
        except (OSError, ConnectionError) as e:
            # A websocket whose backend was killed while it was open is cut, as in nginx.
            if killed_at[0] >= started:
                counts.add("websockets cut by a killed backend")
            else:
                counts.add(f"failed: websocket {type(e).__name__}")


def command(pinlb, conf, *args):
    # Output through a file, not a pipe: the process `-s upgrade` starts inherits it and
    # outlives the command, so a pipe would never reach its end.
    with tempfile.TemporaryFile("w+") as err:
        r = subprocess.run([pinlb, *args, "-c", conf], stdout=subprocess.DEVNULL,
                           stderr=err, timeout=60)
        err.seek(0)
        return r.returncode, err.read().strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=int, default=600)
    release = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release")
    ap.add_argument("--pinlb", default=os.path.join(release, "pinlb"))
    ap.add_argument("--backend", default=os.path.join(release, "examples/demo_backend"))
    a = ap.parse_args()
    pinlb, backend = os.path.abspath(a.pinlb), os.path.abspath(a.backend)
    tmp = tempfile.mkdtemp(prefix="pinlb-soak-")
    ports = {app: free_port() for app in APPS}
    listen, admin = free_port(), free_port()
    conf = os.path.join(tmp, "pinlb.json")
    weights = [2, 1, 1]
    json.dump(config(listen, admin, ports, tmp, weights), open(conf, "w"))
    backends = Backends(backend, ports)
    log = open(os.path.join(tmp, "pinlb.log"), "w")
    proc = subprocess.Popen([pinlb, "-c", conf], stderr=log, stdout=subprocess.DEVNULL,
                            start_new_session=True)
    if not wait_port(listen) or not wait_port(admin):
        sys.exit(f"pinlb did not start; see {log.name}")
    counts, stop, killed_at = Counters(), threading.Event(), [0.0]
    workers = [
        threading.Thread(target=http_worker, args=(listen, stop, counts, True, None)),
        threading.Thread(target=http_worker, args=(listen, stop, counts, True, None)),
        threading.Thread(target=http_worker, args=(listen, stop, counts, True, "header")),
        threading.Thread(target=http_worker, args=(listen, stop, counts, True, "cookie")),
        threading.Thread(target=http_worker, args=(listen, stop, counts, False, None)),
        threading.Thread(target=ws_worker, args=(listen, stop, counts, killed_at)),
        threading.Thread(target=ws_worker, args=(listen, stop, counts, killed_at)),
    ]
    for w in workers:
        w.start()
    time.sleep(2)
    rss_start = rss_kb(pinlb_pid(tmp) or proc.pid)
    started = time.time()
    next_kill, next_reload, upgraded = started + 15, started + 4, False
    dead = None
    events = Counters()
    while time.time() - started < a.secs:
        now = time.time()
        if dead and now >= dead[1]:
            backends.start(dead[0])
            dead = None
        if now >= next_kill and not dead:
            app = random.choice(APPS)
            killed_at[0] = now
            backends.kill(app)
            dead = (app, now + 5)
            events.add("backend kills")
            next_kill = now + 15
        if now >= next_reload:
            weights = [1, 2, 1] if weights[0] == 2 else [2, 1, 1]
            json.dump(config(listen, admin, ports, tmp, weights), open(conf, "w"))
            code, err = command(pinlb, conf, "-s", "reload")
            events.add("reloads" if code == 0 else f"reload failed: {err}")
            next_reload = now + 4
        if not upgraded and now - started >= a.secs / 2:
            code, err = command(pinlb, conf, "-s", "upgrade")
            events.add("upgrades" if code == 0 else f"upgrade failed: {err}")
            upgraded = True
        time.sleep(0.1)
    rss_end = rss_kb(pinlb_pid(tmp))
    stop.set()
    for w in workers:
        w.join(15)
    pid = pinlb_pid(tmp)
    if pid:
        os.kill(pid, signal.SIGINT)
    proc.wait(10) if proc.poll() is None else None
    backends.stop()
    failed = {k: v for k, v in counts.c.items() if k.startswith("failed")}
    print(f"soak: {a.secs} s")
    print(f"  requests sent: {counts.get('sent')}, failed: {sum(failed.values())}")
    for k, v in sorted(failed.items()):
        print(f"    {k}: {v}")
    print(f"  websockets: {counts.get('websockets')}, "
          f"cut by a killed backend: {counts.get('websockets cut by a killed backend')}")
    print("  events: " + ", ".join(f"{k} {v}" for k, v in sorted(events.c.items())))
    print(f"  pinlb RSS: {rss_start / 1024:.1f} MiB at the start, {rss_end / 1024:.1f} MiB at the end")
    print(f"  log: {log.name}")
    sys.exit(1 if failed or any(k.endswith("failed") or "failed:" in k for k in events.c) else 0)


if __name__ == "__main__":
    main()
