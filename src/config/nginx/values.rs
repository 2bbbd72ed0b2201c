//! nginx's value syntaxes: times (`1m30s`), sizes (`10m`), `listen` addresses and
//! `proxy_pass` URLs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// `500ms`, `30s`, `1m30s`, `2h`, `1d`; a bare number is seconds.
pub fn time(value: &str) -> Option<Duration> {
    if value.is_empty() {
        return None;
    }
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            "w" => Duration::from_secs(7 * 86_400),
            "M" => Duration::from_secs(30 * 86_400),
            "y" => Duration::from_secs(365 * 86_400),
            _ => return None,
        };
        total = total.checked_add(unit.checked_mul(u32::try_from(n).ok()?)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// `1024`, `10k`, `1m`, `1g` (case-insensitive units), in bytes.
pub fn size(value: &str) -> Option<u64> {
    let (digits, unit) = match value.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&value[..i], c.to_ascii_lowercase()),
        _ => (value, ' '),
    };
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        ' ' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// The address of `listen`: `80`, `*:80`, `127.0.0.1:8080`, `[::]:80`, `localhost:80`
/// (only `localhost` is accepted as a name). Port alone means every IPv4 address.
pub fn listen_addr(value: &str) -> Result<SocketAddr, String> {
    let bad = || format!("invalid address \"{value}\" in \"listen\"");
    if let Ok(port) = value.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let ip = match host {
        "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "[::]" => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => match host.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                return Err(format!(
                    "host name \"{host}\" in \"listen\" is not supported; use an IP address"
                ));
            }
        },
    };
    Ok(SocketAddr::new(ip, port))
}

/// A `proxy_pass` target: `http[s]://NAME[:PORT][/uri]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// `https://`: TLS to the servers.
    pub tls: bool,
    /// The host part as written (an upstream name or a host name).
    pub host: String,
    /// The port if one was written.
    pub port: Option<u16>,
    /// The URI part, starting with `/`, if one was written.
    pub uri: Option<String>,
}

impl ProxyUrl {
    pub fn parse(value: &str) -> Result<ProxyUrl, String> {
        let (tls, rest) = if let Some(rest) = value.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = value.strip_prefix("https://") {
            (true, rest)
        } else if value.contains('$') {
            return Err(format!(
                "variables in \"proxy_pass {value}\" are not supported"
            ));
        } else {
            return Err(format!("invalid URL prefix in \"{value}\""));
        };
        if rest.contains('$') {
            return Err(format!(
                "variables in \"proxy_pass {value}\" are not supported"
            ));
        }
        let (authority, uri) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(rest[i..].to_string())),
            None => (rest, None),
        };
        let (host, port) =
            split_host_port(authority).ok_or_else(|| format!("invalid host in \"{value}\""))?;
        Ok(ProxyUrl {
            tls,
            host: host.to_string(),
            port,
            uri,
        })
    }

    /// `host:port` with nginx's default port: 80, or 443 for `https://`.
    pub fn host_port(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        format!("{}:{}", self.host, self.port.unwrap_or(default))
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
pub fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.is_empty() {
        return None;
    }
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let host = &authority[..=end];
        return match &authority[end + 1..] {
            "" => Some((host, None)),
            port => Some((host, Some(port.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') => {
            Some((host, Some(port.parse().ok()?)))
        }
        Some(_) => None,
        None => Some((authority, None)),
    }
}

/// An upstream `server` address as nginx reads it: `host[:port]`, port 80 by default.
pub fn server_addr(value: &str) -> Result<String, String> {
    if value.starts_with("unix:") {
        return Err(format!(
            "unix sockets are not supported in upstream \"{value}\""
        ));
    }
    match split_host_port(value) {
        Some((host, port)) if !host.contains('=') => Ok(format!("{host}:{}", port.unwrap_or(80))),
        _ => Err(format!("invalid host in upstream \"{value}\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_nginx_units() {
        assert_eq!(time("30"), Some(Duration::from_secs(30)));
        assert_eq!(time("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(time("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(time("3600s"), Some(Duration::from_secs(3600)));
        assert_eq!(time("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(time("1d"), Some(Duration::from_secs(86_400)));
        for bad in ["", "s", "1x", "-1", "1.5s", "m1"] {
            assert_eq!(time(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes_in_nginx_units() {
        assert_eq!(size("1024"), Some(1024));
        assert_eq!(size("10k"), Some(10 * 1024));
        assert_eq!(size("1m"), Some(1 << 20));
        assert_eq!(size("2G"), Some(2 << 30));
        assert_eq!(size("0"), Some(0));
        for bad in ["", "m", "1t", "1.5m"] {
            assert_eq!(size(bad), None, "{bad}");
        }
    }

    #[test]
    fn listen_forms() {
        assert_eq!(listen_addr("80").unwrap().to_string(), "0.0.0.0:80");
        assert_eq!(listen_addr("*:8080").unwrap().to_string(), "0.0.0.0:8080");
        assert_eq!(
            listen_addr("127.0.0.1:8080").unwrap().to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(listen_addr("[::]:80").unwrap().to_string(), "[::]:80");
        assert_eq!(
            listen_addr("localhost:80").unwrap().to_string(),
            "127.0.0.1:80"
        );
        assert!(
            listen_addr("example.com:80")
                .unwrap_err()
                .contains("use an IP address")
        );
        assert!(listen_addr("x").is_err());
    }

    #[test]
    fn proxy_pass_urls() {
        let u = ProxyUrl::parse("http://app_servers").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.uri.as_deref()),
            ("app_servers", None, None)
        );
        assert_eq!(u.host_port(), "app_servers:80");
        let u = ProxyUrl::parse("http://127.0.0.1:9001/api/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.uri.as_deref()),
            ("127.0.0.1", Some(9001), Some("/api/"))
        );
        let tls = ProxyUrl::parse("https://x").unwrap();
        assert!(tls.tls && !u.tls);
        assert_eq!(tls.host_port(), "x:443", "nginx's default port of https");
        assert!(
            ProxyUrl::parse("http://$backend")
                .unwrap_err()
                .contains("variables")
        );
        assert!(
            ProxyUrl::parse("app")
                .unwrap_err()
                .contains("invalid URL prefix")
        );
        assert!(ProxyUrl::parse("http://").is_err());
    }

    #[test]
    fn upstream_server_addresses_default_to_port_80() {
        assert_eq!(server_addr("app1").unwrap(), "app1:80");
        assert_eq!(server_addr("app1:3000").unwrap(), "app1:3000");
        assert_eq!(server_addr("[::1]:81").unwrap(), "[::1]:81");
        assert!(server_addr("weight=1").is_err());
        assert!(server_addr("unix:/tmp/s").unwrap_err().contains("unix"));
    }
}
