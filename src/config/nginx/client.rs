//! nginx's client limits in `http` and `server`: `client_header_timeout`,
//! `client_body_timeout`, `send_timeout`, `client_header_buffer_size`,
//! `large_client_header_buffers`, `keepalive_requests`; a server inherits what it does not
//! set from `http`.

use super::translate::{Nginx, arg_count, at};
use super::values;
use crate::config::{ClientLimits, ConfigError, HeaderBuffers, Origin};
use std::time::Duration;

/// The client limits written at one level (`None`: inherited).
#[derive(Debug, Clone, Default)]
pub struct ClientLevel {
    header_timeout: Option<Duration>,
    body_timeout: Option<Duration>,
    send_timeout: Option<Duration>,
    header_buffer_size: Option<u64>,
    large_header_buffers: Option<HeaderBuffers>,
    keepalive_requests: Option<u32>,
    /// JSON name of each setting written here, and where.
    origins: Vec<(&'static str, Origin)>,
}

impl ClientLevel {
    /// Takes `d` if it is one of the client limits; `Ok(false)` otherwise.
    pub fn apply(&mut self, d: &Nginx) -> Result<bool, ConfigError> {
        let name = match d.name() {
            "client_header_timeout" => {
                self.header_timeout = Some(time(d)?);
                "client_header_timeout_ms"
            }
            "client_body_timeout" => {
                self.body_timeout = Some(time(d)?);
                "client_body_timeout_ms"
            }
            "send_timeout" => {
                self.send_timeout = Some(time(d)?);
                "client_send_timeout_ms"
            }
            "client_header_buffer_size" => {
                arg_count(d, 1..=1)?;
                self.header_buffer_size = Some(size(d, &d.args()[0])?);
                "client_header_buffer_size"
            }
            "large_client_header_buffers" => {
                arg_count(d, 2..=2)?;
                let number = d.args()[0]
                    .parse()
                    .map_err(|_| at(d, format!("invalid value \"{}\"", d.args()[0])))?;
                let size = size(d, &d.args()[1])?;
                self.large_header_buffers = Some(HeaderBuffers { number, size });
                "large_client_header_buffers"
            }
            "keepalive_requests" => {
                arg_count(d, 1..=1)?;
                let n = d.args()[0]
                    .parse()
                    .map_err(|_| at(d, format!("invalid value \"{}\"", d.args()[0])))?;
                self.keepalive_requests = Some(n);
                "keepalive_requests"
            }
            _ => return Ok(false),
        };
        self.origins.retain(|(n, _)| *n != name);
        self.origins.push((name, d.origin()));
        Ok(true)
    }

    /// This level's limits over `parent`'s (`http` for a server).
    pub fn inherit(&self, parent: &ClientLevel) -> ClientLevel {
        let mut origins = parent.origins.clone();
        origins.retain(|(n, _)| !self.origins.iter().any(|(m, _)| m == n));
        origins.extend(self.origins.iter().cloned());
        ClientLevel {
            header_timeout: self.header_timeout.or(parent.header_timeout),
            body_timeout: self.body_timeout.or(parent.body_timeout),
            send_timeout: self.send_timeout.or(parent.send_timeout),
            header_buffer_size: self.header_buffer_size.or(parent.header_buffer_size),
            large_header_buffers: self.large_header_buffers.or(parent.large_header_buffers),
            keepalive_requests: self.keepalive_requests.or(parent.keepalive_requests),
            origins,
        }
    }

    /// The effective limits, nginx's defaults where nothing was written.
    pub fn limits(&self) -> ClientLimits {
        let d = ClientLimits::default();
        ClientLimits {
            header_timeout: self.header_timeout.unwrap_or(d.header_timeout),
            body_timeout: self.body_timeout.unwrap_or(d.body_timeout),
            send_timeout: self.send_timeout.unwrap_or(d.send_timeout),
            header_buffer_size: self.header_buffer_size.unwrap_or(d.header_buffer_size),
            large_header_buffers: self.large_header_buffers.unwrap_or(d.large_header_buffers),
            keepalive_requests: self.keepalive_requests.unwrap_or(d.keepalive_requests),
            origins: self.origins.clone(),
        }
    }
}

/// These are per-location in nginx; pinlb takes them per server.
pub fn is_server_level_only(name: &str) -> bool {
    matches!(
        name,
        "client_body_timeout" | "send_timeout" | "keepalive_requests"
    )
}

fn time(d: &Nginx) -> Result<Duration, ConfigError> {
    arg_count(d, 1..=1)?;
    values::time(&d.args()[0]).ok_or_else(|| at(d, format!("invalid value \"{}\"", d.args()[0])))
}

fn size(d: &Nginx, value: &str) -> Result<u64, ConfigError> {
    values::size(value).ok_or_else(|| at(d, format!("invalid value \"{value}\"")))
}

#[cfg(test)]
mod tests {
    use crate::config::HeaderBuffers;
    use crate::config::nginx::tests::translate_str;
    use std::time::Duration;

    #[test]
    fn servers_inherit_client_limits_from_http_and_override_them() {
        let c = translate_str(
            "http {
                client_header_timeout 10s;
                large_client_header_buffers 8 16k;
                keepalive_requests 100;
                server { listen 8080; location / { return 200; } }
                server {
                    listen 8081;
                    client_header_buffer_size 4k;
                    client_body_timeout 5s;
                    send_timeout 7s;
                    keepalive_requests 10;
                    location / { return 200; }
                }
            }",
        )
        .unwrap();
        let (a, b) = (&c.virtual_servers[0].client, &c.virtual_servers[1].client);
        assert_eq!(a.header_timeout, Duration::from_secs(10));
        assert_eq!(
            a.large_header_buffers,
            HeaderBuffers {
                number: 8,
                size: 16384
            }
        );
        assert_eq!((a.header_buffer_size, a.keepalive_requests), (1024, 100));
        assert_eq!(a.body_timeout, Duration::from_secs(60));
        assert_eq!(b.header_timeout, Duration::from_secs(10));
        assert_eq!((b.header_buffer_size, b.keepalive_requests), (4096, 10));
        assert_eq!(b.body_timeout, Duration::from_secs(5));
        assert_eq!(b.send_timeout, Duration::from_secs(7));
        let at = b.origin("keepalive_requests", &crate::config::Origin::Builtin);
        assert!(
            matches!(at, crate::config::Origin::Nginx { line: 11, .. }),
            "{at:?}"
        );
    }

    #[test]
    fn bad_client_limits_are_refused_by_name() {
        let e = translate_str("http { large_client_header_buffers 4; }").unwrap_err();
        assert!(
            e.contains("invalid number of arguments in \"large_client_header_buffers\""),
            "{e}"
        );
        let e = translate_str("http { client_header_timeout soon; }").unwrap_err();
        assert!(e.contains("invalid value \"soon\""), "{e}");
        let e = translate_str(
            "http { server { listen 80; location / { send_timeout 5s; return 200; } } }",
        )
        .unwrap_err();
        assert!(
            e.contains("\"send_timeout\" is supported in \"http\" and \"server\" only"),
            "{e}"
        );
    }
}
