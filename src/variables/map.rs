//! nginx `map`: a variable computed from another by exact keys, then regexes.

use super::Template;
use crate::config::{MapKey, MapVar};
use regex::bytes::{Regex, RegexBuilder};
use std::collections::HashMap;

/// A `map` ready to evaluate: exact keys by hash, then regexes in order, else the default.
pub struct CompiledMap {
    pub(super) source: Template,
    pub(super) exact: HashMap<Vec<u8>, Template>,
    pub(super) regexes: Vec<(Regex, Template)>,
    pub(super) default: Template,
}

impl CompiledMap {
    /// Compiles every map of a config; `Err` names the map variable and the problem.
    pub fn compile_all(maps: &[MapVar]) -> Result<Vec<CompiledMap>, (usize, String)> {
        let names: Vec<String> = maps.iter().map(|m| m.variable.clone()).collect();
        let compiled = maps
            .iter()
            .enumerate()
            .map(|(i, m)| CompiledMap::compile(m, &names).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..compiled.len() {
            if compiled[i].reaches(i, &compiled, 0) {
                return Err((i, format!("\"${}\" refers to itself", maps[i].variable)));
            }
        }
        Ok(compiled)
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
            source: Template::parse(&m.source, names)?,
            exact,
            regexes,
            default: Template::parse(&m.default, names)?,
        })
    }

    /// Whether evaluating this map can lead back to map `target`.
    fn reaches(&self, target: usize, all: &[CompiledMap], depth: usize) -> bool {
        if depth > all.len() {
            return false;
        }
        let templates = std::iter::once(&self.source)
            .chain(self.exact.values())
            .chain(self.regexes.iter().map(|(_, t)| t))
            .chain(std::iter::once(&self.default));
        templates
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
