//! The container image's nginx files (contrib/docker/), as the image lays them out: the
//! default nginx.conf answers, and a server file dropped into conf.d/ replaces the
//! default server, the two ways the tutorials use the nginx image.

mod common;

use common::*;
use std::path::Path;

const DOCKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/docker");

/// The image's /etc/nginx in a scratch folder, with `default.conf` replaced by `site`
/// if given, listening on a free port and logging into the folder.
fn etc_nginx(site: Option<String>) -> (Pinlb, TempDir) {
    let dir = TempDir::new();
    let etc = dir.path().display().to_string();
    let listen = free_addr();
    std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
    std::fs::copy(
        Path::new(DOCKER).join("mime.types"),
        dir.path().join("mime.types"),
    )
    .unwrap();
    let default = std::fs::read_to_string(Path::new(DOCKER).join("conf.d/default.conf")).unwrap();
    let site = site
        .unwrap_or(default)
        .replace("listen       80;", &format!("listen {listen};"));
    dir.write("conf.d/default.conf", &site);
    let main = std::fs::read_to_string(Path::new(DOCKER).join("nginx.conf"))
        .unwrap()
        .replace("/etc/nginx/", &format!("{etc}/"))
        .replace("/var/log/nginx/", &format!("{etc}/"))
        .replace("/run/nginx.pid", &format!("{etc}/nginx.pid"));
    let conf = dir.write("nginx.conf", &main);
    let logs = TempDir::new();
    let lb = Pinlb::start_file(&conf, logs, listen);
    (lb, dir)
}

#[test]
fn the_default_config_answers() {
    let (lb, _etc) = etc_nginx(None);
    let r = get(lb.addr, "/", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("pinlb is running"), "{}", r.body);
}

#[test]
fn a_server_file_in_conf_d_replaces_the_default_server() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let site = format!(
        "upstream app_servers {{ server {}; server {}; }}
         server {{
             listen       80;
             location / {{
                 if ($http_app = \"b\") {{ proxy_pass http://{}; }}
                 proxy_pass http://app_servers;
             }}
         }}",
        a.addr, b.addr, b.addr
    );
    let (lb, etc) = etc_nginx(Some(site));
    let mut client = lb.client();
    let got: Vec<String> = (0..4)
        .map(|_| client.get("/", &[]).unwrap().text().to_string())
        .collect();
    assert_eq!(got, ["a", "b", "a", "b"]);
    assert_eq!(client.get("/", &[("app", "b")]).unwrap().text(), "b");
    // The `main` log format of nginx.conf is written to access.log.
    assert!(poll_until(std::time::Duration::from_secs(5), || {
        std::fs::read_to_string(etc.path().join("access.log"))
            .is_ok_and(|log| log.contains("\"GET / HTTP/1.1\" 200"))
    }));
}

#[test]
fn the_compose_example_uses_the_tutorial_config_unchanged() {
    let compose = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/compose/nginx.conf");
    let tutorial =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nginx/tutorial-3apps.conf");
    assert_eq!(
        std::fs::read_to_string(compose).unwrap(),
        std::fs::read_to_string(tutorial).unwrap()
    );
}
