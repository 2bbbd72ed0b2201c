use super::*;
use crate::config;
use std::path::Path;

fn fixture(name: &str) -> (Config, Vec<SocketAddr>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nginx")
        .join(name);
    let config = config::load(&path).unwrap();
    let mut listens: Vec<SocketAddr> = Vec::new();
    for addr in config.virtual_servers.iter().flat_map(|vs| &vs.listen) {
        if !listens.contains(addr) {
            listens.push(*addr);
        }
    }
    (config, listens)
}

fn has(probes: &[Probe], line: &str) -> bool {
    probes.iter().any(|p| p.describe() == line)
}

#[test]
fn the_tutorial_corpus_tries_every_pin_right_wrong_and_disguised() {
    let (config, listens) = fixture("tutorial-3apps.conf");
    let probes = generate(&config, &listens);
    for line in [
        "GET / HTTP/1.1 [Host: unknown.invalid] [app: app2]",
        "GET / HTTP/1.1 [Host: unknown.invalid] [app: APP2]",
        "GET / HTTP/1.1 [Host: unknown.invalid] [app: nosuch]",
        "GET / HTTP/1.1 [Host: unknown.invalid] [Cookie: app=app3]",
        "GET / HTTP/1.1 [Host: unknown.invalid] [Cookie: app=\"app3\"]",
        "GET / HTTP/1.1 [Host: unknown.invalid] [Cookie: theme=dark; app=app3]",
        "GET / HTTP/1.1 [Host: unknown.invalid] [Cookie: APP=app3]",
        // Header and cookie disagree: nginx's last matching `if` (the cookie) wins.
        "GET / HTTP/1.1 [Host: unknown.invalid] [app: app3] [Cookie: app=app2]",
        "GET / HTTP/1.0",
        "GET / HTTP/1.0 [Host: unknown.invalid] [Connection: keep-alive]",
        "HEAD / HTTP/1.1 [Host: unknown.invalid]",
        "POST / HTTP/1.1 [Host: unknown.invalid]",
        "GET / HTTP/1.1 [Host: unknown.invalid] [X-Forwarded-For: 203.0.113.7]",
        "GET / HTTP/1.1 [Host: unknown.invalid] [Upgrade: websocket] [Connection: Upgrade]",
        "GET /a/../x HTTP/1.1 [Host: unknown.invalid]",
        "GET /../x HTTP/1.1 [Host: unknown.invalid]",
    ] {
        assert!(has(&probes, line), "missing {line}");
    }
    assert!(probes.iter().all(|p| p.listen == 0));
    // Repeats of the same request are there on purpose (balancing order), nothing else.
    let plain = probes
        .iter()
        .filter(|p| p.describe() == "GET / HTTP/1.1 [Host: unknown.invalid]");
    assert_eq!(plain.count(), 4);
}

#[test]
fn server_names_hash_keys_and_the_slash_redirect_are_tried() {
    let (config, listens) = fixture("least-conn-backup.conf");
    let probes = generate(&config, &listens);
    for line in [
        "GET / HTTP/1.1 [Host: api.example.test]",
        "GET / HTTP/1.1 [Host: ADMIN.EXAMPLE.TEST:8080]",
        "GET /session/ HTTP/1.1 [Host: api.example.test] [Cookie: sessionid=key3]",
        "GET /session HTTP/1.1 [Host: api.example.test]",
        "GET /session/item HTTP/1.1 [Host: api.example.test]",
    ] {
        assert!(has(&probes, line), "missing {line}");
    }
}

#[test]
fn absolute_targets_and_options_star_are_tried_and_refusals_go_last() {
    let (config, listens) = fixture("least-conn-backup.conf");
    let probes = generate(&config, &listens);
    let at = |line: &str| {
        probes
            .iter()
            .position(|p| p.describe() == line)
            .unwrap_or_else(|| panic!("missing {line}"))
    };
    at("GET http://api.example.test/ HTTP/1.1 [Host: api.example.test]");
    at("GET http://admin.example.test/ HTTP/1.1 [Host: admin.example.test]");
    at("GET http://api.example.test/ HTTP/1.1");
    // nginx proxies the first and refuses the second, pinlb the other way round: last,
    // so that neither moves one proxy's round robin before the other requests.
    let tail = [
        at("GET http://api.example.test/ HTTP/1.1 [Host: unknown.invalid]"),
        at("OPTIONS * HTTP/1.1 [Host: unknown.invalid]"),
    ];
    assert_eq!(tail, [probes.len() - 2, probes.len() - 1]);
}

#[test]
fn paths_for_each_kind_of_location() {
    assert_eq!(
        route_paths(&PathMatch::Exact("/healthz".into())),
        ["/healthz", "/healthz/"]
    );
    assert_eq!(route_paths(&PathMatch::Prefix("/".into())), ["/", "/item"]);
    assert_eq!(
        route_paths(&PathMatch::Prefix("/api".into())),
        ["/api", "/api/item"]
    );
    let regex = |pattern: &str| PathMatch::Regex {
        pattern: pattern.into(),
        case_insensitive: true,
    };
    assert_eq!(route_paths(&regex(r"\.php$")), ["/x.php", "/X.PHP"]);
    assert_eq!(route_paths(&regex(r"^/api/v\d+/")), Vec::<String>::new());
    assert_eq!(regex_example("^/static/"), Some("/static/".into()));
    assert_eq!(regex_example("^static"), None);
}

#[test]
fn a_probe_is_one_request_on_its_own_connection() {
    let probe = Probe::get(0, "a.test", "/x").method("POST");
    assert_eq!(
        String::from_utf8(probe.to_bytes(7)).unwrap(),
        "POST /x HTTP/1.1\r\nHost: a.test\r\nX-Pinlb-Compare: 7\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\na=1&b=2"
    );
    let old = Probe {
        http10: true,
        headers: Vec::new(),
        ..Probe::get(0, "", "/")
    };
    assert_eq!(
        String::from_utf8(old.to_bytes(1)).unwrap(),
        "GET / HTTP/1.0\r\nX-Pinlb-Compare: 1\r\n\r\n"
    );
}
