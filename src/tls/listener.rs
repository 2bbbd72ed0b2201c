//! The rustls server config of one TLS listener, from its settings (protocols, suites,
//! curves, session resumption, ALPN), with the certificate store as its resolver; and
//! what each handshake leaves for `$ssl_protocol` and `$ssl_server_name`.

use crate::config::{ListenerTls, TlsVersion};
use crate::variables::TlsConn;
use async_trait::async_trait;
use log::info;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use rustls::crypto::ring::{self as ring_provider, cipher_suite as cs, kx_group};
use rustls::server::{NoServerSessionStorage, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::{ServerConfig, SupportedCipherSuite, version};
use std::any::Any;
use std::sync::Arc;

/// OpenSSL's names of the TLSv1.2 suites rustls has.
const TLS12_SUITES: [(&str, SupportedCipherSuite); 6] = [
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The rustls config of a TLS listener. `where_` names the listener in notes.
pub fn server_config(
    tls: &ListenerTls,
    http2: bool,
    resolver: Arc<dyn ResolvesServerCert>,
    where_: &str,
) -> Result<ServerConfig, String> {
    let mut provider = ring_provider::default_provider();
    if let Some(list) = &tls.ciphers {
        let named: Vec<SupportedCipherSuite> = cipher_tokens(list)
            .filter_map(|t| TLS12_SUITES.iter().find(|(n, _)| *n == t).map(|(_, s)| *s))
            .collect();
        if named.is_empty() {
            info!(
                "{where_}: ssl_ciphers \"{list}\" names no TLSv1.2 suite the TLS library has; its own safe suites are used"
            );
        } else {
            // TLSv1.3's suites are not chosen by ssl_ciphers (nor in nginx).
            provider
                .cipher_suites
                .retain(|s| s.version() == &version::TLS13);
            provider.cipher_suites.extend(named);
        }
    }
    if let Some(curves) = tls.ecdh_curve.as_deref().filter(|c| *c != "auto") {
        let groups: Vec<_> = curves
            .split(':')
            .filter_map(|c| match c {
                "X25519" | "x25519" => Some(kx_group::X25519),
                "prime256v1" | "secp256r1" | "P-256" => Some(kx_group::SECP256R1),
                "secp384r1" | "P-384" => Some(kx_group::SECP384R1),
                _ => None,
            })
            .collect();
        if groups.is_empty() {
            info!(
                "{where_}: ssl_ecdh_curve \"{curves}\" names no curve the TLS library has (X25519, prime256v1, secp384r1); its own are used"
            );
        } else {
            provider.kx_groups = groups;
        }
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = tls
        .protocols
        .iter()
        .map(|v| match v {
            TlsVersion::V1_2 => &version::TLS12,
            TlsVersion::V1_3 => &version::TLS13,
        })
        .collect();
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("{where_}: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.ignore_client_order = tls.prefer_server_ciphers;
    config.session_storage = match tls.session_cache {
        0 => Arc::new(NoServerSessionStorage {}),
        n => ServerSessionMemoryCache::new(n),
    };
    if tls.session_tickets {
        config.ticketer = ring_provider::Ticketer::new().map_err(|e| format!("{where_}: {e}"))?;
    }
    config.alpn_protocols = match http2 {
        true => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        false => vec![b"http/1.1".to_vec()],
    };
    Ok(config)
}

/// The names of an OpenSSL cipher list (`A:B`, `A, B`, `A B`).
fn cipher_tokens(list: &str) -> impl Iterator<Item = &str> {
    list.split([':', ',', ' ']).filter(|t| !t.is_empty())
}

/// Leaves the protocol and SNI of each completed handshake in the connection's digest.
pub struct HandshakeInfo;

#[async_trait]
impl TlsAccept for HandshakeInfo {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let protocol = match tls.version() {
            Some(v) if v.ends_with("1_3") || v.ends_with("1.3") => "TLSv1.3",
            Some(v) if v.ends_with("1_2") || v.ends_with("1.2") => "TLSv1.2",
            _ => "",
        };
        Some(Arc::new(TlsConn {
            protocol,
            server_name: tls.server_name().map(Box::from),
        }))
    }
}
