//! The `app` pin: which server a request names, and what happens when that server is down.

use crate::config::{OnUnhealthy, PinSource};
use crate::request;
use pingora::http::RequestHeader;

/// What the pin sources of a route say about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// No pin source is present.
    Nothing,
    /// Pin sources are present but none names a known server: balance normally.
    Unknown,
    /// A pin source names this server (an index into the pool).
    Server(usize),
}

/// Consults the sources in order; the first whose value names a server wins. A value
/// that names no server is skipped, as an nginx `if` that matches nothing would be.
pub fn requested_server(
    pins: &[PinSource],
    req: &RequestHeader,
    find: impl Fn(&[u8]) -> Option<usize>,
) -> Requested {
    let mut outcome = Requested::Nothing;
    for pin in pins {
        let value = match pin {
            PinSource::Header(name) => request::header(req, name),
            PinSource::Cookie(name) => request::cookie(req, name),
        };
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        match find(value) {
            Some(server) => return Requested::Server(server),
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

pub fn decide(healthy: bool, policy: OnUnhealthy) -> PinDecision {
    match (healthy, policy) {
        (true, _) | (false, OnUnhealthy::Use) => PinDecision::Pinned,
        (false, OnUnhealthy::Fallback) => PinDecision::FallBack,
        (false, OnUnhealthy::Refuse) => PinDecision::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVERS: [&str; 3] = ["app1", "app2", "app3"];

    fn find(name: &[u8]) -> Option<usize> {
        SERVERS.iter().position(|s| s.as_bytes() == name)
    }

    fn pins() -> Vec<PinSource> {
        vec![
            PinSource::Header("app".into()),
            PinSource::Cookie("app".into()),
        ]
    }

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn header_names_a_server() {
        assert_eq!(
            requested_server(&pins(), &req(&[("app", "app2")]), find),
            Requested::Server(1)
        );
    }

    #[test]
    fn cookie_names_a_server() {
        assert_eq!(
            requested_server(&pins(), &req(&[("Cookie", "x=1; app=app3")]), find),
            Requested::Server(2)
        );
    }

    #[test]
    fn header_beats_cookie() {
        let r = req(&[("Cookie", "app=app3"), ("app", "app1")]);
        assert_eq!(requested_server(&pins(), &r, find), Requested::Server(0));
    }

    #[test]
    fn unknown_header_value_lets_the_cookie_decide() {
        let r = req(&[("app", "nope"), ("Cookie", "app=app2")]);
        assert_eq!(requested_server(&pins(), &r, find), Requested::Server(1));
    }

    #[test]
    fn unknown_and_absent_values_are_told_apart() {
        assert_eq!(
            requested_server(&pins(), &req(&[("app", "nope")]), find),
            Requested::Unknown
        );
        assert_eq!(
            requested_server(&pins(), &req(&[]), find),
            Requested::Nothing
        );
        assert_eq!(
            requested_server(&pins(), &req(&[("app", "")]), find),
            Requested::Nothing
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
