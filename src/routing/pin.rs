//! The `app` pin: which server or pool a request names by header or cookie, and what
//! happens when that server is down.

use crate::config::OnUnhealthy;
use crate::request;
use crate::upstream::{Group, Pool};
use http::HeaderName;
use pingora::http::RequestHeader;
use std::sync::Arc;

/// A pin bound to the runtime's pools.
pub struct Pin {
    pub source: PinKey,
    pub target: PinBinding,
}

/// Where a pin value is read, prepared for lookups.
pub enum PinKey {
    Header(HeaderName),
    /// A cookie by its exact name, quotes around the value removed (native pins).
    Cookie(String),
    /// nginx's `$cookie_NAME`: any case, the value as sent.
    CookieVariable(String),
}

pub enum PinBinding {
    /// The value names a server of the route's pool.
    ServerName,
    /// This value sends the request to a server of a pool (every address of it),
    /// sharing its health.
    Server {
        equals: Vec<u8>,
        pool: Arc<Pool>,
        server: Group,
    },
    /// This value sends the request to a whole pool.
    Pool { equals: Vec<u8>, pool: Arc<Pool> },
}

/// What the pins of a route say about a request.
#[derive(Clone, Copy)]
enum Requested<'a> {
    /// No pin source is present.
    Nothing,
    /// Pin sources are present but none matches: balance normally.
    Unknown,
    /// A pin names this server (its addresses) of this pool.
    Server(&'a Arc<Pool>, Group),
    /// A pin names this whole pool.
    Pool(&'a Arc<Pool>),
}

#[cfg(test)]
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

#[cfg(test)]
impl std::fmt::Debug for Requested<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requested::Nothing => f.write_str("Nothing"),
            Requested::Unknown => f.write_str("Unknown"),
            Requested::Server(pool, g) => write!(f, "Server({}, {})", pool.name, g.first),
            Requested::Pool(pool) => write!(f, "Pool({})", pool.name),
        }
    }
}

/// Consults the pins in order; the first that matches wins. A value that matches nothing
/// is skipped, as an nginx `if` that does not match would be.
fn requested<'a>(pins: &'a [Pin], route_pool: &'a Arc<Pool>, req: &RequestHeader) -> Requested<'a> {
    let mut outcome = Requested::Nothing;
    for pin in pins {
        let value = match &pin.source {
            PinKey::Header(name) => request::header(req, name),
            PinKey::Cookie(name) => request::cookie(req, name),
            PinKey::CookieVariable(name) => request::nginx_cookie(req, name),
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

/// What a route's pins make of a request: the whole pin decision, health included.
#[derive(Clone, Copy)]
pub enum PinAction<'a> {
    /// No pin value is present: balance over the route's pool.
    Absent,
    /// Pin values are present but name nothing: balance over the route's pool.
    Unknown,
    /// Send the request to this server (one of its addresses) first; `strict`: never to
    /// another one (`on_unhealthy` `use` or `refuse`).
    Server {
        pool: &'a Arc<Pool>,
        server: Group,
        strict: bool,
    },
    /// Balance over this pool instead of the route's.
    Pool(&'a Arc<Pool>),
    /// The named server is unusable: balance over the route's pool instead.
    FellBack { pool: &'a Arc<Pool>, server: Group },
    /// The named server is unusable and the route says so: answer 503.
    Refuse { pool: &'a Arc<Pool>, server: Group },
}

/// Decides what the `pins` of a route do with `req`, given whether a named server is
/// usable (`usable(pool, server)`: some address of it, by health checks and limits) and
/// the route's policy.
pub fn pin_action<'a>(
    pins: &'a [Pin],
    route_pool: &'a Arc<Pool>,
    policy: OnUnhealthy,
    req: &RequestHeader,
    usable: impl FnOnce(&Pool, Group) -> bool,
) -> PinAction<'a> {
    match requested(pins, route_pool, req) {
        Requested::Nothing => PinAction::Absent,
        Requested::Unknown => PinAction::Unknown,
        Requested::Pool(pool) => PinAction::Pool(pool),
        Requested::Server(pool, server) => match (usable(pool, server), policy) {
            (true, _) | (false, OnUnhealthy::Use) => PinAction::Server {
                pool,
                server,
                strict: policy != OnUnhealthy::Fallback,
            },
            (false, OnUnhealthy::Fallback) => PinAction::FellBack { pool, server },
            (false, OnUnhealthy::Refuse) => PinAction::Refuse { pool, server },
        },
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
            Requested::Server(p, g) => Some((p.name.clone(), g.first)),
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
                    server: Group::one(1),
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

    fn describe(action: PinAction<'_>) -> String {
        match action {
            PinAction::Absent => "absent".into(),
            PinAction::Unknown => "unknown".into(),
            PinAction::Server {
                pool,
                server,
                strict,
            } => format!("server {}/{} strict={strict}", pool.name, server.first),
            PinAction::Pool(pool) => format!("pool {}", pool.name),
            PinAction::FellBack { pool, server } => {
                format!("fell back {}/{}", pool.name, server.first)
            }
            PinAction::Refuse { pool, server } => format!("refuse {}/{}", pool.name, server.first),
        }
    }

    #[test]
    fn a_down_server_follows_the_policy() {
        let web = pool("web", &["app1", "app2"]);
        let pins = native_pins();
        let r = req(&[("app", "app2")]);
        let act = |policy, up| describe(pin_action(&pins, &web, policy, &r, |_, _| up));
        assert_eq!(
            act(OnUnhealthy::Fallback, true),
            "server web/1 strict=false"
        );
        assert_eq!(act(OnUnhealthy::Refuse, true), "server web/1 strict=true");
        assert_eq!(act(OnUnhealthy::Use, false), "server web/1 strict=true");
        assert_eq!(act(OnUnhealthy::Fallback, false), "fell back web/1");
        assert_eq!(act(OnUnhealthy::Refuse, false), "refuse web/1");
        let absent = pin_action(&pins, &web, OnUnhealthy::Fallback, &req(&[]), |_, _| true);
        assert_eq!(describe(absent), "absent");
        let unknown = req(&[("app", "nope")]);
        let unknown = pin_action(&pins, &web, OnUnhealthy::Fallback, &unknown, |_, _| true);
        assert_eq!(describe(unknown), "unknown");
    }
}
