//! Websockets through the pool and through a pin, and the idle limit: configurable, and
//! longer than Pingora's 60 s downstream read timeout by default.

mod common;

use common::*;
use serde_json::json;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

/// Opens a websocket through pinlb; returns it and the server that took it.
fn open(addr: SocketAddr, headers: &[(&'static str, &str)]) -> (Ws, String) {
    let stream = TcpStream::connect(addr).unwrap();
    let mut req = format!("ws://{addr}/chat").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    let (ws, resp) = tungstenite::client(req, stream).expect("websocket handshake through pinlb");
    let server = resp
        .headers()
        .get("x-served-by")
        .map(|v| v.to_str().unwrap().to_string());
    (ws, server.unwrap_or_default())
}

fn echo(ws: &mut Ws, text: &str) {
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    ws.send(Message::text(text)).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text(text));
}

/// Reads with a timeout of `quiet`; true if nothing arrived and the connection stayed open.
fn stays_open_for(ws: &mut Ws, quiet: Duration) -> bool {
    ws.get_ref().set_read_timeout(Some(quiet)).unwrap();
    match ws.read() {
        Err(tungstenite::Error::Io(e)) => {
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
        }
        _ => false,
    }
}

#[test]
fn websocket_echoes_through_the_pool() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let lb = Pinlb::start(&config(servers(&[&a, &b]), json!({}), json!({})));
    let (mut first, s1) = open(lb.addr, &[]);
    let (mut second, s2) = open(lb.addr, &[]);
    assert_eq!((s1.as_str(), s2.as_str()), ("a", "b"));
    for i in 0..5 {
        echo(&mut first, &format!("one {i}"));
        echo(&mut second, &format!("two {i}"));
    }
}

#[test]
fn websocket_follows_the_pin() {
    let (a, b) = (Backend::start("app1"), Backend::start("app2"));
    let lb = Pinlb::start(&config(
        servers(&[&a, &b]),
        json!({ "pin": { "header": "app", "cookie": "app" } }),
        json!({}),
    ));
    for _ in 0..3 {
        let (mut ws, server) = open(lb.addr, &[("cookie", "app=app2")]);
        assert_eq!(server, "app2");
        echo(&mut ws, "hello");
    }
    assert_eq!((a.requests(), b.requests()), (0, 3));
}

#[test]
fn idle_websocket_is_closed_after_the_configured_idle_limit() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(
        servers(&[&a]),
        json!({ "proxy": { "websocket_idle_timeout_ms": 1000 } }),
        json!({}),
    ));
    let (mut ws, _) = open(lb.addr, &[]);
    echo(&mut ws, "before");
    let started = Instant::now();
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let outcome = ws.read();
    let closed_after = started.elapsed();
    assert!(
        !matches!(&outcome, Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock),
        "still open after 10 s"
    );
    assert!(
        outcome.is_err() || matches!(outcome, Ok(Message::Close(_))),
        "{outcome:?}"
    );
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed too early: {closed_after:?}"
    );
    assert!(
        closed_after < Duration::from_secs(5),
        "closed late: {closed_after:?}"
    );
}

#[test]
fn idle_websocket_survives_below_the_idle_limit() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(
        servers(&[&a]),
        json!({ "proxy": { "websocket_idle_timeout_ms": 4000 } }),
        json!({}),
    ));
    let (mut ws, _) = open(lb.addr, &[]);
    assert!(stays_open_for(&mut ws, Duration::from_secs(2)));
    echo(&mut ws, "after two quiet seconds");
}

/// Pingora closes a downstream connection after 60 s without a read; by default pinlb's
/// idle limit for websockets is an hour.
#[test]
fn idle_websocket_outlives_pingoras_60_second_read_timeout_by_default() {
    let a = Backend::start("a");
    let lb = Pinlb::start(&config(servers(&[&a]), json!({}), json!({})));
    let (mut ws, _) = open(lb.addr, &[]);
    echo(&mut ws, "before");
    assert!(stays_open_for(&mut ws, Duration::from_secs(65)));
    echo(&mut ws, "after 65 quiet seconds");
}
