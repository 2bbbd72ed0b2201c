//! PROXY protocol on `listen ... proxy_protocol` through the real binary: raw clients send
//! v1 and v2 headers (TCP4, TCP6, LOCAL, UNKNOWN) and then HTTP, and see
//! `$proxy_protocol_addr`, realip's `real_ip_header proxy_protocol` and the headers sent
//! upstream; connections without a valid header are closed with nginx's "broken header".

mod common;

use common::*;
use pinlb::net::proxy_protocol::{V2Command, encode_v1, encode_v2};
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const VARS: &str = "$proxy_protocol_addr:$proxy_protocol_port|$remote_addr|$realip_remote_addr";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// pinlb with a PROXY protocol listener (`LISTEN`) that trusts 127.0.0.2 for realip, and a
/// plain one (`PLAIN`); `/vars` answers with [`VARS`], the rest goes to `app`.
fn start(app: &Backend) -> (Pinlb, SocketAddr) {
    let dir = TempDir::new();
    let listen = free_addr();
    let plain = free_addr();
    let conf = dir.write(
        "nginx.conf",
        &format!(
            r#"http {{
                client_header_timeout 1s;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                server {{
                    listen {listen} proxy_protocol;
                    listen {plain};
                    set_real_ip_from 127.0.0.2;
                    real_ip_header proxy_protocol;
                    location / {{ proxy_pass http://{}; }}
                    location = /vars {{ return 200 "{VARS}"; }}
                }}
            }}"#,
            app.addr
        ),
    );
    (Pinlb::start_file(&conf, dir, listen), plain)
}

/// A connection to `addr` from the local address `from`.
fn connect(addr: SocketAddr, from: &str) -> Client {
    Client::connect_from(addr, from.parse::<IpAddr>().unwrap()).expect("connect")
}

fn v1(source: &str, destination: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_v1(&mut out, Some((sa(source), sa(destination))));
    out
}

fn v2(command: V2Command, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_v2(&mut out, command, tlvs).unwrap();
    out
}

/// Sends `header` and a GET of `path` in one write; the answer's body.
fn vars_after(addr: SocketAddr, from: &str, header: &[u8], path: &str) -> String {
    let mut client = connect(addr, from);
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    client.send_raw(&bytes).expect("answer").body
}

#[test]
fn v1_and_v2_headers_name_the_client() {
    let app = Backend::start("app");
    let (lb, _) = start(&app);
    let tcp4 = v1("203.0.113.7:4000", "192.0.2.1:80");
    assert_eq!(
        vars_after(lb.addr, "127.0.0.2", &tcp4, "/vars"),
        "203.0.113.7:4000|203.0.113.7|127.0.0.2"
    );
    let tcp6 = v1("[2001:db8::7]:5000", "[2001:db8::1]:80");
    assert_eq!(
        vars_after(lb.addr, "127.0.0.2", &tcp6, "/vars"),
        "2001:db8::7:5000|2001:db8::7|127.0.0.2"
    );
    let proxy = V2Command::Proxy {
        source: sa("198.51.100.9:6000"),
        destination: sa("192.0.2.1:443"),
    };
    let with_tlvs = v2(proxy, &[(0x01, b"h2"), (0x05, b"id-1")]);
    assert_eq!(
        vars_after(lb.addr, "127.0.0.2", &with_tlvs, "/vars"),
        "198.51.100.9:6000|198.51.100.9|127.0.0.2"
    );
    let proxy6 = V2Command::Proxy {
        source: sa("[2001:db8::9]:7000"),
        destination: sa("[2001:db8::1]:443"),
    };
    assert_eq!(
        vars_after(lb.addr, "127.0.0.2", &v2(proxy6, &[]), "/vars"),
        "2001:db8::9:7000|2001:db8::9|127.0.0.2"
    );
    // LOCAL and UNKNOWN carry no client: the connection's own address stays.
    let local = v2(V2Command::Local, &[]);
    assert_eq!(
        vars_after(lb.addr, "127.0.0.2", &local, "/vars"),
        ":|127.0.0.2|127.0.0.2"
    );
    let mut unknown = Vec::new();
    encode_v1(&mut unknown, None);
    assert_eq!(
        vars_after(lb.addr, "127.0.0.2", &unknown, "/vars"),
        ":|127.0.0.2|127.0.0.2"
    );
}

#[test]
fn only_a_trusted_sender_sets_the_client_and_upstreams_see_it() {
    let app = Backend::start("app");
    let (lb, _) = start(&app);
    let header = v1("203.0.113.7:4000", "192.0.2.1:80");
    // 127.0.0.3 is no trusted proxy: its header is read, its word not taken.
    assert_eq!(
        vars_after(lb.addr, "127.0.0.3", &header, "/vars"),
        "203.0.113.7:4000|127.0.0.3|127.0.0.3"
    );
    let echoed = vars_after(lb.addr, "127.0.0.2", &header, "/headers");
    assert!(echoed.contains("X-Real-IP: 203.0.113.7"), "{echoed}");
    assert!(echoed.contains("X-Forwarded-For: 203.0.113.7"), "{echoed}");
}

#[test]
fn the_header_comes_once_and_may_arrive_in_pieces() {
    let app = Backend::start("app");
    let (lb, _) = start(&app);
    let header = v1("203.0.113.7:4000", "192.0.2.1:80");
    let mut stream = TcpStream::connect(lb.addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let (a, b) = header.split_at(10);
    stream.write_all(a).unwrap();
    stream.write_all(b).unwrap();
    let mut client = connect(lb.addr, "127.0.0.2");
    let mut bytes = header.clone();
    bytes.extend_from_slice(b"GET /vars HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(
        client
            .send_raw(&bytes)
            .unwrap()
            .body
            .starts_with("203.0.113.7:4000|")
    );
    // The next request on the connection has no header of its own.
    let again = client.get("/vars", &[]).unwrap();
    assert_eq!(again.body, "203.0.113.7:4000|203.0.113.7|127.0.0.2");
    // The pieces on the first connection made a header too.
    stream
        .write_all(b"GET /vars HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = raw::read_until_closed(&mut stream, Instant::now(), Duration::from_secs(10));
    assert!(
        answer
            .text
            .ends_with("203.0.113.7:4000|127.0.0.1|127.0.0.1"),
        "{}",
        answer.text
    );
}

#[test]
fn connections_without_a_valid_header_are_closed() {
    let app = Backend::start("app");
    let (lb, plain) = start(&app);
    // Plain HTTP on the PROXY protocol listener: no answer, closed, logged as nginx does.
    let http = raw::exchange(
        lb.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(http.closed && http.text.is_empty(), "{http:?}");
    assert!(
        lb.wait_for_log("broken header", Duration::from_secs(5)),
        "{}",
        lb.log()
    );
    for garbage in [
        &b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 80\r\n"[..],
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x0c",
        &[b'x'; 300],
    ] {
        let mut bytes = garbage.to_vec();
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let got = raw::exchange(lb.addr, &bytes, Duration::from_secs(10));
        assert!(got.closed && got.text.is_empty(), "{garbage:?}: {got:?}");
    }
    // Silence: closed after client_header_timeout (1 s), not held.
    let silent = raw::exchange(lb.addr, b"", Duration::from_secs(10));
    assert!(
        silent.closed && silent.after < Duration::from_secs(5),
        "{silent:?}"
    );
    // The plain listener of the same server takes plain HTTP, and no PROXY line.
    assert_eq!(
        get(plain, "/vars", &[]).unwrap().body,
        ":|127.0.0.1|127.0.0.1"
    );
    let header = v1("203.0.113.7:4000", "192.0.2.1:80");
    let mut bytes = header;
    bytes.extend_from_slice(b"GET /vars HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        raw::exchange(plain, &bytes, Duration::from_secs(5)).status(),
        400
    );
    // The listener still serves good clients.
    let good = v1("203.0.113.8:1", "192.0.2.1:80");
    assert!(vars_after(lb.addr, "127.0.0.2", &good, "/vars").starts_with("203.0.113.8:1|"));
}

#[test]
fn json_listeners_take_the_proxy_protocol_too() {
    let app = Backend::start("app");
    let listen = free_addr();
    let cfg = serde_json::json!({
        "listeners": [{ "addr": listen.to_string(), "proxy_protocol": true }],
        "upstreams": { "web": { "servers": servers(&[&app]) } },
        "routes": [
            { "path": "/", "upstream": "web" },
            { "path": "/vars", "return": { "status": 200, "text": VARS } }
        ],
        "real_ip": { "from": ["127.0.0.0/8"], "header": "proxy_protocol" }
    });
    let lb = Pinlb::start(&cfg);
    let header = v1("203.0.113.7:4000", "192.0.2.1:80");
    assert_eq!(
        vars_after(lb.addr, "127.0.0.3", &header, "/vars"),
        "203.0.113.7:4000|203.0.113.7|127.0.0.3"
    );
    let echoed = vars_after(lb.addr, "127.0.0.3", &header, "/headers");
    assert!(echoed.contains("X-Real-IP: 203.0.113.7"), "{echoed}");
    let http = raw::exchange(
        lb.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(http.closed && http.text.is_empty(), "{http:?}");
}

#[test]
fn the_header_comes_before_the_tls_handshake() {
    let dir = TempDir::new();
    common::tls::make_cert(dir.path(), "a", &["a.test"], common::tls::Key::Ecdsa, 30);
    let listen = free_addr();
    let conf = dir.write(
        "nginx.conf",
        &format!(
            r#"http {{
                server {{
                    listen {listen} ssl proxy_protocol;
                    client_header_timeout 1s;
                    ssl_certificate a.pem;
                    ssl_certificate_key a.key;
                    set_real_ip_from 127.0.0.1;
                    real_ip_header proxy_protocol;
                    location = /vars {{ return 200 "$proxy_protocol_addr|$remote_addr|$scheme"; }}
                }}
            }}"#
        ),
    );
    let lb = Pinlb::start_file(&conf, dir, listen);
    let config = common::tls::client_config(&[b"http/1.1"]);
    let header = v1("203.0.113.7:4000", "192.0.2.1:443");
    let mut stream = common::tls::connect_after(&config, lb.addr, Some("a.test"), &header)
        .expect("TLS after the PROXY header");
    stream
        .write_all(b"GET /vars HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("203.0.113.7|203.0.113.7|https"),
        "{answer}"
    );
    // A TLS client that sends no PROXY header is closed, not served.
    assert!(common::tls::connect(&config, lb.addr, Some("a.test")).is_err());
}
