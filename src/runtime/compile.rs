//! The one pass from [`Config`] to [`Runtime`]: every check a config must pass happens
//! here, while its parts are compiled, so that nothing is parsed twice and every error
//! points at the element it is about (a file line for nginx syntax, a JSON path for JSON).

use super::Runtime;
use super::limits::Zones;
use super::routes::{Logs, compile_virtual_server};
use super::static_names::static_name;
use crate::config::{Config, ConfigError, Origin};
use crate::observe::access_log::Sinks;
use crate::observe::metrics::METRICS;
use crate::upstream::discovery::Discovery;
use crate::upstream::resolve::Resolve;
use crate::upstream::{Pool, PoolEnv};
use bytes::Bytes;
use http::HeaderName;
use pingora::http::WireName;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// Upper bound on worker threads, far above any sensible value, to catch typos.
const MAX_THREADS: usize = 1024;

/// What compiling a config needs besides the config.
pub struct CompileEnv<'a> {
    /// Resolves upstream host names: the system's, or [`crate::upstream::resolve::Offline`]
    /// to check a config without the network.
    pub dns: &'a dyn Resolve,
    /// The last known addresses of `resolve` names; `None`: such names have none yet
    /// (checking a config, `pinlb -t`).
    pub discovered: Option<&'a Discovery>,
    /// Access log destinations, shared across reloads.
    pub sinks: &'a Sinks,
    /// The runtime being replaced, whose pools keep their state where they can.
    pub previous: Option<&'a Runtime>,
}

impl Runtime {
    /// Checks `config` and builds everything requests need: resolves host names, opens
    /// access logs, compiles variables, regexes and header rules.
    pub fn compile(config: &Config, env: &CompileEnv<'_>) -> Result<Runtime, ConfigError> {
        let file = config.source.as_path();
        check_process(file, config)?;
        let (map_names, maps) = super::variables::compile(file, config)?;
        let pool_env = PoolEnv {
            file,
            dns: env.dns,
            discovered: env.discovered,
            maps: &map_names,
            threads: config.threads,
        };
        let mut pools = BTreeMap::new();
        for (name, upstream) in &config.upstreams {
            let previous = env.previous.and_then(|p| p.pools.get(name));
            pools.insert(
                name.clone(),
                Pool::build(&pool_env, name, upstream, previous)?,
            );
        }
        let mut logs = Logs::new(config, env.sinks, &map_names, || {
            METRICS.access_log_dropped.inc()
        });
        let zones = Zones::compile(file, config, &map_names, env.previous.map(|p| &p.zones))?;
        let virtual_servers = config
            .virtual_servers
            .iter()
            .map(|vs| compile_virtual_server(file, vs, &pools, &zones, &map_names, &mut logs))
            .collect::<Result<_, _>>()?;
        let served_by = match &config.served_by_header {
            Some(name) => {
                let at = Origin::Json("served_by_header".into());
                let header = header_name(name).map_err(|m| ConfigError::invalid(file, &at, m))?;
                Some((header, Bytes::from(name.clone())))
            }
            None => None,
        };
        if config.served_by_reason && served_by.is_none() {
            let at = Origin::Json("served_by_reason".into());
            let msg = "needs \"served_by_header\", the header it adds to";
            return Err(ConfigError::invalid(file, &at, msg));
        }
        let merges = |on: bool| {
            config
                .virtual_servers
                .iter()
                .all(|vs| vs.merge_slashes == on)
        };
        let merge_slashes = [true, false].into_iter().find(|&on| merges(on));
        let tls = crate::tls::sni_tables(config)?;
        let acme = crate::tls::acme::plans(config)?;
        Ok(Runtime {
            acme_http01: !acme.is_empty(),
            acme,
            any_tls: !tls.is_empty(),
            tls,
            pools,
            virtual_servers,
            maps,
            served_by,
            served_by_reason: config.served_by_reason,
            zones,
            merge_slashes,
            keepalive_timeout: config.keepalive_timeout,
            any_server_names: config
                .virtual_servers
                .iter()
                .any(|vs| !vs.server_names.is_empty()),
            conn_addrs: config.listeners.iter().any(|l| l.proxy_protocol)
                || config.virtual_servers.iter().any(|vs| {
                    vs.real_ip.is_some() || vs.routes.iter().any(|r| r.real_ip.is_some())
                }),
        })
    }
}

/// Settings of the process rather than of requests: threads, listeners, the admin listener.
fn check_process(file: &Path, config: &Config) -> Result<(), ConfigError> {
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
    Ok(())
}

/// A header name from the config, with the message nginx users would understand.
pub(super) fn header_name(name: &str) -> Result<HeaderName, String> {
    wire_header_name(name).map(|wire| wire.name)
}

/// [`header_name`] with whether `name` is its title case, for a name sent as written.
pub(super) fn wire_header_name(name: &str) -> Result<WireName, String> {
    let recognised = WireName::recognise(name.as_bytes())
        .map_err(|_| format!("\"{name}\" is not a valid header name"))?;
    // Made from a kept `&'static str` (a valid name's lowercase form is one `from_static`
    // takes): inserting it into a request copies a pointer.
    Ok(WireName {
        name: HeaderName::from_static(static_name(recognised.name.as_str())),
        ..recognised
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::json;
    use crate::upstream::resolve::Offline;
    use std::sync::Arc;

    fn compile(text: &str) -> Result<Runtime, String> {
        let config = json::parse(Path::new("t.json"), text).map_err(|e| e.to_string())?;
        let env = CompileEnv {
            dns: &Offline::default(),
            discovered: None,
            sinks: &Sinks::offline(),
            previous: None,
        };
        Runtime::compile(&config, &env).map_err(|e| e.to_string())
    }

    fn refused(text: &str) -> String {
        compile(text).err().expect("the config is refused")
    }

    fn with_route(route: &str) -> String {
        format!(
            r#"{{ "listeners": [{{ "addr": "127.0.0.1:8080" }}],
                "upstreams": {{ "web": {{ "servers": [
                    {{ "name": "a", "addr": "127.0.0.1:9001", "weight": 2 }},
                    {{ "name": "b", "addr": "app2:80" }}
                ] }} }},
                "routes": [{route}] }}"#
        )
    }

    #[test]
    fn a_good_config_compiles_without_the_network() {
        let runtime = compile(&with_route(r#"{ "path": "/", "upstream": "web" }"#)).unwrap();
        assert_eq!(runtime.pools["web"].servers.len(), 2);
    }

    #[test]
    fn route_to_unknown_upstream_is_refused() {
        assert_eq!(
            refused(&with_route(r#"{ "path": "/", "upstream": "api" }"#)),
            "routes[0].upstream: unknown upstream \"api\" in t.json"
        );
    }

    #[test]
    fn unknown_variable_in_a_header_is_refused() {
        let route =
            r#"{ "path": "/", "upstream": "web", "proxy": { "set_headers": { "X-A": "$nope" } } }"#;
        assert_eq!(
            refused(&with_route(route)),
            "routes[0].proxy.set_headers.X-A: unknown \"nope\" variable in t.json"
        );
    }

    #[test]
    fn a_listener_twice_is_refused() {
        let text = with_route(r#"{ "path": "/", "upstream": "web" }"#).replace(
            r#"[{ "addr": "127.0.0.1:8080" }]"#,
            r#"[{ "addr": "127.0.0.1:8080" }, { "addr": "127.0.0.1:8080" }]"#,
        );
        assert_eq!(
            refused(&text),
            "listeners[1]: duplicate listener 127.0.0.1:8080 in t.json"
        );
    }

    #[test]
    fn header_values_with_line_breaks_are_refused() {
        let route = r#"{ "path": "/", "upstream": "web", "proxy": { "set_headers": { "X-A": "1\r\nX-Injected: 1" } } }"#;
        assert_eq!(
            refused(&with_route(route)),
            "routes[0].proxy.set_headers.X-A: header value \"1\\r\\nX-Injected: 1\" contains the control character 0x0D in t.json"
        );
        let tab =
            r#"{ "path": "/", "upstream": "web", "proxy": { "set_headers": { "X-A": "a\tb" } } }"#;
        assert!(compile(&with_route(tab)).is_ok());
    }

    #[test]
    fn a_redirect_location_with_a_line_break_is_refused() {
        let route =
            r#"{ "path": "/", "return": { "status": 301, "text": "http://x/\nSet-Cookie: a=1" } }"#;
        assert!(refused(&with_route(route)).starts_with("routes[0].return.text: header value"));
        let body = r#"{ "path": "/", "return": { "status": 200, "text": "line one\nline two" } }"#;
        assert!(compile(&with_route(body)).is_ok());
    }

    #[test]
    fn limits_name_known_zones_of_a_usable_size() {
        let zone = r#""limit_req_zones": { "one": { "key": "$binary_remote_addr", "size": "16k", "rate": "1r/s" } },"#;
        let route =
            r#"{ "path": "/", "upstream": "web", "limits": { "req": [{ "zone": "one" }] } }"#;
        let text = with_route(route).replacen("{", &format!("{{ {zone}"), 1);
        assert_eq!(
            refused(&text),
            "limit_req_zones.one.size: a zone needs at least 32768 bytes (32k) in t.json"
        );
        let unknown = r#"{ "path": "/", "upstream": "web", "limits": { "conn": [{ "zone": "addr", "limit": 2 }] } }"#;
        assert_eq!(
            refused(&with_route(unknown)),
            "routes[0].limits.conn[0].zone: unknown limit_conn_zone \"addr\" in t.json"
        );
        let status = r#"{ "path": "/", "upstream": "web", "limits": { "req_status": 200 } }"#;
        // Without a limit the status means nothing, and is not checked...
        assert!(compile(&with_route(status)).is_ok());
        let zone =
            r#""limit_conn_zones": { "a": { "key": "$binary_remote_addr", "size": "1m" } },"#;
        let route = r#"{ "path": "/", "upstream": "web", "limits": { "conn": [{ "zone": "a", "limit": 1 }], "conn_status": 200 } }"#;
        let text = with_route(route).replacen("{", &format!("{{ {zone}"), 1);
        // ... with one, it is.
        assert_eq!(
            refused(&text),
            "routes[0].limits.conn_status: must be between 400 and 599 in t.json"
        );
    }

    #[test]
    fn an_unchanged_zone_keeps_its_buckets_across_compiles() {
        let zone = r#""limit_req_zones": { "one": { "key": "$binary_remote_addr", "size": "1m", "rate": "1r/s" } },"#;
        let text = with_route(r#"{ "path": "/", "upstream": "web" }"#).replacen(
            "{",
            &format!("{{ {zone}"),
            1,
        );
        let first = compile(&text).unwrap();
        let config = json::parse(Path::new("t.json"), &text).unwrap();
        let (sinks, dns) = (Sinks::offline(), Offline::default());
        let env = |previous| CompileEnv {
            dns: &dns,
            discovered: None,
            sinks: &sinks,
            previous,
        };
        let again = Runtime::compile(&config, &env(Some(&first))).unwrap();
        assert!(Arc::ptr_eq(
            &first.zones.req["one"].buckets,
            &again.zones.req["one"].buckets
        ));
        let changed = json::parse(Path::new("t.json"), &text.replace("1r/s", "2r/s")).unwrap();
        let other = Runtime::compile(&changed, &env(Some(&again))).unwrap();
        assert!(!Arc::ptr_eq(
            &again.zones.req["one"].buckets,
            &other.zones.req["one"].buckets
        ));
    }

    #[test]
    fn pin_guards_are_checked() {
        let pin = |p: &str| {
            with_route(&format!(
                r#"{{ "path": "/", "upstream": "web", "pin": {{ "header": "app", {p} }} }}"#
            ))
        };
        assert_eq!(
            refused(&pin(r#""secret": "short""#)),
            "routes[0].pin.secret: a pin secret needs at least 16 bytes (32 random ones are best) in t.json"
        );
        assert_eq!(
            refused(&pin(r#""allow_from": ["10.0.0.0/33"]"#)),
            "routes[0].pin.allow_from: invalid network \"10.0.0.0/33\" in t.json"
        );
        assert!(
            compile(&pin(
                r#""allow_from": ["10.0.0.0/8", "::1"], "secret": "0123456789abcdef""#
            ))
            .is_ok()
        );
        let reason = with_route(r#"{ "path": "/", "upstream": "web" }"#).replacen(
            "{",
            r#"{ "served_by_reason": true,"#,
            1,
        );
        assert_eq!(
            refused(&reason),
            "served_by_reason: needs \"served_by_header\", the header it adds to in t.json"
        );
    }
}
