//! Tests of the zone sizing, and (`#[ignore]`d, needing nginx) the same request sequences
//! against a real nginx on loopback and against this module:
//! `cargo test --lib -- --ignored limits::tests::nginx_agreement --test-threads 1`.

use super::*;

#[test]
fn slab_classes() {
    assert_eq!(slab_cost(1), 8);
    assert_eq!(slab_cost(84), 128);
    assert_eq!(slab_cost(128), 128);
    assert_eq!(slab_cost(129), 256);
    assert_eq!(slab_cost(2048), 2048);
    assert_eq!(slab_cost(2049), 4096);
    assert_eq!(slab_cost(4097), 8192);
    assert_eq!(slab_cost(u64::MAX), u64::MAX);
}

#[test]
fn capacities() {
    assert_eq!(zone_capacity(MIN_ZONE_SIZE, 4, false), 191);
    assert_eq!(zone_capacity(10 << 20, 4, false), 81375);
    assert_eq!(zone_capacity(10 << 20, 16, true), 162750);
    assert_eq!(zone_capacity(1 << 20, 4, false), 8095);
    assert_eq!(zone_capacity(0, 4, false), 0);
    assert!(zone_capacity(u64::MAX, 4, false) > 0);
}

mod nginx_agreement {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use crate::limits::*;
    use crate::nginx_harness::Nginx;

    fn statuses(ngx: &Nginx, targets: &[String]) -> Vec<u16> {
        targets
            .iter()
            .map(|t| ngx.get(ngx.port, t.as_bytes()).0)
            .collect()
    }

    fn model_status(v: RateVerdict) -> u16 {
        match v {
            RateVerdict::Reject { .. } => 503,
            _ => 200,
        }
    }

    /// A zone of the minimum size (32k) holds 191 keys of 1-4 bytes, a 1m zone 8095; the next
    /// new key evicts the least recently used one by force.
    #[test]
    #[ignore]
    fn zone_capacity_matches() {
        assert_eq!(zone_capacity(MIN_ZONE_SIZE, 3, false), 191);
        assert_eq!(zone_capacity(1 << 20, 4, false), 8095);
        for (size, conf, n) in [
            (MIN_ZONE_SIZE, "32k", 190u32),
            (MIN_ZONE_SIZE, "32k", 191),
            (MIN_ZONE_SIZE, "32k", 192),
            (MIN_ZONE_SIZE, "32k", 193),
            (1 << 20, "1m", 8095),
            (1 << 20, "1m", 8096),
        ] {
            let ngx = Nginx::start(&format!(
                "limit_req_zone $arg_k zone=cap:{conf} rate=1r/m;
                 server {{ listen 127.0.0.1:{{port}};
                          location /cap/ {{ limit_req zone=cap; alias {{html}}/; }} }}"
            ));
            let model = RateZone::new(16, size);
            for k in 1..=n {
                let t = format!("/cap/x?k={k}");
                assert_eq!(ngx.get(ngx.port, t.as_bytes()).0, 200);
                assert_eq!(
                    model.check(k.to_string().as_bytes(), 0, DelayPolicy::Delay, 0),
                    RateVerdict::Pass
                );
            }
            // Is key 1 still remembered (second request rejected) or was it evicted?
            let nginx = ngx.get(ngx.port, b"/cap/x?k=1").0;
            let ours = model_status(model.check(b"1", 0, DelayPolicy::Delay, 0));
            println!("{conf} zone, {n} keys: nginx {nginx}, ours {ours}");
            assert_eq!(nginx, ours, "{conf} zone, after {n} keys");
            assert_eq!(nginx == 503, u64::from(n) <= zone_capacity(size, 4, false));
        }
    }

    #[test]
    #[ignore]
    fn limit_req_matches() {
        let ngx = Nginx::start(
            "limit_req_zone $arg_k zone=r1:1m rate=1r/s;
             limit_req_zone $arg_k zone=r2:1m rate=2r/s;
             limit_req_zone $arg_k zone=r2b:1m rate=2r/s;
             limit_req_zone $arg_a zone=ma:1m rate=1r/m;
             limit_req_zone $arg_b zone=mb:1m rate=1r/m;
             server { listen 127.0.0.1:{port};
                location /nd/ { limit_req zone=r1 burst=5 nodelay; alias {html}/; }
                location /dl/ { limit_req zone=r2 burst=3; alias {html}/; }
                location /ts/ { limit_req zone=r2b burst=4 delay=2; alias {html}/; }
                location /mu/ { limit_req zone=ma burst=1 nodelay; limit_req zone=mb nodelay;
                                alias {html}/; }
             }",
        );

        // burst=5 nodelay: six pass, the rest are rejected; an empty key is never limited.
        let targets: Vec<String> = (0..10).map(|_| "/nd/x?k=a".to_string()).collect();
        let model = RateZone::new(1000, 1 << 20);
        let ours: Vec<u16> = (0..10)
            .map(|_| model_status(model.check(b"a", 5, DelayPolicy::NoDelay, 0)))
            .collect();
        assert_eq!(statuses(&ngx, &targets), ours);
        let no_key: Vec<String> = (0..10).map(|_| "/nd/x".to_string()).collect();
        assert_eq!(statuses(&ngx, &no_key), vec![200; 10]);

        // Several limit_req: a rejection by the second zone does not charge the first.
        let model_a = RateZone::new(16, 1 << 20);
        let model_b = RateZone::new(16, 1 << 20);
        let seq = [
            ("x", "1"),
            ("x", "1"),
            ("x", "2"),
            ("x", "3"),
            ("y", "3"),
            ("y", "4"),
        ];
        let targets: Vec<String> = seq
            .iter()
            .map(|(a, b)| format!("/mu/x?a={a}&b={b}"))
            .collect();
        let ours: Vec<u16> = seq
            .iter()
            .map(|(a, b)| {
                let limits = [
                    ReqLimit {
                        zone: &model_a,
                        key: a.as_bytes(),
                        burst: 1,
                        delay: DelayPolicy::NoDelay,
                    },
                    ReqLimit {
                        zone: &model_b,
                        key: b.as_bytes(),
                        burst: 0,
                        delay: DelayPolicy::NoDelay,
                    },
                ];
                model_status(check_all(&limits, 1_000_000))
            })
            .collect();
        let nginx = statuses(&ngx, &targets);
        println!("several limit_req: nginx {nginx:?}, ours {ours:?}");
        assert_eq!(nginx, ours);

        // Delays: requests sent together, answers timed.
        for (path, key_rate, burst, policy, n) in [
            ("/dl/x?k=d", 2000, 3, DelayPolicy::Delay, 5),
            ("/ts/x?k=t", 2000, 4, DelayPolicy::After(2), 6),
        ] {
            let model = RateZone::new(key_rate, 1 << 20);
            let mut ours: Vec<(u16, u64)> = (0..n)
                .map(|_| match model.check(b"k", burst, policy, 0) {
                    RateVerdict::Delay { delay, .. } => (200, delay.as_millis() as u64),
                    v => (model_status(v), 0),
                })
                .collect();
            let start = Instant::now();
            let conns: Vec<TcpStream> = (0..n)
                .map(|_| ngx.send(ngx.port, path.as_bytes()))
                .collect();
            let handles: Vec<_> = conns
                .into_iter()
                .map(|s| {
                    std::thread::spawn(move || {
                        let (status, _) = Nginx::response(s).unwrap();
                        (status, start.elapsed().as_millis() as u64)
                    })
                })
                .collect();
            let mut nginx: Vec<(u16, u64)> =
                handles.into_iter().map(|h| h.join().unwrap()).collect();
            nginx.sort_unstable();
            ours.sort_unstable();
            println!("{path}: nginx {nginx:?}, ours {ours:?}");
            assert_eq!(nginx.len(), ours.len());
            for (theirs, mine) in nginx.iter().zip(&ours) {
                assert_eq!(theirs.0, mine.0, "{path}");
                assert!(
                    theirs.1.abs_diff(mine.1) < 250,
                    "{path}: {nginx:?} vs {ours:?}"
                );
            }
        }
    }

    /// A backend that accepts connections and answers only when told to.
    struct Backend {
        held: Arc<Mutex<Vec<TcpStream>>>,
    }

    impl Backend {
        fn start(port: u16) -> Backend {
            let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
            let held = Arc::new(Mutex::new(Vec::new()));
            let h = Arc::clone(&held);
            std::thread::spawn(move || {
                for mut s in listener.incoming().flatten() {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                    h.lock().unwrap().push(s);
                }
            });
            Backend { held }
        }

        fn wait_for(&self, n: usize) -> bool {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if self.held.lock().unwrap().len() >= n {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            false
        }

        fn answer(&self, i: usize) {
            let mut held = self.held.lock().unwrap();
            let _ = held[i].write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
            let _ = held[i].shutdown(std::net::Shutdown::Both);
        }
    }

    #[test]
    #[ignore]
    fn limit_conn_matches() {
        let ngx = Nginx::start(
            "limit_conn_zone $arg_k zone=c:1m;
             server { listen 127.0.0.1:{port};
                location /conn/ { limit_conn c 2; proxy_pass http://127.0.0.1:{port1}/; } }",
        );
        let backend = Backend::start(ngx.port + 1);
        let zone = Arc::new(ConnZone::new(1 << 20));
        let go = |t: &str| ngx.send(ngx.port, t.as_bytes());

        // Two requests of key "a" in progress.
        let s1 = go("/conn/x?k=a");
        assert!(backend.wait_for(1));
        let g1 = zone.acquire(b"a", 2).unwrap();
        let _s2 = go("/conn/x?k=a");
        assert!(backend.wait_for(2));
        let _g2 = zone.acquire(b"a", 2).unwrap();
        // A third is refused at once, by both.
        assert_eq!(Nginx::response(go("/conn/x?k=a")).unwrap().0, 503);
        assert_eq!(zone.acquire(b"a", 2).unwrap_err(), ConnRejected::Limited);
        // Other keys and the empty key are not affected.
        let _s4 = go("/conn/x?k=b");
        assert!(backend.wait_for(3));
        assert!(zone.acquire(b"b", 2).unwrap().is_some());
        let _s5 = go("/conn/x");
        assert!(backend.wait_for(4));
        assert!(zone.acquire(b"", 2).unwrap().is_none());
        // The first "a" request ends: its slot is free again.
        backend.answer(0);
        assert_eq!(Nginx::response(s1).unwrap().0, 200);
        drop(g1);
        let _s6 = go("/conn/x?k=a");
        assert!(backend.wait_for(5), "nginx did not release the slot");
        assert!(zone.acquire(b"a", 2).unwrap().is_some());
        for i in 1..5 {
            backend.answer(i);
        }
    }
}
