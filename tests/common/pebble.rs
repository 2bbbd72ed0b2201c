//! Let's Encrypt's test CA for the ACME tests: `pebble` and its DNS,
//! `pebble-challtestsrv` (answering 127.0.0.1 for every name), both started on loopback
//! ports chosen here, with a generated HTTPS certificate; killed on drop.
#![allow(dead_code)]

use super::tls::{Key, client_config, connect, make_cert};
use super::{free_addr, poll_until};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub struct Pebble {
    pebble: Option<Child>,
    dns: Child,
    /// The ACME directory: `https://localhost:PORT/dir`.
    pub directory: String,
    /// Its management interface (roots at `/roots/0`).
    pub management: SocketAddr,
    /// The certificate its HTTPS listeners present (self-signed, for `localhost`).
    pub https_cert: PathBuf,
    log: PathBuf,
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on `http_port`, issuing certificates valid for
    /// `validity` seconds.
    pub fn start(dir: &Path, http_port: u16, validity: u64) -> Pebble {
        let (https_cert, https_key) = make_cert(dir, "pebble", &["localhost"], Key::Ecdsa, 30);
        let (listen, management, dns_addr, dns_management, tls) = (
            free_addr(),
            free_addr(),
            free_addr(),
            free_addr(),
            free_addr(),
        );
        let config = serde_json::json!({ "pebble": {
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": https_cert,
            "privateKey": https_key,
            "httpPort": http_port,
            "tlsPort": tls.port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity,
        }});
        let config_file = dir.join("pebble.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let log = dir.join("pebble.log");
        let dns = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args([
                "-dns01",
                &dns_addr.to_string(),
                "-management",
                &dns_management.to_string(),
            ])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian package pebble) must be installed");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_file)
            .args(["-dnsserver", &dns_addr.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (Debian package pebble) must be installed");
        let p = Pebble {
            pebble: Some(pebble),
            dns,
            directory: format!("https://localhost:{}/dir", listen.port()),
            management,
            https_cert,
            log,
        };
        let up = poll_until(Duration::from_secs(15), || p.root_pem().is_ok());
        assert!(up, "pebble did not start; log:\n{}", p.log());
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the CA (its DNS stays); nothing answers at its directory any more.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.pebble.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The root certificate it signs with (new at every start), PEM.
    pub fn root_pem(&self) -> Result<String, String> {
        let config = client_config(&[]);
        let mut stream = connect(&config, self.management, Some("localhost"))?;
        let req = "GET /roots/0 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        stream
            .write_all(req.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let start = text.find("-----BEGIN").ok_or("no PEM in the answer")?;
        Ok(text[start..].to_string())
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        let _ = self.dns.kill();
        let _ = self.dns.wait();
    }
}

/// A client that trusts only `root_pem` (and checks names and dates).
pub fn verifying_client(root_pem: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    Arc::new(config)
}

/// Handshakes with `addr` for `sni`; the leaf certificate it got (DER).
pub fn leaf(config: &Arc<ClientConfig>, addr: SocketAddr, sni: &str) -> Result<Vec<u8>, String> {
    let stream = connect(config, addr, Some(sni))?;
    let certs = stream.conn.peer_certificates().ok_or("no certificate")?;
    Ok(certs[0].as_ref().to_vec())
}

/// The first certificate of a PEM file, DER.
pub fn first_cert(pem_file: &Path) -> Vec<u8> {
    let pem = std::fs::read(pem_file).unwrap();
    let first = CertificateDer::pem_slice_iter(&pem)
        .next()
        .unwrap()
        .unwrap();
    first.as_ref().to_vec()
}
