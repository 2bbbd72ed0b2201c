//! The JSON keys of a TLS listener: `listeners[].tls` (certificates, protocols, ciphers,
//! curves, session resumption) and `listeners[].http2`.

use crate::config::{AcmeIssuer, CertPair, ConfigError, ListenerTls, Origin, TlsVersion};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `"tls": { "certificates": [{ "cert": "site.pem", "key": "site.key" }], ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsConf {
    #[serde(default)]
    certificates: Vec<CertConf>,
    #[serde(default)]
    acme: Vec<super::acme::AcmeCertConf>,
    #[serde(default)]
    protocols: Option<Vec<String>>,
    #[serde(default)]
    prefer_server_ciphers: bool,
    #[serde(default)]
    ciphers: Option<String>,
    #[serde(default)]
    ecdh_curve: Option<String>,
    #[serde(default)]
    session_cache: usize,
    #[serde(default = "yes")]
    session_tickets: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertConf {
    cert: PathBuf,
    key: PathBuf,
}

impl TlsConf {
    /// The model's listener TLS; relative file names are taken from the config's folder.
    pub(super) fn listener(
        &self,
        file: &Path,
        origin: Origin,
        issuers: &BTreeMap<String, AcmeIssuer>,
    ) -> Result<ListenerTls, ConfigError> {
        let base = file.parent().unwrap_or(Path::new(""));
        if self.certificates.is_empty() && self.acme.is_empty() {
            return Err(ConfigError::invalid(
                file,
                &origin.field("certificates"),
                "a TLS listener needs at least one certificate (or an \"acme\" one)",
            ));
        }
        let certificates = self
            .certificates
            .iter()
            .enumerate()
            .map(|(i, c)| CertPair {
                cert: base.join(&c.cert),
                key: base.join(&c.key),
                origin: origin.field("certificates").field(&format!("[{i}]")),
            })
            .collect();
        let mut protocols = Vec::new();
        for (i, name) in self.protocols.iter().flatten().enumerate() {
            let v = TlsVersion::parse(name).map_err(|msg| {
                ConfigError::invalid(
                    file,
                    &origin.field("protocols").field(&format!("[{i}]")),
                    msg,
                )
            })?;
            if !protocols.contains(&v) {
                protocols.push(v);
            }
        }
        protocols.sort();
        if protocols.is_empty() {
            protocols = ListenerTls::default().protocols;
        }
        Ok(ListenerTls {
            protocols,
            prefer_server_ciphers: self.prefer_server_ciphers,
            ciphers: self.ciphers.clone(),
            ecdh_curve: self.ecdh_curve.clone(),
            session_cache: self.session_cache,
            session_tickets: self.session_tickets,
            certificates,
            acme: self
                .acme
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    a.certificate(file, origin.field("acme").field(&format!("[{i}]")), issuers)
                })
                .collect::<Result<_, _>>()?,
            origin,
        })
    }
}
