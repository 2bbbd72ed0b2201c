//! Error responses users can act on: which status for which failure, and a one-line
//! body that names the upstream.

use pingora::prelude::*;

/// nginx's mapping: no usable server 503, unreachable or broken upstream 502, upstream
/// timeout 504. Downstream errors on a dead connection get no response (0).
pub fn status_for(e: &Error) -> u16 {
    match e.etype() {
        HTTPStatus(code) => *code,
        ConnectTimedout => 504,
        ReadTimedout | WriteTimedout if *e.esource() == ErrorSource::Upstream => 504,
        // nginx's 408: the client was too slow sending its request head or body.
        ReadTimedout if *e.esource() == ErrorSource::Downstream => 408,
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                WriteError | ReadError | ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// The one-line explanation sent with an error status.
pub fn body_for(code: u16, e: &Error, upstream: Option<&str>) -> String {
    let upstream = upstream.map_or_else(
        || "the upstream".to_string(),
        |u| format!("upstream \"{u}\""),
    );
    match code {
        503 => format!("503 Service Unavailable: no usable server in {upstream}\n"),
        504 => format!("504 Gateway Timeout: {upstream} did not answer in time\n"),
        502 if is_connect_error(e) => {
            format!("502 Bad Gateway: no server of {upstream} could be reached\n")
        }
        502 => format!("502 Bad Gateway: {upstream} failed to send a valid response\n"),
        _ => {
            let reason = http::StatusCode::from_u16(code)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error");
            format!("{code} {reason}\n")
        }
    }
}

fn is_connect_error(e: &Error) -> bool {
    matches!(
        e.etype(),
        ConnectRefused
            | ConnectNoRoute
            | ConnectError
            | ConnectTimedout
            | ConnectProxyFailure
            | SocketError
            | BindError
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_failures_map_like_nginx() {
        assert_eq!(status_for(&Error::new(HTTPStatus(503))), 503);
        assert_eq!(status_for(&Error::new_up(ConnectRefused)), 502);
        assert_eq!(status_for(&Error::new_up(ConnectTimedout)), 504);
        assert_eq!(status_for(&Error::new_up(ReadTimedout)), 504);
        assert_eq!(status_for(&Error::new_up(ConnectionClosed)), 502);
        assert_eq!(status_for(&Error::new_down(ConnectionClosed)), 0);
        assert_eq!(status_for(&Error::new_down(ReadTimedout)), 408);
        assert_eq!(status_for(&Error::new_down(InvalidHTTPHeader)), 400);
        assert_eq!(status_for(&Error::new_in(InternalError)), 500);
    }

    #[test]
    fn bodies_name_the_upstream() {
        let refused = Error::new_up(ConnectRefused);
        assert_eq!(
            body_for(502, &refused, Some("web")),
            "502 Bad Gateway: no server of upstream \"web\" could be reached\n"
        );
        assert_eq!(
            body_for(503, &Error::new(HTTPStatus(503)), Some("web")),
            "503 Service Unavailable: no usable server in upstream \"web\"\n"
        );
        assert_eq!(
            body_for(404, &Error::new(HTTPStatus(404)), None),
            "404 Not Found\n"
        );
    }
}
