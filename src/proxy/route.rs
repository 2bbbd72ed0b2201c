//! The routing decision for a request head, as a pure function: the path normalised as
//! nginx normalises it, which virtual server and route take the request, whether pinlb
//! answers it itself, and where a proxied request goes.

use super::ctx::{Pinned, Routed};
use crate::net::forwarded::ClientAddr;
use crate::net::realip::RealIpRule;
use crate::observe::metrics::PinOutcome;
use crate::request;
use crate::routing::pin::{PinAction, pin_action};
use crate::routing::uri;
use crate::runtime::{RouteAction, Runtime};
use crate::upstream::{Group, Pool};
use crate::variables::{ConnAddrs, RequestInfo, TlsConn};
use http::header::CONTENT_LENGTH;
use pingora::http::RequestHeader;
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// What to do with a request, decided from its head.
pub struct Routing {
    /// The virtual server that takes the request.
    pub virtual_server: Option<usize>,
    /// The route it matched, and for proxied requests the pool and pin.
    pub routed: Option<Routed>,
    /// `None`: proxy the request. Otherwise pinlb answers it itself.
    pub answer: Option<Answer>,
    /// How the route's pin went, for the metrics.
    pub pin: Option<PinOutcome>,
    /// The normalised path (`$uri`) when it is not the request's own path, as it is for
    /// `//a`, `/./a`, `/%61`: the common request needs no copy.
    pub uri: Option<Vec<u8>>,
    /// The client address realip found, when it replaced the connection's.
    pub real_ip: Option<IpAddr>,
}

/// A response pinlb writes itself.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// A short `text/plain` response of pinlb's own, before any limit applies (nginx
    /// answers these before its preaccess phase).
    Text(u16, String),
    /// The route's `return` (nginx's rewrite phase, also before the limits).
    Return,
    /// A `503` for a pin to a server that is down, after the limits (nginx's content
    /// phase).
    Refused(String),
    /// nginx's automatic redirect: `301` to this location (the location named by the
    /// path and a final `/`, and the query).
    AddSlash(String),
}

/// Routes a request that arrived on `local` from `client`; `conn` holds the connection's
/// PROXY protocol client, when realip may need it.
pub fn decide(
    runtime: &Runtime,
    local: Option<SocketAddr>,
    mut client: Option<IpAddr>,
    conn: Option<&ConnAddrs>,
    tls: Option<&TlsConn>,
    req: &RequestHeader,
) -> Routing {
    let mut routing = Routing {
        virtual_server: None,
        routed: None,
        answer: None,
        pin: None,
        uri: None,
        real_ip: None,
    };
    // nginx normalises the path while it reads the request line, before `Host` picks a
    // server; a path it cannot normalise is a 400.
    let raw = request::path(req);
    let normalized = match raw {
        // `OPTIONS *` (asterisk-form) names no path to normalise.
        b"*" => Ok(Cow::Borrowed(raw)),
        _ => uri::normalize_path(raw, runtime.merge_slashes(local)),
    };
    let path = match normalized {
        Ok(path) => path,
        Err(e) => {
            log::info!("client sent invalid request: {e}");
            routing.virtual_server = runtime.find_virtual_server(local, || None);
            routing.answer = Some(text(400, "400 Bad Request"));
            return routing;
        }
    };
    let Some(vs) = runtime.find_virtual_server(local, || request::host(req)) else {
        routing.answer = Some(text(404, "404 Not Found: no server for this address"));
        return routing;
    };
    routing.virtual_server = Some(vs);
    // nginx's post-read phase: realip with the server's settings.
    if let Some(rule) = &runtime.virtual_servers[vs].real_ip {
        routing.real_ip = real_ip(rule, client, conn, req);
    }
    if let Some(reason) = super::head::refusal(req) {
        routing.answer = Some(text(400, reason));
        return routing;
    }
    if let Cow::Owned(_) = path {
        routing.uri = Some(path.to_vec());
    } else if path.len() != raw.len() {
        // A raw (non-UTF-8) target whose query follows the path.
        routing.uri = Some(path.to_vec());
    }
    // `OPTIONS *` asks about the server as a whole: it goes where `/` goes.
    let path: &[u8] = match &*path {
        b"*" => b"/",
        path => path,
    };
    // nginx's automatic redirect, found with the location and before the regexes.
    if let Some((at, name)) = runtime.find_redirect(vs, path) {
        let location = match req.uri.query() {
            Some(query) => format!("{name}?{query}"),
            None => name.to_string(),
        };
        routing.answer = Some(Answer::AddSlash(location));
        routing.routed = Some(Routed {
            at,
            pool: None,
            pin: None,
            sticky: None,
        });
        return routing;
    }
    let Some(at) = runtime.find_route(vs, path) else {
        routing.answer = Some(text(404, "404 Not Found: no route for this path"));
        return routing;
    };
    let route = runtime.route_at(at);
    // nginx's preaccess phase: realip again with the location's, if the server's did not
    // change the address.
    if let (None, Some(rule)) = (routing.real_ip, &route.real_ip) {
        routing.real_ip = real_ip(rule, client, conn, req);
    }
    if routing.real_ip.is_some() {
        client = routing.real_ip;
    }
    let mut routed = Routed {
        at,
        pool: None,
        pin: None,
        sticky: None,
    };
    let declared = || {
        let value = request::header(req, CONTENT_LENGTH)?;
        std::str::from_utf8(value).ok()?.parse::<u64>().ok()
    };
    let too_large = route.settings.client_max_body_size;
    if too_large.is_some_and(|max| declared().is_some_and(|len| len > max)) {
        routing.answer = Some(text(413, "413 Request Entity Too Large"));
    } else {
        match &route.action {
            RouteAction::Return { .. } => routing.answer = Some(Answer::Return),
            RouteAction::Proxy(proxy) => {
                let action = match proxy.pins.is_empty() {
                    true => PinAction::Absent,
                    false => {
                        let info = RequestInfo {
                            req,
                            uri: Some(path),
                            client_ip: client,
                            conn,
                            tls,
                            server_port: local.map(|l| l.port()),
                            server_name: &runtime.virtual_servers[vs].server_name,
                            proxy_host: &proxy.proxy_host,
                            maps: &runtime.maps,
                        };
                        let guard = proxy.pin_guard.as_deref();
                        pin_action(
                            &proxy.pins,
                            &proxy.pool,
                            proxy.on_unhealthy,
                            guard,
                            &info,
                            |p, g| p.group_usable(g),
                        )
                    }
                };
                let (pool, mut pin, outcome) = match action {
                    PinAction::Absent => (&proxy.pool, None, None),
                    PinAction::Unknown => (&proxy.pool, None, Some(PinOutcome::Unknown)),
                    PinAction::Unsigned => (&proxy.pool, None, Some(PinOutcome::BadSignature)),
                    PinAction::NotAllowed => (&proxy.pool, None, Some(PinOutcome::NotAllowed)),
                    PinAction::Pool(pool) => (pool, None, Some(PinOutcome::Pinned)),
                    PinAction::Server {
                        pool,
                        server,
                        strict,
                    } => (
                        pool,
                        Some(Pinned { server, strict }),
                        Some(PinOutcome::Pinned),
                    ),
                    PinAction::FellBack { pool, server } => {
                        log::debug!(
                            "pinned server \"{}\" of upstream \"{}\" is unusable; balancing instead",
                            name_of(pool, server),
                            pool.name
                        );
                        (&proxy.pool, None, Some(PinOutcome::FellBack))
                    }
                    PinAction::Refuse { pool, server } => {
                        let body = format!(
                            "503 Service Unavailable: server \"{}\" of upstream \"{}\" is down",
                            name_of(pool, server),
                            pool.name
                        );
                        routing.answer = Some(Answer::Refused(format!("{body}\n")));
                        (&proxy.pool, None, Some(PinOutcome::Refused))
                    }
                };
                routing.pin = outcome;
                // An explicit pin beats the sticky cookie, which only the route's own
                // pool reads. Without `sticky` this is one test of a field.
                if let Some(sticky) = &pool.sticky {
                    if pin.is_none() && Arc::ptr_eq(pool, &proxy.pool) {
                        routed.sticky = request::nginx_cookie(req, &sticky.cookie)
                            .and_then(|v| sticky_server(pool, v));
                        if let Some(i) = routed.sticky.filter(|&i| pool.is_usable(i)) {
                            pin = Some(Pinned {
                                server: Group::one(i),
                                strict: false,
                            });
                        }
                    }
                }
                routed.pool = Some(Arc::clone(pool));
                routed.pin = pin;
            }
        }
    }
    routing.routed = Some(routed);
    routing
}

/// The client address `rule` finds for a request from `peer`, when it replaces it.
fn real_ip(
    rule: &RealIpRule,
    peer: Option<IpAddr>,
    conn: Option<&ConnAddrs>,
    req: &RequestHeader,
) -> Option<IpAddr> {
    // Port 0: pinlb has no `$remote_port` for the port to matter.
    let peer = ClientAddr::ip(peer?, 0);
    let proxy_source = conn.and_then(|c| c.proxy_protocol);
    let found = match rule.header() {
        Some(name) => {
            let lines = req.headers.get_all(name).iter().map(|v| v.as_bytes());
            rule.apply(peer, lines, proxy_source)
        }
        None => rule.apply(peer, std::iter::empty(), proxy_source),
    };
    found.and_then(|addr| addr.ip_addr())
}

/// The server a sticky cookie value names; a forged, stale or unknown value names none
/// (the request is balanced and gets a new cookie).
fn sticky_server(pool: &Pool, value: &[u8]) -> Option<usize> {
    let found = pool.sticky.as_ref()?.find(value);
    if found.is_none() {
        log::debug!(
            "sticky cookie of upstream \"{}\" names no server ({} bytes); balancing",
            pool.name,
            value.len()
        );
    }
    found
}

/// The name of a pinned server, for messages.
fn name_of(pool: &Pool, group: Group) -> &str {
    pool.servers
        .get(group.first)
        .filter(|_| group.len > 0)
        .map_or("(no address yet)", |s| s.name.as_str())
}

fn text(status: u16, line: &str) -> Answer {
    Answer::Text(status, format!("{line}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::json;
    use crate::observe::access_log::Sinks;
    use crate::runtime::CompileEnv;
    use crate::upstream::resolve::Offline;
    use std::path::Path;

    fn runtime(routes: &str) -> Runtime {
        let text = format!(
            r#"{{ "listeners": [{{ "addr": "127.0.0.1:8080" }}],
                "upstreams": {{ "web": {{ "servers": [
                    {{ "name": "app1", "addr": "127.0.0.1:9001" }},
                    {{ "name": "app2", "addr": "127.0.0.1:9002" }} ] }} }},
                "routes": [{routes}], "access_log": {{ "path": "off" }} }}"#
        );
        let config = json::parse(Path::new("t.json"), &text).unwrap();
        let env = CompileEnv {
            dns: &Offline::default(),
            discovered: None,
            sinks: &Sinks::offline(),
            previous: None,
        };
        Runtime::compile(&config, &env).unwrap()
    }

    fn get(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        r.insert_header("Host", "pinlb.test").unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    const PINNED: &str =
        r#"{ "path": "/", "upstream": "web", "pin": { "header": "app", "cookie": "app" } }"#;

    #[test]
    fn a_pin_names_the_server_and_counts_as_pinned() {
        let rt = runtime(PINNED);
        let routing = decide(&rt, None, None, None, None, &get("/", &[("app", "app2")]));
        assert_eq!(routing.answer, None);
        let routed = routing.routed.unwrap();
        assert_eq!(
            routed.pin,
            Some(Pinned {
                server: Group::one(1),
                strict: false
            })
        );
        assert_eq!(routed.pool.unwrap().name, "web");
        assert!(matches!(routing.pin, Some(PinOutcome::Pinned)));
    }

    #[test]
    fn without_a_pin_the_route_pool_balances() {
        let rt = runtime(PINNED);
        let routing = decide(&rt, None, None, None, None, &get("/x", &[]));
        assert!(routing.pin.is_none());
        assert!(routing.routed.unwrap().pin.is_none());
        let unknown = decide(&rt, None, None, None, None, &get("/", &[("app", "nope")]));
        assert!(matches!(unknown.pin, Some(PinOutcome::Unknown)));
    }

    #[test]
    fn unmatched_paths_and_large_bodies_are_answered() {
        let rt = runtime(
            r#"{ "path": "/api", "upstream": "web", "proxy": { "client_max_body_size": 10 } }"#,
        );
        let none = decide(&rt, None, None, None, None, &get("/other", &[]));
        assert_eq!(
            none.answer,
            Some(Answer::Text(
                404,
                "404 Not Found: no route for this path\n".into()
            ))
        );
        assert!(none.routed.is_none() && none.virtual_server == Some(0));
        let big = decide(
            &rt,
            None,
            None,
            None,
            None,
            &get("/api", &[("Content-Length", "11")]),
        );
        assert!(matches!(big.answer, Some(Answer::Text(413, _))));
        let small = decide(
            &rt,
            None,
            None,
            None,
            None,
            &get("/api", &[("Content-Length", "10")]),
        );
        assert_eq!(small.answer, None);
    }

    #[test]
    fn return_routes_are_answered_by_their_route() {
        let rt = runtime(r#"{ "path": "/", "return": { "status": 204 } }"#);
        let routing = decide(&rt, None, None, None, None, &get("/", &[]));
        assert_eq!(routing.answer, Some(Answer::Return));
        assert_eq!(routing.routed.unwrap().at, (0, 0));
    }

    #[test]
    fn locations_match_the_normalised_path() {
        let rt = runtime(
            r#"{ "path": "/", "upstream": "web" },
               { "path": "/admin", "return": { "status": 403 } }"#,
        );
        for attack in [
            "/admin",
            "//admin",
            "/./admin",
            "/x/../admin",
            "/%61dmin",
            "/%2e/admin",
        ] {
            let routing = decide(&rt, None, None, None, None, &get(attack, &[]));
            assert_eq!(routing.answer, Some(Answer::Return), "{attack}");
            assert_eq!(routing.routed.unwrap().at, (0, 1), "{attack}");
        }
        let plain = decide(&rt, None, None, None, None, &get("/admin/x?y=1", &[]));
        assert!(plain.uri.is_none(), "an unchanged path is not copied");
        let changed = decide(&rt, None, None, None, None, &get("//admin", &[]));
        assert_eq!(changed.uri.as_deref(), Some(&b"/admin"[..]));
        for bad in ["/../x", "/a/../../x", "/%2e%2e/x", "/a%00", "/a%zz"] {
            let routing = decide(&rt, None, None, None, None, &get(bad, &[]));
            assert_eq!(
                routing.answer,
                Some(Answer::Text(400, "400 Bad Request\n".into())),
                "{bad}"
            );
        }
    }
}
