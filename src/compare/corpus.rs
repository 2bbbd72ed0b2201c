//! The built-in request corpus, generated from the configuration itself: for every listen
//! address the host names that pick each server (an unknown one, and none at all), for
//! every location paths that reach it, the methods, the pin values the `if` blocks test
//! (right, wrong, in other case, quoted cookies), hash keys, forwarding headers and a
//! websocket upgrade, the URI normalisation cases, and the forms of a request line
//! (HTTP/1.0 with and without keep-alive, an absolute target, `OPTIONS *`).

use super::echo::ID_HEADER;
use crate::config::{
    Action, Balance, Config, PathMatch, PinMatch, PinRule, PinSource, Route, ServerName,
    VirtualServer,
};
use std::collections::HashSet;
use std::net::SocketAddr;

/// A Host no `server_name` has.
pub const UNKNOWN_HOST: &str = "unknown.invalid";
/// The corpus is bounded whatever the configuration.
const MAX_GENERATED: usize = 2_000;
/// The body of every POST.
const POST_BODY: &str = "a=1&b=2";

/// One request of the corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Which listen address it is sent to (an index into the configuration's listens).
    pub listen: usize,
    pub method: String,
    pub target: String,
    /// HTTP/1.0 instead of HTTP/1.1 (with `Host` only if `headers` has one).
    pub http10: bool,
    /// Headers in the order sent (`Host` first), besides the ones every request has.
    pub headers: Vec<(String, String)>,
}

impl Probe {
    /// An HTTP/1.1 GET of `target` with `Host: host`.
    pub fn get(listen: usize, host: &str, target: &str) -> Probe {
        Probe {
            listen,
            method: "GET".into(),
            target: target.into(),
            http10: false,
            headers: vec![("Host".into(), host.into())],
        }
    }

    fn with(mut self, name: &str, value: &str) -> Probe {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn method(mut self, method: &str) -> Probe {
        self.method = method.into();
        self
    }

    /// Whether it asks for a websocket.
    pub fn is_upgrade(&self) -> bool {
        self.headers.iter().any(|(n, _)| n == "Upgrade")
    }

    /// One line for the report: `GET /x HTTP/1.1 [Host: a.test] [app: app1]`.
    pub fn describe(&self) -> String {
        let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        let mut line = format!("{} {} {version}", self.method, self.target);
        for (name, value) in &self.headers {
            if !name.starts_with("Sec-WebSocket") {
                line.push_str(&format!(" [{name}: {value}]"));
            }
        }
        line
    }

    /// The request as sent, numbered `id` in [`ID_HEADER`]: one request per connection.
    pub fn to_bytes(&self, id: usize) -> Vec<u8> {
        let version = if self.http10 { "1.0" } else { "1.1" };
        let mut out = format!("{} {} HTTP/{version}\r\n", self.method, self.target);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(&format!("{ID_HEADER}: {id}\r\n"));
        if !self.http10 && !self.is_upgrade() {
            out.push_str("Connection: close\r\n");
        }
        let body = if self.method == "POST" { POST_BODY } else { "" };
        if !body.is_empty() {
            out.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        out.push_str(body);
        out.into_bytes()
    }
}

/// The corpus for `config`, whose listen addresses are `listens`.
pub fn generate(config: &Config, listens: &[SocketAddr]) -> Vec<Probe> {
    let mut g = Corpus::default();
    for (slot, addr) in listens.iter().enumerate() {
        let servers: Vec<&VirtualServer> = config
            .virtual_servers
            .iter()
            .filter(|vs| vs.listen.contains(addr))
            .collect();
        // Which server each Host picks, also when the target is absolute.
        let names: Vec<String> = servers.iter().flat_map(|vs| host_names(vs)).collect();
        for name in &names {
            g.push(Probe::get(slot, name, "/"));
            g.push(Probe::get(
                slot,
                &format!("{}:8080", name.to_uppercase()),
                "/",
            ));
            g.push(Probe::get(slot, name, &format!("http://{name}/")));
        }
        g.push(Probe::get(slot, UNKNOWN_HOST, "/"));
        g.request_line_forms(slot, names.first().map(String::as_str));
        for vs in servers {
            let names = host_names(vs);
            let host = names.first().map_or(UNKNOWN_HOST, String::as_str);
            for route in &vs.routes {
                g.route(config, slot, host, route);
            }
            g.normalisation(slot, host, vs);
        }
    }
    // Requests that nginx refuses and pinlb proxies (or the other way round) go last: each
    // moves one proxy's round robin a step, which would shift every later answer.
    g.last.truncate(MAX_GENERATED);
    g.list.truncate(MAX_GENERATED - g.last.len());
    g.list.append(&mut g.last);
    g.list
}

#[derive(Default)]
struct Corpus {
    list: Vec<Probe>,
    /// Sent after `list`.
    last: Vec<Probe>,
    seen: HashSet<(usize, String)>,
}

impl Corpus {
    /// Adds `probe` unless the same request is there already (repeats go through `again`).
    fn push(&mut self, probe: Probe) {
        if self.seen.insert((probe.listen, probe.describe())) {
            self.again(probe);
        }
    }

    fn again(&mut self, probe: Probe) {
        if self.list.len() < MAX_GENERATED {
            self.list.push(probe);
        }
    }

    /// Adds `probe` to the requests sent last, unless it is there already.
    fn push_last(&mut self, probe: Probe) {
        if self.seen.insert((probe.listen, probe.describe())) {
            self.last.push(probe);
        }
    }

    /// HTTP/1.0 without `Host` (valid: the default server answers), HTTP/1.0 asking for
    /// keep-alive, an absolute target without `Host` and with another one (`name` is a
    /// server name of the listen address), and `OPTIONS *`.
    fn request_line_forms(&mut self, slot: usize, name: Option<&str>) {
        let http10 = |headers: Vec<(String, String)>| Probe {
            http10: true,
            headers,
            ..Probe::get(slot, "", "/")
        };
        self.push(http10(Vec::new()));
        self.push(http10(vec![
            ("Host".into(), UNKNOWN_HOST.into()),
            ("Connection".into(), "keep-alive".into()),
        ]));
        if let Some(name) = name {
            let absolute = format!("http://{name}/");
            self.push(Probe {
                headers: Vec::new(),
                ..Probe::get(slot, "", &absolute)
            });
            self.push_last(Probe::get(slot, UNKNOWN_HOST, &absolute));
        }
        self.push_last(Probe::get(slot, UNKNOWN_HOST, "*").method("OPTIONS"));
    }

    /// Requests that reach `route`, its pins and hash keys.
    fn route(&mut self, config: &Config, slot: usize, host: &str, route: &Route) {
        let paths = route_paths(&route.path);
        let Some(base) = paths.first() else { return };
        let get = |target: &str| Probe::get(slot, host, target);
        for path in &paths {
            self.push(get(path));
        }
        for method in ["HEAD", "POST", "OPTIONS"] {
            self.push(get(base).method(method));
        }
        self.push(get(base).with("X-Forwarded-For", "203.0.113.7"));
        self.push(
            get(base)
                .with("Upgrade", "websocket")
                .with("Connection", "Upgrade")
                .with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
                .with("Sec-WebSocket-Version", "13"),
        );
        // Balancing order: the same request a few more times.
        for _ in 0..3 {
            self.again(get(base));
        }
        let Action::Proxy(pass) = &route.action else {
            return;
        };
        for rule in &pass.pins {
            for value in pin_values(config, &pass.upstream, rule) {
                for (name, header) in pin_headers(&rule.source, &value) {
                    self.push(get(base).with(&name, &header));
                }
            }
        }
        // A header and a cookie that disagree: which one wins is nginx's `if` order.
        let first_pins = |cookie: bool| {
            pass.pins
                .iter()
                .filter_map(|r| {
                    let value = &pin_values(config, &pass.upstream, r)[0];
                    pin_headers(&r.source, value).into_iter().next()
                })
                .filter(move |(name, _)| (name == "Cookie") == cookie)
        };
        if let Some(h) = first_pins(false).next() {
            let other = format!("={}", h.1);
            if let Some(c) = first_pins(true).find(|c| !c.1.ends_with(&other)) {
                self.push(get(base).with(&h.0, &h.1).with(&c.0, &c.1));
            }
        }
        if let Some(Balance::Hash { key, .. }) =
            config.upstreams.get(&pass.upstream).map(|u| &u.balance)
        {
            for n in 1..=4 {
                self.push(hash_probe(get(base), key, &format!("key{n}")));
            }
        }
    }

    /// The URI normalisation cases, under the server's first prefix location.
    fn normalisation(&mut self, slot: usize, host: &str, vs: &VirtualServer) {
        let prefix = vs.routes.iter().find_map(|r| match &r.path {
            PathMatch::Prefix(p) | PathMatch::PrefixNoRegex(p) => Some(p.trim_end_matches('/')),
            _ => None,
        });
        let Some(p) = prefix else { return };
        for target in [
            format!("{p}//x"),
            format!("{p}/./x"),
            format!("{p}/a/../x"),
            format!("{p}/%78%2Fy"),
            format!("{p}/x%20y?a=1&b=%20"),
            format!("/a/..{p}/x"),
            "/../x".to_string(),
        ] {
            self.push(Probe::get(slot, host, &target));
        }
    }
}

/// Host names that select `vs`: one per `server_name`, regexes left out.
fn host_names(vs: &VirtualServer) -> Vec<String> {
    vs.server_names
        .iter()
        .filter_map(|name| match name {
            ServerName::Exact(n) if !n.is_empty() => Some(n.clone()),
            ServerName::Suffix(s) => Some(format!("www{s}")),
            ServerName::Prefix(p) => Some(format!("{p}com")),
            _ => None,
        })
        .collect()
}

/// Paths that reach a location, and one just beside it.
fn route_paths(path: &PathMatch) -> Vec<String> {
    match path {
        PathMatch::Exact(p) => vec![p.clone(), format!("{p}/")],
        PathMatch::Prefix(p) | PathMatch::PrefixNoRegex(p) if p.ends_with('/') => {
            let mut paths = vec![p.clone(), format!("{p}item")];
            if p.len() > 1 {
                // nginx answers 301 to the prefix without its slash when it proxies.
                paths.push(p.trim_end_matches('/').to_string());
            }
            paths
        }
        PathMatch::Prefix(p) | PathMatch::PrefixNoRegex(p) => vec![p.clone(), format!("{p}/item")],
        PathMatch::Regex {
            pattern,
            case_insensitive,
        } => {
            let Some(path) = regex_example(pattern) else {
                return Vec::new();
            };
            let mut paths = vec![path.clone()];
            if *case_insensitive {
                paths.push(path.to_uppercase());
            }
            paths
        }
    }
}

/// A path a simple regex location matches: `^/api/v\d` has none, `\.php$` has `/x.php`.
fn regex_example(pattern: &str) -> Option<String> {
    let anchored = pattern.starts_with('^');
    let body = pattern.trim_start_matches('^').trim_end_matches('$');
    let literal = body.replace("\\.", ".").replace("\\/", "/");
    if !literal
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        return None;
    }
    match (anchored, literal.starts_with('/')) {
        (_, true) => Some(literal),
        (false, false) => Some(format!("/x{literal}")),
        (true, false) => None,
    }
}

/// The values a pin rule is tried with: each value it names, the same in upper case,
/// and one that names nothing.
fn pin_values(config: &Config, upstream: &str, rule: &PinRule) -> Vec<String> {
    let mut values = match &rule.matches {
        PinMatch::Value { equals, .. } => vec![equals.clone()],
        PinMatch::ServerName => config
            .upstreams
            .get(upstream)
            .map(|u| u.servers.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default(),
    };
    if let Some(first) = values
        .first()
        .map(|v| v.to_uppercase())
        .filter(|u| !values.contains(u))
    {
        values.push(first);
    }
    values.push("nosuch".into());
    values
}

/// The headers that carry `value` for `source`: the header itself, or the cookie as
/// browsers send it, quoted, among others, and with its name in upper case. None for a
/// pin on another variable (a `map` or `geo` result).
fn pin_headers(source: &PinSource, value: &str) -> Vec<(String, String)> {
    let cookie = match source {
        PinSource::Header(name) => return vec![(name.clone(), value.into())],
        PinSource::Variable(v) if v.starts_with("$http_") => {
            return vec![(v["$http_".len()..].replace('_', "-"), value.into())];
        }
        PinSource::Cookie(name) => name.as_str(),
        PinSource::Variable(v) => match v.strip_prefix("$cookie_") {
            Some(name) => name,
            None => return Vec::new(),
        },
    };
    [
        format!("{cookie}={value}"),
        format!("{cookie}=\"{value}\""),
        format!("theme=dark; {cookie}={value}"),
        format!("{}={value}", cookie.to_uppercase()),
    ]
    .into_iter()
    .map(|c| ("Cookie".to_string(), c))
    .collect()
}

/// `probe` with `value` wherever the hash key reads a cookie, header or argument.
fn hash_probe(mut probe: Probe, key: &str, value: &str) -> Probe {
    let names = |prefix: &str| -> Vec<String> {
        key.split(prefix)
            .skip(1)
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            })
            .collect()
    };
    for name in names("$cookie_") {
        probe = probe.with("Cookie", &format!("{name}={value}"));
    }
    for name in names("$http_") {
        probe = probe.with(&name.replace('_', "-"), value);
    }
    for name in names("$arg_") {
        let sep = if probe.target.contains('?') { '&' } else { '?' };
        probe.target = format!("{}{sep}{name}={value}", probe.target);
    }
    if key.contains("$request_uri") || key.contains("$uri") {
        probe.target = format!("{}{value}", probe.target);
    }
    probe
}

#[cfg(test)]
#[path = "corpus_tests.rs"]
mod tests;
