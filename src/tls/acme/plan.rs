//! What a config asks of ACME, checked and built once per compile: each issuer (its
//! trusted certificates read, its `state_path` writable) and each certificate to keep
//! (by issuer and identifiers), with the name it is installed under in the certificate
//! store and the self-signed stand-in served until it exists.

use super::store::StateDir;
use crate::config::{AcmeCertificate, AcmeIssuer, AcmeKey, Config, ConfigError};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One issuer, ready for orders.
#[derive(Debug)]
pub struct IssuerPlan {
    pub name: String,
    pub uri: String,
    pub contacts: Vec<String>,
    pub state: StateDir,
    /// `ssl_trusted_certificate`'s certificates; `None`: the system's.
    pub roots: Option<Vec<CertificateDer<'static>>>,
    pub verify: bool,
    pub renew_before: Option<Duration>,
    /// Tells a changed issuer from the same one across reloads.
    pub fingerprint: String,
}

/// One certificate to obtain and keep.
#[derive(Debug)]
pub struct CertPlan {
    /// Its files' name in `state_path` (`ID.crt`, `ID.key`): the first identifier, with
    /// the key type and a digest of the other identifiers when there are any.
    pub id: String,
    /// The name it is installed under in [`crate::tls::CertStore`]: `acme:ISSUER:ID`.
    pub alias: String,
    pub issuer: Arc<IssuerPlan>,
    pub identifiers: Vec<String>,
    pub key: AcmeKey,
}

/// The certificates `config` orders, one per issuer, identifiers and key type.
pub fn plans(config: &Config) -> Result<Vec<Arc<CertPlan>>, ConfigError> {
    let file = &config.source;
    let mut issuers: BTreeMap<&str, Arc<IssuerPlan>> = BTreeMap::new();
    for (name, issuer) in &config.acme_issuers {
        let plan = issuer_plan(name, issuer)
            .map_err(|msg| ConfigError::invalid(file, &issuer.origin, msg))?;
        issuers.insert(name, Arc::new(plan));
    }
    let wanted = config
        .virtual_servers
        .iter()
        .filter_map(|vs| vs.acme.as_ref())
        .chain(
            config
                .listeners
                .iter()
                .filter_map(|l| l.tls.as_ref())
                .flat_map(|t| &t.acme),
        );
    let mut plans: Vec<Arc<CertPlan>> = Vec::new();
    for cert in wanted {
        let Some(issuer) = issuers.get(cert.issuer.as_str()) else {
            let msg = format!("issuer \"{}\" is missing", cert.issuer);
            return Err(ConfigError::invalid(file, &cert.origin, msg));
        };
        let plan = cert_plan(cert, Arc::clone(issuer));
        if !plans.iter().any(|p| p.alias == plan.alias) {
            plans.push(Arc::new(plan));
        }
    }
    Ok(plans)
}

fn issuer_plan(name: &str, issuer: &AcmeIssuer) -> Result<IssuerPlan, String> {
    let state = StateDir::new(issuer.state_path.clone());
    state
        .check_writable()
        .map_err(|e| format!("acme_issuer \"{name}\": state_path {e}"))?;
    let roots = match &issuer.trusted_certificate {
        Some(path) => Some(read_roots(path)?),
        None => None,
    };
    Ok(IssuerPlan {
        name: name.to_string(),
        uri: issuer.uri.clone(),
        contacts: issuer.contacts.clone(),
        state,
        roots,
        verify: issuer.verify,
        renew_before: issuer.renew_before_expiry,
        fingerprint: serde_json::to_string(issuer).unwrap_or_default(),
    })
}

fn read_roots(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, String> {
    let cannot = |e: String| {
        format!(
            "cannot load trusted certificate \"{}\": {e}",
            path.display()
        )
    };
    let pem = std::fs::read(path).map_err(|e| cannot(e.to_string()))?;
    let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| cannot(e.to_string()))?;
    if roots.is_empty() {
        return Err(cannot("no PEM certificate in the file".into()));
    }
    Ok(roots)
}

fn cert_plan(cert: &AcmeCertificate, issuer: Arc<IssuerPlan>) -> CertPlan {
    CertPlan {
        alias: alias_of(cert),
        id: id_of(cert),
        issuer,
        identifiers: cert.identifiers.clone(),
        key: cert.key,
    }
}

/// The name a certificate of `cert` is installed under: `acme:ISSUER:ID`.
pub fn alias_of(cert: &AcmeCertificate) -> String {
    format!("acme:{}:{}", cert.issuer, id_of(cert))
}

fn id_of(cert: &AcmeCertificate) -> String {
    let mut id = cert.identifiers[0].clone();
    if cert.key == AcmeKey::EcdsaP384 {
        id.push_str("_ecdsa384");
    }
    if cert.identifiers.len() > 1 {
        let all = cert.identifiers.join(" ");
        let digest = ring::digest::digest(&ring::digest::SHA256, all.as_bytes());
        let hex: String = digest.as_ref()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        id = format!("{id}_{hex}");
    }
    id
}

/// A self-signed certificate for `names`, made in memory: what a server answers with
/// until its first ACME certificate exists.
pub fn stand_in(names: &[String]) -> Result<Arc<CertifiedKey>, String> {
    let made = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let signer = any_supported_type(&key).map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(
        vec![made.cert.der().clone()],
        signer,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    fn cert(ids: &[&str], key: AcmeKey) -> AcmeCertificate {
        AcmeCertificate {
            issuer: "le".into(),
            identifiers: ids.iter().map(|s| s.to_string()).collect(),
            key,
            origin: Origin::Builtin,
        }
    }

    #[test]
    fn ids_tell_identifier_lists_and_key_types_apart() {
        assert_eq!(
            alias_of(&cert(&["a.test"], AcmeKey::EcdsaP256)),
            "acme:le:a.test"
        );
        assert_eq!(
            alias_of(&cert(&["a.test"], AcmeKey::EcdsaP384)),
            "acme:le:a.test_ecdsa384"
        );
        let two = alias_of(&cert(&["a.test", "b.test"], AcmeKey::EcdsaP256));
        let other = alias_of(&cert(&["a.test", "c.test"], AcmeKey::EcdsaP256));
        assert!(two.starts_with("acme:le:a.test_") && two != other);
    }

    #[test]
    fn the_stand_in_carries_the_names() {
        let key = stand_in(&["a.test".to_string()]).unwrap();
        assert!(key.keys_match().is_ok());
    }
}
