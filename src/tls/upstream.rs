//! TLS to upstream servers: the name sent as SNI and verified, whether to verify, and the
//! trusted certificates, compiled once per route and applied to each attempt's peer.

use crate::config::{ConfigError, Origin, UpstreamTls};
use pingora::protocols::tls::CaType;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{WrappedX509, parse_x509};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The TLS of a route's upstream connections.
#[derive(Debug)]
pub struct PeerTls {
    /// The name sent by SNI and verified; `None`: neither (an IP address is given to the
    /// TLS library instead, for which it sends no SNI).
    name: Option<String>,
    verify: bool,
    ca: Option<Arc<CaType>>,
    /// Tells pooled connections verified against different trusted certificates apart:
    /// Pingora's pool key does not include them.
    group: u64,
}

impl PeerTls {
    /// Compiles `tls` for a route whose `proxy_pass` names `proxy_host`; `None` when the
    /// route speaks plain HTTP.
    pub fn compile(
        file: &Path,
        origin: &Origin,
        tls: &UpstreamTls,
        proxy_host: &str,
    ) -> Result<Option<Arc<PeerTls>>, ConfigError> {
        if !tls.enabled {
            return Ok(None);
        }
        let (ca, group) = match &tls.trusted_certificate {
            Some(path) => {
                let (ca, group) = trusted(path).map_err(|msg| {
                    ConfigError::invalid(file, &origin.field("ssl_trusted_certificate"), msg)
                })?;
                (Some(ca), group)
            }
            None => (None, 0),
        };
        // nginx sends `$proxy_host` without its port.
        let name = tls
            .name
            .clone()
            .unwrap_or_else(|| strip_port(proxy_host).to_string());
        // Pingora verifies the name it sends, so verification sends it too.
        let send = tls.server_name || tls.verify;
        Ok(Some(Arc::new(PeerTls {
            name: send.then_some(name),
            verify: tls.verify,
            ca,
            group,
        })))
    }

    /// Makes `peer` (to `addr`) speak TLS with these settings. Connections are pooled
    /// per address, name and settings.
    pub fn apply(&self, peer: &mut HttpPeer, addr: SocketAddr) {
        peer.scheme = pingora::upstreams::peer::Scheme::HTTPS;
        peer.sni = match &self.name {
            Some(name) => name.clone(),
            None => addr.ip().to_string(),
        };
        peer.options.verify_cert = self.verify;
        peer.options.verify_hostname = self.verify;
        peer.options.ca = self.ca.clone();
        // Mixed into the worker thread's pool key (`proxy::upstream::peer`): a 64-bit
        // digest, so that two (certificate, thread) pairs meet only by a 2^-64 chance.
        peer.group_key ^= self.group;
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') || host.starts_with('[') => {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }
        _ => host,
    }
}

/// The certificates of a PEM file, for verification, and a digest of them.
fn trusted(path: &Path) -> Result<(Arc<CaType>, u64), String> {
    use std::hash::{Hash, Hasher};
    let mut digest = std::collections::hash_map::DefaultHasher::new();
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "cannot load trusted certificate \"{}\": {e}",
            path.display()
        )
    })?;
    let mut certs = Vec::new();
    for der in CertificateDer::pem_slice_iter(&pem) {
        let der = der.map_err(|e| {
            format!(
                "cannot load trusted certificate \"{}\": {e}",
                path.display()
            )
        })?;
        // Checked here: the wrapper's parser panics on what it cannot read.
        X509Certificate::from_der(der.as_ref()).map_err(|e| {
            format!(
                "cannot load trusted certificate \"{}\": {e}",
                path.display()
            )
        })?;
        der.as_ref().hash(&mut digest);
        certs.push(WrappedX509::new(der.as_ref().to_vec(), parse_x509));
    }
    if certs.is_empty() {
        return Err(format!(
            "cannot load trusted certificate \"{}\": no PEM certificate in the file",
            path.display()
        ));
    }
    // Never 0, the group of peers without trusted certificates.
    Ok((Arc::from(certs.into_boxed_slice()), digest.finish() | 1))
}
