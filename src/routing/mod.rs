//! Request routing: the `app` pin (which server a request names, and what happens when
//! that server is down); virtual servers and locations in submodules.

pub mod locations;
pub mod server_names;

use crate::config::OnUnhealthy;
use crate::request;
use crate::runtime::{Pin, PinBinding, PinKey};
use crate::upstream::Pool;
use pingora::http::RequestHeader;
use std::sync::Arc;

/// What the pins of a route say about a request.
#[derive(Clone, Copy)]
pub enum Requested<'a> {
    /// No pin source is present.
    Nothing,
    /// Pin sources are present but none matches: balance normally.
    Unknown,
    /// A pin names this server of this pool.
    Server(&'a Arc<Pool>, usize),
    /// A pin names this whole pool.
    Pool(&'a Arc<Pool>),
}

impl PartialEq for Requested<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Requested::Nothing, Requested::Nothing) | (Requested::Unknown, Requested::Unknown) => {
                true
            }
            (Requested::Server(a, i), Requested::Server(b, j)) => Arc::ptr_eq(a, b) && i == j,
            (Requested::Pool(a), Requested::Pool(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl std::fmt::Debug for Requested<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requested::Nothing => f.write_str("Nothing"),
            Requested::Unknown => f.write_str("Unknown"),
            Requested::Server(pool, i) => write!(f, "Server({}, {i})", pool.name),
            Requested::Pool(pool) => write!(f, "Pool({})", pool.name),
        }
    }
}

/// Consults the pins in order; the first that matches wins. A value that matches nothing
/// is skipped, as an nginx `if` that does not match would be.
pub fn requested<'a>(
    pins: &'a [Pin],
    route_pool: &'a Arc<Pool>,
    req: &RequestHeader,
) -> Requested<'a> {
    let mut outcome = Requested::Nothing;
    for pin in pins {
        let value = match &pin.source {
            PinKey::Header(name) => request::header(req, name),
            PinKey::Cookie(name) => request::cookie(req, name),
        };
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        let found = match &pin.target {
            PinBinding::ServerName => route_pool
                .find(value)
                .map(|i| Requested::Server(route_pool, i)),
            PinBinding::Server {
                equals,
                pool,
                server,
            } => (value == equals).then_some(Requested::Server(pool, *server)),
            PinBinding::Pool { equals, pool } => (value == equals).then_some(Requested::Pool(pool)),
        };
        match found {
            Some(found) => return found,
            None => outcome = Requested::Unknown,
        }
    }
    outcome
}

/// Where a pinned request goes once the server's health is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinDecision {
    /// Send it to the pinned server.
    Pinned,
    /// The server is down: balance over the others instead.
    FallBack,
    /// The server is down: answer 503.
    Refuse,
}

pub fn decide(usable: bool, policy: OnUnhealthy) -> PinDecision {
    match (usable, policy) {
        (true, _) | (false, OnUnhealthy::Use) => PinDecision::Pinned,
        (false, OnUnhealthy::Fallback) => PinDecision::FallBack,
        (false, OnUnhealthy::Refuse) => PinDecision::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, servers: &[&str]) -> Arc<Pool> {
        Arc::new(Pool::for_tests(name, servers))
    }

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn by_name(source: PinKey) -> Pin {
        Pin {
            source,
            target: PinBinding::ServerName,
        }
    }

    fn native_pins() -> Vec<Pin> {
        vec![
            by_name(PinKey::Header(http::HeaderName::from_static("app"))),
            by_name(PinKey::Cookie("app".into())),
        ]
    }

    fn server_of(r: Requested<'_>) -> Option<(String, usize)> {
        match r {
            Requested::Server(p, i) => Some((p.name.clone(), i)),
            _ => None,
        }
    }

    #[test]
    fn header_names_a_server() {
        let web = pool("web", &["app1", "app2", "app3"]);
        let (pins, r) = (native_pins(), req(&[("app", "app2")]));
        let got = requested(&pins, &web, &r);
        assert_eq!(server_of(got), Some(("web".into(), 1)));
    }

    #[test]
    fn cookie_names_a_server() {
        let web = pool("web", &["app1", "app2", "app3"]);
        let (pins, r) = (native_pins(), req(&[("Cookie", "x=1; app=app3")]));
        let got = requested(&pins, &web, &r);
        assert_eq!(server_of(got), Some(("web".into(), 2)));
    }

    #[test]
    fn header_beats_cookie() {
        let web = pool("web", &["app1", "app2", "app3"]);
        let r = req(&[("Cookie", "app=app3"), ("app", "app1")]);
        assert_eq!(
            server_of(requested(&native_pins(), &web, &r)),
            Some(("web".into(), 0))
        );
    }

    #[test]
    fn unknown_header_value_lets_the_cookie_decide() {
        let web = pool("web", &["app1", "app2", "app3"]);
        let r = req(&[("app", "nope"), ("Cookie", "app=app2")]);
        assert_eq!(
            server_of(requested(&native_pins(), &web, &r)),
            Some(("web".into(), 1))
        );
    }

    #[test]
    fn unknown_and_absent_values_are_told_apart() {
        let web = pool("web", &["app1"]);
        assert_eq!(
            requested(&native_pins(), &web, &req(&[("app", "nope")])),
            Requested::Unknown
        );
        assert_eq!(
            requested(&native_pins(), &web, &req(&[])),
            Requested::Nothing
        );
        assert_eq!(
            requested(&native_pins(), &web, &req(&[("app", "")])),
            Requested::Nothing
        );
    }

    #[test]
    fn value_pins_send_to_their_target() {
        let web = pool("web", &["app1:80", "app2:80"]);
        let beta = pool("beta", &["b1"]);
        let pins = vec![
            Pin {
                source: PinKey::Cookie("app".into()),
                target: PinBinding::Server {
                    equals: b"app2".to_vec(),
                    pool: Arc::clone(&web),
                    server: 1,
                },
            },
            Pin {
                source: PinKey::Header(http::HeaderName::from_static("app")),
                target: PinBinding::Pool {
                    equals: b"beta".to_vec(),
                    pool: Arc::clone(&beta),
                },
            },
        ];
        let both = req(&[("app", "beta"), ("Cookie", "app=app2")]);
        assert_eq!(
            server_of(requested(&pins, &web, &both)),
            Some(("web".into(), 1))
        );
        let header_only = req(&[("app", "beta")]);
        assert!(
            matches!(requested(&pins, &web, &header_only), Requested::Pool(p) if p.name == "beta")
        );
        assert_eq!(
            requested(&pins, &web, &req(&[("app", "app1")])),
            Requested::Unknown
        );
    }

    #[test]
    fn a_down_server_follows_the_policy() {
        assert_eq!(decide(true, OnUnhealthy::Refuse), PinDecision::Pinned);
        assert_eq!(decide(false, OnUnhealthy::Fallback), PinDecision::FallBack);
        assert_eq!(decide(false, OnUnhealthy::Refuse), PinDecision::Refuse);
        assert_eq!(decide(false, OnUnhealthy::Use), PinDecision::Pinned);
    }
}
