//! Requests taken from the user's own access log (nginx's `combined` format), to replay
//! beside the built-in corpus: method, target, `Referer` and `User-Agent` of the first
//! [`MAX_LINES`] lines.

use super::corpus::Probe;
use regex::Regex;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::LazyLock;

/// Lines read from the log at most.
pub const MAX_LINES: usize = 1_000;
/// Bytes read from the log at most (a file without line breaks stays bounded too).
const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
/// "$http_referer" "$http_user_agent"`; quoted fields escape `"` as nginx does.
static COMBINED: LazyLock<Regex> = LazyLock::new(|| {
    let quoted = r#""((?:[^"\\]|\\.)*)""#;
    Regex::new(&format!(
        r"^\S+ \S+ \S+ \[[^\]]*\] {quoted} \d{{3}} \S+ {quoted} {quoted}"
    ))
    .expect("the combined format's pattern is valid")
});

/// The requests of the first lines of `path`, sent to listen address `listen` with
/// `Host: host` (the combined format does not record the host); and how many of those
/// lines were not requests that can be replayed.
pub fn read(path: &Path, listen: usize, host: &str) -> Result<(Vec<Probe>, usize), String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut probes = Vec::new();
    let mut skipped = 0;
    for line in BufReader::new(file.take(MAX_BYTES)).lines().take(MAX_LINES) {
        let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        match parse_line(&line, listen, host) {
            Some(probe) => probes.push(probe),
            None => skipped += 1,
        }
    }
    Ok((probes, skipped))
}

/// One `combined` line as a request, or `None` for a line that is not one (a 400 for
/// garbage, a request line nginx logged but that cannot be sent again as it was).
pub fn parse_line(line: &str, listen: usize, host: &str) -> Option<Probe> {
    let fields = COMBINED.captures(line)?;
    let request = unescape(&fields[1])?;
    let mut parts = request.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase());
    if parts.next().is_some() || !token(method) || !target.starts_with('/') {
        return None;
    }
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") || !printable(target) {
        return None;
    }
    let mut probe = Probe::get(listen, host, target);
    probe.method = method.to_string();
    for (name, value) in [("Referer", &fields[2]), ("User-Agent", &fields[3])] {
        match unescape(value) {
            Some(v) if v != "-" && !v.is_empty() && printable(&v.replace(' ', "")) => {
                probe.headers.push((name.to_string(), v))
            }
            _ => {}
        }
    }
    Some(probe)
}

fn printable(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

/// nginx's log escapes (`\x22`, and `\"` `\\` from other writers) undone.
fn unescape(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next()? {
            b'x' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"203.0.113.9 - - [10/Oct/2024:13:55:36 +0000] "GET /api/items?id=7 HTTP/1.1" 200 612 "https://example.test/" "curl/8.5.0""#;

    #[test]
    fn a_combined_line_becomes_its_request() {
        let probe = parse_line(LINE, 0, "shop.test").unwrap();
        assert_eq!(probe.method, "GET");
        assert_eq!(probe.target, "/api/items?id=7");
        assert_eq!(
            probe.headers,
            [
                ("Host".to_string(), "shop.test".to_string()),
                ("Referer".to_string(), "https://example.test/".to_string()),
                ("User-Agent".to_string(), "curl/8.5.0".to_string()),
            ]
        );
    }

    #[test]
    fn escapes_are_undone_and_lines_that_are_no_request_are_skipped() {
        let escaped = LINE
            .replace("/api/items?id=7", r"/q?\x22a\x22")
            .replace("curl/8.5.0", "-");
        let probe = parse_line(&escaped, 0, "h").unwrap();
        assert_eq!(probe.target, "/q?\"a\"");
        assert_eq!(probe.headers.len(), 2, "no User-Agent for \"-\"");
        for bad in [
            "not a log line",
            &LINE.replace("GET /api/items?id=7 HTTP/1.1", "\\x16\\x03\\x01"),
            &LINE.replace("GET /api", "GET http://evil/api"),
            &LINE.replace("HTTP/1.1", "HTTP/2.0"),
        ] {
            assert_eq!(parse_line(bad, 0, "h"), None, "{bad}");
        }
    }
}
