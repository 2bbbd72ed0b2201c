//! Test-only: runs a real nginx on loopback so `#[ignore]`d tests can compare behaviour.
//! Needs an `nginx` binary on `PATH` or at `/usr/sbin/nginx` (`NGINX` overrides).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Nginx {
    child: Child,
    dir: PathBuf,
    /// First of the ports `{port}`, `{port1}`, `{port2}`, `{port3}` in the config.
    pub port: u16,
}

impl Nginx {
    /// Starts nginx with `http_body` (the inside of `http { }`). `{port}`..`{port3}` are
    /// replaced with four consecutive free-looking loopback ports, `{html}` with a
    /// directory holding a file `x`. Panics (it is a test)
    /// when nginx is missing or does not come up.
    pub fn start(http_body: &str) -> Nginx {
        let bin = std::env::var("NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".to_string());
        let pid = std::process::id();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let port = 20000 + ((pid.wrapping_mul(7919) ^ nanos) % 40000) as u16;
        let dir = std::env::temp_dir().join(format!("nginx-cmp-{pid}-{port}"));
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::create_dir_all(dir.join("html")).unwrap();
        std::fs::write(dir.join("html/x"), "x").unwrap();
        let body = http_body
            .replace("{html}", &dir.join("html").display().to_string())
            .replace("{port}", &port.to_string())
            .replace("{port1}", &(port + 1).to_string())
            .replace("{port2}", &(port + 2).to_string())
            .replace("{port3}", &(port + 3).to_string());
        let t = dir.join("tmp").display().to_string();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 256; }}\n\
             http {{\n access_log off;\n client_body_temp_path {t}/b;\n proxy_temp_path {t}/p;\n\
             fastcgi_temp_path {t}/f;\n uwsgi_temp_path {t}/u;\n scgi_temp_path {t}/s;\n{body}\n}}\n",
            d = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .spawn()
            .expect("nginx binary");
        let ngx = Nginx { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                ngx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        ngx
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// Sends `GET {target} HTTP/1.0` to `port`; returns the status and the body.
    pub fn get(&self, port: u16, target: &[u8]) -> (u16, Vec<u8>) {
        Self::response(self.send(port, target)).unwrap()
    }

    /// Sends `GET {target} HTTP/1.0` to `port` without waiting for the answer.
    pub fn send(&self, port: u16, target: &[u8]) -> TcpStream {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(target);
        req.extend_from_slice(b" HTTP/1.0\r\nHost: t\r\n\r\n");
        s.write_all(&req).unwrap();
        s
    }

    /// Reads the whole answer on `s`; `None` if none came within the read timeout.
    pub fn response(mut s: TcpStream) -> Option<(u16, Vec<u8>)> {
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).ok()?;
        let status = std::str::from_utf8(&resp[9..12]).unwrap().parse().unwrap();
        let body_at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        Some((status, resp[body_at..].to_vec()))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Deterministic xorshift64* for generated cases.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
