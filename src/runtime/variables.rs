//! Compiling the variables a config defines: `map`s, then `geo`s, numbered in that order
//! (their names are what templates may refer to besides pinlb's own variables).

use crate::config::{Config, ConfigError};
use crate::net::geo::GeoBuilder;
use crate::variables::{CompiledMap, Template};
use std::path::Path;

/// The names of the config's variables and their compiled forms, in the same order.
pub fn compile(
    file: &Path,
    config: &Config,
) -> Result<(Vec<String>, Vec<CompiledMap>), ConfigError> {
    let names: Vec<String> = config
        .maps
        .iter()
        .map(|m| m.variable.clone())
        .chain(config.geos.iter().map(|g| g.variable.clone()))
        .collect();
    let mut compiled = CompiledMap::compile_maps(&config.maps, &names)
        .map_err(|(i, msg)| ConfigError::invalid(file, &config.maps[i].origin, msg))?;
    for geo in &config.geos {
        let mut builder = GeoBuilder::new();
        for entry in &geo.entries {
            let seen = builder.warnings().len();
            builder
                .add_line(&entry.words)
                .map_err(|e| ConfigError::invalid(file, &entry.origin, e.to_string()))?;
            // nginx warns about these and goes on; so does pinlb, at the entry's line.
            for warning in &builder.warnings()[seen..] {
                log::warn!(
                    "{}",
                    ConfigError::invalid(file, &entry.origin, warning.clone())
                );
            }
        }
        let source = match &geo.source {
            Some(source) => Some(
                Template::parse(&format!("${source}"), &names)
                    .map_err(|m| ConfigError::invalid(file, &geo.origin, m))?,
            ),
            None => None,
        };
        compiled.push(CompiledMap::geo(source, builder.build()));
    }
    if let Some(i) = CompiledMap::find_cycle(&compiled) {
        let origin = match config.maps.get(i) {
            Some(map) => &map.origin,
            None => &config.geos[i - config.maps.len()].origin,
        };
        let msg = format!("\"${}\" refers to itself", names[i]);
        return Err(ConfigError::invalid(file, origin, msg));
    }
    Ok((names, compiled))
}
