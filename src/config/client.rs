//! Limits and timeouts for client connections and request heads, with nginx's names and
//! defaults: `client_header_timeout`, `client_body_timeout`, `send_timeout`,
//! `client_header_buffer_size`, `large_client_header_buffers`, `keepalive_requests`.

use super::Origin;
use super::serde_util::as_millis;
use serde::Serialize;
use std::time::Duration;

/// What a virtual server allows its clients. Settings that apply before a request's
/// server is known (the head limits and timeout, `keepalive_requests`) are taken, as in
/// nginx, from the default server of the address the connection arrived on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientLimits {
    /// The whole request head must arrive within this time, from its first byte (from the
    /// connection's start for its first request); otherwise the connection is closed
    /// (nginx `client_header_timeout`, 60 s).
    #[serde(rename = "client_header_timeout_ms", serialize_with = "as_millis")]
    pub header_timeout: Duration,
    /// Longest wait between two reads of a request body (nginx `client_body_timeout`, 60 s).
    #[serde(rename = "client_body_timeout_ms", serialize_with = "as_millis")]
    pub body_timeout: Duration,
    /// Longest wait between two writes to the client (nginx `send_timeout`, 60 s).
    #[serde(rename = "client_send_timeout_ms", serialize_with = "as_millis")]
    pub send_timeout: Duration,
    /// The buffer a request head is first read into, in bytes
    /// (nginx `client_header_buffer_size`, 1024).
    #[serde(rename = "client_header_buffer_size")]
    pub header_buffer_size: u64,
    /// The longest line and the largest head (nginx `large_client_header_buffers`,
    /// 4 × 8192): a longer request line is answered 414, a longer header line or a larger
    /// head 400.
    #[serde(rename = "large_client_header_buffers")]
    pub large_header_buffers: HeaderBuffers,
    /// Requests served on one client connection before it is closed
    /// (nginx `keepalive_requests`, 1000).
    pub keepalive_requests: u32,
    /// Where each setting was written, by its JSON name, for messages.
    #[serde(skip)]
    pub origins: Vec<(&'static str, Origin)>,
}

impl ClientLimits {
    /// Where the setting `name` (its JSON name) was written; `fallback` if it was not.
    pub fn origin<'a>(&'a self, name: &str, fallback: &'a Origin) -> &'a Origin {
        self.origins
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(fallback, |(_, o)| o)
    }
}

/// nginx `large_client_header_buffers NUMBER SIZE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderBuffers {
    pub number: u32,
    pub size: u64,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            header_buffer_size: 1024,
            large_header_buffers: HeaderBuffers {
                number: 4,
                size: 8192,
            },
            keepalive_requests: 1000,
            origins: Vec::new(),
        }
    }
}
