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

//! The framing facts of a parsed head (pinlb patch), recognised once while its headers are
//! put in the head's map, so that the session's framing, validation and keep-alive checks
//! do not look the same few headers up in the map again and again.
//!
//! Each fact is what the map lookup it replaces answers for the head as parsed: the same
//! helpers judge the same values (the first line where a lookup reads the first one, every
//! line where it reads all). A session uses them only while its head is the parsed one.

use http::HeaderValue;
use pingora_error::Result;
use pingora_http::FramingName;

use super::common::{
    content_length_fold, content_length_framing, is_buf_keepalive, te_value_ends_chunked,
};

/// The `Content-Length` of a head, reconciled over all its lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ContentLength {
    #[default]
    Absent,
    /// Every value agrees on this length.
    Value(u64),
    /// Values that disagree, or one that is not a length.
    Invalid,
}

/// What framing needs of a parsed head's headers (see the module's documentation).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HeadFacts {
    content_length: ContentLength,
    /// `Content-Length` lines (saturating).
    content_length_lines: u8,
    /// The first `Content-Length` line is a list (has a comma).
    content_length_listed: bool,
    /// A `Transfer-Encoding` line.
    transfer_encoding: bool,
    /// `chunked` ends the last `Transfer-Encoding` line.
    chunked: bool,
    /// `Some` with the first `Connection` line: its keep-alive ([`is_buf_keepalive`]).
    connection: Option<Option<bool>>,
    /// An `Upgrade` line.
    upgrade: bool,
    /// `Some` with the first `Expect` line: whether it is `100-continue`.
    expect_continue: Option<bool>,
    /// `Host` lines (saturating).
    host_lines: u8,
    /// Where the first `Host` value is in the head's buffer.
    host: (usize, usize),
    /// `Some` with the first `Keep-Alive` line: its `timeout` parameter.
    keep_alive_timeout: Option<Option<u64>>,
}

impl HeadFacts {
    /// Record a header of the head, the framing header `name` is (`FramingName::Other` for
    /// the others); `value_at` is where its value is in the head's buffer, with the same
    /// bytes as `value` (a request's values are not normalized).
    #[inline]
    pub(super) fn observe(
        &mut self,
        name: FramingName,
        value: &HeaderValue,
        value_at: (usize, usize),
    ) {
        // `FramingName` names exactly the names the map treats as these standard headers
        // (`HeaderName` lowercases ASCII letters only), as the lookups replaced.
        match name {
            FramingName::Other => {}
            FramingName::Host => {
                if self.host_lines == 0 {
                    self.host = value_at;
                }
                self.host_lines = self.host_lines.saturating_add(1);
            }
            FramingName::Expect => {
                if self.expect_continue.is_none() {
                    self.expect_continue =
                        Some(value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
                }
            }
            FramingName::Upgrade => self.upgrade = true,
            FramingName::Connection => {
                if self.connection.is_none() {
                    self.connection = Some(is_buf_keepalive(Some(value)));
                }
            }
            FramingName::KeepAlive => {
                if self.keep_alive_timeout.is_none() {
                    self.keep_alive_timeout = Some(keep_alive_timeout(value));
                }
            }
            FramingName::ContentLength => {
                if self.content_length_lines == 0 {
                    self.content_length_listed = value.as_bytes().contains(&b',');
                }
                self.content_length_lines = self.content_length_lines.saturating_add(1);
                self.content_length = match self.content_length {
                    ContentLength::Invalid => ContentLength::Invalid,
                    ContentLength::Absent => fold(None, value),
                    ContentLength::Value(n) => fold(Some(n), value),
                };
            }
            FramingName::TransferEncoding => {
                self.transfer_encoding = true;
                self.chunked = te_value_ends_chunked(value.as_bytes());
            }
        }
    }

    /// The head's `Content-Length` lines were removed (a `Transfer-Encoding` overrides them).
    pub(super) fn remove_content_length(&mut self) {
        self.content_length = ContentLength::Absent;
        self.content_length_lines = 0;
        self.content_length_listed = false;
    }

    /// Its `Content-Length` lines were replaced by one line of their value.
    pub(super) fn content_length_folded(&mut self) {
        self.content_length_lines = 1;
        self.content_length_listed = false;
    }

    /// `headers.contains_key(CONTENT_LENGTH)`
    pub(super) fn has_content_length(&self) -> bool {
        self.content_length_lines > 0
    }

    /// `headers.contains_key(TRANSFER_ENCODING)`
    pub(super) fn has_transfer_encoding(&self) -> bool {
        self.transfer_encoding
    }

    /// [`super::common::is_chunked_encoding_from_headers`]
    pub(super) fn is_chunked(&self) -> bool {
        self.chunked
    }

    /// [`super::common::content_length_for_framing`]
    pub(super) fn content_length_for_framing(&self) -> Result<Option<usize>> {
        content_length_framing(match self.content_length {
            ContentLength::Absent => Ok(None),
            ContentLength::Value(n) => Ok(Some(n)),
            ContentLength::Invalid => Err(()),
        })
    }

    /// [`super::common::validate_content_length`]
    pub(super) fn validate_content_length(&self) -> Result<()> {
        if self.transfer_encoding {
            return Ok(());
        }
        self.content_length_for_framing().map(|_| ())
    }

    /// [`super::common::content_length_is_single_token`]
    pub(super) fn content_length_is_single_token(&self) -> bool {
        self.content_length_lines == 1 && !self.content_length_listed
    }

    /// `is_buf_keepalive(headers.get(CONNECTION))`
    pub(super) fn connection_keepalive(&self) -> Option<bool> {
        self.connection.flatten()
    }

    /// `headers.get(UPGRADE).is_some()`
    pub(super) fn has_upgrade(&self) -> bool {
        self.upgrade
    }

    /// Whether the first `Expect` is `100-continue`.
    pub(super) fn expects_continue(&self) -> bool {
        self.expect_continue == Some(true)
    }

    /// The first `Host` value, from the head's buffer `buf`, and whether there are more.
    pub(super) fn host<'b>(&self, buf: &'b [u8]) -> (Option<&'b [u8]>, bool) {
        let first = (self.host_lines > 0).then(|| &buf[self.host.0..self.host.1]);
        (first, self.host_lines > 1)
    }

    /// The `timeout` of the first `Keep-Alive` line.
    pub(super) fn keep_alive_timeout(&self) -> Option<u64> {
        self.keep_alive_timeout.flatten()
    }
}

fn fold(seen: Option<u64>, value: &HeaderValue) -> ContentLength {
    content_length_fold(seen, value).map_or(ContentLength::Invalid, ContentLength::Value)
}

/// `Keep-Alive: timeout=5, max=1000` => `(Some(5), Some(1000))`. This is defined in the
/// below spec, not part of any RFC, so its behavior is different on different platforms.
/// <https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Keep-Alive>
pub(super) fn keep_alive_params(value: &HeaderValue) -> (Option<u64>, Option<usize>) {
    let Ok(header_value) = std::str::from_utf8(value.as_bytes()) else {
        return (None, None);
    };

    let mut timeout = None;
    let mut max = None;

    for param in header_value.split(',') {
        let parts = param.split_once('=').map(|(k, v)| (k.trim(), v));
        match parts {
            Some(("timeout", timeout_value)) => timeout = timeout_value.trim().parse().ok(),
            Some(("max", max_value)) => max = max_value.trim().parse().ok(),
            _ => {}
        }
    }

    (timeout, max)
}

fn keep_alive_timeout(value: &HeaderValue) -> Option<u64> {
    keep_alive_params(value).0
}

#[cfg(test)]
mod tests {
    use super::super::common::{
        content_length_for_framing, content_length_is_single_token,
        is_chunked_encoding_from_headers, validate_content_length,
    };
    use super::*;
    use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
    use pingora_http::{HMap, WireName};

    fn framing(wire: &[u8]) -> FramingName {
        WireName::recognise(wire).unwrap().framing
    }

    /// The facts of `lines` and the map the same lines make.
    fn facts_and_map(lines: &[(&str, &str)]) -> (HeadFacts, HMap) {
        let mut facts = HeadFacts::default();
        let mut map = HMap::new();
        for (name, value) in lines {
            let value = HeaderValue::from_bytes(value.as_bytes()).unwrap();
            facts.observe(framing(name.as_bytes()), &value, (0, 0));
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value,
            );
        }
        (facts, map)
    }

    #[test]
    fn facts_answer_as_the_map_does() {
        let heads: &[&[(&str, &str)]] = &[
            &[],
            &[("Content-Length", "5")],
            &[("content-length", "5"), ("CONTENT-LENGTH", "5")],
            &[("Content-Length", "5, 5")],
            &[("Content-Length", "5"), ("Content-Length", "6")],
            &[("Content-Length", "5, 6")],
            &[("Content-Length", "abc")],
            &[("Content-Length", "")],
            &[("Content-Length", "-1")],
            &[("Content-Length", "+1")],
            &[("Content-Length", "5,")],
            &[("Content-Length", "99999999999999999999999999")],
            &[("Content-Length", "5"), ("Content-Length", "abc")],
            &[("Content-Length", "abc"), ("Content-Length", "5")],
            &[("Transfer-Encoding", "chunked")],
            &[("Transfer-Encoding", "gzip, chunked")],
            &[
                ("Transfer-Encoding", "chunked"),
                ("Transfer-Encoding", "gzip"),
            ],
            &[
                ("Transfer-Encoding", "gzip"),
                ("transfer-encoding", "chunked"),
            ],
            &[("Transfer-Encoding", "chunked, ")],
            &[("Transfer-Encoding", "chunked"), ("Content-Length", "x")],
            &[("Transfer-Encodings", "chunked"), ("Content-Lengths", "1")],
            &[("Connection", "close")],
            &[("Connection", "Keep-Alive"), ("Connection", "close")],
            &[("Connection", "upgrade, close")],
            &[("Connection", "foo")],
        ];
        for lines in heads {
            let (facts, map) = facts_and_map(lines);
            let case = format!("{lines:?}");
            assert_eq!(
                facts.has_content_length(),
                map.contains_key(CONTENT_LENGTH),
                "{case}"
            );
            assert_eq!(
                facts.has_transfer_encoding(),
                map.contains_key(TRANSFER_ENCODING),
                "{case}"
            );
            assert_eq!(
                facts.is_chunked(),
                is_chunked_encoding_from_headers(&map),
                "{case}"
            );
            assert_eq!(
                facts.content_length_for_framing().ok(),
                content_length_for_framing(&map).ok(),
                "{case}"
            );
            assert_eq!(
                facts.validate_content_length().is_ok(),
                validate_content_length(&map).is_ok(),
                "{case}"
            );
            assert_eq!(
                facts.content_length_is_single_token(),
                content_length_is_single_token(&map),
                "{case}"
            );
            assert_eq!(
                facts.connection_keepalive(),
                is_buf_keepalive(map.get(CONNECTION)),
                "{case}"
            );
        }
    }

    #[test]
    fn first_host_and_keep_alive_lines() {
        let buf = b"a.example b.example";
        let mut facts = HeadFacts::default();
        let value = HeaderValue::from_static("a.example");
        facts.observe(framing(b"Host"), &value, (0, 9));
        assert_eq!(facts.host(buf), (Some(&b"a.example"[..]), false));
        let value = HeaderValue::from_static("b.example");
        facts.observe(framing(b"HOST"), &value, (10, 19));
        assert_eq!(facts.host(buf), (Some(&b"a.example"[..]), true));
        assert_eq!(HeadFacts::default().host(buf), (None, false));

        facts.observe(
            framing(b"keep-alive"),
            &HeaderValue::from_static("timeout=5"),
            (0, 0),
        );
        facts.observe(
            framing(b"Keep-Alive"),
            &HeaderValue::from_static("timeout=7"),
            (0, 0),
        );
        assert_eq!(facts.keep_alive_timeout(), Some(5));
        facts.observe(
            framing(b"Expect"),
            &HeaderValue::from_static("100-Continue"),
            (0, 0),
        );
        assert!(facts.expects_continue());
        facts.observe(
            framing(b"Upgrade"),
            &HeaderValue::from_static("websocket"),
            (0, 0),
        );
        assert!(facts.has_upgrade());
    }
}
