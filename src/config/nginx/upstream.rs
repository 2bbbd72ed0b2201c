//! nginx `upstream NAME { ... }` blocks and the implicit upstreams that
//! `proxy_pass http://host:port` creates.

use super::translate::{Nginx, Translator, accepted, arg_count, at, unsupported};
use super::values;
use crate::config::{Balance, ConfigError, Keepalive, Server, Upstream};
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
    let mut upstream = Upstream {
        servers: Vec::new(),
        balance: Balance::RoundRobin,
        health_check: None,
        keepalive: None,
        origin: d.origin(),
    };
    let mut balance_set: Option<&str> = None;
    let mut keepalive: Option<u32> = None;
    let mut keepalive_timeout = KEEPALIVE_TIMEOUT;
    let mut keepalive_requests = KEEPALIVE_REQUESTS;
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

/// `server ADDRESS [weight=N] [max_fails=N] [fail_timeout=T] [max_conns=N] [backup] [down]`.
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
            None if param == "backup" => s.backup = true,
            None if param == "down" => s.down = true,
            _ => return Err(invalid()),
        }
    }
    Ok(s)
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
    t.upstreams
        .entry(name.to_string())
        .or_insert_with(|| Upstream {
            servers: vec![Server::new(
                host_port.to_string(),
                host_port.to_string(),
                d.origin(),
            )],
            balance: Balance::RoundRobin,
            health_check: None,
            keepalive: None,
            origin: d.origin(),
        });
    name.to_string()
}
