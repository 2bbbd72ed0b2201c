//! The HTTP client ACME requests go through: one HTTP/1.1 request per connection over
//! tokio-rustls (the TLS stack pinlb already has), verified against the issuer's
//! `ssl_trusted_certificate` or the system's roots, every step bounded in time.

use bytes::Bytes;
use http_body::Body;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use pingora::tls::TlsConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A directory, an order or a certificate is small; anything larger is refused.
const MAX_RESPONSE: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole exchange after connecting (TLS, request, response).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends ACME's requests. Cheap to share.
pub struct Client {
    tls: TlsConnector,
}

impl Client {
    /// A client trusting `roots` (the system's when `None`); `verify` off accepts any
    /// certificate (nginx's `ssl_verify off`).
    pub fn new(roots: Option<&[CertificateDer<'static>]>, verify: bool) -> Result<Client, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let mut config = if verify {
            let mut store = RootCertStore::empty();
            match roots {
                Some(roots) => {
                    for cert in roots {
                        store.add(cert.clone()).map_err(|e| e.to_string())?;
                    }
                }
                None => {
                    // Unreadable system certificates leave the store empty: the CA's
                    // certificate is then refused, and that error says why.
                    for cert in pingora::tls::load_native_certs().unwrap_or_default() {
                        let _ = store.add(cert);
                    }
                }
            }
            builder.with_root_certificates(store).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }
}

impl HttpClient for Client {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let tls = self.tls.clone();
        Box::pin(async move {
            exchange(tls, req)
                .await
                .map_err(|msg| instant_acme::Error::Other(msg.into()))
        })
    }
}

async fn exchange(
    tls: TlsConnector,
    req: http::Request<BodyWrapper<Bytes>>,
) -> Result<BytesResponse, String> {
    let (parts, mut wrapped) = req.into_parts();
    let mut body = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut wrapped).poll_frame(cx)).await {
        let Ok(frame) = frame;
        if let Ok(data) = frame.into_data() {
            body.extend_from_slice(&data);
        }
    }
    let uri = &parts.uri;
    let host = uri
        .host()
        .ok_or_else(|| format!("no host in \"{uri}\""))?
        .to_string();
    let https = uri.scheme_str() != Some("http");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    // With its port: the CA builds the URLs of its directory from it.
    let authority = uri.authority().map_or(host.as_str(), |a| a.as_str());
    let mut head = format!("{} {path} HTTP/1.1\r\nHost: {authority}\r\n", parts.method);
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let tcp = timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| format!("connecting to {host}:{port} timed out"))?
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let raw = timeout(EXCHANGE_TIMEOUT, async {
        if https {
            let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
            send(stream, head.as_bytes(), &body).await
        } else {
            send(tcp, head.as_bytes(), &body).await
        }
    })
    .await
    .map_err(|_| format!("{host}:{port} did not answer in time"))??;
    parse(&raw)
}

/// Writes the request and reads the response until the server closes.
async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    head: &[u8],
    body: &[u8],
) -> Result<Vec<u8>, String> {
    stream.write_all(head).await.map_err(|e| e.to_string())?;
    stream.write_all(body).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            // Servers that close without TLS's close_notify: what came is complete
            // when its framing says so (checked by `parse`).
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e.to_string()),
        };
        if n == 0 {
            return Ok(raw);
        }
        if raw.len() + n > MAX_RESPONSE {
            return Err("response larger than 1 MiB".into());
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// The response in `raw` (the whole connection's bytes).
fn parse(raw: &[u8]) -> Result<BytesResponse, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(raw).map_err(|e| e.to_string())? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Err("incomplete response head".into()),
    };
    let mut builder = http::Response::builder().status(resp.code.unwrap_or(500));
    let mut chunked = false;
    let mut length = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h.value.eq_ignore_ascii_case(b"chunked");
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
        }
        builder = builder.header(h.name, h.value);
    }
    let rest = &raw[head_len..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        match length {
            Some(n) if n <= rest.len() => rest[..n].to_vec(),
            Some(_) => return Err("response body shorter than its Content-Length".into()),
            None => rest.to_vec(),
        }
    };
    let (parts, ()) = builder.body(()).map_err(|e| e.to_string())?.into_parts();
    Ok(BytesResponse {
        parts,
        body: Box::new(Bytes::from(body)),
    })
}

/// A chunked body, whole.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunked body")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|e| e.to_string())?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|e| e.to_string())?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("truncated chunked body".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// `ssl_verify off`: any certificate is taken (signatures are still checked).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
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
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_sized_bodies_are_read_whole() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nReplay-Nonce: n1\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let resp = parse(raw).unwrap();
        assert_eq!(resp.parts.status, 200);
        assert_eq!(resp.parts.headers["replay-nonce"], "n1");
        let raw = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse(raw).unwrap().parts.status, 201);
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab").is_err());
        assert_eq!(dechunk(b"3\r\nabc\r\n0\r\n\r\n").unwrap(), b"abc");
        assert!(dechunk(b"5\r\nab").is_err());
    }
}
