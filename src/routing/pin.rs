//! The `app` pin: which server or pool a request names by header, cookie or variable,
//! whether this client may pin at all (`allow_from`) and with a signed value only
//! (`secret`), and what happens when the named server is down.

use super::signed_pin::PinKey;
use crate::config::OnUnhealthy;
use crate::net::geo::AllowList;
use crate::request;
use crate::upstream::{Group, Pool};
use crate::variables::{RequestInfo, Template};
use http::HeaderName;
use std::sync::Arc;

/// A pin bound to the runtime's pools.
pub struct Pin {
    pub source: PinFrom,
    pub target: PinBinding,
}

/// Where a pin value is read, prepared for lookups.
pub enum PinFrom {
    Header(HeaderName),
    /// A cookie by its exact name, quotes around the value removed (native pins).
    Cookie(String),
    /// Any variable (nginx `if ($pin_app = "app1")` over a `map` or `geo`).
    Variable(Template),
}

/// Who may use a route's pins, and how their values must be signed.
#[derive(Default)]
pub struct PinGuard {
    /// Clients outside these networks have their pins ignored; `None`: everyone may pin.
    pub allow: Option<AllowList>,
    /// Pin values must be `NAME.MAC` made with this key; `None`: bare names.
    pub key: Option<PinKey>,
}

impl PinGuard {
    fn allows(guard: Option<&PinGuard>, info: &RequestInfo<'_>) -> bool {
        match guard.and_then(|g| g.allow.as_ref()) {
            None => true,
            Some(list) => info.client_ip.is_some_and(|ip| list.allows(ip)),
        }
    }
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
    /// A pin value is present but not signed with the route's secret, and none matches.
    Unsigned,
    /// A pin names this server (its addresses) of this pool.
    Server(&'a Arc<Pool>, Group),
    /// A pin names this whole pool.
    Pool(&'a Arc<Pool>),
}

#[cfg(test)]
impl PartialEq for Requested<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Requested::Nothing, Requested::Nothing)
            | (Requested::Unknown, Requested::Unknown)
            | (Requested::Unsigned, Requested::Unsigned) => true,
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
            Requested::Unsigned => f.write_str("Unsigned"),
            Requested::Server(pool, g) => write!(f, "Server({}, {})", pool.name, g.first),
            Requested::Pool(pool) => write!(f, "Pool({})", pool.name),
        }
    }
}

/// Consults the pins in order; the first that matches wins. A value that matches nothing
/// is skipped, as an nginx `if` that does not match would be. With a `key`, a value counts
/// only when it is signed, and then by the name it signs.
fn requested<'a>(
    pins: &'a [Pin],
    route_pool: &'a Arc<Pool>,
    info: &RequestInfo<'_>,
    key: Option<&PinKey>,
) -> Requested<'a> {
    let mut outcome = Requested::Nothing;
    let mut expanded = Vec::new();
    for pin in pins {
        let value = match &pin.source {
            PinFrom::Header(name) => request::header(info.req, name),
            PinFrom::Cookie(name) => request::cookie(info.req, name),
            PinFrom::Variable(template) => {
                expanded.clear();
                template.expand(info, &mut expanded);
                Some(&expanded[..])
            }
        };
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        let value = match key {
            None => value,
            Some(key) => match key.verify(value) {
                Some(name) => name.as_bytes(),
                None => {
                    outcome = Requested::Unsigned;
                    continue;
                }
            },
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
            None if matches!(outcome, Requested::Nothing) => outcome = Requested::Unknown,
            None => {}
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
    /// Pin values are present but none is signed with the route's secret: balance.
    Unsigned,
    /// Pin values are present but the client is outside the route's `allow_from`: balance.
    NotAllowed,
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

/// Decides what the `pins` of a route do with a request, given who may pin and how
/// (`guard`), whether a named server is usable (`usable(pool, server)`: some address of
/// it, by health checks and limits) and the route's policy.
pub fn pin_action<'a>(
    pins: &'a [Pin],
    route_pool: &'a Arc<Pool>,
    policy: OnUnhealthy,
    guard: Option<&PinGuard>,
    info: &RequestInfo<'_>,
    usable: impl FnOnce(&Pool, Group) -> bool,
) -> PinAction<'a> {
    let key = guard.and_then(|g| g.key.as_ref());
    match requested(pins, route_pool, info, key) {
        Requested::Nothing => PinAction::Absent,
        _ if !PinGuard::allows(guard, info) => PinAction::NotAllowed,
        Requested::Unknown => PinAction::Unknown,
        Requested::Unsigned => PinAction::Unsigned,
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
    use pingora::http::RequestHeader;

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

    fn info(req: &RequestHeader) -> RequestInfo<'_> {
        RequestInfo {
            req,
            uri: None,
            client_ip: Some("10.0.0.7".parse().unwrap()),
            conn: None,
            tls: None,
            server_port: None,
            server_name: "",
            proxy_host: "",
            maps: &[],
        }
    }

    fn by_name(source: PinFrom) -> Pin {
        Pin {
            source,
            target: PinBinding::ServerName,
        }
    }

    fn native_pins() -> Vec<Pin> {
        vec![
            by_name(PinFrom::Header(http::HeaderName::from_static("app"))),
            by_name(PinFrom::Cookie("app".into())),
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
        let got = requested(&pins, &web, &info(&r), None);
        assert_eq!(server_of(got), Some(("web".into(), 1)));
    }

    #[test]
    fn cookie_names_a_server() {
        let web = pool("web", &["app1", "app2", "app3"]);
        let (pins, r) = (native_pins(), req(&[("Cookie", "x=1; app=app3")]));
        let got = requested(&pins, &web, &info(&r), None);
        assert_eq!(server_of(got), Some(("web".into(), 2)));
    }

    #[test]
    fn header_beats_cookie() {
        let web = pool("web", &["app1", "app2", "app3"]);
        let r = req(&[("Cookie", "app=app3"), ("app", "app1")]);
        assert_eq!(
            server_of(requested(&native_pins(), &web, &info(&r), None)),
            Some(("web".into(), 0))
        );
    }

    #[test]
    fn unknown_header_value_lets_the_cookie_decide() {
        let web = pool("web", &["app1", "app2", "app3"]);
        let r = req(&[("app", "nope"), ("Cookie", "app=app2")]);
        assert_eq!(
            server_of(requested(&native_pins(), &web, &info(&r), None)),
            Some(("web".into(), 1))
        );
    }

    #[test]
    fn unknown_and_absent_values_are_told_apart() {
        let web = pool("web", &["app1"]);
        assert_eq!(
            requested(&native_pins(), &web, &info(&req(&[("app", "nope")])), None),
            Requested::Unknown
        );
        assert_eq!(
            requested(&native_pins(), &web, &info(&req(&[])), None),
            Requested::Nothing
        );
        assert_eq!(
            requested(&native_pins(), &web, &info(&req(&[("app", "")])), None),
            Requested::Nothing
        );
    }

    #[test]
    fn value_pins_send_to_their_target() {
        let web = pool("web", &["app1:80", "app2:80"]);
        let beta = pool("beta", &["b1"]);
        let pins = vec![
            Pin {
                source: PinFrom::Cookie("app".into()),
                target: PinBinding::Server {
                    equals: b"app2".to_vec(),
                    pool: Arc::clone(&web),
                    server: Group::one(1),
                },
            },
            Pin {
                source: PinFrom::Header(http::HeaderName::from_static("app")),
                target: PinBinding::Pool {
                    equals: b"beta".to_vec(),
                    pool: Arc::clone(&beta),
                },
            },
        ];
        let both = req(&[("app", "beta"), ("Cookie", "app=app2")]);
        assert_eq!(
            server_of(requested(&pins, &web, &info(&both), None)),
            Some(("web".into(), 1))
        );
        let header_only = req(&[("app", "beta")]);
        assert!(
            matches!(requested(&pins, &web, &info(&header_only), None), Requested::Pool(p) if p.name == "beta")
        );
        assert_eq!(
            requested(&pins, &web, &info(&req(&[("app", "app1")])), None),
            Requested::Unknown
        );
    }

    fn describe(action: PinAction<'_>) -> String {
        match action {
            PinAction::Absent => "absent".into(),
            PinAction::Unknown => "unknown".into(),
            PinAction::Unsigned => "unsigned".into(),
            PinAction::NotAllowed => "not allowed".into(),
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
        let act =
            |policy, up| describe(pin_action(&pins, &web, policy, None, &info(&r), |_, _| up));
        assert_eq!(
            act(OnUnhealthy::Fallback, true),
            "server web/1 strict=false"
        );
        assert_eq!(act(OnUnhealthy::Refuse, true), "server web/1 strict=true");
        assert_eq!(act(OnUnhealthy::Use, false), "server web/1 strict=true");
        assert_eq!(act(OnUnhealthy::Fallback, false), "fell back web/1");
        assert_eq!(act(OnUnhealthy::Refuse, false), "refuse web/1");
        let absent = pin_action(
            &pins,
            &web,
            OnUnhealthy::Fallback,
            None,
            &info(&req(&[])),
            |_, _| true,
        );
        assert_eq!(describe(absent), "absent");
        let unknown = req(&[("app", "nope")]);
        let unknown = pin_action(
            &pins,
            &web,
            OnUnhealthy::Fallback,
            None,
            &info(&unknown),
            |_, _| true,
        );
        assert_eq!(describe(unknown), "unknown");
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn guarded(allow: Option<&[&str]>, secret: bool) -> PinGuard {
        PinGuard {
            allow: allow.map(|cidrs| AllowList::from_cidrs(cidrs).unwrap().0),
            key: secret.then(|| PinKey::new(SECRET).unwrap()),
        }
    }

    fn act_with(guard: &PinGuard, r: &RequestHeader, client: &str) -> String {
        let web = pool("web", &["app1", "app2"]);
        let pins = native_pins();
        let mut i = info(r);
        i.client_ip = Some(client.parse().unwrap());
        let policy = OnUnhealthy::Fallback;
        describe(pin_action(&pins, &web, policy, Some(guard), &i, |_, _| {
            true
        }))
    }

    #[test]
    fn pins_from_outside_allow_from_are_ignored() {
        let guard = guarded(Some(&["10.0.0.0/8", "2001:db8::/32"]), false);
        let r = req(&[("app", "app2")]);
        assert_eq!(
            act_with(&guard, &r, "10.1.2.3"),
            "server web/1 strict=false"
        );
        assert_eq!(
            act_with(&guard, &r, "2001:db8::9"),
            "server web/1 strict=false"
        );
        assert_eq!(act_with(&guard, &r, "192.0.2.1"), "not allowed");
        assert_eq!(act_with(&guard, &req(&[]), "192.0.2.1"), "absent");
        let nobody = guarded(Some(&[]), false);
        assert_eq!(act_with(&nobody, &r, "10.1.2.3"), "not allowed");
    }

    #[test]
    fn signed_pins_are_honoured_and_bare_or_forged_ones_not() {
        let guard = guarded(None, true);
        let signed = PinKey::new(SECRET).unwrap().sign("app2").unwrap();
        let client = "192.0.2.1";
        assert_eq!(
            act_with(&guard, &req(&[("app", &signed)]), client),
            "server web/1 strict=false"
        );
        let cookie = format!("app={signed}");
        assert_eq!(
            act_with(&guard, &req(&[("Cookie", &cookie)]), client),
            "server web/1 strict=false"
        );
        assert_eq!(
            act_with(&guard, &req(&[("app", "app2")]), client),
            "unsigned"
        );
        let forged = format!("app1.{}", signed.split_once('.').unwrap().1);
        assert_eq!(
            act_with(&guard, &req(&[("app", &forged)]), client),
            "unsigned"
        );
        // A signed name that is no server of the upstream is unknown, as a bare one would be.
        let ghost = PinKey::new(SECRET).unwrap().sign("app9").unwrap();
        assert_eq!(
            act_with(&guard, &req(&[("app", &ghost)]), client),
            "unknown"
        );
        // A forged header does not hide a good cookie.
        let both = req(&[("app", "app1"), ("Cookie", &cookie)]);
        assert_eq!(act_with(&guard, &both, client), "server web/1 strict=false");
    }

    #[test]
    fn variable_pins_read_any_variable() {
        let web = pool("web", &["app1", "app2"]);
        let pins = vec![by_name(PinFrom::Variable(
            Template::parse("$http_x_pin", &[]).unwrap(),
        ))];
        let r = req(&[("X-Pin", "app2")]);
        assert_eq!(
            server_of(requested(&pins, &web, &info(&r), None)),
            Some(("web".into(), 1))
        );
    }
}
