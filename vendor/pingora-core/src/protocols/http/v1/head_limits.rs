// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//! Limits on reading one HTTP/1 request head (a pinlb patch): the buffer it is first read
//! into, the longest line, the largest head and one timeout for the whole head, as nginx's
//! `client_header_buffer_size`, `large_client_header_buffers` and `client_header_timeout`.
//! The defaults are Pingora's own behaviour.

use super::common::{INIT_HEADER_BUF_SIZE, MAX_HEADER_SIZE};
use bytes::BytesMut;
use http::Version;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use std::time::Duration;

/// The status of an error for a request line longer than [`HeadLimits::max_line`].
pub const REQUEST_LINE_TOO_LONG: u16 = 414;
/// The status of an error for a header line or head over the limits: nginx's internal
/// 494, answered as `400 Request Header Or Cookie Too Large`.
pub const HEADER_TOO_LARGE: u16 = 494;

/// Limits on reading a request head. The default is Pingora's behaviour: a 4 KiB first
/// buffer, 1 MiB for the whole head and for any line, and no timeout for the whole head
/// (each read waits for the keep-alive or read timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Capacity of the buffer a request head is first read into; a head that does not
    /// fit is moved to a larger one, at most `max_head`.
    pub initial_buffer: usize,
    /// Longest request line or header line, its line ending included. A longer request
    /// line is refused with 414, a longer header line with 400.
    pub max_line: usize,
    /// Largest request head; a larger one is refused with 400.
    pub max_head: usize,
    /// The whole head must arrive within this time, counted from its first byte (from the
    /// start of the connection for its first request). When it runs out with part of a
    /// head read, reading fails with `ReadTimedout`; with nothing read, the connection is
    /// closed as idle.
    pub timeout: Option<Duration>,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            initial_buffer: INIT_HEADER_BUF_SIZE,
            max_line: MAX_HEADER_SIZE,
            max_head: MAX_HEADER_SIZE,
            timeout: None,
        }
    }
}

impl HeadLimits {
    /// Whether the partial head in `buf` (no end of head yet) already breaks a limit.
    pub(super) fn check_partial(&self, buf: &[u8]) -> Result<()> {
        if buf.len() > self.max_line {
            self.check_lines(buf)?;
        }
        if buf.len() >= self.max_head {
            // Full, and the line being read cannot end within the limit: the request line
            // if it is still that one.
            if !request_line(buf).ends_with(b"\n") {
                return Error::e_explain(
                    ErrorType::HTTPStatus(REQUEST_LINE_TOO_LONG),
                    "request line too long",
                );
            }
            return too_large("request head");
        }
        Ok(())
    }

    /// Whether the complete head `head` breaks a limit. Free for heads shorter than a line
    /// may be, which is every ordinary request.
    pub(super) fn check_complete(&self, head: &[u8]) -> Result<()> {
        if head.len() > self.max_line {
            self.check_lines(head)?;
        }
        if head.len() > self.max_head {
            return too_large("request head");
        }
        Ok(())
    }

    /// Every line of `head` fits `max_line`; the last line of a partial head counts as far
    /// as it has arrived.
    fn check_lines(&self, head: &[u8]) -> Result<()> {
        let first = request_line(head);
        let start = first.as_ptr() as usize - head.as_ptr() as usize + first.len();
        let mut lines = head[start..].split_inclusive(|&b| b == b'\n');
        if first.len() > self.max_line {
            return Error::e_explain(
                ErrorType::HTTPStatus(REQUEST_LINE_TOO_LONG),
                "request line too long",
            );
        }
        if lines.any(|line| line.len() > self.max_line) {
            return too_large("request header line");
        }
        Ok(())
    }

    /// Makes room for the next read of a partial head: the buffer grows as `BytesMut`
    /// would, doubling, but never beyond `max_head`.
    pub(super) fn make_room(&self, buf: &mut BytesMut) {
        if buf.len() < buf.capacity() {
            return;
        }
        let cap = (buf.capacity() * 2)
            .max(self.initial_buffer)
            .min(self.max_head)
            .max(buf.len() + 1);
        let mut grown = BytesMut::with_capacity(cap);
        grown.extend_from_slice(buf);
        *buf = grown;
    }
}

/// The request line, its line ending included as far as it arrived. Empty lines before
/// it are skipped, as parsers do (RFC 9112 2.2).
fn request_line(head: &[u8]) -> &[u8] {
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    head[start..]
        .split_inclusive(|&b| b == b'\n')
        .next()
        .unwrap_or(&head[start..])
}

fn too_large(what: &str) -> Result<()> {
    Error::e_explain(
        ErrorType::HTTPStatus(HEADER_TOO_LARGE),
        format!("{what} too large"),
    )
}

/// The request line of a head that could not be read whole, for the access log: method,
/// target and version as far as they arrived. `None` when not even a method and a target
/// are there.
pub(super) fn partial_request_line(buf: &[u8]) -> Option<Box<RequestHeader>> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let line = buf[start..].split(|&b| b == b'\n').next()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let method = parts.next()?;
    let target = parts.next()?;
    let mut req = RequestHeader::build(method, target, Some(0)).ok()?;
    if parts.next() == Some(b"HTTP/1.0") {
        req.set_version(Version::HTTP_10);
    }
    Some(Box::new(req))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nginx() -> HeadLimits {
        HeadLimits {
            initial_buffer: 1024,
            max_line: 8192,
            max_head: 4 * 8192,
            timeout: None,
        }
    }

    fn status(r: Result<()>) -> Option<u16> {
        match r {
            Ok(()) => None,
            Err(e) => match e.etype() {
                ErrorType::HTTPStatus(code) => Some(*code),
                _ => Some(0),
            },
        }
    }

    #[test]
    fn long_request_line_is_414_and_long_header_line_494() {
        let l = nginx();
        let line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(8200));
        assert_eq!(status(l.check_partial(line.as_bytes())), Some(414));
        let ok = format!("GET /{} HTTP/1.1\r\n", "a".repeat(8000));
        assert_eq!(status(l.check_partial(ok.as_bytes())), None);
        let head = format!("GET / HTTP/1.1\r\nX-A: {}\r\n", "a".repeat(8200));
        assert_eq!(status(l.check_partial(head.as_bytes())), Some(494));
        let head = format!("GET / HTTP/1.1\r\nX-A: {}\r\n\r\n", "a".repeat(8200));
        assert_eq!(status(l.check_complete(head.as_bytes())), Some(494));
    }

    #[test]
    fn head_over_the_buffers_is_494() {
        let l = nginx();
        let lines: String = (0..5).map(|i| format!("X-{i}: {}\r\n", "b".repeat(7000))).collect();
        let head = format!("GET / HTTP/1.1\r\nHost: a\r\n{lines}");
        assert_eq!(status(l.check_partial(head.as_bytes())), Some(494));
        let lines: String = (0..4).map(|i| format!("X-{i}: {}\r\n", "b".repeat(7000))).collect();
        let head = format!("GET / HTTP/1.1\r\nHost: a\r\n{lines}\r\n");
        assert_eq!(status(l.check_complete(head.as_bytes())), None);
    }

    #[test]
    fn buffer_grows_by_doubling_up_to_the_head_limit() {
        let l = nginx();
        let mut buf = BytesMut::with_capacity(1024);
        buf.extend_from_slice(&[b'a'; 1024]);
        let mut caps = Vec::new();
        while buf.capacity() < l.max_head {
            l.make_room(&mut buf);
            caps.push(buf.capacity());
            let fill = buf.capacity() - buf.len();
            buf.extend_from_slice(&vec![b'a'; fill]);
        }
        assert_eq!(caps, [2048, 4096, 8192, 16384, 32768]);
        assert_eq!(&buf[..4], b"aaaa");
    }

    #[test]
    fn partial_request_lines_for_the_log() {
        let r = partial_request_line(b"\r\nGET /x?y HTTP/1.0\r\nHost: a\r\n").unwrap();
        assert_eq!((r.method.as_str(), r.uri.to_string()), ("GET", "/x?y".into()));
        assert_eq!(r.version, Version::HTTP_10);
        let r = partial_request_line(b"GET /aaaa").unwrap();
        assert_eq!(r.uri.path(), "/aaaa");
        assert!(partial_request_line(b"GET").is_none());
        assert!(partial_request_line(b"\x16\x03\x01 \x00").is_none());
    }
}
