//! Access log formats: nginx's `log_format` language (request variables plus `$status`,
//! `$request_time`, `$upstream_addr`, ...), compiled once and rendered per request with
//! nginx's escaping.

use crate::config::{LogEscape, LogFormat};
use crate::variables::{RequestInfo, Token, Var, tokenize, write_decimal, write_ip};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// nginx's `combined`.
pub const COMBINED: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// `combined` plus where the request went and how long it took.
pub const UPSTREAM: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" \"$upstream_addr\" $request_time $upstream_response_time";

/// One JSON object per line.
pub const JSON: &str = r#"{"time":"$time_iso8601","remote_addr":"$remote_addr","request":"$request","status":$status,"body_bytes_sent":$body_bytes_sent,"request_time":$request_time,"upstream":"$upstream_name","upstream_addr":"$upstream_addr","upstream_response_time":"$upstream_response_time","host":"$host","http_referer":"$http_referer","http_user_agent":"$http_user_agent"}"#;

/// Variables only an access log has: they describe the finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogVar {
    RemoteUser,
    TimeLocal,
    TimeIso8601,
    Msec,
    Request,
    Status,
    BodyBytesSent,
    RequestTime,
    UpstreamAddr,
    UpstreamName,
    UpstreamResponseTime,
    UpstreamStatus,
}

impl LogVar {
    fn parse(name: &str) -> Option<LogVar> {
        Some(match name {
            "remote_user" => LogVar::RemoteUser,
            "time_local" => LogVar::TimeLocal,
            "time_iso8601" => LogVar::TimeIso8601,
            "msec" => LogVar::Msec,
            "request" => LogVar::Request,
            "status" => LogVar::Status,
            "body_bytes_sent" | "bytes_sent" => LogVar::BodyBytesSent,
            "request_time" => LogVar::RequestTime,
            "upstream_addr" => LogVar::UpstreamAddr,
            "upstream_name" => LogVar::UpstreamName,
            "upstream_response_time" => LogVar::UpstreamResponseTime,
            "upstream_status" => LogVar::UpstreamStatus,
            _ => return None,
        })
    }
}

enum Part {
    Literal(Vec<u8>),
    Request(Var),
    Log(LogVar),
}

/// A compiled format.
pub struct Format {
    parts: Vec<Part>,
    escape: LogEscape,
    /// Whether lines show `$upstream_response_time`: the clock is read for it only then.
    shows_upstream_response_time: bool,
}

/// What the log knows of a finished request besides the request itself.
pub struct Outcome<'a> {
    pub status: u16,
    pub body_bytes_sent: usize,
    pub request_time: Duration,
    /// Servers tried, in order, as `ip:port`.
    pub upstream_addrs: &'a [std::net::SocketAddr],
    pub upstream_name: Option<&'a str>,
    pub upstream_response_time: Option<Duration>,
    pub upstream_status: Option<u16>,
    /// When the request ended.
    pub now: SystemTime,
}

impl Outcome<'_> {
    fn epoch_secs(&self) -> u64 {
        self.now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    }
}

impl Format {
    /// The format called `name`: a built-in one or one of `custom`.
    pub fn named(
        name: &str,
        custom: &std::collections::BTreeMap<String, LogFormat>,
        maps: &[String],
    ) -> Result<Format, String> {
        let (template, escape) = match name {
            "combined" => (COMBINED, LogEscape::Default),
            "upstream" => (UPSTREAM, LogEscape::Default),
            "json" => (JSON, LogEscape::Json),
            _ => {
                let f = custom
                    .get(name)
                    .ok_or_else(|| format!("unknown log format \"{name}\""))?;
                (f.template.as_str(), f.escape)
            }
        };
        Format::compile(template, escape, maps).map_err(|e| format!("log format \"{name}\": {e}"))
    }

    fn compile(template: &str, escape: LogEscape, maps: &[String]) -> Result<Format, String> {
        let parts: Vec<Part> = tokenize(template)?
            .into_iter()
            .map(|token| match token {
                Token::Literal(text) => Ok(Part::Literal(text.as_bytes().to_vec())),
                Token::Var(name) => match LogVar::parse(name) {
                    Some(v) => Ok(Part::Log(v)),
                    None => Var::parse(name, maps)
                        .map(Part::Request)
                        .ok_or_else(|| format!("unknown \"{name}\" variable")),
                },
            })
            .collect::<Result<_, String>>()?;
        let shows_upstream_response_time = parts
            .iter()
            .any(|p| matches!(p, Part::Log(LogVar::UpstreamResponseTime)));
        Ok(Format {
            parts,
            escape,
            shows_upstream_response_time,
        })
    }

    /// Whether lines show `$upstream_response_time`: measured only then (a clock read).
    pub fn shows_upstream_response_time(&self) -> bool {
        self.shows_upstream_response_time
    }

    /// Appends one line (with its newline) to `out`. Values are written straight into
    /// `out` and escaped afterwards only when they hold a byte that needs it: most values
    /// (numbers, times, addresses, plain header text) need none.
    pub fn render(&self, req: &RequestInfo<'_>, outcome: &Outcome<'_>, out: &mut Vec<u8>) {
        for part in &self.parts {
            let start = out.len();
            match part {
                Part::Literal(l) => {
                    out.extend_from_slice(l);
                    continue;
                }
                Part::Request(var) => req.expand_var(var, out),
                Part::Log(var) => log_value(*var, req, outcome, out),
            }
            self.escape_tail(out, start);
        }
        out.push(b'\n');
    }

    /// Escapes `out[start..]`, the value just written, in place. nginx prints `-` for an
    /// empty value, except with `escape=json`.
    fn escape_tail(&self, out: &mut Vec<u8>, start: usize) {
        let escaped: &[bool; 256] = match self.escape {
            LogEscape::None => return,
            LogEscape::Default if out.len() == start => return out.push(b'-'),
            LogEscape::Default => &ESCAPED_DEFAULT,
            LogEscape::Json => &ESCAPED_JSON,
        };
        let Some(first) = out[start..].iter().position(|&b| escaped[usize::from(b)]) else {
            return;
        };
        let value = out.split_off(start + first);
        for &b in &value {
            if !escaped[usize::from(b)] {
                out.push(b);
                continue;
            }
            match self.escape {
                LogEscape::Json => match b {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    _ => {
                        out.extend_from_slice(b"\\u00");
                        push_hex(b, b"0123456789abcdef", out);
                    }
                },
                _ => {
                    out.extend_from_slice(b"\\x");
                    push_hex(b, b"0123456789ABCDEF", out);
                }
            }
        }
    }
}

/// The bytes nginx's default escaping writes as `\xHH`: `"`, `\`, control bytes and
/// everything from 0x7f up.
static ESCAPED_DEFAULT: [bool; 256] = escape_table(0x7f);

/// The bytes `escape=json` escapes: `"`, `\` and control bytes.
static ESCAPED_JSON: [bool; 256] = escape_table(0x100);

const fn escape_table(from: usize) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b < 0x20 || b >= from || b == b'"' as usize || b == b'\\' as usize;
        b += 1;
    }
    table
}

fn push_hex(b: u8, digits: &[u8; 16], out: &mut Vec<u8>) {
    out.push(digits[usize::from(b >> 4)]);
    out.push(digits[usize::from(b & 0xf)]);
}

/// Writes one log variable without `fmt`: a line renders several numbers and a date, and
/// `write!` of each cost more than the rest of the line.
fn log_value(var: LogVar, req: &RequestInfo<'_>, o: &Outcome<'_>, out: &mut Vec<u8>) {
    match var {
        LogVar::RemoteUser => {}
        LogVar::TimeLocal => time_local(o.epoch_secs(), out),
        LogVar::TimeIso8601 => time_iso8601(o.epoch_secs(), out),
        LogVar::Msec => {
            let since_epoch = o.now.duration_since(UNIX_EPOCH).unwrap_or_default();
            seconds(since_epoch, out);
        }
        LogVar::Request => {
            // The target as the client sent it (nginx logs the request line as read).
            let r = req.req;
            out.extend_from_slice(r.method.as_str().as_bytes());
            out.push(b' ');
            out.extend_from_slice(r.raw_path());
            out.push(b' ');
            out.extend_from_slice(version_text(r.version));
        }
        LogVar::Status => write_decimal(u64::from(o.status), out),
        LogVar::BodyBytesSent => write_decimal(o.body_bytes_sent as u64, out),
        LogVar::RequestTime => seconds(o.request_time, out),
        LogVar::UpstreamAddr => {
            for (i, addr) in o.upstream_addrs.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_socket_addr(addr, out);
            }
        }
        LogVar::UpstreamName => out.extend_from_slice(o.upstream_name.unwrap_or("").as_bytes()),
        LogVar::UpstreamResponseTime => {
            if let Some(t) = o.upstream_response_time {
                seconds(t, out);
            }
        }
        LogVar::UpstreamStatus => {
            if let Some(s) = o.upstream_status {
                write_decimal(u64::from(s), out);
            }
        }
    }
}

/// The protocol as nginx logs it in `$request`.
fn version_text(version: http::Version) -> &'static [u8] {
    match version {
        http::Version::HTTP_09 => b"HTTP/0.9",
        http::Version::HTTP_10 => b"HTTP/1.0",
        http::Version::HTTP_2 => b"HTTP/2.0",
        http::Version::HTTP_3 => b"HTTP/3.0",
        _ => b"HTTP/1.1",
    }
}

/// `127.0.0.1:8080`, `[::1]:8080`.
fn write_socket_addr(addr: &SocketAddr, out: &mut Vec<u8>) {
    match addr {
        SocketAddr::V4(v4) => write_ip(IpAddr::V4(*v4.ip()), out),
        SocketAddr::V6(v6) => {
            out.push(b'[');
            write_ip(IpAddr::V6(*v6.ip()), out);
            out.push(b']');
        }
    }
    out.push(b':');
    write_decimal(u64::from(addr.port()), out);
}

/// nginx's `0.012`: seconds with millisecond resolution.
fn seconds(d: Duration, out: &mut Vec<u8>) {
    write_decimal(d.as_secs(), out);
    out.push(b'.');
    let ms = d.subsec_millis();
    out.extend_from_slice(&[
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
    ]);
}

/// Two digits, zero-padded (every field of a date but the year is below 100).
fn two_digits(n: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

const MONTHS: [&[u8]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `22/Nov/2026:03:02:45 +0000` (UTC).
fn time_local(secs: u64, out: &mut Vec<u8>) {
    let (y, m, d, hh, mm, ss) = civil(secs);
    two_digits(u64::from(d), out);
    out.push(b'/');
    out.extend_from_slice(MONTHS[(m - 1) as usize]);
    out.push(b'/');
    write_decimal(y.max(0) as u64, out);
    for n in [hh, mm, ss] {
        out.push(b':');
        two_digits(n, out);
    }
    out.extend_from_slice(b" +0000");
}

/// `2026-11-22T03:02:45+00:00` (UTC).
fn time_iso8601(secs: u64, out: &mut Vec<u8>) {
    let (y, m, d, hh, mm, ss) = civil(secs);
    write_decimal(y.max(0) as u64, out);
    out.push(b'-');
    two_digits(u64::from(m), out);
    out.push(b'-');
    two_digits(u64::from(d), out);
    out.push(b'T');
    two_digits(hh, out);
    for n in [mm, ss] {
        out.push(b':');
        two_digits(n, out);
    }
    out.extend_from_slice(b"+00:00");
}

/// Calendar date and time of a Unix time (Howard Hinnant's `civil_from_days`).
fn civil(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::http::RequestHeader;

    fn render(template: &str, escape: LogEscape, req: &RequestHeader) -> String {
        let format = Format::compile(template, escape, &[]).unwrap();
        let info = RequestInfo {
            req,
            uri: None,
            client_ip: Some("192.0.2.9".parse().unwrap()),
            conn: None,
            tls: None,
            server_port: Some(80),
            server_name: "",
            proxy_host: "web",
            maps: &[],
        };
        let addrs = [
            "127.0.0.1:9001".parse().unwrap(),
            "127.0.0.1:9002".parse().unwrap(),
        ];
        let outcome = Outcome {
            status: 200,
            body_bytes_sent: 5,
            request_time: Duration::from_millis(12),
            upstream_addrs: &addrs,
            upstream_name: Some("web"),
            upstream_response_time: Some(Duration::from_millis(3)),
            upstream_status: Some(200),
            // 2026-11-22T03:02:45Z
            now: UNIX_EPOCH + Duration::from_secs(1_795_316_565),
        };
        let mut out = Vec::new();
        format.render(&info, &outcome, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn get(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/a?b=1", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn combined_matches_nginx() {
        let line = render(
            COMBINED,
            LogEscape::Default,
            &get(&[("User-Agent", "curl/8")]),
        );
        assert_eq!(
            line,
            "192.0.2.9 - - [22/Nov/2026:03:02:45 +0000] \"GET /a?b=1 HTTP/1.1\" 200 5 \"-\" \"curl/8\"\n"
        );
    }

    #[test]
    fn upstream_format_adds_where_and_how_long() {
        let line = render(UPSTREAM, LogEscape::Default, &get(&[]));
        assert!(
            line.ends_with("\"127.0.0.1:9001, 127.0.0.1:9002\" 0.012 0.003\n"),
            "{line}"
        );
    }

    #[test]
    fn json_lines_parse() {
        let line = render(
            JSON,
            LogEscape::Json,
            &get(&[("User-Agent", "a \"quoted\" agent")]),
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["time"], "2026-11-22T03:02:45+00:00");
        assert_eq!(v["http_user_agent"], "a \"quoted\" agent");
        assert_eq!(v["upstream"], "web");
        assert_eq!(v["http_referer"], "");
    }

    #[test]
    fn default_escaping_hides_quotes_and_control_bytes() {
        let mut req = get(&[]);
        let value = http::HeaderValue::from_bytes(b"a\"b\\c\xe9").unwrap();
        req.append_header("X", value).unwrap();
        let line = render("$http_x", LogEscape::Default, &req);
        assert_eq!(line, "a\\x22b\\x5Cc\\xE9\n");
    }

    #[test]
    fn json_escaping_keeps_utf8_and_escapes_the_rest() {
        let mut req = get(&[]);
        let value = http::HeaderValue::from_bytes("a\"b\\c\té".as_bytes()).unwrap();
        req.append_header("X", value).unwrap();
        let line = render("[$http_x][$http_none]", LogEscape::Json, &req);
        assert_eq!(line, "[a\\\"b\\\\c\\té][]\n");
    }

    #[test]
    fn times_and_numbers_are_written_as_nginx_writes_them() {
        let line = render(
            "$msec $request_time $time_iso8601 $status $upstream_status $remote_user",
            LogEscape::Default,
            &get(&[]),
        );
        assert_eq!(
            line,
            "1795316565.000 0.012 2026-11-22T03:02:45+00:00 200 200 -\n"
        );
        let mut out = Vec::new();
        for n in [0, 9, 10, 65_535, u64::MAX] {
            write_decimal(n, &mut out);
            out.push(b' ');
        }
        assert_eq!(out, b"0 9 10 65535 18446744073709551615 ");
    }

    #[test]
    fn unknown_variables_are_refused() {
        assert_eq!(
            Format::compile("$nope", LogEscape::Default, &[])
                .err()
                .unwrap(),
            "unknown \"nope\" variable"
        );
    }

    #[test]
    fn calendar_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil(1_795_316_565), (2026, 11, 22, 3, 2, 45));
    }
}
