"""The bench's configurations: the upstream apps, and nginx, HAProxy, pinlb and Pingora's
example written to do the same work (bench.py runs them).

Each proxy gets a plain listener (keep-alive, new connection, websocket) and, when a
certificate is given, a TLS listener on the same ECDSA P-256 pair that speaks HTTP/1.1 and
HTTP/2 by ALPN. Session resumption is off on every TLS listener: both wrk and h2load resume
the sessions they reconnect with, and the handshake case must measure full handshakes
(long-lived connections in the https and h2 cases do not notice).

Requests per client connection are unlimited everywhere (nginx and pinlb default to 1000):
h2load counts the streams refused after nginx's GOAWAY as failures, and over TLS every
forced reconnect would mix a full handshake into the keep-alive numbers.
"""
import json

APPS = [19101, 19102, 19103]
WS_APPS = [19201, 19202, 19203]
# The anchors (../shared/bench/anchors) have their upstreams compiled in.
ANCHOR_APPS = [19001, 19002, 19003]
PORTS = {"pinlb": 18184, "nginx": 18181, "haproxy": 18182, "pingora-example": 18083, "hyper": 18085}
TLS_PORTS = {"pinlb": 18444, "nginx": 18441, "haproxy": 18442}
KEEPALIVE_REQUESTS = 1000000


def apps(d, anchors):
    """Three nginx `return` apps (and the anchors' three when an anchor runs)."""
    ports = APPS + (ANCHOR_APPS if anchors else [])
    servers = "\n".join(f'    server {{ listen 127.0.0.1:{p}; location / {{ return 200 "app{i % 3 + 1}\\n"; }} }}'
                        for i, p in enumerate(ports))
    write(f"{d}/apps.conf", f"""worker_processes 1;
pid {d}/apps.pid;
error_log {d}/apps.err warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000;
{servers}
}}
""")
    return ports


def nginx(d, workers, cert):
    app = "\n".join(f"        server 127.0.0.1:{p};" for p in APPS)
    ws = "\n".join(f"        server 127.0.0.1:{p};" for p in WS_APPS)
    # nginx 1.22 leaves TLSv1.3 out unless told; rustls and HAProxy offer it by default.
    tls = f"""
        listen 127.0.0.1:{TLS_PORTS["nginx"]} ssl http2;
        ssl_certificate {cert[0]};
        ssl_certificate_key {cert[1]};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;""" if cert else ""
    write(f"{d}/nginx.conf", f"""worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/nginx.err warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests {KEEPALIVE_REQUESTS};
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream app_servers {{
{app}
        keepalive 64;
    }}
    upstream ws_servers {{
{ws}
    }}
    server {{
        listen 127.0.0.1:{PORTS["nginx"]};{tls}
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


def haproxy(d, workers, cert):
    servers = "\n".join(f"    server app{i + 1} 127.0.0.1:{p} check" for i, p in enumerate(APPS))
    ws_servers = "\n".join(f"    server ws{i + 1} 127.0.0.1:{p}" for i, p in enumerate(WS_APPS))
    # HAProxy wants key and certificate in one PEM file.
    tls = ""
    if cert:
        write(f"{d}/haproxy.pem", open(cert[0]).read() + open(cert[1]).read())
        tls = (f"\n    bind 127.0.0.1:{TLS_PORTS['haproxy']} ssl crt {d}/haproxy.pem "
               "alpn h2,http/1.1 no-tls-tickets")
    write(f"{d}/haproxy.cfg", f"""global
    nbthread {workers}
    # HAProxy raises its fd limit to about 2 x maxconn: keep that under common hard limits.
    maxconn 4000
    # No session cache: every handshake is a full one (see the module docstring).
    tune.ssl.cachesize 0
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h
    option forwardfor
    option http-keep-alive
frontend fe
    bind 127.0.0.1:{PORTS["haproxy"]}{tls}
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


def pinlb(d, workers, cert):
    listeners = [{"addr": f"127.0.0.1:{PORTS['pinlb']}"}]
    if cert:
        listeners.append({
            "addr": f"127.0.0.1:{TLS_PORTS['pinlb']}",
            "http2": True,
            "tls": {"certificates": [{"cert": cert[0], "key": cert[1]}],
                    "session_cache": 0, "session_tickets": False},
        })
    write(f"{d}/pinlb.json", json.dumps({
        "threads": workers,
        "listeners": listeners,
        "admin": {"addr": "127.0.0.1:18194"},
        "pid_file": f"{d}/pinlb.pid",
        "shutdown": {"upgrade_sock": f"{d}/pinlb.sock"},
        "access_log": {"path": "off"},
        "keepalive_requests": KEEPALIVE_REQUESTS,
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
    }, indent=2))


def pingora_example(d, workers):
    """Pingora's server settings for its example; the README's runs turn work stealing off."""
    write(f"{d}/pingora.yaml", f"---\nversion: 1\nthreads: {workers}\nwork_stealing: false\n"
                               f"pid_file: {d}/pingora.pid\nupgrade_sock: {d}/pingora.sock\n")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
