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
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
port=${CALLGRIND_PORT:-18084}
shift || true
[ "${1:-}" = "--" ] && shift
cmd=("$@")
[ ${#cmd[@]} -eq 0 ] && cmd=("${CARGO_TARGET_DIR:-target}/release/pinlb" -c bench/callgrind.json)
for tool in valgrind callgrind_control nginx python3; do
    command -v "$tool" >/dev/null || { echo "callgrind.sh needs $tool (apt-get install -y valgrind nginx)" >&2; exit 1; }
done

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
valgrind --tool=callgrind --callgrind-out-file="$dir/out.%p" "${cmd[@]}" >"$dir/proxy.log" 2>&1 &
proxy=$!

python3 - "$n" "$proxy" "$dir" "$port" <<'PY'
import http.client, os, ssl, subprocess, sys, time, glob
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
run(300)
subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
run(n)
subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
time.sleep(1)
total = 0
for f in glob.glob(f"{d}/out.*"):
    for line in open(f, errors="replace"):
        if line.startswith("summary:") or line.startswith("totals:"):
            total = max(total, int(line.split()[1]))
            break
print(f"{total / n:.0f} instructions per request ({total} over {n} requests)")
PY
