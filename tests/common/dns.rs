//! A name server the test controls, on a loopback UDP port: it answers A queries for the
//! names it is given with the addresses and TTL it is given, or NXDOMAIN, an empty
//! answer, SERVFAIL, or nothing at all (a dead server), as the test sets. Built on the
//! message types of hickory-proto, the crate pinlb's resolver uses.
#![allow(dead_code)]

use super::backend::Backend;
use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::A;
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server answers for one name.
#[derive(Debug, Clone)]
pub enum Records {
    /// These A records with this TTL (seconds).
    A(Vec<Ipv4Addr>, u32),
    /// NOERROR with no records.
    Empty,
    NxDomain,
    ServFail,
    /// No answer at all: the query times out.
    Silent,
}

pub struct DnsServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    /// Holds the TCP port too, so that a client falling back to TCP hangs rather than
    /// finding the port closed: a silent server stays silent.
    _tcp: TcpListener,
}

struct State {
    names: Mutex<HashMap<String, Records>>,
    queries: AtomicUsize,
    aaaa: AtomicUsize,
    stopped: AtomicBool,
}

impl DnsServer {
    /// Starts a server on a free port of 127.0.0.1 with no names (NXDOMAIN for all).
    pub fn start() -> DnsServer {
        // The UDP and TCP ports must match: retry until a port is free for both.
        for _ in 0..50 {
            let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
            let addr = udp.local_addr().unwrap();
            let Ok(tcp) = TcpListener::bind(addr) else {
                continue;
            };
            udp.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let state = Arc::new(State {
                names: Mutex::new(HashMap::new()),
                queries: AtomicUsize::new(0),
                aaaa: AtomicUsize::new(0),
                stopped: AtomicBool::new(false),
            });
            let serving = Arc::clone(&state);
            std::thread::spawn(move || serve(&udp, &serving));
            return DnsServer {
                addr,
                state,
                _tcp: tcp,
            };
        }
        panic!("no port free for both UDP and TCP");
    }

    /// Sets what `name` (without the trailing dot) answers from now on.
    pub fn set(&self, name: &str, records: Records) {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        self.state.names.lock().unwrap().insert(key, records);
    }

    /// Queries received so far (any name, any type).
    pub fn queries(&self) -> usize {
        self.state.queries.load(Ordering::SeqCst)
    }

    /// AAAA queries received so far.
    pub fn aaaa_queries(&self) -> usize {
        self.state.aaaa.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
    }
}

fn serve(socket: &UdpSocket, state: &State) {
    let mut buf = [0u8; 1500];
    while !state.stopped.load(Ordering::SeqCst) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        state.queries.fetch_add(1, Ordering::SeqCst);
        if let Some(reply) = answer(&query, state) {
            let _ = socket.send_to(&reply, from);
        }
    }
}

fn answer(query: &Message, state: &State) -> Option<Vec<u8>> {
    let q = query.queries().first()?;
    if q.query_type() == RecordType::AAAA {
        state.aaaa.fetch_add(1, Ordering::SeqCst);
    }
    let name = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let records = state.names.lock().unwrap().get(&name).cloned();
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true)
        .add_query(q.clone());
    match records.unwrap_or(Records::NxDomain) {
        Records::Silent => return None,
        Records::NxDomain => {
            reply.set_response_code(ResponseCode::NXDomain);
        }
        Records::ServFail => {
            reply.set_response_code(ResponseCode::ServFail);
        }
        Records::Empty => {}
        Records::A(ips, ttl) => {
            if q.query_type() == RecordType::A {
                for ip in ips {
                    reply.add_answer(Record::from_rdata(q.name().clone(), ttl, RData::A(A(ip))));
                }
            }
        }
    }
    reply.to_vec().ok()
}

/// Backends on 127.0.0.2, .3, .4 ... sharing one port, as the addresses of one name.
pub fn backends(n: u8) -> Vec<Backend> {
    'port: for _ in 0..50 {
        let first = Backend::start_on("b2", "127.0.0.2:0".parse().unwrap()).expect("bind");
        let port = first.addr.port();
        let mut all = vec![first];
        for i in 3..2 + n {
            let addr = SocketAddr::from(([127, 0, 0, i], port));
            match Backend::start_on(&format!("b{i}"), addr) {
                Ok(b) => all.push(b),
                Err(_) => continue 'port,
            }
        }
        return all;
    }
    panic!("no port free on every address");
}

pub fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}
