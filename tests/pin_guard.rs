//! Pins for the people who may use them: `pin.allow_from` (in nginx syntax, a `geo`
//! variable through a `map`), signed pins (`pin.secret`, `pinlb_pin_secret`) that an
//! outsider cannot forge, and the served-by header saying why a server was chosen.

mod common;

use common::*;
use serde_json::json;
use std::net::IpAddr;
use std::time::Duration;

const SECRET: &str = "test secret, 32 bytes of entropy";

fn three() -> [Backend; 3] {
    [
        Backend::start("app1"),
        Backend::start("app2"),
        Backend::start("app3"),
    ]
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The `X-Served-By` of `n` requests on one connection from `source`.
fn served_from(lb: &Pinlb, source: &str, n: usize, headers: &[(&str, &str)]) -> Vec<String> {
    let mut client = Client::connect_from(lb.addr, ip(source)).expect("connect");
    served_by(&mut client, n, headers)
}

fn metric(lb: &Pinlb, line: &str) -> Option<u64> {
    lb.admin_get("/metrics")
        .body
        .lines()
        .find(|l| l.starts_with(line))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn a_pin_from_outside_allow_from_is_ignored_and_the_request_balanced() {
    let apps = three();
    let route = json!({ "pin": { "header": "app", "cookie": "app", "allow_from": ["127.0.0.1/32", "10.0.0.0/8"] } });
    let lb = Pinlb::start(&config(servers(&apps.each_ref()), route, json!({})));
    // Inside: pinned.
    assert_eq!(
        served_from(&lb, "127.0.0.1", 3, &[("app", "app2")]),
        ["app2"; 3]
    );
    // Outside (127.0.0.2 is not in the list): balanced as if there were no pin.
    let outside = served_from(&lb, "127.0.0.2", 3, &[("app", "app2")]);
    assert_eq!(outside.concat(), "app1app2app3", "{outside:?}");
    let cookie = served_from(&lb, "127.0.0.2", 3, &[("Cookie", "app=app3")]);
    assert_eq!(cookie.concat(), "app1app2app3", "{cookie:?}");
    assert_eq!(
        metric(&lb, "pinlb_pin_total{outcome=\"not_allowed\"}"),
        Some(6)
    );
}

#[test]
fn only_a_correctly_signed_pin_pins() {
    let apps = three();
    let route = json!({ "pin": { "header": "app", "cookie": "app", "secret": SECRET } });
    let lb = Pinlb::start(&config(servers(&apps.each_ref()), route, json!({})));
    // The operator's tool prints the value.
    let (status, signed, stderr) = lb.command(&["--sign-pin", "app2"]);
    assert!(status.success(), "{stderr}");
    let signed = signed.trim().to_string();
    assert!(
        signed.starts_with("app2.") && signed.len() == "app2.".len() + 22,
        "{signed}"
    );

    let mut client = lb.client();
    assert_eq!(served_by(&mut client, 3, &[("app", &signed)]), ["app2"; 3]);
    let cookie = format!("app={signed}");
    assert_eq!(
        served_by(&mut client, 2, &[("Cookie", &cookie)]),
        ["app2"; 2]
    );

    // A bare name, a forged MAC, another server's name with app2's MAC: balanced.
    let mac = signed.split_once('.').unwrap().1;
    let mut forged_mac = mac.to_string();
    forged_mac.replace_range(0..1, if mac.starts_with('A') { "B" } else { "A" });
    for value in [
        "app2".to_string(),
        format!("app2.{forged_mac}"),
        format!("app3.{mac}"),
        format!("{signed}="),
    ] {
        let got = served_by(&mut lb.client(), 3, &[("app", &value)]);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, ["app1", "app2", "app3"], "{value} pinned: {got:?}");
    }
    assert_eq!(
        metric(&lb, "pinlb_pin_total{outcome=\"bad_signature\"}"),
        Some(12)
    );
}

#[test]
fn served_by_says_why_when_configured() {
    let apps = three();
    let route = json!({ "pin": { "header": "app" } });
    let extra = json!({
        "served_by_reason": true,
        "upstreams": { "web": { "health_check": {
            "type": "http", "path": "/health", "interval_ms": 100, "fails": 1, "passes": 1
        } } }
    });
    let lb = Pinlb::start(&config(servers(&apps.each_ref()), route, extra));
    let mut client = lb.client();
    assert_eq!(
        served_by(&mut client, 1, &[("app", "app2")]),
        ["app2; pinned"]
    );
    assert_eq!(served_by(&mut client, 1, &[]), ["app1; balanced"]);
    apps[1].set_healthy(false);
    assert!(
        lb.wait_for_log("becomes unhealthy", Duration::from_secs(5)),
        "{}",
        lb.log()
    );
    let fell_back = served_by(&mut client, 1, &[("app", "app2")]);
    assert!(fell_back[0].ends_with("; fell back"), "{fell_back:?}");
}

/// pinlb on an nginx config whose `http` block is `body`.
fn nginx_lb(body: &str, apps: &[Backend; 3]) -> Pinlb {
    let dir = TempDir::new();
    let listen = free_addr();
    let mut body = body.replace("{listen}", &listen.to_string());
    for (i, app) in apps.iter().enumerate() {
        body = body.replace(&format!("{{app{}}}", i + 1), &app.addr.to_string());
    }
    let conf = dir.write(
        "nginx.conf",
        &format!(
            "pid {d}/pinlb.pid;\npinlb_upgrade_sock {d}/upgrade.sock;\nhttp {{\naccess_log off;\n{body}\n}}\n",
            d = dir.path().display()
        ),
    );
    Pinlb::start_file(&conf, dir, listen)
}

/// What the issue asks of nginx syntax: `geo` says who may pin, a `map` turns the pin
/// header into nothing for everyone else, and the `if`s test the mapped variable.
const NGINX_GEO_PIN: &str = "
    geo $pin_allowed {
        default 0;
        127.0.0.1 1;
        10.0.0.0/8 1;
    }
    map $pin_allowed $pin_app {
        1 $http_app;
        default \"\";
    }
    upstream app_servers { server {app1}; server {app2}; server {app3}; }
    server {
        listen {listen};
        location / {
            proxy_pass http://app_servers;
            if ($pin_app = \"app2\") { proxy_pass http://{app2}; }
            if ($pin_app = \"app3\") { proxy_pass http://{app3}; }
        }
    }";

fn bodies_from(lb: &Pinlb, source: &str, n: usize, headers: &[(&str, &str)]) -> String {
    let mut client = Client::connect_from(lb.addr, ip(source)).expect("connect");
    (0..n)
        .map(|_| client.get("/", headers).unwrap().text().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn nginx_geo_and_map_restrict_the_pin_to_some_addresses() {
    let apps = three();
    let lb = nginx_lb(NGINX_GEO_PIN, &apps);
    assert_eq!(
        bodies_from(&lb, "127.0.0.1", 3, &[("app", "app3")]),
        "app3 app3 app3"
    );
    assert_eq!(
        bodies_from(&lb, "127.0.0.2", 3, &[("app", "app3")]),
        "app1 app2 app3"
    );
}

#[test]
fn nginx_pinlb_pin_secret_needs_signed_values() {
    let apps = three();
    let body = format!(
        "pinlb_pin_secret \"{SECRET}\";
         upstream app_servers {{ server {{app1}}; server {{app2}}; server {{app3}}; }}
         server {{ listen {{listen}};
             location / {{
                 proxy_pass http://app_servers;
                 if ($http_app = \"app2\") {{ proxy_pass http://{{app2}}; }}
             }} }}"
    );
    let lb = nginx_lb(&body, &apps);
    let (status, signed, stderr) = lb.command(&["--sign-pin", "app2"]);
    assert!(status.success(), "{stderr}");
    let signed = signed.trim();
    assert_eq!(
        bodies_from(&lb, "127.0.0.1", 3, &[("app", signed)]),
        "app2 app2 app2"
    );
    assert_eq!(
        bodies_from(&lb, "127.0.0.1", 3, &[("app", "app2")]),
        "app1 app2 app3"
    );
}
