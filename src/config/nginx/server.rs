//! nginx `server { ... }` blocks and their `location`s: listen addresses, names, routes,
//! `proxy_pass`, `grpc_pass`, `return`, `health_check`, and `if` blocks that become pins.

use super::client::{self, ClientLevel};
use super::level::Level;
use super::listen::ListenParams;
use super::tls::{self, TlsLevel};
use super::translate::{
    HTTP_ONLY, Nginx, Translator, accepted, arg_count, at, flag, not_allowed, unsupported,
};
use super::{acme, grpc, upstream, values};
use crate::config::{
    Action, CheckKind, ConfigError, HealthCheck, OnUnhealthy, PathMatch, PinMatch, PinRule,
    PinSource, PinTarget, ProxyPass, ReturnAction, Route, ServerName, VirtualServer,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub fn translate(
    t: &mut Translator,
    d: &Nginx,
    http: &Level,
    http_client: &ClientLevel,
    http_tls: &TlsLevel,
    log_formats: &[String],
) -> Result<(), ConfigError> {
    let mut vs = VirtualServer {
        listen: Vec::new(),
        default_for: Vec::new(),
        server_names: Vec::new(),
        certificates: Vec::new(),
        acme: None,
        acme_serves: false,
        routes: Vec::new(),
        merge_slashes: t.merge_slashes,
        access_log: Vec::new(),
        client: Default::default(),
        real_ip: None,
        origin: d.origin(),
    };
    let mut level = Level::default();
    let mut client = ClientLevel::default();
    let mut tls_level = TlsLevel::default();
    let mut listens = Vec::new();
    let mut locations = Vec::new();
    let mut server_return = None;
    let mut acme_certificate = None;
    let base = t.base_dir();
    for e in d.block()?.iter().map(Nginx::new) {
        match e.name() {
            "listen" => listens.push(listen(t, &e, &mut vs)?),
            "server_name" => server_names(&e, &mut vs.server_names)?,
            "location" => locations.push(e),
            "return" => server_return = Some((answer(&e)?, e.origin())),
            "merge_slashes" => vs.merge_slashes = flag(&e)?,
            "acme_certificate" if acme_certificate.is_some() => {
                return Err(at(&e, "\"acme_certificate\" directive is duplicate"));
            }
            "acme_certificate" => acme_certificate = Some(e),
            "acme_issuer" | "acme_shared_zone" => return Err(not_allowed(&e)),
            name if HTTP_ONLY.contains(&name) => return Err(not_allowed(&e)),
            "if" => {
                return Err(at(
                    &e,
                    "\"if\" is only supported inside \"location\", to pin requests",
                ));
            }
            _ if level.apply(&e, log_formats)? => {}
            _ if accepted(&e, "server") => {}
            _ if client.apply(&e)? => {}
            _ if tls_level.apply(&e, &base)? => {}
            _ => return Err(unsupported(&e)),
        }
    }
    vs.client = client.inherit(http_client).limits();
    if vs.listen.is_empty() {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80);
        t.listen(addr, d, ListenParams::default())?;
        vs.listen.push(addr);
        listens.push((addr, d.origin()));
    }
    let tls_level = tls_level.inherit(http_tls);
    vs.certificates = tls_level.pairs(d)?;
    vs.acme_serves = TlsLevel::acme_pair(&t.main_file, &mut vs.certificates)?;
    // After the block: identifiers default to the `server_name`s, wherever written.
    vs.acme = match &acme_certificate {
        Some(e) => Some(acme::certificate(t, e, &vs.server_names)?),
        None => None,
    };
    let on_tls = t
        .listeners
        .iter()
        .any(|l| l.tls.is_some() && vs.listen.iter().any(|a| l.serves(a)));
    if vs.acme_serves && vs.acme.is_none() && !on_tls {
        // Inherited from `http` by a plain server: no certificate to choose.
        vs.acme_serves = false;
    }
    if vs.acme_serves && vs.acme.is_none() {
        return Err(at(
            d,
            "\"ssl_certificate $acme_certificate\" needs an \"acme_certificate\" in the same server",
        ));
    }
    t.server_tls.push(super::translate::ServerTls {
        level: tls_level,
        listens,
    });
    let level = level.inherit(http);
    vs.access_log = level.access_log();
    vs.real_ip = level.real_ip();
    if let Some((answer, origin)) = server_return {
        // A server-level `return` runs before any location is chosen.
        vs.routes.push(Route {
            path: PathMatch::Prefix("/".into()),
            action: Action::Return(answer),
            proxy: level.settings(),
            add_headers: level.add_headers(),
            access_log: level.access_log(),
            limits: level.limits(),
            real_ip: level.real_ip(),
            origin,
        });
    } else {
        for e in &locations {
            let route = location(t, e, &level, log_formats)?;
            if vs.routes.iter().any(|r| r.path == route.path) {
                return Err(at(
                    e,
                    format!("duplicate location \"{}\"", e.args().join(" ")),
                ));
            }
            vs.routes.push(route);
        }
    }
    t.virtual_servers.push(vs);
    Ok(())
}

/// `listen [ADDR:]PORT [ssl] [http2] [default_server] [proxy_protocol]`.
fn listen(
    t: &mut Translator,
    d: &Nginx,
    vs: &mut VirtualServer,
) -> Result<(SocketAddr, crate::config::Origin), ConfigError> {
    arg_count(d, 1..=usize::MAX)?;
    let addr = values::listen_addr(&d.args()[0]).map_err(|msg| at(d, msg))?;
    let mut params = ListenParams::default();
    for param in &d.args()[1..] {
        match param.as_str() {
            "default_server" | "default" => vs.default_for.push(addr),
            "ssl" => params.ssl = true,
            "proxy_protocol" => params.proxy_protocol = true,
            "http2" => {
                log::warn!(
                    "the \"listen ... http2\" directive is deprecated, use the \"http2\" directive instead in {}:{}",
                    d.pos().file.display(),
                    d.pos().line
                );
                params.http2 = true;
            }
            "quic" => return Err(at(d, "\"quic\" listeners are not supported")),
            other => {
                return Err(at(
                    d,
                    format!("unsupported parameter \"{other}\" in \"listen\""),
                ));
            }
        }
    }
    t.listen(addr, d, params)?;
    vs.listen.push(addr);
    Ok((addr, d.origin()))
}

/// `server_name` entries in nginx's kinds; `_` and `""` never match a host.
fn server_names(d: &Nginx, names: &mut Vec<ServerName>) -> Result<(), ConfigError> {
    arg_count(d, 1..=usize::MAX)?;
    for written in d.args() {
        if let Some(re) = written.strip_prefix('~') {
            names.push(ServerName::Regex(re.to_string()));
            continue;
        }
        let name = written.to_ascii_lowercase();
        if let Some(suffix) = name.strip_prefix('*') {
            names.push(ServerName::Suffix(suffix.to_string()));
        } else if let Some(prefix) = name.strip_suffix('*') {
            names.push(ServerName::Prefix(prefix.to_string()));
        } else if let Some(bare) = name.strip_prefix('.') {
            names.push(ServerName::Exact(bare.to_string()));
            names.push(ServerName::Suffix(name.clone()));
        } else if !name.is_empty() {
            names.push(ServerName::Exact(name));
        }
    }
    Ok(())
}

/// One `location [modifier] path { ... }`.
fn location(
    t: &mut Translator,
    d: &Nginx,
    server: &Level,
    log_formats: &[String],
) -> Result<Route, ConfigError> {
    let path = location_path(d)?;
    let mut level = Level::default();
    let mut proxy_pass = None;
    let mut answer_with = None;
    let mut ifs = Vec::new();
    let mut health = None;
    for e in d.block()?.iter().map(Nginx::new) {
        match e.name() {
            // One upstream per location: a second `proxy_pass` or `grpc_pass` is refused,
            // whichever of the two came first.
            "proxy_pass" | "grpc_pass" => {
                arg_count(&e, 1..=1)?;
                if proxy_pass.is_some() {
                    return Err(at(&e, format!("\"{}\" directive is duplicate", e.name())));
                }
                proxy_pass = Some(e);
            }
            "proxy_http_version" => {
                arg_count(&e, 1..=1)?;
                // pinlb speaks HTTP/1.1 (or HTTP/2 with `grpc_pass`) whatever it says.
                if !matches!(e.args()[0].as_str(), "1.0" | "1.1") {
                    return Err(at(&e, format!("invalid value \"{}\"", e.args()[0])));
                }
            }
            "return" => answer_with = Some(answer(&e)?),
            "if" => ifs.push(e),
            "health_check" => health = Some(e),
            "proxy_redirect" => {
                arg_count(&e, 1..=2)?;
                if !matches!(e.args()[0].as_str(), "off" | "default") {
                    return Err(at(
                        &e,
                        "only \"proxy_redirect off\" and \"default\" are supported",
                    ));
                }
            }
            "location" => return Err(at(&e, "nested locations are not supported")),
            name if HTTP_ONLY.contains(&name)
                || name == "merge_slashes"
                || tls::is_tls_directive(name) =>
            {
                return Err(not_allowed(&e));
            }
            _ if level.apply(&e, log_formats)? => {}
            name if client::is_server_level_only(name) => {
                return Err(at(
                    &e,
                    format!("\"{name}\" is supported in \"http\" and \"server\" only"),
                ));
            }
            _ if accepted(&e, "location") => {}
            _ => return Err(unsupported(&e)),
        }
    }
    let level = level.inherit(server);
    let mut upstream_tls = false;
    let mut http2 = false;
    let action = match (answer_with, proxy_pass) {
        // nginx runs `return` before the content phase, so it wins over proxy_pass.
        (Some(answer), _) => Action::Return(answer),
        (None, Some(pass)) => {
            http2 = pass.name() == "grpc_pass";
            let url = match http2 {
                true => grpc::target(&pass.args()[0]),
                false => values::ProxyUrl::parse(&pass.args()[0]),
            }
            .map_err(|msg| at(&pass, msg))?;
            if let (true, Some(e)) = (http2, ifs.first()) {
                return Err(at(e, "\"if\" pins are not supported with \"grpc_pass\""));
            }
            let (upstream, uri, tls) = proxy_target(t, &pass, url);
            upstream_tls = tls;
            let mut pins = Vec::with_capacity(ifs.len());
            // Among matching `if`s the last one wins in nginx: try them last first.
            for e in ifs.iter().rev() {
                pins.push(pin(t, e, &upstream, tls)?);
            }
            if let Some(e) = &health {
                health_check(t, e, &upstream, &level)?;
            }
            Action::Proxy(ProxyPass {
                upstream,
                uri,
                pins,
                on_unhealthy: OnUnhealthy::Fallback,
                // Who may pin is said with `geo`/`map` variables in nginx syntax.
                pin_allow_from: None,
                pin_secret: level.pin_secret(),
                auto_redirect: match &path {
                    PathMatch::Exact(p) | PathMatch::Prefix(p) | PathMatch::PrefixNoRegex(p) => {
                        p.len() > 1 && p.ends_with('/')
                    }
                    PathMatch::Regex { .. } => false,
                },
            })
        }
        (None, None) => {
            return Err(at(
                d,
                "location has neither \"proxy_pass\" nor \"return\" (pinlb serves no files)",
            ));
        }
    };
    let mut proxy = level.settings();
    proxy.upstream_tls.enabled = upstream_tls;
    proxy.http2 = http2;
    Ok(Route {
        path,
        action,
        proxy,
        add_headers: level.add_headers(),
        access_log: level.access_log(),
        limits: level.limits(),
        real_ip: level.real_ip(),
        origin: d.origin(),
    })
}

fn location_path(d: &Nginx) -> Result<PathMatch, ConfigError> {
    let (modifier, path) = match d.args() {
        [m, p] => (m.as_str(), p.clone()),
        [p] => {
            let split = ["^~", "~*", "=", "~"]
                .iter()
                .find(|m| p.starts_with(**m) && p.len() > m.len());
            match split {
                Some(m) => (*m, p[m.len()..].to_string()),
                None => ("", p.clone()),
            }
        }
        _ => {
            return Err(at(
                d,
                "invalid number of arguments in \"location\" directive",
            ));
        }
    };
    Ok(match modifier {
        "" if path.starts_with('@') => return Err(at(d, "named locations are not supported")),
        "" => PathMatch::Prefix(path),
        "=" => PathMatch::Exact(path),
        "^~" => PathMatch::PrefixNoRegex(path),
        "~" | "~*" => PathMatch::Regex {
            pattern: path,
            case_insensitive: modifier == "~*",
        },
        other => return Err(at(d, format!("invalid location modifier \"{other}\""))),
    })
}

/// `return CODE [TEXT|URL]` or `return URL`.
fn answer(d: &Nginx) -> Result<ReturnAction, ConfigError> {
    arg_count(d, 1..=2)?;
    let first = &d.args()[0];
    if let Ok(status) = first.parse::<u16>() {
        if status > 999 {
            return Err(at(d, format!("invalid return code \"{first}\"")));
        }
        return Ok(ReturnAction {
            status,
            text: d.args().get(1).cloned(),
        });
    }
    let url = ["http://", "https://", "$scheme"]
        .iter()
        .any(|p| first.starts_with(p));
    if d.args().len() == 1 && url {
        return Ok(ReturnAction {
            status: 302,
            text: Some(first.clone()),
        });
    }
    Err(at(d, format!("invalid return code \"{first}\"")))
}

/// The upstream `proxy_pass` names: an `upstream` block, or an implicit one-server
/// upstream for a host.
/// Also whether it is `https://`.
fn proxy_target(
    t: &mut Translator,
    d: &Nginx,
    url: values::ProxyUrl,
) -> (String, Option<String>, bool) {
    if url.port.is_none() && t.upstream_pos.contains_key(&url.host) {
        return (url.host, url.uri, url.tls);
    }
    let name = match url.port {
        Some(port) => format!("{}:{port}", url.host),
        None => url.host.clone(),
    };
    let upstream = upstream::implicit(t, &name, &url.host_port(), d);
    (upstream, url.uri, url.tls)
}

/// `if ($http_NAME = "value") { proxy_pass http://target; }`, or with `$cookie_NAME` or
/// any other variable (a `map` or `geo` one, say).
fn pin(
    t: &mut Translator,
    d: &Nginx,
    location_upstream: &str,
    tls: bool,
) -> Result<PinRule, ConfigError> {
    let unsupported_if = || {
        at(
            d,
            "only `if ($VARIABLE = \"value\") { proxy_pass ...; }` is supported",
        )
    };
    // nginx's lexer splits `($http_app = "app1")` into `($http_app`, `=`, `app1`, `)`.
    let mut words: Vec<&str> = d.args().iter().map(String::as_str).collect();
    let first = words.first_mut().ok_or_else(unsupported_if)?;
    *first = first.strip_prefix('(').ok_or_else(unsupported_if)?;
    if words.last() == Some(&")") {
        words.pop();
    } else if let Some(last) = words.last_mut() {
        *last = last.strip_suffix(')').ok_or_else(unsupported_if)?;
    }
    words.retain(|w| !w.is_empty());
    let [variable, "=", value] = words.as_slice() else {
        return Err(unsupported_if());
    };
    // `$cookie_NAME` and other variables are read as nginx reads them (any case for a
    // cookie's name, its value as sent); `$http_NAME` is a header lookup.
    let source = if let Some(name) = variable.strip_prefix("$http_") {
        PinSource::Header(name.replace('_', "-"))
    } else if variable.len() > 1 && variable.starts_with('$') {
        PinSource::Variable(variable.to_string())
    } else {
        return Err(unsupported_if());
    };
    let block = d.block()?;
    let [pass] = block else {
        return Err(at(
            d,
            "an \"if\" pin must contain exactly one \"proxy_pass\"",
        ));
    };
    let pass = Nginx::new(pass);
    if pass.name() != "proxy_pass" {
        return Err(at(
            &pass,
            format!(
                "only \"proxy_pass\" is supported inside \"if\", not \"{}\"",
                pass.name()
            ),
        ));
    }
    arg_count(&pass, 1..=1)?;
    let target = pin_target(t, &pass, location_upstream, tls)?;
    Ok(PinRule {
        source,
        matches: PinMatch::Value {
            equals: value.to_string(),
            target,
        },
    })
}

/// A pin's `proxy_pass`: a server of the location's upstream (sharing its health) when
/// its address matches one, an upstream block by name, or an implicit upstream.
fn pin_target(
    t: &mut Translator,
    d: &Nginx,
    location_upstream: &str,
    tls: bool,
) -> Result<PinTarget, ConfigError> {
    let url = values::ProxyUrl::parse(&d.args()[0]).map_err(|msg| at(d, msg))?;
    if url.tls != tls {
        return Err(at(
            d,
            "a pinned \"proxy_pass\" must use the scheme of the location's (http or https)",
        ));
    }
    if url.uri.as_deref().is_some_and(|u| u != "/") {
        return Err(at(d, "a URI in a pinned \"proxy_pass\" is not supported"));
    }
    let host_port = url.host_port();
    let server = t
        .upstream_pos
        .contains_key(location_upstream)
        .then(|| &t.upstreams[location_upstream].servers)
        .and_then(|servers| {
            servers
                .iter()
                .find(|s| s.addr.eq_ignore_ascii_case(&host_port))
        });
    if let Some(server) = server {
        return Ok(PinTarget::Server {
            upstream: location_upstream.to_string(),
            server: server.name.clone(),
        });
    }
    let (upstream, _, _) = proxy_target(t, d, url);
    Ok(PinTarget::Upstream(upstream))
}

/// NGINX Plus's `health_check [interval=T] [fails=N] [passes=N] [uri=PATH]`.
fn health_check(
    t: &mut Translator,
    d: &Nginx,
    upstream: &str,
    level: &Level,
) -> Result<(), ConfigError> {
    d.simple()?;
    let mut interval = Duration::from_secs(5);
    let (mut fails, mut passes) = (1, 1);
    let mut path = "/".to_string();
    for param in d.args() {
        let invalid = || at(d, format!("invalid parameter \"{param}\""));
        match param.split_once('=') {
            Some(("interval", v)) => {
                interval = values::time(v)
                    .filter(|i| !i.is_zero())
                    .ok_or_else(invalid)?
            }
            Some(("fails", v)) => fails = v.parse().ok().filter(|n| *n > 0).ok_or_else(invalid)?,
            Some(("passes", v)) => {
                passes = v.parse().ok().filter(|n| *n > 0).ok_or_else(invalid)?
            }
            Some(("uri", v)) if v.starts_with('/') => path = v.to_string(),
            _ => return Err(invalid()),
        }
    }
    let check = HealthCheck {
        kind: CheckKind::Http { path },
        interval,
        // The check may not outlast its interval, nor the location's connect timeout.
        timeout: level.settings().connect_timeout.min(interval),
        fails,
        passes,
    };
    if let Some((existing, pos)) = t.health_checks.get(upstream) {
        if *existing != check {
            let msg = format!(
                "conflicting \"health_check\" for upstream \"{upstream}\" (also in {}:{})",
                pos.file.display(),
                pos.line
            );
            return Err(at(d, msg));
        }
    }
    t.health_checks
        .insert(upstream.to_string(), (check, d.pos().clone()));
    Ok(())
}
