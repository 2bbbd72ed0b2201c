//! nginx `upstream NAME { ... }` blocks and the implicit upstreams that
//! `proxy_pass http://host:port` creates.

use super::translate::{Nginx, Translator, accepted, arg_count, at, unsupported};
use super::values;
use crate::config::{Balance, ConfigError, Keepalive, Server, StickyConf, Upstream};
use std::time::Duration;

/// nginx's upstream keep-alive defaults.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
const KEEPALIVE_REQUESTS: u32 = 1000;

pub fn translate(t: &mut Translator, d: &Nginx) -> Result<(), ConfigError> {
    if d.args().len() != 1 {
        return Err(at(
            d,
            "invalid number of arguments in \"upstream\" directive",
        ));
    }
    let name = d.args()[0].clone();
    if let Some(first) = t.upstream_pos.get(&name) {
        let msg = format!(
            "duplicate upstream \"{name}\" (first in {}:{})",
            first.file.display(),
            first.line
        );
        return Err(at(d, msg));
    }
    let mut upstream = Upstream::new(Vec::new(), d.origin());
    let mut balance_set: Option<&str> = None;
    let mut keepalive: Option<u32> = None;
    let mut keepalive_timeout = KEEPALIVE_TIMEOUT;
    let mut keepalive_requests = KEEPALIVE_REQUESTS;
    let mut resolver_timeout: Option<Duration> = None;
    for e in d.block()?.iter().map(Nginx::new) {
        let balance = match e.name() {
            "server" => {
                upstream.servers.push(server(&e, &upstream.servers)?);
                continue;
            }
            "least_conn" | "ip_hash" => {
                arg_count(&e, 0..=0)?;
                if e.name() == "least_conn" {
                    Balance::LeastConn
                } else {
                    Balance::IpHash
                }
            }
            "hash" => {
                arg_count(&e, 1..=2)?;
                let consistent = match e.args().get(1).map(String::as_str) {
                    None => false,
                    Some("consistent") => true,
                    Some(other) => return Err(at(&e, format!("invalid parameter \"{other}\""))),
                };
                Balance::Hash {
                    key: e.args()[0].clone(),
                    consistent,
                }
            }
            "keepalive" => {
                arg_count(&e, 1..=1)?;
                keepalive = Some(positive(&e)?);
                continue;
            }
            "keepalive_timeout" => {
                arg_count(&e, 1..=1)?;
                keepalive_timeout =
                    values::time(&e.args()[0]).ok_or_else(|| invalid_value(&e, 0))?;
                continue;
            }
            "keepalive_requests" => {
                arg_count(&e, 1..=1)?;
                keepalive_requests = positive(&e)?;
                continue;
            }
            "resolver" if upstream.resolver.is_some() => {
                return Err(at(&e, "\"resolver\" directive is duplicate"));
            }
            "resolver" => {
                let mut r = super::translate::resolver(&e)?;
                r.timeout = resolver_timeout.unwrap_or(r.timeout);
                upstream.resolver = Some(r);
                continue;
            }
            "resolver_timeout" => {
                arg_count(&e, 1..=1)?;
                let t = values::time(&e.args()[0]).ok_or_else(|| invalid_value(&e, 0))?;
                resolver_timeout = Some(t);
                if let Some(r) = upstream.resolver.as_mut() {
                    r.timeout = t;
                }
                continue;
            }
            "sticky" if upstream.sticky.is_some() => {
                return Err(at(&e, "\"sticky\" directive is duplicate"));
            }
            "sticky" => {
                upstream.sticky = Some(sticky(&e)?);
                continue;
            }
            _ if accepted(&e, "upstream") => continue,
            _ => return Err(unsupported(&e)),
        };
        if let Some(previous) = balance_set {
            return Err(at(
                &e,
                format!(
                    "load balancing method redefined (\"{previous}\" before \"{}\")",
                    e.name()
                ),
            ));
        }
        balance_set = Some(e.directive().name.as_str());
        upstream.balance = balance;
    }
    if upstream.servers.is_empty() {
        return Err(at(d, format!("no servers are inside upstream \"{name}\"")));
    }
    upstream.keepalive = keepalive.map(|connections| Keepalive {
        connections,
        timeout: keepalive_timeout,
        requests: keepalive_requests,
    });
    t.upstream_pos.insert(name.clone(), d.pos().clone());
    t.upstreams.insert(name, upstream);
    Ok(())
}

/// `server ADDRESS [weight=N] [max_fails=N] [fail_timeout=T] [max_conns=N] [backup] [down]
/// [drain] [resolve] [route=R]`.
fn server(d: &Nginx, previous: &[Server]) -> Result<Server, ConfigError> {
    arg_count(d, 1..=usize::MAX)?;
    let written = &d.args()[0];
    if written.contains('=') || ["backup", "down"].contains(&written.as_str()) {
        return Err(at(
            d,
            format!("upstream server needs an address before its parameters, found \"{written}\""),
        ));
    }
    let addr = values::server_addr(written).map_err(|msg| at(d, msg))?;
    // nginx takes the same address twice as two servers (twice the share). Servers are
    // named as written; a repeat gets its position so that names stay unique.
    let repeats = previous
        .iter()
        .filter(|s| s.addr.eq_ignore_ascii_case(&addr))
        .count();
    let name = match repeats {
        0 => written.clone(),
        n => format!("{written}#{}", n + 1),
    };
    let mut s = Server::new(name, addr, d.origin());
    for param in &d.args()[1..] {
        let invalid = || at(d, format!("invalid parameter \"{param}\""));
        let number = |v: &str| v.parse::<u32>().map_err(|_| invalid());
        match param.split_once('=') {
            Some(("weight", v)) => {
                s.weight = number(v)?;
                if s.weight == 0 {
                    return Err(at(
                        d,
                        format!("invalid parameter \"{param}\": weight must be at least 1"),
                    ));
                }
            }
            Some(("max_fails", v)) => s.max_fails = number(v)?,
            Some(("max_conns", v)) => s.max_conns = number(v)?,
            Some(("fail_timeout", v)) => s.fail_timeout = values::time(v).ok_or_else(invalid)?,
            Some(("route", v)) => {
                if v.is_empty() {
                    return Err(at(d, "route is empty"));
                }
                if v.len() > 32 {
                    return Err(at(d, "route is longer than 32"));
                }
                s.route = Some(v.to_string());
            }
            None if param == "backup" => s.backup = true,
            None if param == "down" => s.down = true,
            None if param == "drain" => s.drain = true,
            None if param == "resolve" => s.resolve = true,
            _ => return Err(invalid()),
        }
    }
    Ok(s)
}

/// `sticky cookie NAME [expires=TIME|max] [domain=D] [httponly] [samesite=strict|lax|none]
/// [secure] [path=P]`, with nginx 1.29.6's checks and messages
/// (`ngx_http_upstream_sticky_cookie`). `sticky route` and `sticky learn` are refused.
fn sticky(d: &Nginx) -> Result<StickyConf, ConfigError> {
    arg_count(d, 2..=usize::MAX)?;
    match d.args()[0].as_str() {
        "cookie" => {}
        mode @ ("route" | "learn") => {
            return Err(at(
                d,
                format!("\"sticky {mode}\" is not supported, only \"sticky cookie\""),
            ));
        }
        other => return Err(at(d, format!("unknown parameter \"{other}\""))),
    }
    let directive = |msg: &str| at(d, format!("\"sticky\" directive {msg}"));
    let name = &d.args()[1];
    if name.is_empty() {
        return Err(directive("empty cookie name"));
    }
    let mut c = StickyConf {
        cookie: name.clone(),
        expires: None,
        domain: None,
        path: None,
        httponly: false,
        secure: false,
        samesite: None,
        origin: d.origin(),
    };
    for p in &d.args()[2..] {
        let duplicate = |what: &str| directive(&format!("parameter \"{what}\" is duplicate"));
        if let Some(v) = p.strip_prefix("domain=") {
            if c.domain.is_some() {
                return Err(duplicate("domain"));
            }
            if v.is_empty() {
                return Err(directive("no value for \"domain\""));
            }
            c.domain = Some(v.to_string());
        } else if let Some(v) = p.strip_prefix("path=") {
            if c.path.is_some() {
                return Err(duplicate("path"));
            }
            if v.is_empty() {
                return Err(directive("no value for \"path\""));
            }
            c.path = Some(v.to_string());
        } else if let Some(v) = p.strip_prefix("expires=") {
            if c.expires.is_some() {
                return Err(duplicate("expires"));
            }
            let secs = match v {
                "max" => crate::config::STICKY_MAX_EXPIRES,
                v if v.contains("ms") => None,
                v => values::time(v).and_then(|t| i64::try_from(t.as_secs()).ok()),
            };
            c.expires = Some(secs.ok_or_else(|| directive("invalid \"expires\" parameter value"))?);
        } else if p == "httponly" {
            if c.httponly {
                return Err(duplicate("httponly"));
            }
            c.httponly = true;
        } else if p == "secure" {
            if c.secure {
                return Err(duplicate("secure"));
            }
            c.secure = true;
        } else if let Some(v) = p.strip_prefix("samesite=") {
            if c.samesite.is_some() {
                return Err(duplicate("samesite"));
            }
            if !["strict", "lax", "none"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(v))
            {
                return Err(directive("invalid \"samesite\" parameter value"));
            }
            c.samesite = Some(v.to_string());
        } else {
            return Err(at(d, format!("unknown parameter \"{p}\"")));
        }
    }
    Ok(c)
}

fn positive(d: &Nginx) -> Result<u32, ConfigError> {
    d.args()[0]
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid_value(d, 0))
}

fn invalid_value(d: &Nginx, i: usize) -> ConfigError {
    at(d, format!("invalid value \"{}\"", d.args()[i]))
}

/// The upstream that `proxy_pass http://host[:port]` names when no `upstream` block has
/// that name: one server, created once and shared by every `proxy_pass` to it.
pub fn implicit(t: &mut Translator, name: &str, host_port: &str, d: &Nginx) -> String {
    t.upstreams.entry(name.to_string()).or_insert_with(|| {
        let server = Server::new(host_port.to_string(), host_port.to_string(), d.origin());
        Upstream::new(vec![server], d.origin())
    });
    name.to_string()
}
