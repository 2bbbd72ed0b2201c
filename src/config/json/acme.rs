//! The JSON keys of ACME: `acme_issuers` (nginx's `acme_issuer` blocks, the same names)
//! and `listeners[].tls.acme` (nginx's `acme_certificate`, with explicit identifiers).

use crate::config::acme::identifier_error;
use crate::config::{AcmeCertificate, AcmeIssuer, AcmeKey, ConfigError, Origin};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `"acme_issuers": { "le": { "uri": "https://...", "accept_terms_of_service": true } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IssuerConf {
    uri: String,
    #[serde(default)]
    contact: Vec<String>,
    /// A folder, or `"off"`; default `acme_NAME` beside the config file.
    #[serde(default)]
    state_path: Option<String>,
    #[serde(default)]
    accept_terms_of_service: bool,
    #[serde(default)]
    ssl_trusted_certificate: Option<PathBuf>,
    #[serde(default = "yes")]
    ssl_verify: bool,
    #[serde(default)]
    challenge: Option<String>,
    #[serde(default)]
    renew_before_expiry_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

/// `"acme": [{ "issuer": "le", "identifiers": ["example.com"], "key": "ecdsa:256" }]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AcmeCertConf {
    issuer: String,
    identifiers: Vec<String>,
    #[serde(default)]
    key: Option<String>,
}

/// The model's issuers; relative paths are taken from the config's folder.
pub(super) fn issuers(
    file: &Path,
    confs: &BTreeMap<String, IssuerConf>,
) -> Result<BTreeMap<String, AcmeIssuer>, ConfigError> {
    let base = file.parent().unwrap_or(Path::new(""));
    let mut issuers = BTreeMap::new();
    for (name, c) in confs {
        let origin = Origin::Json(String::new())
            .field("acme_issuers")
            .field(name);
        let invalid = |key: &str, msg: String| ConfigError::invalid(file, &origin.field(key), msg);
        if !c.uri.starts_with("https://") && !c.uri.starts_with("http://") {
            return Err(invalid("uri", format!("invalid uri \"{}\"", c.uri)));
        }
        if !c.accept_terms_of_service {
            return Err(invalid(
                "accept_terms_of_service",
                "must be true: pinlb orders certificates only from a CA whose terms were accepted"
                    .into(),
            ));
        }
        match c.challenge.as_deref() {
            None | Some("http-01") | Some("http") => {}
            Some(other) => {
                return Err(invalid(
                    "challenge",
                    format!("unsupported challenge \"{other}\": pinlb answers http-01"),
                ));
            }
        }
        let contacts = c
            .contact
            .iter()
            .map(|m| match m.contains(':') {
                true => m.clone(),
                false => format!("mailto:{m}"),
            })
            .collect();
        let state_path = match c.state_path.as_deref() {
            Some("off") => None,
            Some(p) => Some(base.join(p)),
            None => Some(base.join(format!("acme_{name}"))),
        };
        issuers.insert(
            name.clone(),
            AcmeIssuer {
                uri: c.uri.clone(),
                contacts,
                state_path,
                accept_terms_of_service: true,
                trusted_certificate: c.ssl_trusted_certificate.as_ref().map(|p| base.join(p)),
                verify: c.ssl_verify,
                renew_before_expiry: c.renew_before_expiry_ms.map(Duration::from_millis),
                origin,
            },
        );
    }
    Ok(issuers)
}

impl AcmeCertConf {
    /// The model's certificate; `origin` is its place in the list.
    pub(super) fn certificate(
        &self,
        file: &Path,
        origin: Origin,
        issuers: &BTreeMap<String, AcmeIssuer>,
    ) -> Result<AcmeCertificate, ConfigError> {
        if !issuers.contains_key(&self.issuer) {
            return Err(ConfigError::invalid(
                file,
                &origin.field("issuer"),
                format!("issuer \"{}\" is missing in \"acme_issuers\"", self.issuer),
            ));
        }
        if self.identifiers.is_empty() {
            return Err(ConfigError::invalid(
                file,
                &origin.field("identifiers"),
                "at least one name is needed",
            ));
        }
        let mut identifiers = Vec::new();
        for (i, name) in self.identifiers.iter().enumerate() {
            let name = name.to_ascii_lowercase();
            if let Some(msg) = identifier_error(&name) {
                let at = origin.field("identifiers").field(&format!("[{i}]"));
                return Err(ConfigError::invalid(file, &at, msg));
            }
            identifiers.push(name);
        }
        let key = match &self.key {
            Some(k) => AcmeKey::parse(k)
                .map_err(|msg| ConfigError::invalid(file, &origin.field("key"), msg))?,
            None => AcmeKey::default(),
        };
        Ok(AcmeCertificate {
            issuer: self.issuer.clone(),
            identifiers,
            key,
            origin,
        })
    }
}
