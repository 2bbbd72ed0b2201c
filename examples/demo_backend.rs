//! Demo upstream apps for `make run`: each answers with its own name.
//!
//! `cargo run --example demo_backend -- app1=127.0.0.1:9001 app2=127.0.0.1:9002`

#[path = "../tests/common/backend.rs"]
mod backend;

fn main() {
    let mut running = Vec::new();
    for spec in std::env::args().skip(1) {
        let Some((name, addr)) = spec.split_once('=') else {
            eprintln!("usage: demo_backend NAME=IP:PORT...");
            std::process::exit(2);
        };
        let addr = match addr.parse() {
            Ok(addr) => addr,
            Err(e) => {
                eprintln!("demo_backend: {addr}: {e}");
                std::process::exit(2);
            }
        };
        match backend::Backend::start_on(name, addr) {
            Ok(b) => {
                eprintln!("demo_backend: {name} listening on {}", b.addr);
                running.push(b);
            }
            Err(e) => {
                eprintln!("demo_backend: cannot listen on {addr} for {name}: {e}");
                std::process::exit(1);
            }
        }
    }
    if running.is_empty() {
        eprintln!("usage: demo_backend NAME=IP:PORT...");
        std::process::exit(2);
    }
    loop {
        std::thread::park();
    }
}
