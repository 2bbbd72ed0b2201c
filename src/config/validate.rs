//! Checks on the [`Config`] model that both front-ends rely on: values in range, names
//! unique, references resolvable, variables and regexes valid. No I/O and no DNS here.

use super::{
    Action, Balance, CheckKind, Config, ConfigError, Origin, PathMatch, PinMatch, PinSource,
    PinTarget, ProxySettings, Route, ServerName, Upstream, VirtualServer,
};
use crate::variables::{CompiledMap, Template};
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
    if let Some(admin) = config.admin {
        if config.listeners.iter().any(|l| l.addr == admin) {
            return Err(ConfigError::invalid(
                file,
                &root.field("admin").field("addr"),
                format!("{admin} is also a proxy listener"),
            ));
        }
    }
    if let Some(name) = &config.served_by_header {
        check_header_name(file, &root.field("served_by_header"), name)?;
    }
    let map_names: Vec<String> = config.maps.iter().map(|m| m.variable.clone()).collect();
    CompiledMap::compile_all(&config.maps).map_err(|(i, msg)| {
        ConfigError::invalid(file, &root.field("maps").field(&format!("[{i}]")), msg)
    })?;
    for (name, upstream) in &config.upstreams {
        check_upstream(file, name, upstream, &map_names)?;
    }
    for vs in &config.virtual_servers {
        check_virtual_server(file, config, vs, &map_names)?;
    }
    Ok(())
}

fn check_upstream(
    file: &Path,
    name: &str,
    upstream: &Upstream,
    maps: &[String],
) -> Result<(), ConfigError> {
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
        if s.max_fails > 0 && s.fail_timeout.is_zero() {
            return Err(ConfigError::invalid(
                file,
                &s.origin.field("fail_timeout_ms"),
                "must be greater than 0 when max_fails is set",
            ));
        }
        if s.backup && matches!(upstream.balance, Balance::IpHash | Balance::Hash { .. }) {
            return Err(ConfigError::invalid(
                file,
                &s.origin.field("backup"),
                "hash and ip_hash balancing do not support backup servers",
            ));
        }
    }
    if let Balance::Hash { key, .. } = &upstream.balance {
        Template::parse(key, maps).map_err(|msg| {
            ConfigError::invalid(file, &origin.field("balance").field("hash"), msg)
        })?;
    }
    if let Some(keepalive) = &upstream.keepalive {
        if keepalive.connections == 0 {
            return Err(ConfigError::invalid(
                file,
                &origin.field("keepalive").field("connections"),
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

fn check_virtual_server(
    file: &Path,
    config: &Config,
    vs: &VirtualServer,
    maps: &[String],
) -> Result<(), ConfigError> {
    for name in &vs.server_names {
        if let ServerName::Regex(pattern) = name {
            check_regex(file, &vs.origin.field("server_names"), pattern, false)?;
        }
    }
    let mut paths = HashSet::new();
    for route in &vs.routes {
        if !paths.insert(&route.path) {
            return Err(ConfigError::invalid(
                file,
                &route.origin.field("path"),
                "duplicate location",
            ));
        }
        check_route(file, config, route, maps)?;
    }
    Ok(())
}

fn check_route(
    file: &Path,
    config: &Config,
    route: &Route,
    maps: &[String],
) -> Result<(), ConfigError> {
    let origin = &route.origin;
    match &route.path {
        PathMatch::Exact(path) | PathMatch::Prefix(path) | PathMatch::PrefixNoRegex(path) => {
            if !path.starts_with('/') {
                return Err(ConfigError::invalid(
                    file,
                    &origin.field("path"),
                    "must start with \"/\"",
                ));
            }
        }
        PathMatch::Regex {
            pattern,
            case_insensitive,
        } => check_regex(file, &origin.field("path"), pattern, *case_insensitive)?,
    }
    match &route.action {
        Action::Proxy(pass) => {
            check_upstream_ref(file, config, &origin.field("upstream"), &pass.upstream)?;
            if pass.uri.is_some() && matches!(route.path, PathMatch::Regex { .. }) {
                return Err(ConfigError::invalid(
                    file,
                    &origin.field("upstream"),
                    "\"proxy_pass\" cannot have URI part in location given by regular expression",
                ));
            }
            for pin in &pass.pins {
                check_pin_source(file, &origin.field("pin"), &pin.source)?;
                if let PinMatch::Value { target, .. } = &pin.matches {
                    check_pin_target(file, config, &origin.field("pin"), target)?;
                }
            }
        }
        Action::Return(answer) => {
            if answer.status > 999 {
                return Err(ConfigError::invalid(
                    file,
                    &origin.field("return").field("status"),
                    "must be between 0 and 999",
                ));
            }
            if let Some(text) = &answer.text {
                Template::parse(text, maps).map_err(|msg| {
                    ConfigError::invalid(file, &origin.field("return").field("text"), msg)
                })?;
            }
        }
    }
    check_proxy_settings(file, &origin.field("proxy"), &route.proxy, maps)?;
    for h in &route.add_headers {
        let at = origin.field("add_headers").field(&h.name);
        check_header_name(file, &at, &h.name)?;
        Template::parse(&h.value, maps).map_err(|msg| ConfigError::invalid(file, &at, msg))?;
    }
    Ok(())
}

fn check_upstream_ref(
    file: &Path,
    config: &Config,
    at: &Origin,
    name: &str,
) -> Result<(), ConfigError> {
    if config.upstreams.contains_key(name) {
        return Ok(());
    }
    Err(ConfigError::invalid(
        file,
        at,
        format!("unknown upstream \"{name}\""),
    ))
}

fn check_pin_source(file: &Path, at: &Origin, source: &PinSource) -> Result<(), ConfigError> {
    match source {
        PinSource::Header(name) => check_header_name(file, &at.field("header"), name),
        PinSource::Cookie(name) => {
            let bad = name.is_empty()
                || name
                    .bytes()
                    .any(|b| matches!(b, b';' | b'=' | b' ' | b',') || b.is_ascii_control());
            if bad {
                return Err(ConfigError::invalid(
                    file,
                    &at.field("cookie"),
                    format!("\"{name}\" is not a valid cookie name"),
                ));
            }
            Ok(())
        }
    }
}

fn check_pin_target(
    file: &Path,
    config: &Config,
    at: &Origin,
    target: &PinTarget,
) -> Result<(), ConfigError> {
    match target {
        PinTarget::Upstream(name) => check_upstream_ref(file, config, at, name),
        PinTarget::Server { upstream, server } => {
            check_upstream_ref(file, config, at, upstream)?;
            if config.upstreams[upstream]
                .servers
                .iter()
                .any(|s| &s.name == server)
            {
                return Ok(());
            }
            Err(ConfigError::invalid(
                file,
                at,
                format!("upstream \"{upstream}\" has no server \"{server}\""),
            ))
        }
    }
}

fn check_proxy_settings(
    file: &Path,
    origin: &Origin,
    p: &ProxySettings,
    maps: &[String],
) -> Result<(), ConfigError> {
    for (field, value) in [
        ("connect_timeout_ms", p.connect_timeout),
        ("read_timeout_ms", p.read_timeout),
        ("send_timeout_ms", p.send_timeout),
        ("websocket_idle_timeout_ms", p.websocket_idle_timeout),
    ] {
        check_positive(file, &origin.field(field), value)?;
    }
    for h in &p.set_headers {
        let at = origin.field("set_headers").field(&h.name);
        check_header_name(file, &at, &h.name)?;
        Template::parse(&h.value, maps).map_err(|msg| ConfigError::invalid(file, &at, msg))?;
    }
    Ok(())
}

fn check_regex(
    file: &Path,
    at: &Origin,
    pattern: &str,
    case_insensitive: bool,
) -> Result<(), ConfigError> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .build()
        .map(|_| ())
        .map_err(|e| ConfigError::invalid(file, at, format!("invalid regex \"{pattern}\": {e}")))
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
        check(&with_servers(
            r#"{ "name": "a", "addr": "127.0.0.1:9001", "weight": 2 }, { "name": "b", "addr": "app2:80" }"#,
        ))
        .unwrap();
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
    fn backup_servers_need_a_round_robin_or_least_conn_pool() {
        let text = with_servers(
            r#"{ "name": "a", "addr": "127.0.0.1:9001" }, { "name": "b", "addr": "127.0.0.1:9002", "backup": true }"#,
        )
        .replace(r#"] } }"#, r#"], "balance": "ip_hash" } }"#);
        assert_eq!(
            check(&text).unwrap_err(),
            "upstreams.web.servers[1].backup: hash and ip_hash balancing do not support backup servers in t.json"
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
