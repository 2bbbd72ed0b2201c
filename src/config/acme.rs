//! ACME in the model (nginx's `ngx_http_acme_module`): the issuers (`acme_issuer`) and
//! the certificates ordered from them (`acme_certificate`). Directories are checked, and
//! orders placed, by [`crate::tls::acme`].

use super::Origin;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// One ACME server and the account pinlb holds there (nginx `acme_issuer NAME { ... }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcmeIssuer {
    /// The directory URL (`uri`), `https://...`; required.
    pub uri: String,
    /// Account contacts (`contact`), `mailto:` added when no scheme is written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    /// Where the account key and the certificates are kept across restarts
    /// (`state_path`); default `acme_NAME` beside the config file; `None`: `off`, kept in
    /// memory only.
    pub state_path: Option<PathBuf>,
    /// Agree to the CA's terms of service (`accept_terms_of_service`). Required by
    /// pinlb: see the README.
    pub accept_terms_of_service: bool,
    /// PEM certificates that verify the directory's HTTPS certificate
    /// (`ssl_trusted_certificate`); `None`: the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_certificate: Option<PathBuf>,
    /// Verify the directory's certificate (`ssl_verify`, default on).
    pub verify: bool,
    /// Renew this long before a certificate expires (pinlb's `renew_before_expiry`);
    /// `None`: when two thirds of its lifetime have passed or 30 days before expiry,
    /// whichever is earlier.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_secs")]
    pub renew_before_expiry: Option<Duration>,
    #[serde(skip)]
    pub origin: Origin,
}

/// The key type of an ordered certificate (`acme_certificate ... key=ALG[:SIZE]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub enum AcmeKey {
    /// `ecdsa:256`, the default.
    #[default]
    #[serde(rename = "ecdsa:256")]
    EcdsaP256,
    #[serde(rename = "ecdsa:384")]
    EcdsaP384,
}

impl AcmeKey {
    /// The key written as nginx's module writes it; `Err` says why not.
    pub fn parse(value: &str) -> Result<AcmeKey, String> {
        match value {
            "ecdsa" | "ecdsa:256" => Ok(AcmeKey::EcdsaP256),
            "ecdsa:384" => Ok(AcmeKey::EcdsaP384),
            "ecdsa:521" | "rsa" | "rsa:2048" | "rsa:3072" | "rsa:4096" => Err(format!(
                "key \"{value}\" is not supported: the TLS library generates ecdsa:256 and ecdsa:384 keys only"
            )),
            _ => Err(format!("invalid key \"{value}\"")),
        }
    }
}

/// One certificate ordered from an issuer (nginx `acme_certificate ISSUER [ID...]
/// [key=ALG]` in a server; the JSON config's `listeners[].tls.acme`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcmeCertificate {
    /// The `acme_issuer` name.
    pub issuer: String,
    /// The DNS names it is for, lowercase; never empty.
    pub identifiers: Vec<String>,
    pub key: AcmeKey,
    #[serde(skip)]
    pub origin: Origin,
}

/// Whether `name` can be a certificate identifier: a DNS name, not a wildcard or a
/// regex (nginx's module refuses both for HTTP-01).
pub fn identifier_error(name: &str) -> Option<String> {
    if name.starts_with('~') || name.contains('*') {
        return Some(format!(
            "unsupported identifier \"{name}\": wildcards and regular expressions cannot be validated by http-01"
        ));
    }
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    (!valid).then(|| format!("invalid identifier \"{name}\""))
}

fn opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_secs()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_identifiers_are_judged_like_the_module() {
        assert_eq!(AcmeKey::parse("ecdsa:384"), Ok(AcmeKey::EcdsaP384));
        assert!(
            AcmeKey::parse("rsa:2048")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(AcmeKey::parse("dsa").unwrap_err().contains("invalid key"));
        assert_eq!(identifier_error("www.example.test"), None);
        assert!(identifier_error("*.example.test").is_some());
        assert!(identifier_error("~^a").is_some());
        assert!(identifier_error("a..b").is_some());
    }
}
