//! Micro-benchmarks of pinlb's own work per request: choosing a server, reading the pin,
//! normalising the path, building the forwarding headers. `cargo bench --bench hot_paths`.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use pingora::http::RequestHeader;
use pinlb::config::OnUnhealthy;
use pinlb::config::json;
use pinlb::observe::access_log::Sinks;
use pinlb::proxy::headers::apply_set_headers;
use pinlb::routing::pin::pin_action;
use pinlb::routing::uri::normalize_path;
use pinlb::runtime::{CompileEnv, ProxyRoute, RouteAction, Runtime};
use pinlb::upstream::ip_hash_key;
use pinlb::upstream::resolve::SystemResolver;
use pinlb::variables::RequestInfo;
use std::path::Path;

/// The tutorial's setup over three servers, balanced by `balance`.
fn runtime(balance: &str) -> Runtime {
    let text = format!(
        r#"{{
        "listeners": [{{ "addr": "127.0.0.1:8080" }}],
        "upstreams": {{ "web": {{ "balance": {balance}, "servers": [
            {{ "name": "app1", "addr": "127.0.0.1:9001", "weight": 2 }},
            {{ "name": "app2", "addr": "127.0.0.1:9002" }},
            {{ "name": "app3", "addr": "127.0.0.1:9003" }} ] }} }},
        "routes": [{{ "path": "/", "upstream": "web", "pin": {{ "header": "app", "cookie": "app" }} }}],
        "access_log": {{ "path": "off" }}
    }}"#
    );
    let config = json::parse(Path::new("bench.json"), &text).expect("bench config");
    let env = CompileEnv {
        dns: &SystemResolver,
        discovered: None,
        sinks: &Sinks::default(),
        previous: None,
    };
    Runtime::compile(&config, &env).unwrap_or_else(|e| panic!("bench runtime: {e}"))
}

fn proxy_route(rt: &Runtime) -> &ProxyRoute {
    match &rt.route_at((0, 0)).action {
        RouteAction::Proxy(p) => p,
        RouteAction::Return { .. } => unreachable!("the bench route proxies"),
    }
}

fn request(headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", b"/index.html?page=2", None).unwrap();
    r.append_header("Host", "shop.example:8080").unwrap();
    r.append_header("User-Agent", "wrk").unwrap();
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

fn selection(c: &mut Criterion) {
    for (name, balance) in [
        ("round_robin", "\"round_robin\""),
        ("least_conn", "\"least_conn\""),
    ] {
        let rt = runtime(balance);
        let pool = &rt.pools["web"];
        c.bench_function(&format!("select/{name}"), |b| {
            b.iter(|| pool.select(b"", |_| true))
        });
    }
    let rt = runtime("\"ip_hash\"");
    let pool = &rt.pools["web"];
    let (key, len) = ip_hash_key("203.0.113.77".parse().unwrap());
    c.bench_function("select/ip_hash", |b| {
        b.iter(|| pool.select(black_box(&key[..len]), |_| true))
    });
    let rt = runtime(r#"{ "hash": { "key": "$cookie_sid", "consistent": true } }"#);
    let pool = &rt.pools["web"];
    c.bench_function("select/consistent_hash", |b| {
        b.iter(|| pool.select(black_box(b"session-42"), |_| true))
    });
}

fn pins(c: &mut Criterion) {
    let rt = runtime("\"round_robin\"");
    let route = proxy_route(&rt);
    let none = request(&[("Cookie", "theme=dark; lang=en")]);
    let by_header = request(&[("app", "app2")]);
    let by_cookie = request(&[("Cookie", "theme=dark; app=app3; lang=en")]);
    for (name, req) in [
        ("pin/absent", &none),
        ("pin/header", &by_header),
        ("pin/cookie", &by_cookie),
    ] {
        let info = RequestInfo {
            req,
            uri: None,
            client_ip: Some("192.0.2.10".parse().unwrap()),
            conn: None,
            tls: None,
            server_port: Some(8080),
            server_name: "",
            proxy_host: "web",
            maps: &rt.maps,
        };
        c.bench_function(name, |b| {
            b.iter(|| {
                pin_action(
                    &route.pins,
                    &route.pool,
                    OnUnhealthy::Fallback,
                    None,
                    black_box(&info),
                    |p, g| p.group_usable(g),
                )
            })
        });
    }
}

fn paths(c: &mut Criterion) {
    for (name, path) in [
        ("uri/normal", &b"/api/v1/users/42/profile"[..]),
        ("uri/dot_segments", &b"/api/v1/../v2/./users//42"[..]),
        ("uri/percent", &b"/api/v1/caf%C3%A9/%7Euser"[..]),
    ] {
        c.bench_function(name, |b| b.iter(|| normalize_path(black_box(path), true)));
    }
}

fn headers(c: &mut Criterion) {
    let rt = runtime("\"round_robin\"");
    let route = rt.route_at((0, 0));
    let client = request(&[("X-Forwarded-For", "198.51.100.7")]);
    let info = RequestInfo {
        req: &client,
        uri: None,
        client_ip: Some("192.0.2.10".parse().unwrap()),
        conn: None,
        tls: None,
        server_port: Some(8080),
        server_name: "",
        proxy_host: "web",
        maps: &rt.maps,
    };
    c.bench_function("headers/forwarding", |b| {
        b.iter_batched(
            || client.clone(),
            |mut upstream| {
                apply_set_headers(&mut upstream, &route.set_headers, &info).map(|()| upstream)
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, selection, pins, paths, headers);
criterion_main!(benches);
