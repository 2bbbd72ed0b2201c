//! Reading one certificate pair: the PEM chain and key, checked to belong together,
//! with the names the certificate carries and whether it has expired.

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::Arc;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A certificate chain with its key, ready for handshakes.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    /// The DNS names of its subject alternative names (or, lacking those, its common
    /// name), lowercase; `*.example.com` as written.
    pub names: Vec<String>,
    /// Whether its key is RSA (ECDSA and Ed25519 keys are preferred, as OpenSSL does).
    pub rsa: bool,
    /// Set when the certificate is not valid now: what to warn about.
    pub warning: Option<String>,
    /// The leaf's validity, seconds since the Unix epoch: not before, not after.
    pub validity: (i64, i64),
}

/// Reads and checks the pair. The error says which file and why, in one line.
pub fn load_pair(cert: &Path, key: &Path) -> Result<LoadedCert, String> {
    let cert_pem = std::fs::read(cert)
        .map_err(|e| format!("cannot load certificate \"{}\": {e}", cert.display()))?;
    let key_pem = std::fs::read(key)
        .map_err(|e| format!("cannot load certificate key \"{}\": {e}", key.display()))?;
    pair_from_pem(&cert_pem, &key_pem, cert, key)
}

/// Checks a pair already read; `cert` and `key` name where it came from, for errors.
pub fn pair_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert: &Path,
    key: &Path,
) -> Result<LoadedCert, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot load certificate \"{}\": {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "cannot load certificate \"{}\": no PEM certificate in the file",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        format!(
            "cannot load certificate key \"{}\": no PEM private key in the file ({e})",
            key.display()
        )
    })?;
    let rsa = matches!(private, PrivateKeyDer::Pkcs1(_))
        || matches!(&private, PrivateKeyDer::Pkcs8(k) if is_rsa_pkcs8(k.secret_pkcs8_der()));
    let signer = any_supported_type(&private)
        .map_err(|e| format!("cannot load certificate key \"{}\": {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|_| {
        format!(
            "the key \"{}\" does not match the certificate \"{}\"",
            key.display(),
            cert.display()
        )
    })?;
    let leaf = X509Certificate::from_der(certified.cert[0].as_ref())
        .map_err(|e| format!("cannot load certificate \"{}\": {e}", cert.display()))?
        .1;
    let validity = leaf.validity();
    let now = x509_parser::time::ASN1Time::now();
    let warning = if validity.not_after < now {
        Some(format!(
            "the certificate \"{}\" expired on {}; it is served anyway",
            cert.display(),
            validity.not_after
        ))
    } else if validity.not_before > now {
        Some(format!(
            "the certificate \"{}\" is not valid before {}; it is served anyway",
            cert.display(),
            validity.not_before
        ))
    } else {
        None
    };
    Ok(LoadedCert {
        validity: (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        ),
        names: names(&leaf),
        key: Arc::new(certified),
        rsa,
        warning,
    })
}

/// The DNS names of a certificate: its subject alternative names, else its common name.
fn names(cert: &X509Certificate) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(cn) = cn.as_str() {
                names.push(cn.to_ascii_lowercase());
            }
        }
    }
    names
}

/// Whether a PKCS#8 key is an RSA one: its algorithm identifier is rsaEncryption.
fn is_rsa_pkcs8(der: &[u8]) -> bool {
    // OID 1.2.840.113549.1.1.1, DER-encoded.
    const RSA: [u8; 11] = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    der.windows(RSA.len()).take(32).any(|w| w == RSA)
}
