//! nginx's request limits: the zones (`limit_req_zone`, `limit_conn_zone`, http only) and
//! the settings inherited http → server → location (`limit_req`, `limit_conn`,
//! `limit_req_status`, `limit_conn_status`, `limit_req_log_level`, `limit_conn_log_level`,
//! `limit_req_dry_run`, `limit_conn_dry_run`), with nginx's checks and wording.

use super::translate::{Nginx, Translator, arg_count, at, flag};
use crate::config::{
    ConfigError, LimitConn, LimitConnZone, LimitDelay, LimitLogLevel, LimitReq, LimitReqZone,
    RouteLimits,
};
use crate::limits::{self, DelayPolicy};

/// What one level sets; `None` inherits from the enclosing level.
#[derive(Debug, Clone, Default)]
pub struct LimitLevel {
    /// `limit_req` and `limit_conn` lists are inherited all or nothing, as in nginx.
    req: Option<Vec<LimitReq>>,
    conn: Option<Vec<LimitConn>>,
    req_status: Option<u16>,
    conn_status: Option<u16>,
    req_log_level: Option<LimitLogLevel>,
    conn_log_level: Option<LimitLogLevel>,
    req_dry_run: Option<bool>,
    conn_dry_run: Option<bool>,
}

impl LimitLevel {
    /// This level's settings over `parent`'s.
    pub fn inherit(&self, parent: &LimitLevel) -> LimitLevel {
        LimitLevel {
            req: self.req.clone().or_else(|| parent.req.clone()),
            conn: self.conn.clone().or_else(|| parent.conn.clone()),
            req_status: self.req_status.or(parent.req_status),
            conn_status: self.conn_status.or(parent.conn_status),
            req_log_level: self.req_log_level.or(parent.req_log_level),
            conn_log_level: self.conn_log_level.or(parent.conn_log_level),
            req_dry_run: self.req_dry_run.or(parent.req_dry_run),
            conn_dry_run: self.conn_dry_run.or(parent.conn_dry_run),
        }
    }

    /// The effective limits, with nginx's defaults where nothing is set.
    pub fn limits(&self) -> RouteLimits {
        let defaults = RouteLimits::default();
        RouteLimits {
            req: self.req.clone().unwrap_or_default(),
            conn: self.conn.clone().unwrap_or_default(),
            req_status: self.req_status.unwrap_or(defaults.req_status),
            conn_status: self.conn_status.unwrap_or(defaults.conn_status),
            req_log_level: self.req_log_level.unwrap_or_default(),
            conn_log_level: self.conn_log_level.unwrap_or_default(),
            req_dry_run: self.req_dry_run.unwrap_or(false),
            conn_dry_run: self.conn_dry_run.unwrap_or(false),
        }
    }

    /// Applies `d` if it is one of the inherited limit directives; `Ok(false)` if not.
    pub fn apply(&mut self, d: &Nginx) -> Result<bool, ConfigError> {
        let words: Vec<&str> = d.args().iter().map(String::as_str).collect();
        let nginx = |e: limits::ConfError| at(d, e.0);
        match d.name() {
            "limit_req" => {
                d.simple()?;
                let conf = limits::parse_limit_req(&words).map_err(nginx)?;
                let list = self.req.get_or_insert_with(Vec::new);
                if list.iter().any(|l| l.zone == conf.zone) {
                    return Err(at(d, "\"limit_req\" directive is duplicate"));
                }
                list.push(LimitReq {
                    zone: conf.zone,
                    burst: conf.burst,
                    delay: match conf.delay {
                        DelayPolicy::Delay => LimitDelay::Delay,
                        DelayPolicy::NoDelay => LimitDelay::NoDelay,
                        DelayPolicy::After(n) => LimitDelay::After(n),
                    },
                    origin: d.origin(),
                });
            }
            "limit_conn" => {
                d.simple()?;
                let conf = limits::parse_limit_conn(&words).map_err(nginx)?;
                let list = self.conn.get_or_insert_with(Vec::new);
                if list.iter().any(|l| l.zone == conf.zone) {
                    return Err(at(d, "\"limit_conn\" directive is duplicate"));
                }
                list.push(LimitConn {
                    zone: conf.zone,
                    limit: conf.limit,
                    origin: d.origin(),
                });
            }
            "limit_req_status" => once(d, &mut self.req_status, status(d)?)?,
            "limit_conn_status" => once(d, &mut self.conn_status, status(d)?)?,
            "limit_req_log_level" => once(d, &mut self.req_log_level, log_level(d)?)?,
            "limit_conn_log_level" => once(d, &mut self.conn_log_level, log_level(d)?)?,
            "limit_req_dry_run" => once(d, &mut self.req_dry_run, flag(d)?)?,
            "limit_conn_dry_run" => once(d, &mut self.conn_dry_run, flag(d)?)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// nginx refuses a setting given twice at one level.
fn once<T>(d: &Nginx, slot: &mut Option<T>, value: T) -> Result<(), ConfigError> {
    if slot.is_some() {
        return Err(at(d, format!("\"{}\" directive is duplicate", d.name())));
    }
    *slot = Some(value);
    Ok(())
}

/// `limit_req_status` / `limit_conn_status`: a code from 400 to 599.
fn status(d: &Nginx) -> Result<u16, ConfigError> {
    arg_count(d, 1..=1)?;
    let code: u16 = d.args()[0]
        .parse()
        .map_err(|_| at(d, format!("\"{}\" directive invalid number", d.name())))?;
    if !(400..=599).contains(&code) {
        let msg = format!(
            "\"{}\" directive value must be between 400 and 599",
            d.name()
        );
        return Err(at(d, msg));
    }
    Ok(code)
}

/// `info | notice | warn | error`.
fn log_level(d: &Nginx) -> Result<LimitLogLevel, ConfigError> {
    arg_count(d, 1..=1)?;
    LimitLogLevel::parse(&d.args()[0])
        .ok_or_else(|| at(d, format!("invalid value \"{}\"", d.args()[0])))
}

/// `limit_req_zone KEY zone=NAME:SIZE rate=RATE` (http only).
pub fn req_zone(t: &mut Translator, d: &Nginx) -> Result<(), ConfigError> {
    d.simple()?;
    let words: Vec<&str> = d.args().iter().map(String::as_str).collect();
    let conf = limits::parse_limit_req_zone(&words).map_err(|e| at(d, e.0))?;
    zone_name_is_free(t, d, &conf.name)?;
    if let Some(existing) = t.limit_req_zones.get(&conf.name) {
        let msg = format!(
            "limit_req_zone \"{}\" is already bound to key \"{}\"",
            conf.name, existing.key
        );
        return Err(at(d, msg));
    }
    t.limit_req_zones.insert(
        conf.name,
        LimitReqZone {
            key: conf.key,
            size: conf.size,
            rate: conf.rate,
            origin: d.origin(),
        },
    );
    Ok(())
}

/// `limit_conn_zone KEY zone=NAME:SIZE` (http only).
pub fn conn_zone(t: &mut Translator, d: &Nginx) -> Result<(), ConfigError> {
    d.simple()?;
    let words: Vec<&str> = d.args().iter().map(String::as_str).collect();
    let conf = limits::parse_limit_conn_zone(&words).map_err(|e| at(d, e.0))?;
    zone_name_is_free(t, d, &conf.name)?;
    if let Some(existing) = t.limit_conn_zones.get(&conf.name) {
        let msg = format!(
            "limit_conn_zone \"{}\" is already bound to key \"{}\"",
            conf.name, existing.key
        );
        return Err(at(d, msg));
    }
    t.limit_conn_zones.insert(
        conf.name,
        LimitConnZone {
            key: conf.key,
            size: conf.size,
            origin: d.origin(),
        },
    );
    Ok(())
}

/// nginx's shared memory zones share one namespace: a `limit_req_zone` and a
/// `limit_conn_zone` may not have the same name.
fn zone_name_is_free(t: &Translator, d: &Nginx, name: &str) -> Result<(), ConfigError> {
    let other = match d.name() {
        "limit_req_zone" => t.limit_conn_zones.contains_key(name),
        _ => t.limit_req_zones.contains_key(name),
    };
    if other {
        let msg =
            format!("the shared memory zone \"{name}\" is already declared for a different use");
        return Err(at(d, msg));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::nginx::tests::translate_str;
    use crate::config::{LimitDelay, LimitLogLevel};

    fn http(body: &str) -> String {
        format!("http {{\n{body}\n}}\n")
    }

    #[test]
    fn zones_and_limits_translate_with_nginx_inheritance() {
        let c = translate_str(&http(
            "limit_req_zone $binary_remote_addr zone=one:10m rate=30r/m;
             limit_conn_zone $http_x_api_key zone=key:1m;
             limit_req zone=one burst=5;
             limit_req_status 429;
             server {
                 listen 8080;
                 limit_conn key 2;
                 location / { return 200; }
                 location /api { limit_req zone=one burst=10 delay=3; limit_req_log_level warn; return 200; }
                 location /open { limit_req_dry_run on; limit_conn_status 444; return 200; }
             }",
        ))
        .unwrap();
        let one = &c.limit_req_zones["one"];
        assert_eq!(
            (one.key.as_str(), one.size, one.rate),
            ("$binary_remote_addr", 10 << 20, 500)
        );
        assert_eq!(c.limit_conn_zones["key"].key, "$http_x_api_key");
        let routes = &c.virtual_servers[0].routes;
        // `/`: the http-level limit_req and the server-level limit_conn.
        let root = &routes[0].limits;
        assert_eq!(
            (root.req[0].burst, root.req[0].delay),
            (5, LimitDelay::Delay)
        );
        assert_eq!((root.conn[0].zone.as_str(), root.conn[0].limit), ("key", 2));
        assert_eq!((root.req_status, root.conn_status), (429, 503));
        // `/api` replaces the list as a whole.
        let api = &routes[1].limits;
        assert_eq!(api.req.len(), 1);
        assert_eq!(
            (api.req[0].burst, api.req[0].delay),
            (10, LimitDelay::After(3))
        );
        assert_eq!(api.req_log_level, LimitLogLevel::Warn);
        let open = &routes[2].limits;
        assert!(open.req_dry_run && !open.conn_dry_run);
        assert_eq!((open.req_status, open.conn_status), (429, 444));
    }

    #[test]
    fn limit_errors_use_nginx_wording() {
        let err = |body: &str| translate_str(&http(body)).unwrap_err();
        assert_eq!(
            err("limit_req_zone $a zone=one:1m rate=0r/s;"),
            "invalid rate \"rate=0r/s\" in /etc/nginx/nginx.conf:2"
        );
        assert_eq!(
            err(
                "limit_req_zone $a zone=one:1m rate=1r/s;\nlimit_req_zone $b zone=one:1m rate=1r/s;"
            ),
            "limit_req_zone \"one\" is already bound to key \"$a\" in /etc/nginx/nginx.conf:3"
        );
        assert_eq!(
            err("limit_req_zone $a zone=z:1m rate=1r/s;\nlimit_conn_zone $a zone=z:1m;"),
            "the shared memory zone \"z\" is already declared for a different use in /etc/nginx/nginx.conf:3"
        );
        assert_eq!(
            err("limit_req zone=one; limit_req zone=one burst=2;"),
            "\"limit_req\" directive is duplicate in /etc/nginx/nginx.conf:2"
        );
        assert_eq!(
            err("limit_req_status 302;"),
            "\"limit_req_status\" directive value must be between 400 and 599 in /etc/nginx/nginx.conf:2"
        );
        assert_eq!(
            err("limit_conn_log_level loud;"),
            "invalid value \"loud\" in /etc/nginx/nginx.conf:2"
        );
        assert_eq!(
            err("limit_req_dry_run yes;"),
            "invalid value \"yes\" in \"limit_req_dry_run\" directive, it must be \"on\" or \"off\" in /etc/nginx/nginx.conf:2"
        );
        assert_eq!(
            err("server { location / { limit_req_zone $a zone=z:1m rate=1r/s; return 200; } }"),
            "\"limit_req_zone\" directive is not allowed here in /etc/nginx/nginx.conf:2"
        );
        assert_eq!(
            err("limit_conn addr 0;"),
            "invalid number of connections \"0\" in /etc/nginx/nginx.conf:2"
        );
    }
}
