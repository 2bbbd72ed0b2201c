//! `websocket-iphash.conf`, unchanged but for addresses: sticky clients by `ip_hash`, a
//! `down` server that never gets traffic, the `map $http_upgrade` websocket idiom, an
//! exact `location =` that answers directly, and prefix routing.

mod common;

use common::*;
use std::net::TcpStream;
use std::time::Duration;
use tungstenite::Message;
use tungstenite::client::IntoClientRequest;

fn setup() -> (Pinlb, [Backend; 3]) {
    let ws = [
        Backend::start("ws1"),
        Backend::start("ws2"),
        Backend::start("ws3"),
    ];
    let listen = free_addr();
    let (dir, conf) = nginx_fixture(
        "websocket-iphash.conf",
        &[
            (
                "listen 80 default_server;",
                format!("listen {listen} default_server;"),
            ),
            ("ws1.internal:3000", ws[0].addr.to_string()),
            ("ws2.internal:3000", ws[1].addr.to_string()),
            ("ws3.internal:3000", ws[2].addr.to_string()),
        ],
    );
    (Pinlb::start_file(&conf, dir, listen), ws)
}

#[test]
fn one_client_address_always_reaches_the_same_server() {
    let (lb, ws) = setup();
    let served: Vec<String> = (0..12)
        .map(|_| {
            get(lb.addr, "/socket.io/poll", &[])
                .unwrap()
                .text()
                .to_string()
        })
        .collect();
    assert!(served.iter().all(|s| *s == served[0]), "{served:?}");
    assert_eq!(ws[2].requests(), 0, "the down server took traffic");
}

#[test]
fn websocket_upgrade_passes_through_with_the_map_idiom() {
    let (lb, ws) = setup();
    let stream = TcpStream::connect(lb.addr).unwrap();
    let req = format!("ws://{}/socket.io/?transport=websocket", lb.addr)
        .into_client_request()
        .unwrap();
    let (mut socket, resp) = tungstenite::client(req, stream).expect("upgrade through pinlb");
    assert_eq!(resp.status(), 101);
    socket
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for i in 0..3 {
        socket.send(Message::text(format!("m{i}"))).unwrap();
        assert_eq!(socket.read().unwrap(), Message::text(format!("m{i}")));
    }
    assert_eq!(ws[2].requests(), 0);
}

#[test]
fn plain_requests_on_the_websocket_location_keep_upstream_connections_pooled() {
    let (lb, _ws) = setup();
    // `Connection $connection_upgrade` is `close` for plain requests in nginx; pinlb
    // manages hop-by-hop headers itself and the backend sees no `Connection: close`.
    let r = lb.client().get("/socket.io/headers", &[]).unwrap();
    assert!(
        !r.body.to_ascii_lowercase().contains("connection: close"),
        "{}",
        r.body
    );
}

#[test]
fn exact_location_answers_directly() {
    let (lb, ws) = setup();
    let r = get(lb.addr, "/healthz", &[]).unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    assert_eq!(ws.iter().map(Backend::requests).sum::<usize>(), 0);
}

#[test]
fn paths_no_location_covers_get_404() {
    let (lb, ws) = setup();
    assert_eq!(get(lb.addr, "/healthz/more", &[]).unwrap().status, 404);
    assert_eq!(get(lb.addr, "/other", &[]).unwrap().status, 404);
    assert_eq!(ws.iter().map(Backend::requests).sum::<usize>(), 0);
}

#[test]
fn long_proxy_read_timeout_keeps_idle_websockets() {
    let (lb, _ws) = setup();
    let stream = TcpStream::connect(lb.addr).unwrap();
    let req = format!("ws://{}/socket.io/", lb.addr)
        .into_client_request()
        .unwrap();
    let (mut socket, _) = tungstenite::client(req, stream).unwrap();
    // proxy_read_timeout 3600s is the idle limit: a quiet second changes nothing.
    socket
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let quiet = socket.read();
    assert!(
        matches!(quiet, Err(tungstenite::Error::Io(_))),
        "{quiet:?}; log:\n{}",
        lb.log()
    );
    socket
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send(Message::text("still here")).unwrap();
    assert_eq!(socket.read().unwrap(), Message::text("still here"));
}
