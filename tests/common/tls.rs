//! TLS for the tests: certificate pairs made with the `openssl` command, and a rustls
//! client that accepts any certificate and tells which one it was given.
#![allow(dead_code)]

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// The kind of key of a generated certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Rsa,
    Ecdsa,
}

/// Makes a self-signed certificate for `names` (the first is its common name) valid for
/// `days` from now (negative: it expired that many days ago), as `DIR/STEM.pem` and
/// `DIR/STEM.key`.
pub fn make_cert(
    dir: &Path,
    stem: &str,
    names: &[&str],
    key: Key,
    days: i32,
) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{stem}.pem"));
    let key_file = dir.join(format!("{stem}.key"));
    let san = names
        .iter()
        .map(|n| format!("DNS:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-nodes", "-newkey"]);
    match key {
        Key::Rsa => cmd.arg("rsa:2048"),
        Key::Ecdsa => cmd.args(["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]),
    };
    cmd.arg("-keyout")
        .arg(&key_file)
        .args(["-subj", &format!("/CN={}", names[0])]);
    cmd.args(["-addext", &format!("subjectAltName={san}")]);
    // A server certificate, not a CA one (openssl's default), so that a verifier can
    // take it as its own trust anchor.
    cmd.args(["-addext", "basicConstraints=critical,CA:FALSE"]);
    if days > 0 {
        cmd.args(["-x509", "-days", &days.to_string()])
            .arg("-out")
            .arg(&cert);
        run(&mut cmd);
        return (cert, key_file);
    }
    // `openssl req -x509` cannot backdate: sign the request with `openssl ca`, which can.
    let csr = dir.join(format!("{stem}.csr"));
    run(cmd.arg("-out").arg(&csr));
    let ca = dir.join(format!("{stem}-ca"));
    std::fs::create_dir_all(&ca).unwrap();
    std::fs::write(ca.join("index.txt"), "").unwrap();
    std::fs::write(ca.join("serial"), "01\n").unwrap();
    let cnf = ca.join("ca.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {db}\nnew_certs_dir = {dir}\nserial = {serial}\n\
             default_md = sha256\npolicy = p\ncopy_extensions = copy\n[p]\ncommonName = supplied\n",
            db = ca.join("index.txt").display(),
            dir = ca.display(),
            serial = ca.join("serial").display(),
        ),
    )
    .unwrap();
    let (start, end) = ("20200101000000Z", "20200201000000Z");
    run(Command::new("openssl")
        .args(["ca", "-batch", "-notext", "-selfsign", "-config"])
        .arg(&cnf)
        .arg("-keyfile")
        .arg(&key_file)
        .arg("-in")
        .arg(&csr)
        .arg("-out")
        .arg(&cert)
        .args(["-startdate", start, "-enddate", end]));
    (cert, key_file)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Accepts every certificate: the tests check which one they got instead.
#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client config that trusts anything, offering `alpn`; it never resumes a session
/// (a resumed session reports the certificate of the session it resumes).
pub fn client_config(alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut config =
        ClientConfig::clone(&client_with(rustls::crypto::ring::default_provider(), alpn));
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// [`client_config`] with the suites and curves of `provider`, in its order.
pub fn client_with(provider: rustls::crypto::CryptoProvider, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let provider = Arc::new(provider);
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// One TLS connection's handshake and the answer to one request on it.
#[derive(Debug)]
pub struct Reply {
    /// The common name of the certificate the server sent.
    pub cn: String,
    pub protocol: String,
    pub resumed: bool,
    pub status: u16,
    /// The head and body as text.
    pub text: String,
}

impl Reply {
    /// A response header's value (first match, case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        let head = self.text.split("\r\n\r\n").next()?;
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    pub fn body(&self) -> &str {
        self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }
}

/// Connects to `addr` over TLS, sending `sni` (none when `None`).
pub fn connect(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    sni: Option<&str>,
) -> Result<StreamOwned<ClientConnection, TcpStream>, String> {
    connect_after(config, addr, sni, &[])
}

/// Connects to `addr`, writes `preamble` (a PROXY protocol header, say), then speaks TLS.
pub fn connect_after(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    sni: Option<&str>,
    preamble: &[u8],
) -> Result<StreamOwned<ClientConnection, TcpStream>, String> {
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_string()).map_err(|e| e.to_string())?,
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let conn = ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())?;
    let mut tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(preamble).map_err(|e| e.to_string())?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    Ok(stream)
}

/// `GET path` with `Connection: close` over a new TLS connection.
pub fn get(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    sni: Option<&str>,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let mut stream = connect(config, addr, sni)?;
    let host = sni.map_or_else(|| addr.to_string(), str::to_string);
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) => {}
        // A peer that closes without close_notify; the answer is complete.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !bytes.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {text:?}"))?;
    Ok(Reply {
        cn: leaf_cn(&stream.conn),
        protocol: stream
            .conn
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string(),
        resumed: stream.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        status,
        text,
    })
}

/// The common name of the server's certificate.
pub fn leaf_cn(conn: &ClientConnection) -> String {
    let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) else {
        return String::new();
    };
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(leaf.as_ref()) else {
        return String::new();
    };
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_string()
}
