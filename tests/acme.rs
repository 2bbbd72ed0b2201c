//! Automatic certificates against Let's Encrypt's test CA (`pebble`, with its DNS
//! `pebble-challtestsrv`), both started by the tests on loopback ports: issuance over
//! HTTP-01 on the plain listener, renewal of short-lived certificates, a restart that
//! serves the stored certificate while the CA is gone, and bad input.

mod common;

use common::pebble::{Pebble, first_cert, leaf, verifying_client};
use common::tls::client_config;
use common::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// A TLS server for `site.test` and `www.site.test` with an ACME certificate, and a plain
/// server that redirects everything to HTTPS (HTTP-01 must still get through).
fn acme_conf(
    dir: &TempDir,
    directory: &str,
    trusted: &Path,
    tls: SocketAddr,
    plain: SocketAddr,
) -> std::path::PathBuf {
    let text = format!(
        r#"
pid {pid};
pinlb_upgrade_sock {sock};
http {{
    access_log off;
    acme_issuer pebble {{
        uri {directory};
        contact admin@site.test;
        state_path {state};
        accept_terms_of_service;
        ssl_trusted_certificate {trusted};
    }}
    acme_shared_zone zone=ngx_acme_shared:1M;
    server {{
        listen {tls} ssl;
        server_name site.test www.site.test;
        acme_certificate pebble;
        ssl_certificate $acme_certificate;
        ssl_certificate_key $acme_certificate_key;
        location / {{ return 200 "secure\n"; }}
    }}
    server {{
        listen {plain};
        return 301 https://$host$request_uri;
    }}
}}
"#,
        pid = dir.path().join("pinlb.pid").display(),
        sock = dir.path().join("upgrade.sock").display(),
        state = dir.path().join("acme_state").display(),
        trusted = trusted.display(),
    );
    dir.write("nginx.conf", &text)
}

/// The one ACME certificate's entry in `/status`.
fn acme_status(lb: &Pinlb) -> Value {
    let status = lb.status();
    let certs = status["acme"].as_object().cloned().unwrap_or_default();
    certs.values().next().cloned().unwrap_or(Value::Null)
}

#[test]
fn pebble_issues_renews_and_a_restart_serves_the_stored_certificate() {
    let dir = TempDir::new();
    let ca_dir = TempDir::new();
    let (tls, plain) = (free_addr(), free_addr());
    // Certificates live 40 s: renewed after half of it (the default rule's floor).
    let mut pebble = Pebble::start(ca_dir.path(), plain.port(), 40);
    let conf = acme_conf(&dir, &pebble.directory, &pebble.https_cert, tls, plain);
    let lb = Pinlb::start_file(&conf, dir, plain);

    // Issued over HTTP-01 through the redirecting plain server, chained to pebble's root.
    let root = pebble.root_pem().unwrap();
    let verifying = verifying_client(&root);
    let issued = poll_until(Duration::from_secs(60), || {
        leaf(&verifying, tls, "site.test").is_ok() && leaf(&verifying, tls, "www.site.test").is_ok()
    });
    assert!(
        issued,
        "no certificate from pebble; pinlb log:\n{}\npebble log:\n{}",
        lb.log(),
        pebble.log()
    );
    let secure = common::tls::get(&client_config(&[]), tls, Some("site.test"), "/", &[]).unwrap();
    assert_eq!(secure.body(), "secure\n");
    // Other requests on the plain listener, unknown challenge tokens too, are routed.
    let moved = get(
        plain,
        "/.well-known/acme-challenge/unknown",
        &[("Host", "site.test")],
    )
    .unwrap();
    assert_eq!(moved.status, 301);
    let first = leaf(&verifying, tls, "site.test").unwrap();
    let entry = acme_status(&lb);
    assert_eq!(entry["serving"], "issued", "{entry}");
    assert_eq!(entry["failures"], 0);
    assert!(entry["renew_at"].as_i64() < entry["not_after"].as_i64());

    // Kept on disk, keys readable by pinlb's user only.
    let files: Vec<_> = std::fs::read_dir(lb.dir.path().join("acme_state"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let cert_file = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "crt"))
        .expect("a stored certificate")
        .clone();
    for key in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "key") || p.ends_with("account.json"))
    {
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    assert!(files.iter().any(|p| p.ends_with("account.json")));

    // Renewed in the background before it expires.
    let renewed = poll_until(Duration::from_secs(60), || {
        leaf(&verifying, tls, "site.test").is_ok_and(|l| l != first)
    });
    assert!(renewed, "not renewed; log:\n{}", lb.log());
    assert!(lb.log().contains("certificate issued"), "{}", lb.log());

    // A restart with the CA gone serves the stored certificate, without an order...
    let conf = lb.conf.clone();
    let mut lb = lb;
    let dir = std::mem::replace(&mut lb.dir, TempDir::new());
    drop(lb);
    pebble.stop();
    let stored_leaf = first_cert(&cert_file);
    let lb = Pinlb::start_file(&conf, dir, plain);
    let served = leaf(&client_config(&[]), tls, "site.test").unwrap();
    assert_eq!(
        served, stored_leaf,
        "the stored certificate is served at once"
    );
    assert_eq!(acme_status(&lb)["serving"], "stored");
    // ...and when its renewal fails, keeps it, says so in /status and /metrics, retries.
    let failed = poll_until(Duration::from_secs(60), || {
        acme_status(&lb)["failures"].as_u64() >= Some(1)
    });
    let entry = acme_status(&lb);
    assert!(
        failed,
        "no failed renewal in /status: {entry}; log:\n{}",
        lb.log()
    );
    assert!(
        entry["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{entry}"
    );
    assert!(
        entry["next_attempt"].as_i64() > entry["last_attempt"].as_i64(),
        "{entry}"
    );
    assert_eq!(
        leaf(&client_config(&[]), tls, "site.test").unwrap(),
        stored_leaf
    );
    let metrics = lb.admin_get("/metrics").body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("pinlb_acme_orders_total") && l.contains("result=\"failure\"")),
        "{metrics}"
    );
    assert!(
        metrics.contains("pinlb_acme_consecutive_failures"),
        "{metrics}"
    );
}

#[test]
fn an_unreachable_directory_serves_a_stand_in_and_keeps_everything_else_serving() {
    let dir = TempDir::new();
    let (tls, plain) = (free_addr(), free_addr());
    // Nothing listens there.
    let nowhere = free_addr();
    let trusted = common::tls::make_cert(
        dir.path(),
        "ca",
        &["localhost"],
        common::tls::Key::Ecdsa,
        30,
    )
    .0;
    let conf = acme_conf(
        &dir,
        &format!("https://localhost:{}/dir", nowhere.port()),
        &trusted,
        tls,
        plain,
    );
    let text = std::fs::read_to_string(&conf).unwrap().replace(
        "return 301 https://$host$request_uri;",
        "location / { return 200 \"plain\\n\"; }",
    );
    std::fs::write(&conf, &text).unwrap();
    let lb = Pinlb::start_file(&conf, dir, plain);
    assert_eq!(
        get(plain, "/", &[("Host", "site.test")])
            .unwrap()
            .text()
            .trim(),
        "plain"
    );
    // Until a certificate exists, a self-signed one for the server's names answers.
    let stand_in = common::tls::get(&client_config(&[]), tls, Some("site.test"), "/", &[]).unwrap();
    assert_eq!(stand_in.body(), "secure\n");
    assert!(
        lb.log().contains("a self-signed one answers"),
        "{}",
        lb.log()
    );
    let failed = poll_until(Duration::from_secs(30), || {
        acme_status(&lb)["failures"].as_u64() >= Some(1)
    });
    let entry = acme_status(&lb);
    assert!(failed, "{entry}");
    assert_eq!(entry["serving"], "stand-in");
    assert!(
        entry["last_error"].as_str().unwrap().contains("connect"),
        "{entry}"
    );

    // A reload naming an unknown issuer fails and the old configuration keeps serving.
    std::fs::write(
        &conf,
        text.replace("acme_certificate pebble;", "acme_certificate nobody;"),
    )
    .unwrap();
    let (status, _, err) = lb.command(&["-s", "reload"]);
    assert!(!status.success(), "{err}");
    assert!(err.contains("issuer \"nobody\" is missing"), "{err}");
    assert_eq!(
        get(plain, "/", &[("Host", "site.test")])
            .unwrap()
            .text()
            .trim(),
        "plain"
    );
    assert!(common::tls::get(&client_config(&[]), tls, Some("site.test"), "/", &[]).is_ok());
}

#[test]
fn ssl_verify_off_challenge_and_renew_before_expiry_take_effect() {
    let dir = TempDir::new();
    let ca_dir = TempDir::new();
    let (tls, plain) = (free_addr(), free_addr());
    // An hour-long certificate renewed 3590 s before it expires: 10 s after issuance.
    let pebble = Pebble::start(ca_dir.path(), plain.port(), 3600);
    let conf = acme_conf(&dir, &pebble.directory, &pebble.https_cert, tls, plain);
    // No trusted certificate: only `ssl_verify off` lets pinlb talk to pebble.
    let text = std::fs::read_to_string(&conf).unwrap().replace(
        &format!("ssl_trusted_certificate {};", pebble.https_cert.display()),
        "ssl_verify off; challenge http-01; renew_before_expiry 3590s;",
    );
    std::fs::write(&conf, text).unwrap();
    let lb = Pinlb::start_file(&conf, dir, plain);
    let verifying = verifying_client(&pebble.root_pem().unwrap());
    let issued = poll_until(Duration::from_secs(60), || {
        leaf(&verifying, tls, "site.test").is_ok()
    });
    assert!(issued, "no certificate; log:\n{}", lb.log());
    let entry = acme_status(&lb);
    let (renew, not_after) = (entry["renew_at"].as_i64(), entry["not_after"].as_i64());
    assert_eq!(
        renew.zip(not_after).map(|(r, n)| n - r),
        Some(3590),
        "{entry}"
    );
    let first = leaf(&verifying, tls, "site.test").unwrap();
    let renewed = poll_until(Duration::from_secs(60), || {
        leaf(&verifying, tls, "site.test").is_ok_and(|l| l != first)
    });
    assert!(renewed, "not renewed; log:\n{}", lb.log());
}

/// `pinlb -t` on an nginx config with `http` block `body`.
fn check(dir: &TempDir, body: &str) -> String {
    let conf = dir.write("bad.conf", &format!("http {{\n{body}\n}}\n"));
    let (status, out, err) = run_pinlb(&["-t", "-c", conf.to_str().unwrap()]);
    assert!(!status.success(), "accepted: {out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn bad_acme_input_is_one_line_with_file_and_line() {
    let dir = TempDir::new();
    let file = dir.path().join("bad.conf");
    let at = |line: u32| format!("{}:{line}", file.display());
    let issuer = |inner: &str| format!("acme_issuer le {{ {inner} }}");
    let server = "server { listen 127.0.0.1:1443 ssl; server_name a.test; acme_certificate le; ssl_certificate $acme_certificate; ssl_certificate_key $acme_certificate_key; location / { return 200; } }";
    let state = dir.path().join("state").display().to_string();
    let good = format!("uri https://ca.test/dir; state_path {state}; accept_terms_of_service;");

    // A state_path that cannot be a folder (a file is in the way).
    let blocker = dir.write("blocker", "");
    let with_server =
        |issuer_body: &str, server: &str| format!("{}\n{server}", issuer(issuer_body));
    // (config, what the error says, the line it names)
    let cases = [
        (
            with_server(
                &format!("uri https://ca.test/dir; state_path {state};"),
                server,
            ),
            "\"accept_terms_of_service\" is missing in acme_issuer \"le\"",
            Some(2),
        ),
        (
            with_server(
                &format!("state_path {state}; accept_terms_of_service;"),
                server,
            ),
            "\"uri\" is missing in acme_issuer \"le\"",
            Some(2),
        ),
        (
            with_server(
                &good,
                &server.replace("acme_certificate le", "acme_certificate other"),
            ),
            "issuer \"other\" is missing",
            Some(3),
        ),
        (
            with_server(
                &format!(
                    "uri https://ca.test/dir; state_path {}/sub; accept_terms_of_service;",
                    blocker.display()
                ),
                server,
            ),
            "state_path cannot write to",
            Some(2),
        ),
        (
            with_server(
                &good,
                &server.replace("server_name a.test", "server_name *.a.test"),
            ),
            "wildcards cannot be validated by http-01",
            Some(3),
        ),
        (
            with_server(
                &good,
                &server.replace("acme_certificate le;", "acme_certificate le key=rsa:2048;"),
            ),
            "key \"rsa:2048\" is not supported",
            Some(3),
        ),
        (
            with_server(&good, &server.replace("acme_certificate le;", "")),
            "needs an \"acme_certificate\" in the same server",
            None,
        ),
    ];
    for (conf, says, line) in &cases {
        let err = check(&dir, conf);
        assert!(err.contains(says), "{says}: {err}");
        if let Some(line) = line {
            assert!(err.contains(&at(*line)), "{says} at line {line}: {err}");
        }
    }
    // The good one passes, offline.
    let conf = dir.write(
        "good.conf",
        &format!("http {{\n{}\n{server}\n}}\n", issuer(&good)),
    );
    let (status, _, err) = run_pinlb(&["-t", "-c", conf.to_str().unwrap()]);
    assert!(status.success(), "{err}");
    assert!(Path::new(&state).is_dir(), "-t creates state_path");
}

#[test]
fn json_acme_keys_are_checked_with_their_paths() {
    let dir = TempDir::new();
    let state = dir.path().join("state");
    let cfg = |issuers: Value, acme: Value| {
        serde_json::json!({
            "listeners": [{ "addr": "127.0.0.1:1443", "tls": { "acme": acme } }],
            "upstreams": { "web": { "servers": [{ "name": "a", "addr": "127.0.0.1:1" }] } },
            "routes": [{ "path": "/", "upstream": "web" }],
            "acme_issuers": issuers,
        })
    };
    let run = |v: Value| {
        let conf = dir.write("c.json", &v.to_string());
        run_pinlb(&["-t", "-c", conf.to_str().unwrap()])
    };
    let issuer = serde_json::json!({ "le": {
        "uri": "https://ca.test/dir", "accept_terms_of_service": true,
        "state_path": state, "contact": ["admin@a.test"], "ssl_verify": true,
        "challenge": "http-01", "renew_before_expiry_ms": 86_400_000u64,
    }});
    let (status, _, err) = run(cfg(
        issuer.clone(),
        serde_json::json!([{ "issuer": "le", "identifiers": ["a.test"], "key": "ecdsa:384" }]),
    ));
    assert!(status.success(), "{err}");
    let (_, _, err) = run(cfg(
        issuer.clone(),
        serde_json::json!([{ "issuer": "x", "identifiers": ["a.test"] }]),
    ));
    assert!(
        err.contains("listeners[0].tls.acme[0].issuer") && err.contains("issuer \"x\" is missing"),
        "{err}"
    );
    let (_, _, err) = run(cfg(
        serde_json::json!({ "le": { "uri": "https://ca.test/dir" } }),
        serde_json::json!([]),
    ));
    assert!(
        err.contains("acme_issuers.le.accept_terms_of_service"),
        "{err}"
    );
    let (_, _, err) = run(cfg(
        serde_json::json!({ "le": { "accept_terms_of_service": true } }),
        serde_json::json!([]),
    ));
    assert!(err.contains("uri"), "{err}");
}
