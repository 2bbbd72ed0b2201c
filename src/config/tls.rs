//! TLS in the model: which listeners speak TLS (and HTTP/2), the certificate pairs that
//! answer on them, and the handshake settings of a TLS listener (protocols, ciphers,
//! curves, session resumption). Files are read, and values judged, by
//! [`crate::tls`] when the config is compiled.

use super::Origin;
use serde::Serialize;
use std::path::PathBuf;

/// A TLS protocol version rustls speaks. nginx's `SSLv3`, `TLSv1` and `TLSv1.1` have no
/// implementation here and are refused by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "TLSv1.2")]
    V1_2,
    #[serde(rename = "TLSv1.3")]
    V1_3,
}

impl TlsVersion {
    /// The version named `name` as nginx's `ssl_protocols` writes it; `Err` says why not.
    pub fn parse(name: &str) -> Result<TlsVersion, String> {
        match name {
            "TLSv1.2" => Ok(TlsVersion::V1_2),
            "TLSv1.3" => Ok(TlsVersion::V1_3),
            "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => Err(format!(
                "\"{name}\" is not supported: the TLS library speaks only TLSv1.2 and TLSv1.3"
            )),
            other => Err(format!("invalid value \"{other}\"")),
        }
    }
}

/// One certificate (PEM, leaf first, then the chain) and its private key (PEM: PKCS#8,
/// PKCS#1 RSA or SEC1 EC). nginx `ssl_certificate` + `ssl_certificate_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(skip)]
    pub origin: Origin,
}

/// How a TLS listener speaks TLS: settings of the handshake, before a virtual server is
/// known, taken (as in nginx) from the listener's default server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerTls {
    /// Versions offered (nginx `ssl_protocols`). Default TLSv1.2 and TLSv1.3.
    pub protocols: Vec<TlsVersion>,
    /// Choose the cipher suite by the server's order (nginx `ssl_prefer_server_ciphers`,
    /// default off).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub prefer_server_ciphers: bool,
    /// nginx `ssl_ciphers` (OpenSSL's syntax): the TLSv1.2 suites rustls has that the
    /// list names; a list naming none of them keeps rustls's own (logged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ciphers: Option<String>,
    /// nginx `ssl_ecdh_curve`: `X25519:prime256v1:secp384r1`, or `auto` (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecdh_curve: Option<String>,
    /// Sessions remembered for resumption by session id (nginx `ssl_session_cache`);
    /// 0 is none (nginx's default `none`).
    pub session_cache: usize,
    /// Resumption by session tickets (nginx `ssl_session_tickets`, default on).
    pub session_tickets: bool,
    /// Certificates chosen by the names they carry (the JSON config's
    /// `listeners[].tls.certificates`); nginx configs give them to virtual servers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertPair>,
    /// Certificates ordered from ACME issuers, chosen by their identifiers (the JSON
    /// config's `listeners[].tls.acme`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acme: Vec<super::AcmeCertificate>,
    #[serde(skip)]
    pub origin: Origin,
}

impl Default for ListenerTls {
    fn default() -> Self {
        ListenerTls {
            protocols: vec![TlsVersion::V1_2, TlsVersion::V1_3],
            prefer_server_ciphers: false,
            ciphers: None,
            ecdh_curve: None,
            session_cache: 0,
            session_tickets: true,
            certificates: Vec::new(),
            acme: Vec::new(),
            origin: Origin::Builtin,
        }
    }
}

/// TLS to upstream servers (nginx `proxy_pass https://...` and `proxy_ssl_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpstreamTls {
    /// Speak TLS to the servers (`proxy_pass https://`). Default off.
    pub enabled: bool,
    /// Send the name as SNI (nginx `proxy_ssl_server_name`, default off).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub server_name: bool,
    /// The name sent and verified (nginx `proxy_ssl_name`); `None`: the `proxy_pass`
    /// host (`$proxy_host`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Verify the server's certificate and name (nginx `proxy_ssl_verify`, default off).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub verify: bool,
    /// PEM certificates that verification trusts (nginx
    /// `proxy_ssl_trusted_certificate`); `None`: the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_certificate: Option<PathBuf>,
}
