//! nginx's choice of `server` block for a request: by listen address, then `server_name`
//! (exact, longest `*.suffix`, longest `prefix.*`, first regex), then the
//! `default_server`, then the first.

use crate::config::ServerName;
use regex::Regex;
use std::net::SocketAddr;

/// The names of one virtual server, prepared for matching.
#[derive(Debug, Default)]
pub struct Names {
    exact: Vec<String>,
    /// `.example.com` for `*.example.com`.
    suffix: Vec<String>,
    /// `www.example.` for `www.example.*`.
    prefix: Vec<String>,
    regex: Vec<Regex>,
}

/// How well a host matched a virtual server; lower is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quality {
    Exact,
    /// Longer wildcards rank first: the inner value is `usize::MAX - len`.
    Suffix(usize),
    Prefix(usize),
    /// Regexes rank in order of virtual servers, not of length.
    Regex,
}

impl Names {
    pub fn new(names: &[ServerName]) -> Result<Names, String> {
        let mut n = Names::default();
        for name in names {
            match name {
                ServerName::Exact(s) => n.exact.push(s.to_ascii_lowercase()),
                ServerName::Suffix(s) => n.suffix.push(s.to_ascii_lowercase()),
                ServerName::Prefix(s) => n.prefix.push(s.to_ascii_lowercase()),
                ServerName::Regex(re) => n
                    .regex
                    .push(Regex::new(re).map_err(|e| format!("invalid regex \"{re}\": {e}"))?),
            }
        }
        Ok(n)
    }

    /// How `host` (lowercase, no port) matches, if it does.
    pub fn matches(&self, host: &str) -> Option<Quality> {
        if self.exact.iter().any(|n| n == host) {
            return Some(Quality::Exact);
        }
        let suffix = self
            .suffix
            .iter()
            .filter(|s| host.ends_with(s.as_str()))
            .map(|s| s.len())
            .max();
        if let Some(len) = suffix {
            return Some(Quality::Suffix(usize::MAX - len));
        }
        let prefix = self
            .prefix
            .iter()
            .filter(|p| host.starts_with(p.as_str()))
            .map(|p| p.len())
            .max();
        if let Some(len) = prefix {
            return Some(Quality::Prefix(usize::MAX - len));
        }
        self.regex
            .iter()
            .any(|re| re.is_match(host))
            .then_some(Quality::Regex)
    }
}

/// Whether a listen address `listen` takes connections arriving at `local`, and how
/// specifically: an exact IP beats a wildcard (nginx picks servers of the most specific
/// listen socket).
pub fn listen_match(listen: &SocketAddr, local: &SocketAddr) -> Option<bool> {
    if listen.port() != local.port() {
        return None;
    }
    if listen.ip() == local.ip() {
        return Some(true);
    }
    let same_family = listen.is_ipv4() == local.is_ipv4() || listen.is_ipv6();
    (listen.ip().is_unspecified() && same_family).then_some(false)
}

/// The host as nginx compares it: lowercase, without port or trailing dot.
pub fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = host.trim_end_matches('.');
    match host.bytes().any(|b| b.is_ascii_uppercase()) {
        true => std::borrow::Cow::Owned(host.to_ascii_lowercase()),
        false => std::borrow::Cow::Borrowed(host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[ServerName]) -> Names {
        Names::new(list).unwrap()
    }

    #[test]
    fn exact_beats_wildcards_and_longer_wildcards_win() {
        let n = names(&[
            ServerName::Exact("www.example.com".into()),
            ServerName::Suffix(".example.com".into()),
            ServerName::Prefix("www.".into()),
        ]);
        assert_eq!(n.matches("www.example.com"), Some(Quality::Exact));
        assert!(matches!(
            n.matches("api.example.com"),
            Some(Quality::Suffix(_))
        ));
        assert!(matches!(
            n.matches("www.example.org"),
            Some(Quality::Prefix(_))
        ));
        assert_eq!(
            n.matches("example.com"),
            None,
            "*.example.com does not match the bare name"
        );
        let long = names(&[ServerName::Suffix(".a.example.com".into())]).matches("x.a.example.com");
        let short = names(&[ServerName::Suffix(".example.com".into())]).matches("x.a.example.com");
        assert!(long < short);
    }

    #[test]
    fn regex_names_match() {
        let n = names(&[ServerName::Regex(r"^api\d+\.example\.test$".into())]);
        assert_eq!(n.matches("api7.example.test"), Some(Quality::Regex));
        assert_eq!(n.matches("api.example.test"), None);
    }

    #[test]
    fn listen_addresses_match_exactly_or_by_wildcard() {
        let local: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(
            listen_match(&"127.0.0.1:80".parse().unwrap(), &local),
            Some(true)
        );
        assert_eq!(
            listen_match(&"0.0.0.0:80".parse().unwrap(), &local),
            Some(false)
        );
        assert_eq!(listen_match(&"0.0.0.0:81".parse().unwrap(), &local), None);
        assert_eq!(listen_match(&"10.0.0.1:80".parse().unwrap(), &local), None);
    }
}
