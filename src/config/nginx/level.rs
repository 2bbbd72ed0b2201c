//! Settings that nginx inherits from `http` to `server` to `location`: the `proxy_*`
//! directives (and the `grpc_*` ones that set the same), `add_header`, `access_log`,
//! `client_max_body_size`, the request limits, realip and pinlb's `pinlb_pin_secret`.

use super::limits::LimitLevel;
use super::real_ip::RealIpLevel;
use super::translate::{Nginx, arg_count, at};
use super::values;
use crate::config::{
    AccessLogTarget, AddHeader, ConfigError, NextUpstream, Origin, ProxySettings, RealIp,
    RouteLimits, SetHeader,
};
use std::time::Duration;

/// nginx's default `client_max_body_size`.
const DEFAULT_MAX_BODY: u64 = 1 << 20;

/// What one level sets; `None` inherits from the enclosing level.
#[derive(Debug, Clone, Default)]
pub struct Level {
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    send_timeout: Option<Duration>,
    next_upstream: Option<NextUpstream>,
    next_upstream_tries: Option<u32>,
    /// `proxy_set_header` lists are inherited all or nothing, as nginx documents.
    set_headers: Option<Vec<SetHeader>>,
    add_headers: Option<Vec<AddHeader>>,
    access_log: Option<Vec<AccessLogTarget>>,
    client_max_body_size: Option<u64>,
    limits: LimitLevel,
    real_ip: RealIpLevel,
    /// `pinlb_pin_secret SECRET | off`: pins must be signed with SECRET.
    pin_secret: Option<Option<String>>,
    ssl: super::proxy_ssl::ProxySslLevel,
}

impl Level {
    /// This level's settings over `parent`'s.
    pub fn inherit(&self, parent: &Level) -> Level {
        Level {
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
            read_timeout: self.read_timeout.or(parent.read_timeout),
            send_timeout: self.send_timeout.or(parent.send_timeout),
            next_upstream: self
                .next_upstream
                .clone()
                .or_else(|| parent.next_upstream.clone()),
            next_upstream_tries: self.next_upstream_tries.or(parent.next_upstream_tries),
            set_headers: self
                .set_headers
                .clone()
                .or_else(|| parent.set_headers.clone()),
            add_headers: self
                .add_headers
                .clone()
                .or_else(|| parent.add_headers.clone()),
            access_log: self
                .access_log
                .clone()
                .or_else(|| parent.access_log.clone()),
            client_max_body_size: self.client_max_body_size.or(parent.client_max_body_size),
            limits: self.limits.inherit(&parent.limits),
            real_ip: self.real_ip.inherit(&parent.real_ip),
            pin_secret: self
                .pin_secret
                .clone()
                .or_else(|| parent.pin_secret.clone()),
            ssl: self.ssl.inherit(&parent.ssl),
        }
    }

    /// The request limits of a location.
    pub fn limits(&self) -> RouteLimits {
        self.limits.limits()
    }

    /// The realip settings of this level; `None` when it trusts no address.
    pub fn real_ip(&self) -> Option<RealIp> {
        self.real_ip.real_ip()
    }

    /// The secret pins of a location must be signed with, if any.
    pub fn pin_secret(&self) -> Option<String> {
        self.pin_secret.clone().flatten()
    }

    /// The effective settings of a location, with nginx's defaults where nothing is set.
    pub fn settings(&self) -> ProxySettings {
        let defaults = ProxySettings::default();
        let read_timeout = self.read_timeout.unwrap_or(defaults.read_timeout);
        ProxySettings {
            connect_timeout: self.connect_timeout.unwrap_or(defaults.connect_timeout),
            read_timeout,
            send_timeout: self.send_timeout.unwrap_or(defaults.send_timeout),
            // nginx closes an upgraded connection after proxy_read_timeout without data.
            websocket_idle_timeout: read_timeout,
            next_upstream_tries: self.next_upstream_tries.unwrap_or(0),
            next_upstream: self.next_upstream.clone().unwrap_or_default(),
            set_headers: self.set_headers_with_defaults(),
            // 0 disables the check in nginx.
            client_max_body_size: match self.client_max_body_size.unwrap_or(DEFAULT_MAX_BODY) {
                0 => None,
                n => Some(n),
            },
            upstream_tls: self.ssl.upstream_tls(),
            // Set by the location's `grpc_pass`.
            http2: false,
        }
    }

    /// nginx sends `Host: $proxy_host` unless the effective list sets `Host` itself.
    /// (Its other default, `Connection: close`, is left out: pinlb manages upstream
    /// connections and keeps them pooled.)
    fn set_headers_with_defaults(&self) -> Vec<SetHeader> {
        let mut headers = self.set_headers.clone().unwrap_or_default();
        if !headers.iter().any(|h| h.name.eq_ignore_ascii_case("host")) {
            headers.insert(
                0,
                SetHeader {
                    name: "Host".into(),
                    value: "$proxy_host".into(),
                    origin: Origin::Builtin,
                },
            );
        }
        headers
    }

    pub fn add_headers(&self) -> Vec<AddHeader> {
        self.add_headers.clone().unwrap_or_default()
    }

    /// The access logs of this level; without any `access_log`, nginx logs in `combined`
    /// (here to stdout, as the official container image links its log there).
    pub fn access_log(&self) -> Vec<AccessLogTarget> {
        self.access_log.clone().unwrap_or_else(|| {
            vec![AccessLogTarget {
                path: "stdout".into(),
                format: "combined".into(),
                origin: Origin::Builtin,
            }]
        })
    }

    /// Applies `d` if it is one of the inherited directives; `Ok(false)` if it is not.
    pub fn apply(&mut self, d: &Nginx, log_formats: &[String]) -> Result<bool, ConfigError> {
        if self.limits.apply(d)? || self.real_ip.apply(d)? {
            return Ok(true);
        }
        let args = d.args();
        // `grpc_read_timeout` and the like set what their `proxy_*` namesakes do.
        match super::grpc::proxy_name(d.name()) {
            "pinlb_pin_secret" => {
                arg_count(d, 1..=1)?;
                let secret = &args[0];
                self.pin_secret = Some((secret != "off").then(|| secret.clone()));
            }
            name if name.starts_with("proxy_ssl_") && self.ssl.apply(d)? => {}
            "proxy_connect_timeout" => self.connect_timeout = Some(time_arg(d)?),
            "proxy_read_timeout" => self.read_timeout = Some(time_arg(d)?),
            "proxy_send_timeout" => self.send_timeout = Some(time_arg(d)?),
            "proxy_next_upstream" => self.next_upstream = Some(next_upstream(d)?),
            "proxy_next_upstream_tries" => {
                arg_count(d, 1..=1)?;
                let n = args[0]
                    .parse()
                    .map_err(|_| at(d, format!("invalid value \"{}\"", args[0])))?;
                self.next_upstream_tries = Some(n);
            }
            "proxy_set_header" => {
                arg_count(d, 2..=2)?;
                self.set_headers
                    .get_or_insert_with(Vec::new)
                    .push(SetHeader {
                        name: args[0].clone(),
                        value: args[1].clone(),
                        origin: d.origin(),
                    });
            }
            "add_header" => {
                arg_count(d, 2..=3)?;
                let always = match args.get(2).map(String::as_str) {
                    None => false,
                    Some("always") => true,
                    Some(other) => return Err(at(d, format!("invalid parameter \"{other}\""))),
                };
                self.add_headers
                    .get_or_insert_with(Vec::new)
                    .push(AddHeader {
                        name: args[0].clone(),
                        value: args[1].clone(),
                        always,
                        origin: d.origin(),
                    });
            }
            "client_max_body_size" => {
                arg_count(d, 1..=1)?;
                let size = values::size(&args[0])
                    .ok_or_else(|| at(d, format!("invalid value \"{}\"", args[0])))?;
                self.client_max_body_size = Some(size);
            }
            "access_log" => {
                let log = access_log(d, log_formats)?;
                match (log, self.access_log.as_mut()) {
                    (None, _) => self.access_log = Some(Vec::new()),
                    (Some(target), Some(list)) => list.push(target),
                    (Some(target), None) => self.access_log = Some(vec![target]),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn time_arg(d: &Nginx) -> Result<Duration, ConfigError> {
    arg_count(d, 1..=1)?;
    let value = &d.args()[0];
    values::time(value)
        .filter(|t| !t.is_zero())
        .ok_or_else(|| at(d, format!("invalid value \"{value}\"")))
}

/// `proxy_next_upstream error timeout http_502 ... | off`.
fn next_upstream(d: &Nginx) -> Result<NextUpstream, ConfigError> {
    arg_count(d, 1..=usize::MAX)?;
    let mut next = NextUpstream {
        error: false,
        timeout: false,
        non_idempotent: false,
        statuses: Vec::new(),
    };
    for arg in d.args() {
        match arg.as_str() {
            "off" if d.args().len() == 1 => {}
            "error" => next.error = true,
            "timeout" => next.timeout = true,
            "non_idempotent" => next.non_idempotent = true,
            // Accepted: pinlb treats a malformed response header as an error anyway.
            "invalid_header" => next.error = true,
            code if code.starts_with("http_") => match code[5..].parse::<u16>() {
                Ok(status @ (500 | 502 | 503 | 504 | 403 | 404 | 429)) => {
                    next.statuses.push(status)
                }
                _ => return Err(at(d, format!("invalid value \"{code}\""))),
            },
            other => return Err(at(d, format!("invalid value \"{other}\""))),
        }
    }
    Ok(next)
}

/// `access_log off` is `None`; `access_log PATH [FORMAT]` a target.
fn access_log(d: &Nginx, log_formats: &[String]) -> Result<Option<AccessLogTarget>, ConfigError> {
    arg_count(d, 1..=usize::MAX)?;
    let args = d.args();
    if args[0] == "off" {
        return Ok(None);
    }
    if args.len() > 2 {
        return Err(at(
            d,
            format!("unsupported parameter \"{}\" in \"access_log\"", args[2]),
        ));
    }
    let format = args.get(1).cloned().unwrap_or_else(|| "combined".into());
    let builtin = ["combined", "upstream", "json"].contains(&format.as_str());
    if !builtin && !log_formats.contains(&format) {
        return Err(at(d, format!("unknown log format \"{format}\"")));
    }
    let path = match args[0].as_str() {
        "/dev/stdout" => "stdout".to_string(),
        "/dev/stderr" => "stderr".to_string(),
        p if p.starts_with("syslog:") => {
            return Err(at(d, "syslog access logs are not supported"));
        }
        p => p.to_string(),
    };
    Ok(Some(AccessLogTarget {
        path,
        format,
        origin: d.origin(),
    }))
}
