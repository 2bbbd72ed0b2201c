//! nginx's `geo [$source] $variable { ... }` in CIDR mode
//! (src/http/modules/ngx_http_geo_module.c) on the longest-prefix [`PrefixMap`], and the
//! CIDR allow list built on it (who may use the `app` pin).
//!
//! Supported block entries: `default V`, `CIDR V`, `ADDR V`, `delete CIDR`, `proxy CIDR`,
//! `proxy_recursive`, `volatile` (accepted, meaningless here) and `include FILE` (through a
//! caller-supplied loader; pinlb's nginx parser expands `include` before this sees the
//! block). Not supported: `ranges` mode and nginx's binary `.bin` geo bases.
//!
//! Tables are built once; lookups return a `&str` into the table and never allocate.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::cidr::{Cidr, CidrList};
use super::forwarded::{ClientAddr, forwarded_addr};
use super::ngx_addr;
use super::prefix_map::PrefixMap;

/// A geo configuration error, worded as nginx words it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GeoError {
    /// `invalid variable name "x"` (the block's `$source` / `$variable`).
    InvalidVariableName(String),
    /// `invalid number of the geo parameters`.
    InvalidNumberOfParameters,
    /// `invalid network "x"`.
    InvalidNetwork(String),
    /// `ranges` mode or a binary base: not implemented here.
    Unsupported(String),
    /// An `include` loader failed (its message), or no loader was given.
    Include(String),
    /// `include` nested too deeply (a loop, most likely).
    IncludeDepth,
}

impl fmt::Display for GeoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeoError::InvalidVariableName(v) => write!(f, "invalid variable name \"{v}\""),
            GeoError::InvalidNumberOfParameters => {
                f.write_str("invalid number of the geo parameters")
            }
            GeoError::InvalidNetwork(n) => write!(f, "invalid network \"{n}\""),
            GeoError::Unsupported(what) => write!(f, "\"{what}\" in geo is not supported"),
            GeoError::Include(msg) => f.write_str(msg),
            GeoError::IncludeDepth => f.write_str("geo include nesting is too deep"),
        }
    }
}

impl std::error::Error for GeoError {}

/// The arguments of the `geo` directive itself: `geo [$source] $variable`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeoHeader {
    /// The variable whose value is the address to look up (without `$`);
    /// `None` means the client address (`$remote_addr`).
    pub source: Option<String>,
    /// The variable being defined (without `$`).
    pub variable: String,
}

/// Parses `geo`'s own arguments (without the word `geo`), as
/// `ngx_http_geo_block` does. The parser that tokenises the config is
/// expected to have enforced nginx's 1-or-2 argument count.
pub fn parse_geo_header(args: &[String]) -> Result<GeoHeader, GeoError> {
    fn var(s: &str) -> Result<String, GeoError> {
        match s.strip_prefix('$') {
            Some(name) => Ok(name.to_string()),
            None => Err(GeoError::InvalidVariableName(s.to_string())),
        }
    }
    match args {
        [variable] => Ok(GeoHeader {
            source: None,
            variable: var(variable)?,
        }),
        [source, variable] => {
            // nginx checks the first argument before the second.
            let source = var(source)?;
            Ok(GeoHeader {
                source: Some(source),
                variable: var(variable)?,
            })
        }
        _ => Err(GeoError::InvalidNumberOfParameters),
    }
}

/// `ngx_http_geo_cidr_value()`: nginx's CIDR parser plus the one address it
/// cannot otherwise spell, `255.255.255.255`.
fn geo_cidr(net: &str, warnings: &mut Vec<String>) -> Result<Cidr, GeoError> {
    if net == "255.255.255.255" {
        return Ok(Cidr::host(IpAddr::V4(Ipv4Addr::BROADCAST)));
    }
    let parsed = Cidr::parse(net).map_err(|_| GeoError::InvalidNetwork(net.to_string()))?;
    warnings.extend(parsed.warning(net));
    Ok(parsed.cidr)
}

/// Loads an included file as already-tokenised lines (one `Vec<String>` per
/// `;`-terminated entry). Receives the `include` argument verbatim (nginx
/// resolves it relative to the config prefix and expands globs).
pub type IncludeLoader<'a> = dyn FnMut(&str) -> Result<Vec<Vec<String>>, String> + 'a;

const MAX_INCLUDE_DEPTH: usize = 16;

/// Accumulates a geo block's entries; [`GeoBuilder::build`] freezes it.
#[derive(Clone, Debug, Default)]
pub struct GeoBuilder {
    map: PrefixMap<u32>,
    values: Vec<String>,
    index: HashMap<String, u32>,
    proxies: CidrList,
    proxy_recursive: bool,
    volatile: bool,
    warnings: Vec<String>,
}

impl GeoBuilder {
    /// An empty block: every address maps to `""` until `default` is set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one block entry (`args` are the words before `;`). `include`
    /// entries fail with [`GeoError::Include`]; use
    /// [`GeoBuilder::add_line_with_include`] to support them.
    pub fn add_line(&mut self, args: &[String]) -> Result<(), GeoError> {
        self.add(args, None, 0)
    }

    /// Like [`GeoBuilder::add_line`], resolving `include FILE` with `loader`.
    pub fn add_line_with_include(
        &mut self,
        args: &[String],
        loader: &mut IncludeLoader<'_>,
    ) -> Result<(), GeoError> {
        self.add(args, Some(loader), 0)
    }

    /// Warnings nginx would log (`duplicate network ...`,
    /// `no network ... to delete`, `low address bits ...`), in order.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn value_id(&mut self, value: &str) -> u32 {
        // Values are deduplicated as nginx does (`ngx_http_geo_value`).
        if let Some(&id) = self.index.get(value) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(value.to_string());
        self.index.insert(value.to_string(), id);
        id
    }

    fn add(
        &mut self,
        args: &[String],
        mut loader: Option<&mut IncludeLoader<'_>>,
        depth: usize,
    ) -> Result<(), GeoError> {
        // `ngx_http_geo()`: one-word entries first.
        if let [word] = args {
            match word.as_str() {
                "ranges" => return Err(GeoError::Unsupported("ranges".to_string())),
                "proxy_recursive" => {
                    self.proxy_recursive = true;
                    return Ok(());
                }
                "volatile" => {
                    self.volatile = true;
                    return Ok(());
                }
                _ => {}
            }
        }

        let [first, second] = args else {
            return Err(GeoError::InvalidNumberOfParameters);
        };

        match first.as_str() {
            "include" => {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(GeoError::IncludeDepth);
                }
                let Some(load) = loader.as_deref_mut() else {
                    return Err(GeoError::Include(format!(
                        "include \"{second}\" in geo needs a file loader"
                    )));
                };
                let lines = load(second).map_err(GeoError::Include)?;
                for line in &lines {
                    self.add(line, loader.as_deref_mut(), depth + 1)?;
                }
                Ok(())
            }
            "proxy" => {
                let cidr = geo_cidr(second, &mut self.warnings)?;
                self.proxies.push(cidr);
                Ok(())
            }
            "default" => {
                // `default` is 0.0.0.0/0 and ::/0 (`ngx_http_geo_cidr`).
                let id = self.value_id(second);
                for cidr in [
                    Cidr::V4 {
                        network: Ipv4Addr::UNSPECIFIED,
                        prefix: 0,
                    },
                    Cidr::V6 {
                        network: std::net::Ipv6Addr::UNSPECIFIED,
                        prefix: 0,
                    },
                ] {
                    self.insert(cidr, id, first);
                }
                Ok(())
            }
            "delete" => {
                let cidr = geo_cidr(second, &mut self.warnings)?;
                if self.map.remove(cidr).is_none() {
                    self.warnings
                        .push(format!("no network \"{second}\" to delete"));
                }
                Ok(())
            }
            net => {
                let cidr = geo_cidr(net, &mut self.warnings)?;
                let id = self.value_id(second);
                self.insert(cidr, id, net);
                Ok(())
            }
        }
    }

    fn insert(&mut self, cidr: Cidr, id: u32, net: &str) {
        // A trie of more than 2^32 nodes is not a configuration anyone has;
        // such an entry is dropped with a warning rather than panicking.
        match self.map.insert(cidr, id) {
            Ok(None) => {}
            Ok(Some(old)) => {
                let value = &self.values[id as usize];
                let old = self.values.get(old as usize).map_or("", String::as_str);
                self.warnings.push(format!(
                    "duplicate network \"{net}\", value: \"{value}\", old value: \"{old}\""
                ));
            }
            Err(_) => self
                .warnings
                .push(format!("network \"{net}\" ignored: table too large")),
        }
    }

    /// Freezes the table. Addresses no entry covers get `""` (nginx's
    /// implicit default).
    pub fn build(mut self) -> Geo {
        let empty = self.value_id("");
        for cidr in [
            Cidr::V4 {
                network: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
            },
            Cidr::V6 {
                network: std::net::Ipv6Addr::UNSPECIFIED,
                prefix: 0,
            },
        ] {
            if self.map.get_exact(cidr).is_none() {
                // Cannot fail: the root node always exists.
                let _ = self.map.insert(cidr, empty);
            }
        }
        Geo {
            map: self.map,
            values: self.values,
            proxies: self.proxies,
            proxy_recursive: self.proxy_recursive,
            volatile: self.volatile,
        }
    }
}

/// A built geo table.
#[derive(Clone, Debug)]
pub struct Geo {
    map: PrefixMap<u32>,
    values: Vec<String>,
    proxies: CidrList,
    proxy_recursive: bool,
    volatile: bool,
}

impl Geo {
    /// Builds a table from a block's lines (no includes).
    pub fn from_lines(lines: &[Vec<String>]) -> Result<(Geo, Vec<String>), GeoError> {
        let mut b = GeoBuilder::new();
        for line in lines {
            b.add_line(line)?;
        }
        let warnings = b.warnings().to_vec();
        Ok((b.build(), warnings))
    }

    /// Value for an address (longest prefix; IPv4-mapped looked up as IPv4).
    pub fn lookup(&self, ip: IpAddr) -> &str {
        self.map
            .lookup(ip)
            .and_then(|&id| self.values.get(id as usize))
            .map_or("", String::as_str)
    }

    /// nginx's lookup for `geo $variable` (no source variable): the client
    /// address, then, if `proxy` entries exist, the `X-Forwarded-For` walk
    /// (`ngx_http_geo_addr`; `xff_lines` are all X-Forwarded-For line values
    /// in arrival order). UNIX-socket clients look up `255.255.255.255`.
    pub fn lookup_client(&self, client: ClientAddr, xff_lines: &[&[u8]]) -> &str {
        let mut addr = client;
        if !self.proxies.is_empty() && !xff_lines.is_empty() {
            // The return code is ignored by nginx too.
            let _ = forwarded_addr(&mut addr, xff_lines, &self.proxies, self.proxy_recursive);
        }
        match addr {
            ClientAddr::Ip { ip, .. } => self.lookup(ip),
            ClientAddr::Unix => self.lookup(IpAddr::V4(Ipv4Addr::BROADCAST)),
        }
    }

    /// nginx's lookup for `geo $source $variable`: `source` is the source
    /// variable's value (`None` if not found). It must be a bare address
    /// (`ngx_parse_addr`, no port); when it is not, nginx looks up
    /// `255.255.255.255`, which usually yields the default.
    pub fn lookup_source(&self, source: Option<&[u8]>, xff_lines: &[&[u8]]) -> &str {
        match source.and_then(ngx_addr::parse_addr) {
            Some(ip) => self.lookup_client(ClientAddr::Ip { ip, port: 0 }, xff_lines),
            None => self.lookup(IpAddr::V4(Ipv4Addr::BROADCAST)),
        }
    }

    /// The `proxy` networks.
    pub fn proxies(&self) -> &CidrList {
        &self.proxies
    }

    /// Whether `proxy_recursive` was given.
    pub fn proxy_recursive(&self) -> bool {
        self.proxy_recursive
    }

    /// Whether `volatile` was given (the variable is not cached per request).
    pub fn volatile(&self) -> bool {
        self.volatile
    }
}

/// A set of CIDRs answering "is this address allowed?" by longest-prefix
/// lookup, e.g. who may use the debug pin. Entries use nginx's CIDR syntax;
/// a later entry for the same network replaces the earlier one.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    map: PrefixMap<()>,
    len: usize,
}

impl AllowList {
    /// An empty list: allows nobody.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds from CIDR texts; returns the list and nginx-style warnings.
    pub fn from_cidrs<S: AsRef<str>>(cidrs: &[S]) -> Result<(AllowList, Vec<String>), GeoError> {
        let mut list = AllowList::new();
        let mut warnings = Vec::new();
        for c in cidrs {
            let cidr = geo_cidr(c.as_ref(), &mut warnings)?;
            list.add(cidr);
        }
        Ok((list, warnings))
    }

    /// Adds a network.
    pub fn add(&mut self, cidr: Cidr) {
        if let Ok(None) = self.map.insert(cidr, ()) {
            self.len += 1;
        }
    }

    /// Number of distinct networks.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no network was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Is `ip` inside any listed network? No allocation.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.map.lookup(ip).is_some()
    }
}

#[cfg(test)]
mod tests;
