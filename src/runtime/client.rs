//! A virtual server's client limits, checked and made ready for Pingora's HTTP/1 sessions.

use crate::config::{ClientLimits, ConfigError, Origin};
use pingora::protocols::http::v1::head_limits::HeadLimits;
use std::path::Path;
use std::time::Duration;

/// The largest request head any configuration may allow (`large_client_header_buffers`
/// number × size): memory a client can make pinlb hold per connection.
const MAX_HEAD: u64 = 16 << 20;

/// What a virtual server allows its clients (see [`ClientLimits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSettings {
    /// Buffer sizes, line and head limits, and the whole-head timeout.
    pub head: HeadLimits,
    /// Longest wait between two reads of a request body.
    pub body_timeout: Duration,
    /// Longest wait between two writes to the client.
    pub send_timeout: Duration,
    /// Requests per connection; the last one is answered with `Connection: close`.
    pub keepalive_requests: u32,
}

/// Checks `limits` (written at `fallback` unless they say where) and prepares them.
pub fn compile(
    file: &Path,
    limits: &ClientLimits,
    fallback: &Origin,
) -> Result<ClientSettings, ConfigError> {
    // A JSON error names its key by its path; an nginx error names its directive.
    let invalid = |name: &str, msg: String| {
        let origin = limits.origin(name, fallback);
        let msg = match origin {
            Origin::Json(_) => msg,
            _ => {
                let directive = name.trim_end_matches("_ms").replace("client_send", "send");
                format!("\"{directive}\": {msg}")
            }
        };
        ConfigError::invalid(file, origin, msg)
    };
    let timeouts = [
        ("client_header_timeout_ms", limits.header_timeout),
        ("client_body_timeout_ms", limits.body_timeout),
        ("client_send_timeout_ms", limits.send_timeout),
    ];
    for (name, t) in timeouts {
        if t.is_zero() {
            return Err(invalid(name, "must be greater than 0".into()));
        }
    }
    if limits.header_buffer_size == 0 {
        let name = "client_header_buffer_size";
        return Err(invalid(name, "must be at least 1 byte".into()));
    }
    let large = limits.large_header_buffers;
    let name = "large_client_header_buffers";
    if large.number == 0 || large.size == 0 {
        return Err(invalid(name, "number and size must be at least 1".into()));
    }
    let max_head = u64::from(large.number).saturating_mul(large.size);
    if max_head > MAX_HEAD {
        return Err(invalid(
            name,
            format!(
                "{} buffers of {} bytes exceed the largest head allowed ({MAX_HEAD} bytes)",
                large.number, large.size
            ),
        ));
    }
    // All below MAX_HEAD, which fits usize.
    let max_head = max_head as usize;
    Ok(ClientSettings {
        head: HeadLimits {
            initial_buffer: (limits.header_buffer_size.min(MAX_HEAD) as usize).min(max_head),
            max_line: large.size as usize,
            max_head,
            timeout: Some(limits.header_timeout),
        },
        body_timeout: limits.body_timeout,
        send_timeout: limits.send_timeout,
        keepalive_requests: limits.keepalive_requests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HeaderBuffers;

    fn check(limits: &ClientLimits) -> Result<ClientSettings, String> {
        compile(Path::new("t.json"), limits, &Origin::Json(String::new()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn nginx_defaults() {
        let s = check(&ClientLimits::default()).unwrap();
        assert_eq!(s.head.initial_buffer, 1024);
        assert_eq!(s.head.max_line, 8192);
        assert_eq!(s.head.max_head, 32768);
        assert_eq!(s.head.timeout, Some(Duration::from_secs(60)));
        assert_eq!(s.keepalive_requests, 1000);
    }

    #[test]
    fn bad_values_name_their_setting() {
        let l = ClientLimits {
            large_header_buffers: HeaderBuffers {
                number: 0,
                size: 8192,
            },
            origins: vec![(
                "large_client_header_buffers",
                Origin::Json("large_client_header_buffers".into()),
            )],
            ..ClientLimits::default()
        };
        let e = check(&l).unwrap_err();
        assert!(
            e.starts_with("large_client_header_buffers: number and size must be at least 1"),
            "{e}"
        );
        let l = ClientLimits {
            large_header_buffers: HeaderBuffers {
                number: 4096,
                size: 1 << 20,
            },
            ..ClientLimits::default()
        };
        assert!(check(&l).unwrap_err().contains("exceed the largest head"));
        let l = ClientLimits {
            header_timeout: Duration::ZERO,
            origins: vec![(
                "client_header_timeout_ms",
                Origin::Nginx {
                    file: "/etc/nginx/nginx.conf".into(),
                    line: 3,
                },
            )],
            ..ClientLimits::default()
        };
        assert!(check(&l).unwrap_err().contains(
            "\"client_header_timeout\": must be greater than 0 in /etc/nginx/nginx.conf:3"
        ));
    }
}
