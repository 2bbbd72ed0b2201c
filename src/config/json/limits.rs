//! The JSON keys of request limits: `limit_req_zones` and `limit_conn_zones` at the top
//! level, and `limits` at the top level (for every route) and per route.

use crate::config::{
    ConfigError, LimitConn, LimitConnZone, LimitDelay, LimitLogLevel, LimitReq, LimitReqZone,
    Origin, RouteLimits,
};
use crate::limits::{parse_rate, parse_size};
use serde::Deserialize;
use std::path::Path;

/// `{ "key": "$binary_remote_addr", "size": "10m", "rate": "10r/s" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReqZoneConf {
    key: String,
    size: SizeConf,
    rate: RateConf,
}

/// `{ "key": "$binary_remote_addr", "size": "10m" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConnZoneConf {
    key: String,
    size: SizeConf,
}

/// Bytes, or nginx's size text (`32k`, `10m`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SizeConf {
    Bytes(u64),
    Text(String),
}

/// Requests per second, or nginx's rate text (`10r/s`, `30r/m`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RateConf {
    PerSecond(u64),
    Text(String),
}

impl SizeConf {
    fn bytes(&self, file: &Path, at: &Origin) -> Result<u64, ConfigError> {
        match self {
            SizeConf::Bytes(n) => Ok(*n),
            SizeConf::Text(t) => parse_size(t)
                .ok_or_else(|| ConfigError::invalid(file, at, format!("invalid size \"{t}\""))),
        }
    }
}

impl ReqZoneConf {
    pub(super) fn into_zone(
        self,
        file: &Path,
        origin: Origin,
    ) -> Result<LimitReqZone, ConfigError> {
        let rate = match &self.rate {
            RateConf::PerSecond(n) => n.checked_mul(1000).filter(|&r| r > 0),
            RateConf::Text(t) => parse_rate(t),
        };
        let rate = rate.ok_or_else(|| {
            let written = match &self.rate {
                RateConf::PerSecond(n) => n.to_string(),
                RateConf::Text(t) => t.clone(),
            };
            ConfigError::invalid(
                file,
                &origin.field("rate"),
                format!("invalid rate \"{written}\" (\"10r/s\", \"30r/m\" or requests per second)"),
            )
        })?;
        Ok(LimitReqZone {
            key: self.key,
            size: self.size.bytes(file, &origin.field("size"))?,
            rate,
            origin,
        })
    }
}

impl ConnZoneConf {
    pub(super) fn into_zone(
        self,
        file: &Path,
        origin: Origin,
    ) -> Result<LimitConnZone, ConfigError> {
        Ok(LimitConnZone {
            key: self.key,
            size: self.size.bytes(file, &origin.field("size"))?,
            origin,
        })
    }
}

/// `limits`: each key overrides the inherited one; `req` and `conn` replace the inherited
/// lists as a whole, as nginx's `limit_req` and `limit_conn` do.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsConf {
    req: Option<Vec<LimitReqConf>>,
    conn: Option<Vec<LimitConnConf>>,
    req_status: Option<u16>,
    conn_status: Option<u16>,
    req_log_level: Option<LimitLogLevel>,
    conn_log_level: Option<LimitLogLevel>,
    req_dry_run: Option<bool>,
    conn_dry_run: Option<bool>,
}

/// `{ "zone": "one", "burst": 5, "nodelay": true }` or `... "delay": 3`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitReqConf {
    zone: String,
    #[serde(default)]
    burst: u64,
    #[serde(default)]
    nodelay: bool,
    #[serde(default)]
    delay: Option<u64>,
}

/// `{ "zone": "addr", "limit": 10 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitConnConf {
    zone: String,
    limit: u32,
}

impl LimitsConf {
    /// These settings (written at `origin`) over `base`.
    pub(super) fn apply(
        &self,
        base: &RouteLimits,
        file: &Path,
        origin: &Origin,
    ) -> Result<RouteLimits, ConfigError> {
        let req = match &self.req {
            None => base.req.clone(),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let at = origin.field("req").field(&format!("[{i}]"));
                    let delay = match (l.nodelay, l.delay) {
                        (true, Some(_)) => {
                            let msg = "\"nodelay\" and \"delay\" cannot be combined";
                            return Err(ConfigError::invalid(file, &at, msg));
                        }
                        (true, None) => LimitDelay::NoDelay,
                        (false, Some(0) | None) => LimitDelay::Delay,
                        (false, Some(n)) => LimitDelay::After(n),
                    };
                    Ok(LimitReq {
                        zone: l.zone.clone(),
                        burst: l.burst,
                        delay,
                        origin: at,
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let conn = match &self.conn {
            None => base.conn.clone(),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, l)| LimitConn {
                    zone: l.zone.clone(),
                    limit: l.limit,
                    origin: origin.field("conn").field(&format!("[{i}]")),
                })
                .collect(),
        };
        Ok(RouteLimits {
            req,
            conn,
            req_status: self.req_status.unwrap_or(base.req_status),
            conn_status: self.conn_status.unwrap_or(base.conn_status),
            req_log_level: self.req_log_level.unwrap_or(base.req_log_level),
            conn_log_level: self.conn_log_level.unwrap_or(base.conn_log_level),
            req_dry_run: self.req_dry_run.unwrap_or(base.req_dry_run),
            conn_dry_run: self.conn_dry_run.unwrap_or(base.conn_dry_run),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, LimitDelay, LimitLogLevel, json};
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, String> {
        json::parse(Path::new("t.json"), text).map_err(|e| e.to_string())
    }

    fn with(top: &str, route: &str) -> String {
        format!(
            r#"{{ "listeners": [{{ "addr": "127.0.0.1:8080" }}], {top}
                "upstreams": {{ "web": {{ "servers": [ {{ "name": "a", "addr": "127.0.0.1:9001" }} ] }} }},
                "routes": [ {{ "path": "/", "upstream": "web" {route} }}, {{ "path": "/b", "upstream": "web" }} ] }}"#
        )
    }

    #[test]
    fn zones_and_limits_read_with_route_overrides() {
        let c = parse(&with(
            r#""limit_req_zones": { "one": { "key": "$binary_remote_addr", "size": "10m", "rate": "30r/m" },
                                   "two": { "key": "$http_x_api_key", "size": 65536, "rate": 5 } },
               "limit_conn_zones": { "addr": { "key": "$binary_remote_addr", "size": "1m" } },
               "limits": { "req": [{ "zone": "one", "burst": 5, "delay": 2 }], "req_status": 429 },"#,
            r#", "limits": { "conn": [{ "zone": "addr", "limit": 3 }], "req_log_level": "warn", "req_dry_run": true }"#,
        ))
        .unwrap();
        assert_eq!(c.limit_req_zones["one"].rate, 500);
        assert_eq!(
            (c.limit_req_zones["two"].rate, c.limit_req_zones["two"].size),
            (5000, 65536)
        );
        assert_eq!(c.limit_conn_zones["addr"].size, 1 << 20);
        let routes = &c.virtual_servers[0].routes;
        let own = &routes[0].limits;
        assert_eq!(
            (own.req[0].burst, own.req[0].delay),
            (5, LimitDelay::After(2))
        );
        assert_eq!((own.conn[0].zone.as_str(), own.conn[0].limit), ("addr", 3));
        assert_eq!(
            (own.req_status, own.req_log_level, own.req_dry_run),
            (429, LimitLogLevel::Warn, true)
        );
        let inherited = &routes[1].limits;
        assert!(inherited.conn.is_empty() && !inherited.req_dry_run);
        assert_eq!(inherited.req.len(), 1);
    }

    #[test]
    fn bad_limit_keys_are_refused_at_their_path() {
        assert_eq!(
            parse(&with(
                "",
                r#", "limits": { "req": [{ "zone": "one", "nodelay": true, "delay": 2 }] }"#
            ))
            .unwrap_err(),
            "routes[0].limits.req[0]: \"nodelay\" and \"delay\" cannot be combined in t.json"
        );
        let bad_rate = r#""limit_req_zones": { "one": { "key": "$binary_remote_addr", "size": "1m", "rate": "10r/h" } },"#;
        assert_eq!(
            parse(&with(bad_rate, "")).unwrap_err(),
            "limit_req_zones.one.rate: invalid rate \"10r/h\" (\"10r/s\", \"30r/m\" or requests per second) in t.json"
        );
        let bad_size =
            r#""limit_conn_zones": { "a": { "key": "$binary_remote_addr", "size": "1g" } },"#;
        assert_eq!(
            parse(&with(bad_size, "")).unwrap_err(),
            "limit_conn_zones.a.size: invalid size \"1g\" in t.json"
        );
        let msg = parse(&with(
            "",
            r#", "limits": { "req": [{ "zone": "one", "brust": 2 }] }"#,
        ))
        .unwrap_err();
        assert!(msg.contains("unknown field `brust`"), "{msg}");
    }
}
