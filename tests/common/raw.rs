//! Raw TCP for tests where the bytes matter: send exact bytes and read what comes back
//! until the server closes or a deadline passes, and a backend that records each request
//! head and answers with fixed bytes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What a connection returned.
#[derive(Debug)]
pub struct Exchange {
    /// Everything read, lossily as text.
    pub text: String,
    /// Whether the server closed the connection (EOF or reset) before the deadline.
    pub closed: bool,
    /// When it closed, counted from the first byte sent.
    pub after: Duration,
}

impl Exchange {
    /// The status codes of the responses read, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.text
            .match_indices("HTTP/1.1 ")
            .filter_map(|(i, _)| self.text.get(i + 9..i + 12)?.parse().ok())
            .collect()
    }

    /// The first status, 0 if none.
    pub fn status(&self) -> u16 {
        self.statuses().first().copied().unwrap_or(0)
    }
}

/// Sends `bytes` on a new connection and reads until the server closes it or `wait` has
/// passed.
pub fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Exchange {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    let started = Instant::now();
    s.write_all(bytes).expect("send");
    read_until_closed(&mut s, started, wait)
}

/// Reads from `s` until EOF or until `wait` after `started`.
pub fn read_until_closed(s: &mut TcpStream, started: Instant, wait: Duration) -> Exchange {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = started + wait;
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break false,
            Err(_) => break true,
        }
    };
    Exchange {
        text: String::from_utf8_lossy(&out).into_owned(),
        closed,
        after: started.elapsed(),
    }
}

/// A backend that answers every request with the same bytes and records the request
/// heads it got, keeping connections alive.
pub struct RawBackend {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RawBackend {
    pub fn start(response: &'static [u8]) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = Arc::clone(&seen);
                thread::spawn(move || serve(stream, response, &seen));
            }
        });
        RawBackend { addr, heads }
    }

    /// The request heads received so far, request line included.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, response: &[u8], seen: &Mutex<Vec<String>>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let len = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        seen.lock().unwrap().push(head);
        if writer.write_all(response).is_err() {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}
