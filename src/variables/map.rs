//! Variables computed from others: nginx `map` (exact keys, then regexes) and `geo` (the
//! longest network holding an address). Both are numbered in one list, maps first, so that
//! a template refers to either as [`super::Var::Map`].

use super::{RequestInfo, Template};
use crate::config::{MapKey, MapVar};
use crate::net::forwarded::ClientAddr;
use crate::net::geo::Geo;
use regex::bytes::{Regex, RegexBuilder};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// A `map` or a `geo`, ready to evaluate.
pub struct CompiledMap {
    kind: Kind,
}

enum Kind {
    Map {
        source: Template,
        exact: HashMap<Vec<u8>, Template>,
        regexes: Vec<(Regex, Template)>,
        default: Template,
    },
    Geo {
        /// `geo $source $var`: the address is the source's value; `None`: the client's.
        source: Option<Template>,
        geo: Geo,
    },
}

impl CompiledMap {
    /// Compiles the `map`s of a config; `names` are every map and geo variable, in the
    /// order they are numbered. `Err` names the map and the problem.
    pub fn compile_maps(
        maps: &[MapVar],
        names: &[String],
    ) -> Result<Vec<CompiledMap>, (usize, String)> {
        maps.iter()
            .enumerate()
            .map(|(i, m)| CompiledMap::compile(m, names).map_err(|e| (i, e)))
            .collect()
    }

    /// A `geo` table whose address comes from `source` (a template such as `$arg_ip`), or
    /// from the client when `None`.
    pub fn geo(source: Option<Template>, geo: Geo) -> CompiledMap {
        CompiledMap {
            kind: Kind::Geo { source, geo },
        }
    }

    fn compile(m: &MapVar, names: &[String]) -> Result<CompiledMap, String> {
        let mut exact = HashMap::new();
        let mut regexes = Vec::new();
        for entry in &m.entries {
            let value = Template::parse(&entry.value, names)?;
            match &entry.key {
                MapKey::Exact(key) => {
                    exact.entry(key.as_bytes().to_vec()).or_insert(value);
                }
                MapKey::Regex {
                    pattern,
                    case_insensitive,
                } => {
                    let re = RegexBuilder::new(pattern)
                        .case_insensitive(*case_insensitive)
                        .build()
                        .map_err(|e| format!("invalid regex \"{pattern}\": {e}"))?;
                    regexes.push((re, value));
                }
            }
        }
        Ok(CompiledMap {
            kind: Kind::Map {
                source: Template::parse(&m.source, names)?,
                exact,
                regexes,
                default: Template::parse(&m.default, names)?,
            },
        })
    }

    /// The first variable of `all` whose value depends on itself, if any.
    pub fn find_cycle(all: &[CompiledMap]) -> Option<usize> {
        (0..all.len()).find(|&i| all[i].reaches(i, all, 0))
    }

    /// Appends this variable's value for `req`.
    pub(super) fn expand(&self, req: &RequestInfo<'_>, out: &mut Vec<u8>, depth: usize) {
        match &self.kind {
            Kind::Map {
                source,
                exact,
                regexes,
                default,
            } => {
                let mut key = Vec::new();
                source.expand_at(req, &mut key, depth + 1);
                let value = exact
                    .get(&key)
                    .or_else(|| {
                        regexes
                            .iter()
                            .find(|(re, _)| re.is_match(&key))
                            .map(|(_, v)| v)
                    })
                    .unwrap_or(default);
                value.expand_at(req, out, depth + 1);
            }
            Kind::Geo { source, geo } => {
                // `proxy` entries walk X-Forwarded-For; without them nothing is collected.
                let xff: Vec<&[u8]> = match geo.proxies().is_empty() {
                    true => Vec::new(),
                    false => req
                        .req
                        .headers
                        .get_all("x-forwarded-for")
                        .iter()
                        .map(|v| v.as_bytes())
                        .collect(),
                };
                let value = match source {
                    Some(source) => {
                        let mut addr = Vec::new();
                        source.expand_at(req, &mut addr, depth + 1);
                        geo.lookup_source(Some(&addr), &xff)
                    }
                    // nginx looks up 255.255.255.255 for a client without an IP address.
                    None => match req.client_ip {
                        Some(ip) => geo.lookup_client(ClientAddr::ip(ip, 0), &xff),
                        None => geo.lookup(IpAddr::V4(Ipv4Addr::BROADCAST)),
                    },
                };
                out.extend_from_slice(value.as_bytes());
            }
        }
    }

    /// Whether evaluating this variable can lead back to variable `target`.
    fn reaches(&self, target: usize, all: &[CompiledMap], depth: usize) -> bool {
        if depth > all.len() {
            return false;
        }
        let templates: Vec<&Template> = match &self.kind {
            Kind::Map {
                source,
                exact,
                regexes,
                default,
            } => std::iter::once(source)
                .chain(exact.values())
                .chain(regexes.iter().map(|(_, t)| t))
                .chain(std::iter::once(default))
                .collect(),
            Kind::Geo { source, .. } => source.iter().collect(),
        };
        templates
            .into_iter()
            .flat_map(Template::maps_used)
            .collect::<Vec<_>>()
            .into_iter()
            .any(|i| {
                i == target
                    || all
                        .get(i)
                        .is_some_and(|m| m.reaches(target, all, depth + 1))
            })
    }
}
