//! Checks on the [`Config`] model that both front-ends rely on: values in range, names
//! unique, references resolvable. No I/O and no DNS here.

use super::{CheckKind, Config, ConfigError, Origin, PathMatch, PinSource, Route, Upstream};
use crate::variables::Template;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

/// Upper bound on worker threads, far above any sensible value, to catch typos.
const MAX_THREADS: usize = 1024;

pub fn validate(config: &Config) -> Result<(), ConfigError> {
    let file = config.source.as_path();
    let root = Origin::Json(String::new());
    if config.threads == 0 || config.threads > MAX_THREADS {
        return Err(ConfigError::invalid(
            file,
            &root.field("threads"),
            format!("must be between 1 and {MAX_THREADS}"),
        ));
    }
    if config.listeners.is_empty() {
        return Err(ConfigError::invalid(
            file,
            &root.field("listeners"),
            "at least one listener is required",
        ));
    }
    let mut seen = HashSet::new();
    for l in &config.listeners {
        if !seen.insert(l.addr) {
            return Err(ConfigError::invalid(
                file,
                &l.origin,
                format!("duplicate listener {}", l.addr),
            ));
        }
    }
    if let Some(name) = &config.served_by_header {
        check_header_name(file, &root.field("served_by_header"), name)?;
    }
    for (name, upstream) in &config.upstreams {
        check_upstream(file, name, upstream)?;
    }
    for vs in &config.virtual_servers {
        let mut paths = HashSet::new();
        for route in &vs.routes {
            if !paths.insert(&route.path) {
                return Err(ConfigError::invalid(
                    file,
                    &route.origin.field("path"),
                    "duplicate route path",
                ));
            }
            check_route(file, config, route)?;
        }
    }
    Ok(())
}

fn check_upstream(file: &Path, name: &str, upstream: &Upstream) -> Result<(), ConfigError> {
    let origin = &upstream.origin;
    if upstream.servers.is_empty() {
        return Err(ConfigError::invalid(
            file,
            &origin.field("servers"),
            format!("upstream \"{name}\" has no servers"),
        ));
    }
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    for s in &upstream.servers {
        if s.name.is_empty()
            || s.name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ConfigError::invalid(
                file,
                &s.origin.field("name"),
                format!(
                    "\"{}\" is not a valid server name (empty, spaces or control characters)",
                    s.name
                ),
            ));
        }
        if !names.insert(s.name.as_str()) {
            return Err(ConfigError::invalid(
                file,
                &s.origin.field("name"),
                format!(
                    "duplicate server name \"{}\" in upstream \"{name}\"",
                    s.name
                ),
            ));
        }
        check_host_port(&s.addr)
            .map_err(|msg| ConfigError::invalid(file, &s.origin.field("addr"), msg))?;
        if !addrs.insert(s.addr.as_str()) {
            return Err(ConfigError::invalid(
                file,
                &s.origin.field("addr"),
                format!("duplicate address \"{}\" in upstream \"{name}\"", s.addr),
            ));
        }
        if s.weight == 0 {
            return Err(ConfigError::invalid(
                file,
                &s.origin.field("weight"),
                "must be at least 1",
            ));
        }
    }
    if let Some(hc) = &upstream.health_check {
        let origin = origin.field("health_check");
        if let CheckKind::Http { path } = &hc.kind {
            if !path.starts_with('/') {
                return Err(ConfigError::invalid(
                    file,
                    &origin.field("path"),
                    "must start with \"/\"",
                ));
            }
        }
        for (field, value) in [("interval_ms", hc.interval), ("timeout_ms", hc.timeout)] {
            check_positive(file, &origin.field(field), value)?;
        }
        for (field, value) in [("fails", hc.fails), ("passes", hc.passes)] {
            if value == 0 {
                return Err(ConfigError::invalid(
                    file,
                    &origin.field(field),
                    "must be at least 1",
                ));
            }
        }
    }
    Ok(())
}

fn check_route(file: &Path, config: &Config, route: &Route) -> Result<(), ConfigError> {
    let origin = &route.origin;
    let PathMatch::Prefix(path) = &route.path;
    if !path.starts_with('/') {
        return Err(ConfigError::invalid(
            file,
            &origin.field("path"),
            "must start with \"/\"",
        ));
    }
    if !config.upstreams.contains_key(&route.upstream) {
        return Err(ConfigError::invalid(
            file,
            &origin.field("upstream"),
            format!("unknown upstream \"{}\"", route.upstream),
        ));
    }
    for pin in &route.pins {
        match &pin.source {
            PinSource::Header(name) => {
                check_header_name(file, &origin.field("pin").field("header"), name)?
            }
            PinSource::Cookie(name) => {
                if name.is_empty()
                    || name
                        .bytes()
                        .any(|b| matches!(b, b';' | b'=' | b' ' | b',') || b.is_ascii_control())
                {
                    return Err(ConfigError::invalid(
                        file,
                        &origin.field("pin").field("cookie"),
                        format!("\"{name}\" is not a valid cookie name"),
                    ));
                }
            }
        }
    }
    let proxy = origin.field("proxy");
    let p = &route.proxy;
    for (field, value) in [
        ("connect_timeout_ms", p.connect_timeout),
        ("read_timeout_ms", p.read_timeout),
        ("send_timeout_ms", p.send_timeout),
        ("websocket_idle_timeout_ms", p.websocket_idle_timeout),
    ] {
        check_positive(file, &proxy.field(field), value)?;
    }
    for h in &p.set_headers {
        let at = proxy.field("set_headers").field(&h.name);
        check_header_name(file, &at, &h.name)?;
        Template::parse(&h.value).map_err(|msg| ConfigError::invalid(file, &at, msg))?;
    }
    Ok(())
}

fn check_positive(file: &Path, origin: &Origin, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::invalid(file, origin, "must be greater than 0"));
    }
    Ok(())
}

fn check_header_name(file: &Path, origin: &Origin, name: &str) -> Result<(), ConfigError> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .map_err(|_| {
            ConfigError::invalid(
                file,
                origin,
                format!("\"{name}\" is not a valid header name"),
            )
        })
}

/// `host:port` or `[v6]:port` with a numeric port; host names are resolved later.
pub fn check_host_port(addr: &str) -> Result<(), String> {
    let bad = || format!("\"{addr}\" is not a host:port address");
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.contains(':') && !bracketed {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::json;

    fn check(text: &str) -> Result<(), String> {
        let c = json::parse(Path::new("t.json"), text).map_err(|e| e.to_string())?;
        validate(&c).map_err(|e| e.to_string())
    }

    fn with_servers(servers: &str) -> String {
        format!(
            r#"{{ "listeners": [{{ "addr": "127.0.0.1:8080" }}],
                "upstreams": {{ "web": {{ "servers": [{servers}] }} }},
                "routes": [{{ "path": "/", "upstream": "web" }}] }}"#
        )
    }

    #[test]
    fn a_good_config_passes() {
        check(&with_servers(r#"{ "name": "a", "addr": "127.0.0.1:9001", "weight": 2 }, { "name": "b", "addr": "app2:80" }"#)).unwrap();
    }

    #[test]
    fn weight_zero_names_the_field() {
        let err = check(&with_servers(
            r#"{ "name": "a", "addr": "127.0.0.1:9001", "weight": 0 }"#,
        ))
        .unwrap_err();
        assert_eq!(
            err,
            "upstreams.web.servers[0].weight: must be at least 1 in t.json"
        );
    }

    #[test]
    fn duplicate_server_names_are_refused() {
        let err = check(&with_servers(
            r#"{ "name": "a", "addr": "127.0.0.1:9001" }, { "name": "a", "addr": "127.0.0.1:9002" }"#,
        ))
        .unwrap_err();
        assert_eq!(
            err,
            "upstreams.web.servers[1].name: duplicate server name \"a\" in upstream \"web\" in t.json"
        );
    }

    #[test]
    fn duplicate_addresses_are_refused() {
        let err = check(&with_servers(
            r#"{ "name": "a", "addr": "127.0.0.1:9001" }, { "name": "b", "addr": "127.0.0.1:9001" }"#,
        ))
        .unwrap_err();
        assert!(
            err.starts_with("upstreams.web.servers[1].addr: duplicate address"),
            "{err}"
        );
    }

    #[test]
    fn route_to_unknown_upstream_is_refused() {
        let text = with_servers(r#"{ "name": "a", "addr": "127.0.0.1:9001" }"#)
            .replace(r#""upstream": "web""#, r#""upstream": "api""#);
        assert_eq!(
            check(&text).unwrap_err(),
            "routes[0].upstream: unknown upstream \"api\" in t.json"
        );
    }

    #[test]
    fn unknown_variable_in_a_header_is_refused() {
        let text = with_servers(r#"{ "name": "a", "addr": "127.0.0.1:9001" }"#).replace(
            r#""upstream": "web""#,
            r#""upstream": "web", "proxy": { "set_headers": { "X-A": "$nope" } }"#,
        );
        assert_eq!(
            check(&text).unwrap_err(),
            "routes[0].proxy.set_headers.X-A: unknown \"nope\" variable in t.json"
        );
    }

    #[test]
    fn addresses_need_a_port() {
        assert!(check_host_port("app1:80").is_ok());
        assert!(check_host_port("[::1]:80").is_ok());
        assert!(check_host_port("app1").is_err());
        assert!(check_host_port("app1:0").is_err());
        assert!(check_host_port("::1:80").is_err());
        assert!(check_host_port(":80").is_err());
    }
}
