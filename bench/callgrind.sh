#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: unlike requests per
# second, the count does not move with machine noise.
#
#   bench/callgrind.sh [REQUESTS] [-- PROXY COMMAND...]
#
# Without a command it measures target/release/pinlb (under $CARGO_TARGET_DIR when that is
# set) on bench/callgrind.json (the bench's tutorial setup with a health check every minute,
# so that a check rarely falls inside the measured window). The proxy must listen on 127.0.0.1:$CALLGRIND_PORT (default 18084; the
# bench's minimal Pingora proxy uses 18083) in front of the three nginx
# apps this script starts on 127.0.0.1:19001-19003 (like the bench's, each adds an
# `X-Server` header to its answer). After 300 warm-up requests the
# counters are zeroed, REQUESTS (default 2000) keep-alive requests are sent one by one,
# and the counters are dumped. CALLGRIND_SCHEME=https speaks TLS (any certificate is
# taken); CALLGRIND_HEADERS="Name: value; Name2: value" adds headers to every request.
#
# CALLGRIND_WRK=CONNS loads the proxy with wrk over CONNS keep-alive connections instead
# (3 s of warm-up, then CALLGRIND_SECS, default 10, counted; REQUESTS is ignored), the shape
# of the bench's load. CALLGRIND_CACHE=1 adds valgrind's cache simulation and prints, per
# request, the misses of the first-level instruction and data caches too: with many
# connections in flight their state is cold when their turn comes, and the misses rather
# than the instructions set a proxy's time per request.
set -euo pipefail
cd "$(dirname "$0")/.."
n=2000
if [ $# -gt 0 ] && [ "$1" != "--" ]; then n=$1; shift; fi
port=${CALLGRIND_PORT:-18084}
[ "${1:-}" = "--" ] && shift
cmd=("$@")
[ ${#cmd[@]} -eq 0 ] && cmd=("${CARGO_TARGET_DIR:-target}/release/pinlb" -c bench/callgrind.json)
for tool in valgrind callgrind_control nginx python3; do
    command -v "$tool" >/dev/null || { echo "callgrind.sh needs $tool (apt-get install -y valgrind nginx)" >&2; exit 1; }
done
if [ -n "${CALLGRIND_WRK:-}" ]; then
    command -v wrk >/dev/null || { echo "CALLGRIND_WRK needs wrk (apt-get install -y wrk)" >&2; exit 1; }
fi
vg=(valgrind --tool=callgrind)
[ "${CALLGRIND_CACHE:-0}" = 1 ] && vg+=(--cache-sim=yes)

dir=${CALLGRIND_DIR:-$(mktemp -d)}
mkdir -p "$dir"
# Counts are read from every out.* file in the directory: a reused CALLGRIND_DIR must not
# hold an earlier run's.
rm -f "$dir"/out.*
cleanup() { kill "$(cat "$dir/apps.pid" 2>/dev/null)" 2>/dev/null || true; kill "${proxy:-}" 2>/dev/null || true; [ -n "${CALLGRIND_DIR:-}" ] || rm -rf "$dir"; }
trap cleanup EXIT
cat > "$dir/apps.conf" <<CONF
worker_processes 1; pid $dir/apps.pid; error_log $dir/apps.err warn;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 100000;
  server { listen 127.0.0.1:19001; location / { add_header X-Server app1; return 200 "app1\n"; } }
  server { listen 127.0.0.1:19002; location / { add_header X-Server app2; return 200 "app2\n"; } }
  server { listen 127.0.0.1:19003; location / { add_header X-Server app3; return 200 "app3\n"; } } }
CONF
nginx -c "$dir/apps.conf"
"${vg[@]}" --callgrind-out-file="$dir/out.%p" "${cmd[@]}" >"$dir/proxy.log" 2>&1 &
proxy=$!

python3 - "$n" "$proxy" "$dir" "$port" <<'PY'
import http.client, os, re, ssl, subprocess, sys, time, glob
n, pid, d, port = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
headers = {"User-Agent": "callgrind"}
for h in filter(None, os.environ.get("CALLGRIND_HEADERS", "").split(";")):
    name, value = h.split(":", 1)
    headers[name.strip()] = value.strip()
def connect():
    if os.environ.get("CALLGRIND_SCHEME") == "https":
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=ssl._create_unverified_context())
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)
deadline = time.time() + 120
while True:
    try:
        c = connect(); c.request("GET", "/"); c.getresponse().read(); break
    except OSError:
        if time.time() > deadline: sys.exit("the proxy did not start under valgrind")
        time.sleep(0.5)
def run(count):
    for _ in range(count):
        c.request("GET", "/", headers=headers)
        r = c.getresponse(); r.read()
        assert r.status == 200, r.status
def wrk(conns, secs):
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{secs}s", f"http{'s' if os.environ.get('CALLGRIND_SCHEME') == 'https' else ''}://127.0.0.1:{port}/"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors", out)
    if errors:
        sys.exit(f"wrk saw errors:\n{out}")
    return int(re.search(r"(\d+) requests in", out).group(1))
conns = int(os.environ.get("CALLGRIND_WRK") or 0)
if conns:
    wrk(conns, 3)
else:
    run(300)
subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
if conns:
    n = wrk(conns, int(os.environ.get("CALLGRIND_SECS", "10")))
else:
    run(n)
subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
time.sleep(1)
# The measured window's counts: the largest summary among the dumps (the final dump at exit
# is not written yet, or holds only the shutdown).
best = None
for f in glob.glob(f"{d}/out.*"):
    events = None
    for line in open(f, errors="replace"):
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("summary:") or line.startswith("totals:"):
            counts = dict(zip(events, map(int, line.split()[1:])))
            if best is None or counts["Ir"] > best["Ir"]:
                best = counts
            break
if best is None:
    sys.exit("callgrind wrote no counts")
total = best["Ir"]
print(f"{total / n:.0f} instructions per request ({total} over {n} requests)")
if "I1mr" in best:
    print(f"{best['I1mr'] / n:.0f} instruction-cache misses, {best['D1mr'] / n:.0f} data-cache read misses, "
          f"{best['D1mw'] / n:.0f} data-cache write misses per request (first level, simulated)")
PY
