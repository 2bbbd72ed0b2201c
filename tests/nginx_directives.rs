//! nginx directives whose effect only an nginx config shows, each in a small config of
//! its own: `map` keys, `add_header` with and without `always`, a server-level `return`,
//! `log_format` `escape=json`, the level of `error_log`, and the redirect of a proxying
//! `location /prefix/` for `/prefix`.

mod common;

use common::*;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// pinlb on an nginx config written from `text`, where `LISTEN` is replaced by the
/// address it listens on.
fn nginx(text: &str) -> Pinlb {
    let dir = TempDir::new();
    let listen = free_addr();
    let conf = dir.write("nginx.conf", &text.replace("LISTEN", &listen.to_string()));
    Pinlb::start_file(&conf, dir, listen)
}

#[test]
fn map_picks_exact_keys_then_regexes_then_the_default() {
    let lb = nginx(
        r#"http {
            map $http_x_tier $tier {
                default  standard;
                gold     premium;
                ~^sil    silver;
                ~*^br    bronze;
            }
            server { listen LISTEN; location / { return 200 "tier=$tier"; } }
        }"#,
    );
    let tier = |value: Option<&str>| {
        let headers: Vec<(&str, &str)> = value.map(|v| ("X-Tier", v)).into_iter().collect();
        get(lb.addr, "/", &headers).unwrap().body
    };
    assert_eq!(tier(Some("gold")), "tier=premium");
    assert_eq!(tier(Some("silver-2")), "tier=silver");
    assert_eq!(tier(Some("BRONZE")), "tier=bronze", "~* ignores case");
    assert_eq!(tier(Some("Gold")), "tier=standard", "exact keys keep case");
    assert_eq!(tier(None), "tier=standard");
}

#[test]
fn add_header_marks_good_answers_and_always_every_answer() {
    let a = Backend::start("a");
    let lb = nginx(&format!(
        r#"http {{
            upstream u {{ server {}; }}
            server {{
                listen LISTEN;
                add_header X-Server-Level s;
                location / {{
                    proxy_pass http://u;
                    add_header X-Plain p;
                    add_header X-Always a always;
                }}
                location /answer {{
                    return 403;
                    add_header X-Plain p;
                    add_header X-Always a always;
                }}
                location /inherit {{ proxy_pass http://u; }}
            }}
        }}"#,
        a.addr
    ));
    let added = |path: &str| {
        let r = get(lb.addr, path, &[]).unwrap();
        let names = ["X-Server-Level", "X-Plain", "X-Always"];
        let present: Vec<&str> = names
            .into_iter()
            .filter(|n| r.header(n).is_some())
            .collect();
        (r.status, present.join(" "))
    };
    assert_eq!(added("/"), (200, "X-Plain X-Always".into()));
    assert_eq!(added("/status/404"), (404, "X-Always".into()));
    assert_eq!(added("/answer"), (403, "X-Always".into()));
    // A location without add_header inherits the server's.
    assert_eq!(added("/inherit"), (200, "X-Server-Level".into()));
}

/// nginx 1.22 answers `GET /api?a=1` with `Host: Mixed.Test:8080` on port 28111, where
/// `location /api/` proxies, with `301` and `Location: http://mixed.test:28111/api/?a=1`,
/// even though a regex location matches `/api`; the relative `Location` of a `return`
/// is made absolute the same way. The redirect names the location itself, whatever
/// spelling of its path the request used.
#[test]
fn a_proxying_location_redirects_its_name_without_the_slash() {
    let a = Backend::start("a");
    let lb = nginx(&format!(
        r#"http {{
            server {{
                listen LISTEN;
                location /api/ {{ proxy_pass http://{}; }}
                location ~ ^/api$ {{ return 200 "regex"; }}
                location /old {{ return 302 /new; }}
                location / {{ return 200 "root"; }}
            }}
        }}"#,
        a.addr
    ));
    let r = get(lb.addr, "/api?a=1", &[("Host", "Mixed.Test:8080")]).unwrap();
    let port = lb.addr.port();
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("Location"),
        Some(format!("http://mixed.test:{port}/api/?a=1").as_str())
    );
    // The Location is the location's own name: nginx answers `/%61pi` and `/x/../api?q=1`
    // with `http://127.0.0.1:PORT/api/` and `.../api/?q=1`.
    for (path, location) in [("/%61pi", "/api/"), ("/x/../api?q=1", "/api/?q=1")] {
        let r = get(lb.addr, path, &[("Host", "127.0.0.1")]).unwrap();
        let expected = format!("http://127.0.0.1:{port}{location}");
        assert_eq!(
            (r.status, r.header("Location")),
            (301, Some(expected.as_str())),
            "{path}"
        );
    }
    assert_eq!(get(lb.addr, "/api/x", &[]).unwrap().body, "a\n");
    assert_eq!(get(lb.addr, "/apx", &[]).unwrap().body, "root");
    let r = get(lb.addr, "/old", &[("Host", "shop.test")]).unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("Location"),
        Some(format!("http://shop.test:{port}/new").as_str())
    );
    assert_eq!(a.requests(), 1);
}

#[test]
fn a_server_level_return_answers_every_request_of_its_server() {
    let a = Backend::start("a");
    let lb = nginx(&format!(
        r#"http {{
            server {{ listen LISTEN; location / {{ proxy_pass http://{}; }} }}
            server {{
                listen LISTEN;
                server_name old.test;
                return 301 http://new.test$request_uri;
                location / {{ proxy_pass http://{}; }}
            }}
        }}"#,
        a.addr, a.addr
    ));
    for path in ["/", "/some/page?x=1"] {
        let r = get(lb.addr, path, &[("Host", "old.test")]).unwrap();
        assert_eq!(r.status, 301);
        assert_eq!(
            r.header("location"),
            Some(format!("http://new.test{path}").as_str())
        );
    }
    assert_eq!(a.requests(), 0);
    assert_eq!(
        get(lb.addr, "/", &[("Host", "other.test")]).unwrap().text(),
        "a"
    );
}

#[test]
fn log_format_with_escape_json_writes_json_lines() {
    let a = Backend::start("a");
    let logs = TempDir::new();
    let log = logs.path().join("access.log");
    let lb = nginx(&format!(
        r#"http {{
            log_format j escape=json '{{"uri":"$uri","agent":"$http_user_agent",'
                                     '"status":$status}}';
            access_log {} j;
            server {{ listen LISTEN; location / {{ proxy_pass http://{}; }} }}
        }}"#,
        log.display(),
        a.addr
    ));
    assert_eq!(
        get(lb.addr, "/p", &[("User-Agent", "say \"hi\"")])
            .unwrap()
            .status,
        200
    );
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(poll_until(Duration::from_secs(5), || read().ends_with('\n')));
    let line: serde_json::Value =
        serde_json::from_str(read().trim_end()).unwrap_or_else(|e| panic!("{e}: {}", read()));
    assert_eq!(
        line,
        serde_json::json!({ "uri": "/p", "agent": "say \"hi\"", "status": 200 })
    );
}

/// A pinlb process started without `RUST_LOG` (which would override the config's
/// `error_log` level), killed on drop.
struct Bare(Child);

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn error_log_writes_from_its_level_up() {
    let a = Backend::start("a");
    let dir = TempDir::new();
    let error_log = dir.path().join("error.log");
    let (listen, admin) = (free_addr(), free_addr());
    let conf = dir.write(
        "nginx.conf",
        &format!(
            "pid {}/nginx.pid;
             error_log {} warn;
             http {{
                 upstream u {{ server {}; }}
                 server {{
                     listen {listen};
                     location / {{ proxy_pass http://u; health_check interval=100ms uri=/health; }}
                 }}
             }}",
            dir.path().display(),
            error_log.display(),
            a.addr
        ),
    );
    let _lb = Bare(
        Command::new(PINLB)
            .arg("-c")
            .arg(&conf)
            .args(["--admin", &admin.to_string()])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let accepts =
        |addr: SocketAddr| TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok();
    assert!(poll_until(Duration::from_secs(15), || accepts(listen)
        && accepts(admin)));
    let healthy = || {
        get(admin, "/status", &[("Host", &admin.to_string())]).is_ok_and(|r| {
            serde_json::from_str::<serde_json::Value>(&r.body)
                .is_ok_and(|s| s["upstreams"]["u"]["servers"][0]["healthy"] == true)
        })
    };
    let read = || std::fs::read_to_string(&error_log).unwrap_or_default();
    let warnings = || read().matches("becomes unhealthy").count();
    // Down (a warning), up (an info line), down again: lines are written in order, so
    // once the second warning is there, the info line would be too.
    a.set_healthy(false);
    assert!(
        poll_until(Duration::from_secs(5), || warnings() == 1),
        "{}",
        read()
    );
    a.set_healthy(true);
    assert!(poll_until(Duration::from_secs(5), healthy));
    a.set_healthy(false);
    assert!(
        poll_until(Duration::from_secs(5), || warnings() == 2),
        "{}",
        read()
    );
    let log = read();
    assert!(!log.contains("becomes healthy"), "{log}");
    assert!(!log.contains("INFO"), "{log}");
}
