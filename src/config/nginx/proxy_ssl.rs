//! nginx's `proxy_ssl_*` directives (inherited `http` → `server` → `location`):
//! `proxy_ssl_server_name`, `proxy_ssl_name`, `proxy_ssl_verify`,
//! `proxy_ssl_trusted_certificate`. Whether TLS is spoken at all is `proxy_pass https://`.

use super::translate::{Nginx, arg_count, flag};
use crate::config::{ConfigError, UpstreamTls};
use std::path::PathBuf;

/// What one level sets; `None` inherits.
#[derive(Debug, Clone, Default)]
pub struct ProxySslLevel {
    server_name: Option<bool>,
    name: Option<String>,
    verify: Option<bool>,
    trusted_certificate: Option<PathBuf>,
}

impl ProxySslLevel {
    /// Takes `d` if it is one of the `proxy_ssl_*` (or `grpc_ssl_*`) directives pinlb
    /// translates.
    pub fn apply(&mut self, d: &Nginx) -> Result<bool, ConfigError> {
        match super::grpc::proxy_name(d.name()) {
            "proxy_ssl_server_name" => self.server_name = Some(flag(d)?),
            "proxy_ssl_verify" => self.verify = Some(flag(d)?),
            "proxy_ssl_name" => {
                arg_count(d, 1..=1)?;
                self.name = Some(d.args()[0].clone());
            }
            "proxy_ssl_trusted_certificate" => {
                arg_count(d, 1..=1)?;
                self.trusted_certificate = Some(PathBuf::from(&d.args()[0]));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn inherit(&self, parent: &ProxySslLevel) -> ProxySslLevel {
        ProxySslLevel {
            server_name: self.server_name.or(parent.server_name),
            name: self.name.clone().or_else(|| parent.name.clone()),
            verify: self.verify.or(parent.verify),
            trusted_certificate: self
                .trusted_certificate
                .clone()
                .or_else(|| parent.trusted_certificate.clone()),
        }
    }

    /// The settings, TLS itself off until `proxy_pass https://` says so.
    pub fn upstream_tls(&self) -> UpstreamTls {
        UpstreamTls {
            enabled: false,
            server_name: self.server_name.unwrap_or(false),
            name: self.name.clone(),
            verify: self.verify.unwrap_or(false),
            trusted_certificate: self.trusted_certificate.clone(),
        }
    }
}
