"""The bench's load generators: wrk (HTTP/1.1, plain and TLS), h2load (HTTP/2 over TLS),
examples/ws_bench.rs (websocket) and openssl s_client (does a server resume sessions?).

Each load function returns {"rate", "p50", "p99", "errors"}: requests (or messages) per
second, latencies in milliseconds, and failed or non-2xx requests.
"""
import json, os, re, statistics, subprocess, tempfile


def wrk(url, secs, conns, close):
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency", url]
    if close:
        cmd += ["-H", "Connection: close"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not rate:
        raise RuntimeError(f"wrk printed no rate for {url}:\n{out}")

    def ms(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|timeout):? (\d+)", out))
    return {"rate": float(rate.group(1)), "p50": ms(50), "p99": ms(99), "errors": errors}


def h2load(url, secs, clients, streams):
    """HTTP/2 by ALPN, `streams` requests in flight per connection, for `secs` seconds
    (-D rather than -n, so that this case runs as long as the others). h2load prints no
    percentiles: they come from its per-request log."""
    with tempfile.NamedTemporaryFile(prefix="h2load-", suffix=".log") as log:
        cmd = ["h2load", f"-c{clients}", f"-m{streams}", f"-D{secs}", f"--log-file={log.name}", url]
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
        if not rate or "Application protocol: h2" not in out:
            raise RuntimeError(f"h2load did not speak HTTP/2 to {url}:\n{out}")
        micros = sorted(int(line.split("\t")[2]) for line in open(log.name) if line.count("\t") == 2)
    failed = re.search(r"requests: .* (\d+) failed, (\d+) errored, (\d+) timeout", out)
    status = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    errors = sum(map(int, failed.groups())) + (sum(map(int, status.groups())) if status else 0)
    return {"rate": float(rate.group(1)), "p50": percentile(micros, 50) / 1000,
            "p99": percentile(micros, 99) / 1000, "errors": errors}


def websocket(ws_bench, url, secs, conns):
    out = subprocess.run([ws_bench, url, str(conns), str(secs)], capture_output=True, text=True).stdout
    r = json.loads(out)
    return {"rate": r["messages_per_sec"], "p50": r["p50_ms"], "p99": r["p99_ms"], "errors": r["errors"]}


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, len(sorted_values) * p // 100)]


def resumes_sessions(port):
    """True when a TLSv1.3 client that kept the first connection's session (ticket) gets it
    accepted on the second: then a handshake per request is not a full one."""
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    with tempfile.TemporaryDirectory() as d:
        session = os.path.join(d, "session.pem")
        base = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", "-tls1_3"]
        # Reading to the server's close makes s_client take in the tickets sent after the handshake.
        subprocess.run(base + ["-quiet", "-sess_out", session], input=request, capture_output=True, timeout=10)
        if not os.path.exists(session):
            return False
        out = subprocess.run(base + ["-sess_in", session], input=request, capture_output=True, timeout=10).stdout
    return b"\nReused, TLSv1.3" in out


def median_row(rows):
    """The median of each number over the rounds; errors are summed."""
    return {"rate": statistics.median(r["rate"] for r in rows),
            "p50": statistics.median(r["p50"] for r in rows),
            "p99": statistics.median(r["p99"] for r in rows),
            "errors": sum(r["errors"] for r in rows)}
