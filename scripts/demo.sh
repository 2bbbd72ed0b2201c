#!/usr/bin/env bash
# `make run`: three demo backends on 127.0.0.1:9001-9003 and pinlb on conf/pinlb.json.
set -euo pipefail
cd "$(dirname "$0")/.."
release="${CARGO_TARGET_DIR:-target}/release"

"$release/examples/demo_backend" app1=127.0.0.1:9001 app2=127.0.0.1:9002 app3=127.0.0.1:9003 &
backends=$!
trap 'kill "$backends" 2>/dev/null || true' EXIT INT TERM

cat <<'TEXT'

pinlb listens on http://127.0.0.1:8080 in front of app1 (weight 2), app2 and app3.
In another terminal:

  for i in 1 2 3 4; do curl -s localhost:8080/; done     # balanced: app1 app2 app3 app1
  curl -s -H 'app: app2' localhost:8080/                 # pinned by header: app2
  curl -s -b 'app=app3' localhost:8080/                  # pinned by cookie: app3
  curl -si localhost:8080/ | grep -i x-served-by         # who answered
  curl -s localhost:8080/headers                         # what the backend received

Ctrl-C stops everything.

TEXT
"$release/pinlb" -c conf/pinlb.json
