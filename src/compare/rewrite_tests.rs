use super::*;
use crate::config::nginx::parser::parse_file_traced;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch folder for one test, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pinlb-rewrite-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const TUTORIAL: &str = "user nginx;
worker_processes 4;
events { worker_connections 1024; }
http {
    access_log /var/log/nginx/access.log main;
    upstream app_servers {
        server app1:80;
        server App2 weight=2;
    }
    server {
        listen 80 default_server;
        location / {
            if ($http_app = \"app1\") { proxy_pass http://app1; }
            proxy_pass http://app_servers;
        }
        location /api/ { proxy_pass http://api.internal:8080/v1/; }
    }
    server {
        server_name other.test;
        location / { return 200; }
    }
}
";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn scan_finds_each_backend_and_listen_once_and_skips_upstream_names() {
    let dir = Scratch::new();
    let parsed = parse_file_traced(&dir.write("nginx.conf", TUTORIAL)).unwrap();
    let found = scan(&parsed);
    assert_eq!(found.backends, ["app1:80", "app2:80", "api.internal:8080"]);
    assert_eq!(found.listens, [addr("0.0.0.0:80")]);
}

#[test]
fn the_copy_points_at_loopback_and_keeps_everything_else() {
    let dir = Scratch::new();
    let main = dir.write("etc/nginx.conf", TUTORIAL);
    let parsed = parse_file_traced(&main).unwrap();
    let found = scan(&parsed);
    let scratch = dir.0.join("run");
    let targets = Targets {
        backends: &[
            addr("127.0.0.2:4001"),
            addr("127.0.0.3:4002"),
            addr("127.0.0.4:4003"),
        ],
        listen_ports: &[5001],
        scratch: &scratch,
        main_extra: "daemon off;\n",
    };
    let root = dir.0.join("copy");
    let copy = write_copy(&parsed, &found, &targets, &root).unwrap();
    assert_eq!(copy, mirror(&root, &main));
    let log = scratch.join("access.log").display().to_string();
    let expected = format!(
        "\n\nevents {{ worker_connections 1024; }}
http {{
    access_log {log} main;
    upstream app_servers {{
        server 127.0.0.2:4001;
        server 127.0.0.3:4002 weight=2;
    }}
    server {{
        listen 127.0.0.1:5001 default_server;
        location / {{
            if ($http_app = \"app1\") {{ proxy_pass http://127.0.0.2:4001; }}
            proxy_pass http://app_servers;
        }}
        location /api/ {{ proxy_pass http://127.0.0.4:4003/v1/; }}
    }}
    server {{ listen 127.0.0.1:5001;
        server_name other.test;
        location / {{ return 200; }}
    }}
}}

daemon off;
"
    );
    let text = std::fs::read_to_string(&copy).unwrap();
    // Every original line keeps its number, so that errors point where the user looks.
    assert_eq!(text, expected);
    // The copy reads back to the same addresses, mapped.
    let again = scan(&parse_file_traced(&copy).unwrap());
    assert_eq!(again.listens, [addr("127.0.0.1:5001")]);
    assert_eq!(
        again.backends,
        ["127.0.0.2:4001", "127.0.0.3:4002", "127.0.0.4:4003"]
    );
}

#[test]
fn includes_are_copied_and_absolute_ones_point_into_the_copy() {
    let dir = Scratch::new();
    let upstreams = dir.write(
        "etc/nginx/conf.d/up.conf",
        "upstream web { server web1:3000; }\n",
    );
    let site = dir.write(
        "etc/nginx/sites/site.conf",
        "server { listen 8080; location / { proxy_pass http://web; } }\n",
    );
    let main = dir.write(
        "etc/nginx/nginx.conf",
        &format!(
            "http {{\n    include conf.d/*.conf;\n    include \"{}\";\n}}\n",
            site.display()
        ),
    );
    let parsed = parse_file_traced(&main).unwrap();
    assert_eq!(
        parsed.files,
        [main.clone(), upstreams.clone(), site.clone()]
    );
    let found = scan(&parsed);
    assert_eq!(found.backends, ["web1:3000"]);
    assert_eq!(found.listens, [addr("0.0.0.0:8080")]);
    let root = dir.0.join("copy");
    let targets = Targets {
        backends: &[addr("127.0.0.2:4001")],
        listen_ports: &[5001],
        scratch: &dir.0,
        main_extra: "",
    };
    let copy = write_copy(&parsed, &found, &targets, &root).unwrap();
    let text = std::fs::read_to_string(&copy).unwrap();
    let site_copy = mirror(&root, &site);
    assert!(text.contains("include conf.d/*.conf;"), "{text}");
    assert!(
        text.contains(&format!("include {};", site_copy.display())),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(mirror(&root, &upstreams)).unwrap(),
        "upstream web { server 127.0.0.2:4001; }\n"
    );
    assert_eq!(
        std::fs::read_to_string(&site_copy).unwrap(),
        "server { listen 127.0.0.1:5001; location / { proxy_pass http://web; } }\n"
    );
    // The copy is a whole configuration of its own.
    let reread = parse_file_traced(&copy).unwrap();
    assert_eq!(reread.files.len(), 3);
}

#[test]
fn words_are_quoted_only_when_they_must_be() {
    assert_eq!(word("/tmp/a.log"), "/tmp/a.log");
    assert_eq!(word("/tmp/my logs/a.log"), "\"/tmp/my logs/a.log\"");
    assert_eq!(word("a\"b"), "\"a\\\"b\"");
}
