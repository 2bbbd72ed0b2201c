//! The nginx.conf front-end: the subset of nginx's configuration language that load
//! balancing uses, read with nginx's meaning into the [`Config`](crate::config::Config) model.

mod acme;
mod client;
mod grpc;
mod level;
pub mod lexer;
mod limits;
mod listen;
pub mod parser;
mod proxy_ssl;
mod real_ip;
mod server;
mod tls;
mod translate;
mod upstream;
pub mod values;
mod variables;

use crate::config::{Config, ConfigError};
use std::path::Path;

/// Reads `path` (and what it includes) and translates it.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let directives = parser::parse_file(path).map_err(ConfigError::NginxSyntax)?;
    translate::translate(path, &directives)
}

#[cfg(test)]
mod setting_tests;
#[cfg(test)]
mod tests;
