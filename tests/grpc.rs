//! gRPC through pinlb: `grpc_pass grpc://` (and JSON `proxy.http2`) speaks HTTP/2 with
//! prior knowledge to the servers, passes the request's headers, hands the response
//! trailers (`grpc-status`, `grpc-message`) back to the client, and balances per request;
//! `grpc_pass grpcs://` speaks HTTP/2 over TLS (ALPN h2) with the `grpc_ssl_*` settings.

mod common;

use common::tls::{Key, make_cert};

use bytes::Bytes;
use common::*;
use http::{HeaderMap, Request, Response};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Runtime;

/// What a backend saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authority: String,
    content_type: String,
    te: String,
    body: Vec<u8>,
}

/// A gRPC-like server speaking only HTTP/2 (h2c, prior knowledge), built on the `h2`
/// crate: it answers with headers, the request's body and `grpc-status: 0` trailers whose
/// `grpc-message` names it, and records every request.
struct H2Backend {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl H2Backend {
    fn start(name: &'static str) -> H2Backend {
        H2Backend::start_with(name, None)
    }

    /// With `tls`, the server speaks TLS first (its config offers `h2` by ALPN).
    fn start_with(name: &'static str, tls: Option<Arc<rustls::ServerConfig>>) -> H2Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            let rt = runtime();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((socket, _)) = listener.accept().await {
                    let (log, tls) = (log.clone(), tls.clone());
                    tokio::spawn(async move {
                        match tls {
                            None => serve(name, socket, log).await,
                            Some(config) => {
                                let acceptor = pingora::tls::TlsAcceptor::from(config);
                                if let Ok(stream) = acceptor.accept(socket).await {
                                    serve(name, stream, log).await;
                                }
                            }
                        }
                    });
                }
            });
        });
        H2Backend { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serves one HTTP/2 connection.
async fn serve<T>(name: &'static str, io: T, log: Arc<Mutex<Vec<Seen>>>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ok(mut conn) = h2::server::handshake(io).await else {
        return;
    };
    while let Some(Ok((req, respond))) = conn.accept().await {
        tokio::spawn(answer(name, req, respond, log.clone()));
    }
}

async fn answer(
    name: &str,
    req: Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    log: Arc<Mutex<Vec<Seen>>>,
) {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let mut seen = Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        authority: req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        content_type: header("content-type"),
        te: header("te"),
        body: Vec::new(),
    };
    let mut body = req.into_body();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        seen.body.extend_from_slice(&chunk);
    }
    let reply = seen.body.clone();
    log.lock().unwrap().push(seen);
    let head = Response::builder()
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let Ok(mut stream) = respond.send_response(head, false) else {
        return;
    };
    let _ = stream.send_data(Bytes::from(reply), false);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    trailers.insert("grpc-message", format!("from-{name}").parse().unwrap());
    let _ = stream.send_trailers(trailers);
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What the client got back for one call.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    trailers: HeaderMap,
}

/// Makes `n` gRPC-style calls (POST, `application/grpc`, `te: trailers`) to `path` over
/// one h2c connection to `addr`, with a deadline.
fn calls(addr: SocketAddr, path: &str, n: usize) -> Vec<Reply> {
    runtime().block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        calls_on(tcp, path, n).await
    })
}

/// [`calls`] over TLS, offering only `h2` by ALPN.
fn tls_calls(addr: SocketAddr, path: &str, n: usize) -> Vec<Reply> {
    runtime().block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let connector = pingora::tls::TlsConnector::from(common::tls::client_config(&[b"h2"]));
        let name = rustls::pki_types::ServerName::try_from("grpc.test").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        calls_on(tls, path, n).await
    })
}

async fn calls_on<T>(io: T, path: &str, n: usize) -> Vec<Reply>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    {
        let call = async {
            let (client, conn) = h2::client::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let mut replies = Vec::new();
            for i in 0..n {
                let mut client = client.clone().ready().await.unwrap();
                let req = Request::post(format!("http://grpc.test{path}"))
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(())
                    .unwrap();
                let (response, mut send) = client.send_request(req, false).unwrap();
                // A gRPC message: no compression, 4-byte length, the payload.
                let payload = format!("call-{i}");
                let mut message = vec![0u8];
                message.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                message.extend_from_slice(payload.as_bytes());
                send.send_data(Bytes::from(message), true).unwrap();
                let response = response.await.unwrap();
                let status = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                let mut body = response.into_body();
                let mut bytes = Vec::new();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.unwrap();
                    let _ = body.flow_control().release_capacity(chunk.len());
                    bytes.extend_from_slice(&chunk);
                }
                let trailers = body.trailers().await.unwrap().unwrap_or_default();
                replies.push(Reply {
                    status,
                    content_type,
                    body: bytes,
                    trailers,
                });
            }
            replies
        };
        tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("the calls finished within 10 s")
    }
}

fn trailer<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .trailers
        .get(name)
        .map_or("", |v| v.to_str().unwrap_or(""))
}

#[test]
fn grpc_pass_speaks_h2c_to_the_servers_balances_and_returns_the_trailers() {
    let (a, b) = (H2Backend::start("a"), H2Backend::start("b"));
    let dir = TempDir::new();
    let listen = free_addr();
    let text = format!(
        "pid {pid};\nhttp {{ access_log off;\n\
         upstream grpc_servers {{ server {a}; server {b}; }}\n\
         server {{ listen {listen}; http2 on;\n\
         location /pkg.Greeter/ {{ grpc_pass grpc://grpc_servers; grpc_read_timeout 5s;\n\
         grpc_set_header X-Via pinlb; }}\n\
         location / {{ return 200 plain; }} }} }}\n",
        pid = dir.path().join("pinlb.pid").display(),
        a = a.addr,
        b = b.addr,
    );
    let conf = dir.write("nginx.conf", &text);
    let lb = Pinlb::start_file(&conf, dir, listen);

    let replies = calls(lb.addr, "/pkg.Greeter/SayHello", 6);
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.content_type, "application/grpc");
        assert_eq!(&reply.body[5..], format!("call-{i}").as_bytes());
        assert_eq!(trailer(reply, "grpc-status"), "0", "{reply:?}");
        assert!(
            trailer(reply, "grpc-message").starts_with("from-"),
            "{reply:?}"
        );
    }
    let from = |name: &str| {
        replies
            .iter()
            .filter(|r| trailer(r, "grpc-message") == format!("from-{name}"))
            .count()
    };
    assert_eq!((from("a"), from("b")), (3, 3), "round robin over both");

    // The requests reached the servers over HTTP/2 (they speak nothing else) with the
    // client's headers; :authority is the upstream's name, as nginx's grpc module sends.
    let seen: Vec<Seen> = a.seen().into_iter().chain(b.seen()).collect();
    assert_eq!(seen.len(), 6);
    for s in &seen {
        assert_eq!(s.method, "POST");
        assert_eq!(s.path, "/pkg.Greeter/SayHello");
        assert_eq!(s.authority, "grpc_servers");
        assert_eq!(s.content_type, "application/grpc");
        assert_eq!(s.te, "trailers");
        assert_eq!(s.body.len(), 5 + "call-0".len());
    }
    // Locations without grpc_pass are unchanged.
    assert_eq!(get(lb.addr, "/", &[]).unwrap().body, "plain");
}

#[test]
fn json_proxy_http2_speaks_h2c_to_the_servers() {
    let a = H2Backend::start("a");
    let cfg = serde_json::json!({
        "listeners": [{ "addr": free_addr().to_string(), "http2": true }],
        "upstreams": { "web": { "servers": [{ "name": "a", "addr": a.addr.to_string() }] } },
        "routes": [{ "path": "/", "upstream": "web", "proxy": { "http2": true } }],
    });
    let lb = Pinlb::start(&cfg);
    let replies = calls(lb.addr, "/pkg.Greeter/SayHello", 2);
    assert!(
        replies
            .iter()
            .all(|r| r.status == 200 && trailer(r, "grpc-message") == "from-a"),
        "{replies:?}"
    );
    assert!(poll_until(Duration::from_secs(5), || a.seen().len() == 2));
    assert_eq!(a.seen()[0].te, "trailers");
}

#[test]
fn grpc_directives_are_checked_with_their_line() {
    let dir = TempDir::new();
    for (directives, error) in [
        (
            "location / { grpc_pass grpc://127.0.0.1:1/x; }",
            "invalid URI part in \"grpc_pass grpc://127.0.0.1:1/x\"",
        ),
        (
            "location / { proxy_pass http://127.0.0.1:1; grpc_pass 127.0.0.1:2; }",
            "\"grpc_pass\" directive is duplicate",
        ),
        (
            "location / { proxy_pass http://127.0.0.1:1; proxy_http_version 2; }",
            "invalid value \"2\"",
        ),
        (
            "location / { grpc_pass 127.0.0.1:1; grpc_read_timeout soon; }",
            "invalid value \"soon\"",
        ),
        (
            "location / { grpc_pass 127.0.0.1:1; health_check; }",
            "speak HTTP/1.1 to servers reached over HTTP/2; use a tcp check",
        ),
        (
            "location / { grpc_pass 127.0.0.1:1; if ($http_app = a) { proxy_pass http://127.0.0.1:2; } }",
            "\"if\" pins are not supported with \"grpc_pass\"",
        ),
    ] {
        let conf = dir.write(
            "nginx.conf",
            &format!("http {{ server {{ listen 127.0.0.1:1;\n{directives} }} }}\n"),
        );
        let (status, _, err) = run_pinlb(&["-t", "-c", conf.to_str().unwrap()]);
        assert!(!status.success(), "{directives}");
        assert!(err.contains(error), "{directives}: {err}");
        assert!(err.contains("nginx.conf:2"), "{directives}: {err}");
    }
}

/// A TLS server config for `cert`/`key` that offers only `h2`.
fn h2_tls_config(cert: &std::path::Path, key: &std::path::Path) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

#[test]
fn grpcs_speaks_http2_over_tls_to_the_servers_and_to_a_tls_client() {
    let dir = TempDir::new();
    let (back_cert, back_key) = make_cert(dir.path(), "back", &["back.test"], Key::Ecdsa, 30);
    let (front_cert, front_key) = make_cert(dir.path(), "front", &["grpc.test"], Key::Ecdsa, 30);
    let a = H2Backend::start_with("tls", Some(h2_tls_config(&back_cert, &back_key)));
    let listen = free_addr();
    let text = format!(
        "pid {pid};\nhttp {{ access_log off; upstream grpc_tls {{ server {a}; }}\n\
         server {{ listen {listen} ssl; http2 on; server_name grpc.test;\n\
         ssl_certificate {fc}; ssl_certificate_key {fk};\n\
         location / {{ grpc_pass grpcs://grpc_tls; grpc_ssl_verify on; grpc_ssl_name back.test;\n\
         grpc_ssl_trusted_certificate {bc}; }} }} }}\n",
        pid = dir.path().join("pinlb.pid").display(),
        a = a.addr,
        fc = front_cert.display(),
        fk = front_key.display(),
        bc = back_cert.display(),
    );
    let conf = dir.write("nginx.conf", &text);
    let lb = Pinlb::start_file(&conf, dir, listen);
    let replies = tls_calls(lb.addr, "/pkg.Greeter/SayHello", 3);
    for reply in &replies {
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(trailer(reply, "grpc-status"), "0", "{reply:?}");
        assert_eq!(trailer(reply, "grpc-message"), "from-tls", "{reply:?}");
    }
    let seen = a.seen();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|s| s.te == "trailers" && s.path == "/pkg.Greeter/SayHello")
    );
}
