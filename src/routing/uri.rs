//! The request path as nginx sees it: normalisation for `location` matching and `$uri`
//! (`ngx_http_parse_complex_uri`), and re-encoding for `proxy_pass` (`ngx_escape_uri`).
//!
//! nginx never matches `location`s against the raw request target. It first decodes every
//! `%XX`, resolves `.` and `..` segments and (with `merge_slashes on`, the default) merges
//! runs of `/`. A decoded byte goes through the same state machine as a literal one, so
//! `/%2e%2e/` climbs like `/../` and `%2F` separates segments like `/`. Matching the raw
//! target instead would let `//admin`, `/./admin`, `/x/../admin` or `/%61dmin` slip past
//! `location /admin { return 403; }`.
//!
//! Differences from nginx that are deliberate: none in the normalisation itself. The
//! Windows-only rules of the C code (`\` as a separator, trailing dots) are not applied,
//! as on every non-Windows nginx build.

use std::borrow::Cow;
use std::fmt;

/// Why a request path cannot be normalised. nginx answers each of these with
/// `400 Bad Request` (and logs "client sent invalid request" at `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriError {
    /// The path does not start with `/` (nginx rejects such a request line outright).
    NotAbsolute,
    /// A raw control byte (0x00-0x1F, 0x7F) or a space; nginx rejects these in the request
    /// line since 1.21.1. `at` is the byte offset in the input.
    ControlByte { at: usize },
    /// A `%` not followed by two hex digits.
    BadPercent { at: usize },
    /// `%00`: nginx refuses to decode a NUL.
    EncodedNul { at: usize },
    /// A `..` segment that would climb above `/`; `at` is the offset just past the `..`.
    AboveRoot { at: usize },
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriError::NotAbsolute => f.write_str("request path does not start with \"/\""),
            UriError::ControlByte { at } => {
                write!(f, "control character or space in request path at byte {at}")
            }
            UriError::BadPercent { at } => {
                write!(f, "invalid percent-encoding in request path at byte {at}")
            }
            UriError::EncodedNul { at } => {
                write!(f, "encoded NUL (%00) in request path at byte {at}")
            }
            UriError::AboveRoot { at } => {
                write!(f, "\"..\" above the root in request path at byte {at}")
            }
        }
    }
}

impl std::error::Error for UriError {}

/// Byte classes for the single-scan fast path.
const ORDINARY: u8 = 0;
const SLASH: u8 = 1;
const PERCENT: u8 = 2;
const END: u8 = 3;
const CONTROL: u8 = 4;

const CLASS: [u8; 256] = {
    let mut t = [ORDINARY; 256];
    let mut c = 0;
    while c < 0x21 {
        t[c] = CONTROL;
        c += 1;
    }
    t[0x7f] = CONTROL;
    t[b'/' as usize] = SLASH;
    t[b'%' as usize] = PERCENT;
    t[b'?' as usize] = END;
    t[b'#' as usize] = END;
    t
};

/// Normalises the path of a request target exactly as nginx's `ngx_http_parse_complex_uri`
/// does for `$uri` and `location` matching.
///
/// `raw_path` is the request target as received in origin form (`/a/b?x`); everything from
/// the first literal `?` (the query) or `#` (a fragment) on is ignored and not examined. An
/// empty path, or one that starts with `?`, is `/` (nginx's `empty_path_in_uri`, for
/// absolute-form targets such as `http://host?x`).
///
/// Rules, all from `ngx_http_parse_complex_uri`:
/// - every `%XX` is decoded; the decoded byte is then handled like a literal one, so `%2F`
///   is a separator and `%2E` a dot. Three exceptions: a decoded `%`, `?` or `#` is plain
///   data (`/a%3Fb` is the path `/a?b`), so nothing is ever decoded twice;
/// - `%00`, a `%` without two hex digits, and raw control bytes are errors;
/// - `merge_slashes` (nginx default: `on`) collapses runs of `/`;
/// - `.` segments vanish, `..` removes the previous segment; a trailing `/.` or `/..`
///   leaves the trailing `/`; `..` above the root is an error. With `merge_slashes off`,
///   `..` also removes an empty segment (`/a//..` is `/a/`);
/// - `+` is kept as is (it is not a space in a path);
/// - no other byte is special: `;`, `\` and bytes >= 0x80 are data.
///
/// Which `merge_slashes` applies: nginx normalises the path before it reads `Host`, so for
/// HTTP/1.x it is the setting of the *default server* of the listening address, even when
/// the request then goes to another `server` (checked on nginx 1.22).
///
/// Returns `Cow::Borrowed` (no allocation) when the path needs no rewriting, which is
/// decided in one scan.
pub fn normalize_path(raw_path: &[u8], merge_slashes: bool) -> Result<Cow<'_, [u8]>, UriError> {
    match raw_path.first() {
        None | Some(b'?') => return Ok(Cow::Borrowed(b"/")),
        Some(b'/') => {}
        Some(_) => return Err(UriError::NotAbsolute),
    }

    // Fast path: the path is already normal unless it has a `%`, a `//` (when merging),
    // or a `.`/`..` segment. These are the same triggers as ngx_http_parse_request_line's
    // `complex_uri`/`quoted_uri` flags, which decide whether nginx runs the slow parser.
    let n = raw_path.len();
    let mut i = 0;
    while i < n {
        match CLASS[raw_path[i] as usize] {
            ORDINARY => {}
            SLASH => match raw_path.get(i + 1) {
                Some(b'/') if merge_slashes => return normalize_slow(raw_path, merge_slashes),
                Some(b'.') => {
                    let seg_end = |b: Option<&u8>| matches!(b, None | Some(b'/' | b'?' | b'#'));
                    if seg_end(raw_path.get(i + 2))
                        || (raw_path.get(i + 2) == Some(&b'.') && seg_end(raw_path.get(i + 3)))
                    {
                        return normalize_slow(raw_path, merge_slashes);
                    }
                }
                _ => {}
            },
            PERCENT => return normalize_slow(raw_path, merge_slashes),
            END => return Ok(Cow::Borrowed(&raw_path[..i])),
            _ => return Err(UriError::ControlByte { at: i }),
        }
        i += 1;
    }
    Ok(Cow::Borrowed(raw_path))
}

/// States of `ngx_http_parse_complex_uri` (its `sw_quoted*` states are folded into the
/// `%XX` decoding below).
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Usual,
    Slash,
    Dot,
    DotDot,
}

fn hex_value(b: Option<&u8>) -> Option<u8> {
    match b {
        Some(c @ b'0'..=b'9') => Some(c - b'0'),
        Some(c @ b'a'..=b'f') => Some(c - b'a' + 10),
        Some(c @ b'A'..=b'F') => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `u -= 4; while (*u != '/') u--;` of the C code: drops the `..` and the segment before
/// it, keeping that segment's leading `/`. `out` ends with `/..` whenever this is called.
fn climb(out: &mut Vec<u8>, at: usize) -> Result<(), UriError> {
    let mut idx = out.len().checked_sub(4).ok_or(UriError::AboveRoot { at })?;
    loop {
        if out[idx] == b'/' {
            out.truncate(idx + 1);
            return Ok(());
        }
        idx = idx.checked_sub(1).ok_or(UriError::AboveRoot { at })?;
    }
}

/// The full state machine, a transliteration of `ngx_http_parse_complex_uri` (non-Windows).
/// `raw_path` must start with `/`.
fn normalize_slow(raw_path: &[u8], merge_slashes: bool) -> Result<Cow<'_, [u8]>, UriError> {
    let mut out = Vec::with_capacity(raw_path.len());
    let mut state = State::Usual;
    let mut i = 0;

    while i < raw_path.len() {
        let at = i;
        let raw = raw_path[i];
        i += 1;

        let c = if raw == b'%' {
            let (Some(hi), Some(lo)) = (hex_value(raw_path.get(i)), hex_value(raw_path.get(i + 1)))
            else {
                return Err(UriError::BadPercent { at });
            };
            i += 2;
            match (hi << 4) | lo {
                0 => return Err(UriError::EncodedNul { at }),
                // sw_quoted_second: a decoded `%`, `#` or `?` is written as data and the
                // machine goes to sw_usual, so they neither end the path nor start a new
                // escape.
                d @ (b'%' | b'#' | b'?') => {
                    out.push(d);
                    state = State::Usual;
                    continue;
                }
                // Any other decoded byte re-enters the state it was found in.
                d => d,
            }
        } else {
            if CLASS[raw as usize] == CONTROL {
                return Err(UriError::ControlByte { at });
            }
            // A literal `?` or `#` ends the path in every state; the end-of-path handling
            // after the loop is what each state's `?`/`#` case does in C.
            if raw == b'?' || raw == b'#' {
                i = at;
                break;
            }
            raw
        };

        state = match (state, c) {
            (State::Usual, b'/') => {
                out.push(c);
                State::Slash
            }
            (State::Usual, _) => {
                out.push(c);
                State::Usual
            }
            (State::Slash, b'/') => {
                if !merge_slashes {
                    out.push(c);
                }
                State::Slash
            }
            (State::Slash | State::Dot, b'.') => {
                out.push(c);
                if state == State::Slash {
                    State::Dot
                } else {
                    State::DotDot
                }
            }
            (State::Dot, b'/') => {
                // "/./": drop the dot, keep the slash already written.
                out.pop();
                State::Slash
            }
            (State::DotDot, b'/') => {
                climb(&mut out, i)?;
                State::Slash
            }
            (_, _) => {
                out.push(c);
                State::Usual
            }
        };
    }

    match state {
        State::Dot => {
            out.pop();
        }
        State::DotDot => climb(&mut out, i)?,
        State::Usual | State::Slash => {}
    }
    Ok(Cow::Owned(out))
}

/// Whether nginx would consider this request "quoted" (`r->quoted_uri`): the path, before
/// any `?` or `#`, contains a `%`. `proxy_pass` with a URI part re-encodes the path with
/// [`encode_path`] only in that case (or after an internal redirect); otherwise it sends the
/// normalised path bytes unchanged (`ngx_http_proxy_create_key` /
/// `ngx_http_proxy_create_request`).
pub fn was_quoted(raw_path: &[u8]) -> bool {
    raw_path
        .iter()
        .take_while(|&&b| b != b'?' && b != b'#')
        .any(|&b| b == b'%')
}

/// Bytes `ngx_escape_uri(.., NGX_ESCAPE_URI)` escapes, as nginx's bitmap (bit `c & 31` of
/// word `c >> 5`): 0x00-0x20, `"`, `#`, `%`, `<`, `>`, `?`, `\`, `^`, `` ` ``, `{`, `|`,
/// `}`, 0x7F-0xFF. Note what it leaves alone: `'`, `[`, `]`, `;`, `+`, `/` and the other
/// RFC 3986 delimiters.
const ESCAPE_URI: [u32; 8] = [
    0xffff_ffff, // 0x00-0x1f
    0xd000_002d, // " ", "\"", "#", "%", "<", ">", "?"
    0x5000_0000, // "\\", "^"
    0xb800_0001, // "`", "{", "|", "}", 0x7f
    0xffff_ffff,
    0xffff_ffff,
    0xffff_ffff,
    0xffff_ffff,
];

fn needs_escape(b: u8) -> bool {
    ESCAPE_URI[(b >> 5) as usize] & (1u32 << (b & 0x1f)) != 0
}

/// Appends `path` to `out`, percent-encoding (upper-case hex) the bytes nginx's
/// `ngx_escape_uri(.., NGX_ESCAPE_URI)` encodes. This is how nginx rebuilds the upstream
/// path when `proxy_pass` has a URI part and the client's path was quoted (see
/// [`was_quoted`]). `/` is never encoded, so a client's `%2F` reaches upstream as `/`.
pub fn encode_path(path: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(path.len());
    for &b in path {
        if needs_escape(b) {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
        } else {
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests;
