//! Property tests of the request-head limits, on Pingora's own HTTP/1 reader over real
//! sockets: whatever the bytes and the limits, reading a head never panics, never holds
//! more than the head limit, and refuses exactly what breaks a limit, as nginx would
//! (414 for the request line, 494 "Request Header Or Cookie Too Large" for the rest).

use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v1::head_limits::{HEADER_TOO_LARGE, HeadLimits};
use pingora::protocols::l4::stream::Stream;
use proptest::prelude::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// What reading `bytes` (sent in `pieces` writes) under `limits` gives: the head length
/// read, or the status it was refused with (0 for other errors), or `None` for a closed
/// connection.
fn read_head(limits: HeadLimits, bytes: Vec<u8>, pieces: usize) -> Option<Result<usize, u16>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let step = bytes.len().div_ceil(pieces.max(1)).max(1);
            for chunk in bytes.chunks(step) {
                if c.write_all(chunk).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            let _ = c.shutdown().await;
            // Keep the socket until the reader is done.
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut c, &mut sink).await;
        });
        let (server, _) = listener.accept().await.unwrap();
        let mut session = ServerSession::new_http1(Box::new(Stream::from(server)));
        session.set_head_limits(limits);
        let res = tokio::time::timeout(Duration::from_secs(10), session.read_request())
            .await
            .expect("reading a head ends");
        let head_len = match &res {
            Ok(true) => session
                .as_http1()
                .map_or(0, |h| h.get_headers_raw_bytes().len()),
            _ => 0,
        };
        drop(session);
        writer.abort();
        match res {
            Ok(true) => Some(Ok(head_len)),
            Ok(false) => None,
            Err(e) => Some(Err(match e.etype() {
                pingora::ErrorType::HTTPStatus(code) => *code,
                _ => 0,
            })),
        }
    })
}

/// `PROPTEST_CASES` when set, else `default`: few cases in `make test`, many in `make fuzz`.
fn prop_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn limits() -> impl Strategy<Value = HeadLimits> {
    (1usize..2048, 16usize..4096, 1usize..6).prop_map(|(initial, line, number)| HeadLimits {
        initial_buffer: initial,
        max_line: line,
        max_head: line * number,
        timeout: Some(Duration::from_secs(5)),
    })
}

/// A well-formed head: a request line with a target of `target` bytes and headers of
/// the given value lengths.
fn head(target: usize, values: &[usize]) -> Vec<u8> {
    let mut h = format!("GET /{} HTTP/1.1\r\nHost: a\r\n", "t".repeat(target));
    for (i, len) in values.iter().enumerate() {
        h.push_str(&format!("X-{i}: {}\r\n", "v".repeat(*len)));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

proptest! {
    // `make fuzz` sets PROPTEST_CASES for a long run.
    #![proptest_config(ProptestConfig { cases: prop_cases(96), ..ProptestConfig::default() })]

    #[test]
    fn well_formed_heads_are_refused_exactly_when_they_break_a_limit(
        limits in limits(),
        target in 0usize..6000,
        values in proptest::collection::vec(0usize..3000, 0..12),
        pieces in 1usize..8,
    ) {
        let bytes = head(target, &values);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let lines: Vec<usize> = text.split_inclusive('\n').map(str::len).collect();
        let got = read_head(limits, bytes.clone(), pieces);
        // nginx's order: a request line that does not fit is 414 whatever follows.
        let expected = if lines[0] > limits.max_line {
            Err(414)
        } else if lines[1..].iter().any(|&l| l > limits.max_line) || bytes.len() > limits.max_head {
            Err(HEADER_TOO_LARGE)
        } else {
            Ok(bytes.len())
        };
        prop_assert_eq!(got, Some(expected), "lines {:?}, head {}", lines, bytes.len());
    }

    #[test]
    fn any_bytes_are_read_or_refused_without_a_panic(
        limits in limits(),
        bytes in proptest::collection::vec(any::<u8>(), 0..20000),
        pieces in 1usize..8,
    ) {
        // Any outcome but a panic (which would fail the test) is fine; a head read whole
        // fits the limits.
        if let Some(Ok(len)) = read_head(limits, bytes.clone(), pieces) {
            prop_assert!(len <= limits.max_head, "{len} > {}", limits.max_head);
            let longest = bytes[..len].split_inclusive(|&b| b == b'\n').map(<[u8]>::len).max();
            prop_assert!(longest.unwrap_or(0) <= limits.max_line);
        }
    }
}
