//! HTTPS at the edge: certificates chosen by SNI with nginx's `server_name` rules and
//! `default_server`, the TLS variables and forwarding headers, session resumption, HTTP/2
//! by ALPN balanced and pinned per request, certificates rotated by reload under load,
//! and bad input (files, directives, handshakes) refused with one line that says where.

mod common;

use common::tls::{Key, client_config, client_with, connect, get as tls_get, make_cert};
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// Two servers on one TLS port: `a.test`, and the default `b.test` (also `*.wild.test` and
/// `~^re\d+\.test$`), each with its own certificate and backend.
fn two_servers(
    dir: &TempDir,
    listen: SocketAddr,
    a: &Backend,
    b: &Backend,
    extra: &str,
) -> std::path::PathBuf {
    make_cert(dir.path(), "a", &["a.test"], Key::Ecdsa, 30);
    make_cert(dir.path(), "b", &["b.test"], Key::Ecdsa, 30);
    let text = format!(
        r#"
pid {pid};
pinlb_upgrade_sock {sock};
http {{
    access_log off;
    {extra}
    upstream pool_a {{ server {a}; }}
    upstream pool_b {{ server {b}; }}
    server {{
        listen {listen} ssl;
        server_name a.test;
        ssl_certificate a.pem;
        ssl_certificate_key a.key;
        location / {{
            proxy_pass http://pool_a;
            proxy_set_header X-Forwarded-Proto $scheme;
            add_header Strict-Transport-Security "max-age=63072000" always;
            add_header X-Tls "$scheme|$https|$ssl_protocol|$ssl_server_name" always;
        }}
    }}
    server {{
        listen {listen} ssl default_server;
        server_name b.test *.wild.test ~^re\d+\.test$;
        ssl_certificate b.pem;
        ssl_certificate_key b.key;
        location / {{ proxy_pass http://pool_b; }}
    }}
}}
"#,
        pid = dir.path().join("pinlb.pid").display(),
        sock = dir.path().join("upgrade.sock").display(),
        a = a.addr,
        b = b.addr,
    );
    dir.write("nginx.conf", &text)
}

#[test]
fn sni_picks_the_certificate_by_server_name_and_no_sni_gets_the_default() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let dir = TempDir::new();
    let (listen, plain) = (free_addr(), free_addr());
    let redirect = format!("server {{ listen {plain}; return 301 https://$host$request_uri; }}");
    let conf = two_servers(&dir, listen, &a, &b, &redirect);
    let lb = Pinlb::start_file(&conf, dir, listen);
    let client = client_config(&[]);
    let moved = get(plain, "/x?y=1", &[("Host", "a.test")]).unwrap();
    assert_eq!(moved.status, 301);
    assert_eq!(moved.header("location"), Some("https://a.test/x?y=1"));
    for (sni, cn, backend) in [
        (Some("a.test"), "a.test", "a"),
        (Some("A.Test"), "a.test", "a"),
        (Some("b.test"), "b.test", "b"),
        (Some("x.wild.test"), "b.test", "b"),
        (Some("re42.test"), "b.test", "b"),
        (Some("other.test"), "b.test", "b"),
        (None, "b.test", "b"),
    ] {
        let reply = tls_get(&client, lb.addr, sni, "/", &[]).unwrap();
        assert_eq!(
            (reply.cn.as_str(), reply.body()),
            (cn, &*format!("{backend}\n")),
            "SNI {sni:?}"
        );
    }
    let reply = tls_get(&client, lb.addr, Some("a.test"), "/headers", &[]).unwrap();
    assert_eq!(reply.header("x-tls"), Some("https|on|TLSv1.3|a.test"));
    assert_eq!(
        reply.header("strict-transport-security"),
        Some("max-age=63072000")
    );
    assert!(
        reply.body().contains("X-Forwarded-Proto: https"),
        "{}",
        reply.text
    );
}

#[test]
fn json_listener_certificates_answer_for_their_own_names() {
    let a = Backend::start("a");
    let dir = TempDir::new();
    let (one, one_key) = make_cert(
        dir.path(),
        "one",
        &["one.test", "*.one.test"],
        Key::Ecdsa,
        30,
    );
    let (two, two_key) = make_cert(dir.path(), "two", &["two.test"], Key::Rsa, 30);
    let listen = free_addr();
    let cfg = config(
        servers(&[&a]),
        serde_json::json!({}),
        serde_json::json!({ "listeners": [{ "addr": listen.to_string(), "http2": true, "tls": {
            "certificates": [
                { "cert": one, "key": one_key },
                { "cert": two, "key": two_key }
            ],
            "protocols": ["TLSv1.2"]
        } }] }),
    );
    let lb = Pinlb::start(&cfg);
    let client = client_config(&[]);
    for (sni, cn) in [
        (Some("two.test"), "two.test"),
        (Some("x.one.test"), "one.test"),
        (None, "one.test"),
    ] {
        let reply = tls_get(&client, lb.addr, sni, "/", &[]).unwrap();
        assert_eq!(reply.cn, cn, "SNI {sni:?}");
        assert_eq!(reply.protocol, "TLSv1_2", "protocols: TLSv1.2 only");
        assert_eq!(reply.body(), "a\n");
    }
    let h2 = connect(
        &client_config(&[b"h2", b"http/1.1"]),
        lb.addr,
        Some("two.test"),
    )
    .unwrap();
    assert_eq!(
        h2.conn.alpn_protocol(),
        Some(&b"h2"[..]),
        "http2: true offers h2"
    );
    let h1 = connect(&client_config(&[b"http/1.1"]), lb.addr, Some("two.test")).unwrap();
    assert_eq!(h1.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[test]
fn json_tls_settings_choose_suites_curves_and_resumption() {
    use rustls::crypto::ring::{cipher_suite as cs, kx_group};
    let a = Backend::start("a");
    let dir = TempDir::new();
    let (cert, key) = make_cert(dir.path(), "s", &["s.test"], Key::Ecdsa, 30);
    let (by_id, no_resume) = (free_addr(), free_addr());
    let pair = serde_json::json!([{ "cert": cert, "key": key }]);
    let cfg = config(
        servers(&[&a]),
        serde_json::json!({}),
        serde_json::json!({ "listeners": [
            { "addr": by_id.to_string(), "tls": {
                "certificates": pair,
                "protocols": ["TLSv1.2"],
                "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:HIGH:!aNULL",
                "prefer_server_ciphers": true,
                "ecdh_curve": "secp384r1",
                "session_cache": 100,
                "session_tickets": false
            } },
            { "addr": no_resume.to_string(), "tls": {
                "certificates": pair,
                "protocols": ["TLSv1.2"],
                "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305",
                "session_tickets": false
            } }
        ] }),
    );
    let lb = Pinlb::start(&cfg);
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ];
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP384R1];
    let client = client_with(provider, &[]);
    let first = connect(&client, lb.addr, Some("s.test")).unwrap();
    let suite = first.conn.negotiated_cipher_suite().unwrap().suite();
    assert_eq!(
        suite,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "the server's order"
    );
    let group = first.conn.negotiated_key_exchange_group().unwrap().name();
    assert_eq!(
        group,
        rustls::NamedGroup::secp384r1,
        "the only curve allowed"
    );
    drop(first);
    let again = tls_get(&client, by_id, Some("s.test"), "/", &[]).unwrap();
    assert!(again.resumed, "resumed by session id, without tickets");
    // Without a session cache or tickets nothing resumes, and the client's order rules.
    let plain = tls_get(&client, no_resume, Some("s.test"), "/", &[]).unwrap();
    let again = connect(&client, no_resume, Some("s.test")).unwrap();
    assert!(!plain.resumed && again.conn.handshake_kind() == Some(rustls::HandshakeKind::Full));
    let suite = again.conn.negotiated_cipher_suite().unwrap().suite();
    assert_eq!(
        suite,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
    );
}

#[test]
fn rsa_and_ecdsa_pairs_serve_clients_of_either_kind_and_sessions_resume() {
    let a = Backend::start("a");
    let dir = TempDir::new();
    make_cert(dir.path(), "rsa", &["rsa.test"], Key::Rsa, 30);
    make_cert(dir.path(), "ec", &["ec.test"], Key::Ecdsa, 30);
    let listen = free_addr();
    let text = format!(
        "pid {pid};\nhttp {{ access_log off; server {{ listen {listen} ssl; server_name s.test;\n\
         ssl_certificate rsa.pem; ssl_certificate_key rsa.key;\n\
         ssl_certificate ec.pem; ssl_certificate_key ec.key;\n\
         ssl_session_cache shared:SSL:1m; ssl_session_tickets on; ssl_session_timeout 1h;\n\
         ssl_stapling on; ssl_dhparam /nonexistent/dhparam.pem;\n\
         location / {{ proxy_pass http://{a}; }} }} }}\n",
        pid = dir.path().join("pinlb.pid").display(),
        a = a.addr,
    );
    let conf = dir.write("nginx.conf", &text);
    let lb = Pinlb::start_file(&conf, dir, listen);
    let client = client_with(rustls::crypto::ring::default_provider(), &[]);
    let first = tls_get(&client, lb.addr, Some("s.test"), "/", &[]).unwrap();
    assert_eq!(first.cn, "ec.test", "ECDSA is preferred, as OpenSSL does");
    assert!(!first.resumed);
    let again = tls_get(&client, lb.addr, Some("s.test"), "/", &[]).unwrap();
    assert!(again.resumed, "the second connection resumes the session");
    // openssl's client offering RSA signatures only.
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &lb.addr.to_string(),
            "-servername",
            "s.test",
        ])
        .args(["-sigalgs", "RSA-PSS+SHA256:RSA+SHA256", "-tls1_2"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CN = rsa.test"), "{text}");
}

#[test]
fn http2_requests_on_one_connection_are_balanced_and_pinned() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let dir = TempDir::new();
    let (cert, key) = make_cert(dir.path(), "s", &["s.test"], Key::Ecdsa, 30);
    let listen = free_addr();
    let text = format!(
        "pid {pid};\nhttp {{ access_log {log}; http2 on;\n\
         ssl_certificate {cert}; ssl_certificate_key {key};\n\
         upstream web {{ server {a}; server {b}; }}\n\
         server {{ listen {listen} ssl; server_name s.test;\n\
         location / {{ proxy_pass http://web;\n\
           if ($http_app = \"b\") {{ proxy_pass http://{b}; }} }} }} }}\n",
        pid = dir.path().join("pinlb.pid").display(),
        log = dir.path().join("access.log").display(),
        a = a.addr,
        b = b.addr,
        cert = cert.display(),
        key = key.display(),
    );
    let conf = dir.write("nginx.conf", &text);
    let log = dir.path().join("access.log");
    let lb = Pinlb::start_file(&conf, dir, listen);
    let url = format!("https://s.test:{}/", listen.port());
    let resolve = format!("s.test:{}:{}", listen.port(), listen.ip());
    let curl = |extra: &[&str]| {
        let mut args = vec![
            "-sk",
            "--http2",
            "--resolve",
            &resolve,
            "-w",
            "%{http_version}\n",
        ];
        args.extend_from_slice(extra);
        for _ in 0..10 {
            args.push(&url);
        }
        let out = Command::new("curl").args(&args).output().expect("curl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let balanced = curl(&[]);
    assert_eq!(
        balanced.matches("\n2\n").count() + usize::from(balanced.starts_with("2\n")),
        10,
        "{balanced}"
    );
    assert_eq!(balanced.matches("a\n").count(), 5, "{balanced}");
    assert_eq!(balanced.matches("b\n").count(), 5, "{balanced}");
    let pinned = curl(&["-H", "app: b"]);
    assert_eq!(pinned.matches("b\n").count(), 10, "{pinned}");
    assert!(poll_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.lines().count() >= 20)
    }));
    let lines = std::fs::read_to_string(&log).unwrap();
    assert!(lines.contains("\"GET / HTTP/2.0\" 200"), "{lines}");
    // h2load: 200 requests over 2 connections, every one answered.
    let out = Command::new("h2load")
        .args([
            "-n",
            "200",
            "-c",
            "2",
            "-m",
            "10",
            &format!("https://{listen}/"),
        ])
        .output()
        .expect("h2load (Debian package nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("200 succeeded, 0 failed"), "{text}");
    drop(lb);
}

#[test]
fn reload_rotates_the_certificate_under_https_load_without_a_failed_request() {
    let a = Backend::start("a");
    let dir = TempDir::new();
    make_cert(dir.path(), "site", &["old.test"], Key::Ecdsa, 30);
    let listen = free_addr();
    let text = format!(
        "pid {pid};\nhttp {{ access_log off; server {{ listen {listen} ssl; server_name s.test;\n\
         ssl_certificate site.pem; ssl_certificate_key site.key;\n\
         location / {{ proxy_pass http://{a}; }} }} }}\n",
        pid = dir.path().join("pinlb.pid").display(),
        a = a.addr,
    );
    let conf = dir.write("nginx.conf", &text);
    let path = dir.path().to_path_buf();
    let lb = Pinlb::start_file(&conf, dir, listen);
    let client = client_config(&[]);
    // A keep-alive connection opened before the rotation keeps its certificate.
    let mut kept = connect(&client, lb.addr, Some("s.test")).unwrap();
    assert_eq!(common::tls::leaf_cn(&kept.conn), "old.test");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (client, stop) = (client.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut ok, mut failed, mut names) =
                    (0, Vec::new(), std::collections::BTreeSet::new());
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && ok < 5000 {
                    match tls_get(&client, listen, Some("s.test"), "/", &[]) {
                        Ok(r) if r.status == 200 => {
                            ok += 1;
                            names.insert(r.cn);
                        }
                        other => failed.push(format!("{other:?}")),
                    }
                }
                (ok, failed, names)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The new pair replaces the files in place, as a renewal does.
    let fresh = TempDir::new();
    let (cert, key) = make_cert(fresh.path(), "site", &["new.test"], Key::Rsa, 30);
    std::fs::copy(&key, path.join("site.key")).unwrap();
    std::fs::copy(&cert, path.join("site.pem")).unwrap();
    let (status, _, stderr) = lb.command(&["-s", "reload"]);
    assert!(status.success(), "{stderr}");
    assert!(poll_until(Duration::from_secs(10), || {
        tls_get(&client, listen, Some("s.test"), "/", &[]).is_ok_and(|r| r.cn == "new.test")
    }));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut seen = std::collections::BTreeSet::new();
    for w in workers {
        let (ok, failed, names) = w.join().unwrap();
        assert!(ok > 0);
        assert_eq!(failed, Vec::<String>::new());
        seen.extend(names);
    }
    assert!(
        seen.contains("old.test") && seen.contains("new.test"),
        "{seen:?}"
    );
    kept.write_all(b"GET / HTTP/1.1\r\nHost: s.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = kept.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(common::tls::leaf_cn(&kept.conn), "old.test");
    // A broken pair: the reload fails with the directive's line, the old pair serves.
    std::fs::copy(fresh.path().join("site.key"), path.join("site.key")).unwrap();
    make_cert(fresh.path(), "other", &["other.test"], Key::Ecdsa, 30);
    std::fs::copy(fresh.path().join("other.key"), path.join("site.key")).unwrap();
    let (status, _, stderr) = lb.command(&["-s", "reload"]);
    assert!(!status.success());
    assert!(
        stderr.contains("does not match the certificate") && stderr.contains("nginx.conf:3"),
        "{stderr}"
    );
    let reply = tls_get(&client, listen, Some("s.test"), "/", &[]).unwrap();
    assert_eq!((reply.cn.as_str(), reply.status), ("new.test", 200));
}

/// `pinlb -t` on a one-server TLS config with `directives` in the server.
fn check(dir: &TempDir, directives: &str) -> (bool, String) {
    let text = format!(
        "http {{\n    server {{\n        listen 127.0.0.1:1 ssl;\n        {directives}\n        location / {{ return 200; }}\n    }}\n}}\n"
    );
    let conf = dir.write("nginx.conf", &text);
    let (status, _, stderr) = run_pinlb(&["-t", "-c", conf.to_str().unwrap()]);
    (status.success(), stderr)
}

#[test]
fn bad_certificates_and_directives_are_refused_with_their_line() {
    let dir = TempDir::new();
    make_cert(dir.path(), "good", &["good.test"], Key::Ecdsa, 30);
    make_cert(dir.path(), "other", &["other.test"], Key::Rsa, 30);
    make_cert(dir.path(), "old", &["old.test"], Key::Ecdsa, -1);
    std::fs::write(dir.path().join("empty.pem"), "no certificate here\n").unwrap();
    let conf = dir.path().join("nginx.conf");
    let at4 = format!("in {}:4", conf.display());
    let pair = |c: &str, k: &str| format!("ssl_certificate {c};\n        ssl_certificate_key {k};");
    for (directives, message) in [
        (pair("missing.pem", "good.key"), "cannot load certificate"),
        (
            pair("empty.pem", "good.key"),
            "no PEM certificate in the file",
        ),
        (
            pair("good.pem", "missing.key"),
            "cannot load certificate key",
        ),
        (pair("good.pem", "good.pem"), "no PEM private key"),
        (
            pair("good.pem", "other.key"),
            "does not match the certificate",
        ),
    ] {
        let (ok, stderr) = check(&dir, &directives);
        assert!(!ok, "{directives}");
        assert!(
            stderr.contains(message) && stderr.contains(&at4),
            "{directives}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    let good = pair("good.pem", "good.key");
    for (extra, message, line) in [
        (
            "ssl_protocols TLSv1.1 TLSv1.2;",
            "\"TLSv1.1\" is not supported",
            6,
        ),
        ("ssl_protocols TLSv9;", "invalid value \"TLSv9\"", 6),
        ("ssl_session_cache bogus;", "invalid session cache", 6),
        ("", "no \"ssl_certificate\" is defined", 3),
    ] {
        let directives = if extra.is_empty() {
            String::new()
        } else {
            format!("{good}\n        {extra}")
        };
        let (ok, stderr) = check(&dir, &directives);
        assert!(!ok, "{extra}");
        let at = format!("in {}:{line}", conf.display());
        assert!(
            stderr.contains(message) && stderr.contains(&at),
            "{extra}: {stderr}"
        );
    }
    let (ok, stderr) = check(&dir, &pair("old.pem", "old.key"));
    assert!(ok, "an expired certificate is served: {stderr}");
    assert!(stderr.contains("expired on"), "{stderr}");
    let (ok, stderr) = check(&dir, &good);
    assert!(ok, "{stderr}");
    // JSON: the error names the path.
    let json = dir.write(
        "bad.json",
        &serde_json::json!({
            "listeners": [{ "addr": "127.0.0.1:1", "tls": { "certificates": [
                { "cert": dir.path().join("good.pem"), "key": dir.path().join("other.key") }
            ] } }],
            "upstreams": { "web": { "servers": [{ "name": "a", "addr": "127.0.0.1:2" }] } },
            "routes": [{ "path": "/", "upstream": "web" }]
        })
        .to_string(),
    );
    let (status, _, stderr) = run_pinlb(&["-t", "-c", json.to_str().unwrap()]);
    assert!(!status.success());
    assert!(
        stderr.contains("listeners[0].tls.certificates[0]: the key") && stderr.contains("bad.json"),
        "{stderr}"
    );
}

#[test]
fn garbage_stalled_handshakes_and_plain_http_on_the_tls_port_close_only_that_connection() {
    let a = Backend::start("a");
    let dir = TempDir::new();
    make_cert(dir.path(), "s", &["s.test"], Key::Ecdsa, 30);
    let listen = free_addr();
    let text = format!(
        "pid {pid};\nhttp {{ access_log off; client_header_timeout 1s;\n\
         server {{ listen {listen} ssl; ssl_certificate s.pem; ssl_certificate_key s.key;\n\
         location / {{ proxy_pass http://{a}; }} }} }}\n",
        pid = dir.path().join("pinlb.pid").display(),
        a = a.addr,
    );
    let conf = dir.write("nginx.conf", &text);
    let lb = Pinlb::start_file(&conf, dir, listen);
    let client = client_config(&[]);
    let closed_within = move |bytes: &[u8], limit: Duration| {
        let mut s = TcpStream::connect(listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(bytes).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return started.elapsed() <= limit,
                Ok(_) => {}
            }
        }
    };
    // A stalled handshake: the first bytes of a ClientHello, then nothing.
    let stalled = std::thread::spawn(move || {
        closed_within(
            &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01],
            Duration::from_secs(4),
        )
    });
    assert!(closed_within(
        b"\x00garbage\xff\xfe not tls at all\r\n\r\n",
        Duration::from_secs(2)
    ));
    assert!(closed_within(
        b"GET / HTTP/1.1\r\nHost: s.test\r\n\r\n",
        Duration::from_secs(2)
    ));
    // Meanwhile everyone else is served.
    let reply = tls_get(&client, listen, Some("s.test"), "/", &[]).unwrap();
    assert_eq!(reply.status, 200);
    assert!(
        stalled.join().unwrap(),
        "the stalled handshake is closed after client_header_timeout"
    );
    let reply = tls_get(&client, listen, None, "/", &[]).unwrap();
    assert_eq!(reply.status, 200);
    // A client that sends an address as SNI (wrk, scripts connecting by IP) is served
    // without a warning per connection in the log.
    let by_ip = Command::new("openssl")
        .args(["s_client", "-connect", &listen.to_string(), "-servername"])
        .arg(listen.ip().to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let said = String::from_utf8_lossy(&by_ip.stdout);
    assert!(said.contains("New, TLSv1.3"), "{said}");
    assert!(!lb.log().contains("Illegal SNI"), "{}", lb.log());
    drop(lb);
}

#[test]
fn http2_on_a_plain_listener_takes_h2c_by_prior_knowledge_beside_http1() {
    let a = Backend::start("a");
    let dir = TempDir::new();
    let listen = free_addr();
    let text = format!(
        "pid {pid};\nhttp {{ access_log off; server {{ listen {listen}; http2 on;\n\
         location / {{ proxy_pass http://{a}; add_header X-Scheme \"$scheme[$https]\"; }} }} }}\n",
        pid = dir.path().join("pinlb.pid").display(),
        a = a.addr,
    );
    let conf = dir.write("nginx.conf", &text);
    let lb = Pinlb::start_file(&conf, dir, listen);
    let url = format!("http://{listen}/");
    let out = Command::new("curl")
        .args(["-si", "--http2-prior-knowledge", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/2 200") && text.contains("x-scheme: http[]"),
        "{text}"
    );
    let reply = get(lb.addr, "/", &[]).unwrap();
    assert_eq!(reply.status, 200);
}

#[test]
fn proxy_pass_https_sends_sni_verifies_the_server_and_pools_connections() {
    // The TLS server behind: another pinlb, answering with the SNI it was asked for.
    let back_dir = TempDir::new();
    let (back_cert, _) = make_cert(back_dir.path(), "back", &["back.test"], Key::Ecdsa, 30);
    let (other_cert, _) = make_cert(back_dir.path(), "other", &["other.test"], Key::Ecdsa, 30);
    let back_addr = free_addr();
    let text = format!(
        "pid {pid};\nhttp {{ access_log off; server {{ listen {back_addr} ssl;\n\
         ssl_certificate back.pem; ssl_certificate_key back.key;\n\
         location / {{ return 200 \"sni=$ssl_server_name\"; }} }} }}\n",
        pid = back_dir.path().join("pinlb.pid").display(),
    );
    let back_conf = back_dir.write("nginx.conf", &text);
    let _back = Pinlb::start_file(&back_conf, back_dir, back_addr);

    let dir = TempDir::new();
    let listen = free_addr();
    let location = |path: &str, settings: &str| {
        format!("location {path} {{ proxy_pass https://back; {settings} }}\n")
    };
    let text = format!(
        "pid {pid};\nhttp {{ access_log off; upstream back {{ server {back_addr}; keepalive 4; }}\n\
         server {{ listen {listen};\n{a}{b}{c}{d}{e} }} }}\n",
        pid = dir.path().join("pinlb.pid").display(),
        a = location("/none/", ""),
        b = location(
            "/sni/",
            "proxy_ssl_server_name on; proxy_ssl_name back.test;"
        ),
        c = location(
            "/verify/",
            &format!(
                "proxy_ssl_verify on; proxy_ssl_name back.test; proxy_ssl_trusted_certificate {};",
                back_cert.display()
            )
        ),
        d = location(
            "/untrusted/",
            &format!(
                "proxy_ssl_verify on; proxy_ssl_name back.test; proxy_ssl_trusted_certificate {};",
                other_cert.display()
            )
        ),
        e = location(
            "/wrong-name/",
            &format!(
                "proxy_ssl_verify on; proxy_ssl_name wrong.test; proxy_ssl_trusted_certificate {};",
                back_cert.display()
            )
        ),
    );
    let conf = dir.write("nginx.conf", &text);
    let lb = Pinlb::start_file(&conf, dir, listen);
    let answer = |path: &str| {
        let r = get(lb.addr, path, &[("Host", "front.test")]).unwrap();
        (r.status, r.body)
    };
    assert_eq!(
        answer("/none/"),
        (200, "sni=".to_string()),
        "no SNI by default, as nginx"
    );
    assert_eq!(answer("/sni/"), (200, "sni=back.test".to_string()));
    assert_eq!(answer("/verify/"), (200, "sni=back.test".to_string()));
    assert_eq!(answer("/untrusted/").0, 502, "a certificate not trusted");
    assert_eq!(
        answer("/wrong-name/").0,
        502,
        "a certificate for another name"
    );
    // Pooled: sequential requests share one upstream connection per settings.
    for _ in 0..5 {
        assert_eq!(answer("/sni/").0, 200);
    }
    let out = Command::new("ss")
        .args(["-Htn", "state", "established"])
        .arg(format!("( dport = :{} )", back_addr.port()))
        .output()
        .expect("ss (Debian package iproute2)");
    let open = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(
        (1..=3).contains(&open),
        "connections to the TLS server: {open}"
    );
}
