#!/usr/bin/env python3
"""Instructions per proxied request with each feature of the config switched on, beside
the bench config without it (bench/callgrind.json), counted by bench/callgrind.sh.

    bench/callgrind-features.py [REQUESTS] [--only NAME,NAME]

A feature that is not configured must cost nothing per request; one that is configured
should cost little. Each row starts pinlb on a copy of the bench config with one change and
sends the same keep-alive GETs (plus the headers that feature reads). Features whose cost is
per connection or off the request path are not rows: the PROXY protocol header (read once
per connection), `resolve` (names looked up by a background task), HTTP/2 (no HTTP/2
client here; see `make bench`).
"""

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def with_realip(cfg, _):
    cfg["real_ip"] = {"from": ["127.0.0.1"], "header": "X-Forwarded-For", "recursive": True}
    return {"CALLGRIND_HEADERS": "X-Forwarded-For: 203.0.113.7, 127.0.0.1"}


def with_sticky(cfg, _):
    cfg["upstreams"]["app_servers"]["sticky"] = {"cookie": "srv"}
    # The MD5 of 127.0.0.1:19002, as a returning browser sends it back.
    return {"CALLGRIND_HEADERS": "Cookie: srv=" + md5_of("127.0.0.1:19002")}


def with_limits(cfg, _):
    cfg["limit_req_zones"] = {"per_ip": {"key": "$binary_remote_addr", "size": "1m", "rate": "1000000r/s"}}
    cfg["limit_conn_zones"] = {"conn_ip": {"key": "$binary_remote_addr", "size": "1m"}}
    cfg["limits"] = {"req": [{"zone": "per_ip", "burst": 10, "nodelay": True}],
                     "conn": [{"zone": "conn_ip", "limit": 100}]}
    return {}


def with_access_log(cfg, tmp):
    cfg["access_log"] = {"path": os.path.join(tmp, "access.log"), "format": "combined"}
    return {}


def with_tls(cfg, tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    cfg["listeners"][0]["tls"] = {"certificates": [{"cert": cert, "key": key}]}
    return {"CALLGRIND_SCHEME": "https"}


FEATURES = {
    "realip": ("realip from X-Forwarded-For (recursive)", with_realip),
    "sticky": ("sticky cookie, sent back by the client", with_sticky),
    "limits": ("limit_req + limit_conn by $binary_remote_addr", with_limits),
    "access_log": ("access log to a file (combined)", with_access_log),
    "tls": ("TLS 1.3 listener (ECDSA P-256), keep-alive", with_tls),
}


def md5_of(text):
    import hashlib
    return hashlib.md5(text.encode()).hexdigest()


def measure(config_path, env, requests):
    binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "pinlb")
    out = subprocess.run([os.path.join(ROOT, "bench", "callgrind.sh"), str(requests), "--", binary, "-c", config_path],
                         env={**os.environ, **env}, capture_output=True, text=True)
    found = re.search(r"^(\d+) instructions per request", out.stdout, re.M)
    if out.returncode != 0 or not found:
        sys.exit(f"callgrind.sh failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return int(found.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("requests", nargs="?", type=int, default=2000)
    ap.add_argument("--only", default=",".join(FEATURES))
    a = ap.parse_args()
    with open(os.path.join(ROOT, "bench", "callgrind.json")) as f:
        base = json.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "base.json")
        with open(path, "w") as f:
            json.dump(base, f)
        base_path = path
        plain = measure(base_path, {}, a.requests)
        print("| feature | off | on | cost |\n|---|---|---|---|")
        print(f"| none (the bench config) | {plain:,} | | |")
        for name in a.only.split(","):
            what, apply = FEATURES[name]
            cfg = copy.deepcopy(base)
            env = apply(cfg, tmp)
            path = os.path.join(tmp, f"{name}.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            # "Off" sends the same request (with the feature's headers) to the bench config,
            # so that the row counts the feature, not the bytes of a longer request.
            same_request = {k: v for k, v in env.items() if k == "CALLGRIND_HEADERS"}
            off = measure(base_path, same_request, a.requests) if same_request else plain
            on = measure(path, env, a.requests)
            print(f"| {what} | {off:,} | {on:,} | {on - off:+,} ({(on - off) / off:+.1%}) |", flush=True)


if __name__ == "__main__":
    main()
