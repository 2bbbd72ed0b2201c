//! `pinlb compare -c nginx.conf`: runs the user's configuration through nginx and through
//! pinlb against generated echo backends on loopback, replays the same requests through
//! both, and reports every difference, telling the documented ones from the unexpected.
//!
//! Steps, one file each: [`rewrite`] copies the configuration with its addresses mapped
//! to loopback, [`echo`] runs the backends, [`corpus`] (and [`log_replay`]) make the
//! requests, `proxies` starts and stops nginx and pinlb, [`replay`] sends the requests,
//! [`report`] compares and prints.

pub mod corpus;
pub mod echo;
pub mod log_replay;
mod proxies;
pub mod replay;
pub mod report;
pub mod rewrite;

use crate::config::nginx::parser::{Parsed, parse_file_traced};
use crate::config::{self, Config};
use echo::EchoBackends;
use replay::Observed;
use rewrite::{Addresses, Targets};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Every difference is documented (or there is none).
pub const EXIT_AGREE: u8 = 0;
/// Some difference is not documented.
pub const EXIT_UNEXPECTED: u8 = 1;
/// Nothing could be compared: nginx is missing or cannot start, or the file cannot be used.
pub const EXIT_CANNOT_COMPARE: u8 = 2;

/// The whole run (both proxies, every request) ends within this.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// What `pinlb compare` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// The nginx configuration.
    pub conf: PathBuf,
    /// The nginx binary; `None`: `nginx` on `PATH`, else `/usr/sbin/nginx`.
    pub nginx: Option<PathBuf>,
    /// The pinlb binary; `None`: this one.
    pub pinlb: Option<PathBuf>,
    /// An access log in `combined` format whose first lines are replayed too.
    pub access_log: Option<PathBuf>,
    /// Print every documented difference, not one line per kind.
    pub verbose: bool,
}

/// Runs the comparison, prints the report on stdout (errors on stderr); returns the
/// exit code.
pub fn run(opts: &Options) -> u8 {
    match compare(opts) {
        Ok((report, totals)) => {
            print!("{report}");
            if totals.unexpected > 0 {
                EXIT_UNEXPECTED
            } else {
                EXIT_AGREE
            }
        }
        Err(e) => {
            eprintln!("pinlb compare: {e}");
            EXIT_CANNOT_COMPARE
        }
    }
}

fn compare(opts: &Options) -> Result<(String, report::Totals), String> {
    if opts.conf.extension().is_some_and(|e| e == "json") {
        return Err(format!(
            "{} is a JSON configuration: nginx cannot read it, so there is nothing to compare \
             (compare takes an nginx.conf)",
            opts.conf.display()
        ));
    }
    let nginx = find_nginx(opts.nginx.as_deref())?;
    let nginx_version = proxies::nginx_version(&nginx)?;
    let main = std::fs::canonicalize(&opts.conf)
        .map_err(|e| format!("cannot read {}: {e}", opts.conf.display()))?;
    let config = config::load(&main).map_err(|e| format!("pinlb cannot use the file: {e}"))?;
    let parsed = parse_file_traced(&main).map_err(|e| e.to_string())?;
    let found = rewrite::scan(&parsed);
    if found.listens.is_empty() {
        return Err(format!(
            "{}: no \"listen\" address to send requests to",
            main.display()
        ));
    }
    let mut probes = corpus::generate(&config, &found.listens);
    let mut notes = String::new();
    if !found.events {
        notes.push_str("no \"events\" block: both copies get an empty one (nginx requires it)\n");
    }
    if let Some(log) = &opts.access_log {
        let (from_log, skipped) = log_replay::read(log, 0, &first_host(&config, &found))?;
        notes.push_str(&format!(
            "{} requests from {} ({} lines skipped: not requests that can be sent again)\n",
            from_log.len(),
            log.display(),
            skipped
        ));
        probes.extend(from_log);
    }
    let scratch = Scratch::new()?;
    let backends = EchoBackends::start(&found.backends)
        .map_err(|e| format!("cannot start the echo backends: {e}"))?;
    let deadline = Instant::now() + RUN_LIMIT;

    let run_one = |name: &str| -> Result<(Vec<u16>, Vec<Observed>), String> {
        let dir = scratch.0.join(name);
        let ports = free_ports(found.listens.len())?;
        let conf = copy(&parsed, &found, &backends, &ports, &dir, name == "nginx")?;
        let proxy = if name == "nginx" {
            proxies::start_nginx(&nginx, &dir, &conf, &ports)?
        } else {
            proxies::start_pinlb(opts.pinlb.as_deref(), &conf, &dir, &ports)?
        };
        let seen = replay::run(&probes, &ports, &backends, deadline);
        proxy.stop();
        backends.clear();
        Ok((ports, seen))
    };
    let (nginx_ports, nginx_seen) = run_one("nginx")?;
    let (pinlb_ports, pinlb_seen) = run_one("pinlb")?;

    let mut out = format!(
        "pinlb compare: {} through {nginx_version} (127.0.0.1:{}) and pinlb (127.0.0.1:{}), \
         {} upstream addresses on echo backends\n{notes}",
        opts.conf.display(),
        join(&nginx_ports),
        join(&pinlb_ports),
        found.backends.len(),
    );
    let sent = nginx_seen.len().min(pinlb_seen.len());
    if sent < probes.len() {
        out.push_str(&format!(
            "stopped after {sent} of {} requests: the run's limit is {} s\n",
            probes.len(),
            RUN_LIMIT.as_secs()
        ));
    }
    let watched = watched_headers(&config);
    let diffs: Vec<_> = (0..sent)
        .map(|i| {
            let (nginx, pinlb) = (
                report::Run {
                    observed: &nginx_seen[i],
                    ports: &nginx_ports,
                },
                report::Run {
                    observed: &pinlb_seen[i],
                    ports: &pinlb_ports,
                },
            );
            report::compare(i, &probes[i], nginx, pinlb, &found.backends, &watched)
        })
        .collect();
    let totals = report::print(&mut out, &probes, &diffs, opts.verbose);
    Ok((out, totals))
}

/// Writes the copy of the configuration that one proxy reads; returns its main file.
fn copy(
    parsed: &Parsed,
    found: &Addresses,
    backends: &EchoBackends,
    ports: &[u16],
    dir: &Path,
    for_nginx: bool,
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // One worker: round robin state is per worker, several would not compare.
    let mut extra = format!(
        "# added by pinlb compare\ndaemon off;\nworker_processes 1;\npid {};\n",
        dir.join("proxy.pid").display()
    );
    if for_nginx && nix::unistd::geteuid().is_root() {
        // The config's `user` may not exist here; root's workers can read the scratch folder.
        extra.push_str("user root;\n");
    }
    if !found.events {
        // nginx refuses to start without one; pinlb does not need it.
        extra.push_str("events {}\n");
    }
    if !for_nginx {
        extra.push_str(&format!(
            "pinlb_upgrade_sock {};\n",
            dir.join("upgrade.sock").display()
        ));
    }
    let targets = Targets {
        backends: &backends.addrs,
        listen_ports: ports,
        scratch: dir,
        main_extra: &extra,
    };
    rewrite::write_copy(parsed, found, &targets, &dir.join("conf"))
}

/// The nginx binary to run: the one given, else `nginx` on `PATH`, else Debian's place.
fn find_nginx(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = given {
        if path.components().count() > 1 && !path.exists() {
            return Err(format!(
                "nginx not found at {}: install nginx (apt-get install nginx) or point --nginx at it",
                path.display()
            ));
        }
        return Ok(path.to_path_buf());
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "nginx not found (not on PATH, nor /usr/sbin/nginx): install nginx \
             (apt-get install nginx) or point --nginx at it"
                .to_string()
        })
}

/// The Host for requests from an access log: the first name of the first server on the
/// first listen address.
fn first_host(config: &Config, found: &Addresses) -> String {
    config
        .virtual_servers
        .iter()
        .filter(|vs| vs.listen.contains(&found.listens[0]))
        .flat_map(|vs| vs.server_names.iter())
        .find_map(|n| match n {
            config::ServerName::Exact(name) if !name.is_empty() => Some(name.clone()),
            _ => None,
        })
        .unwrap_or_else(|| corpus::UNKNOWN_HOST.to_string())
}

/// Response headers the configuration sets (`add_header`), and `Location`, lower case.
fn watched_headers(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config
        .virtual_servers
        .iter()
        .flat_map(|vs| vs.routes.iter())
        .flat_map(|r| r.add_headers.iter())
        .map(|h| h.name.to_ascii_lowercase())
        .chain(["location".to_string()])
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `n` ports on 127.0.0.1 that were free a moment ago, below Linux's ephemeral range
/// (so that no outgoing connection takes one before the proxy binds it).
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = 20_000 + (std::process::id() as usize * 131) % 12_000;
    let mut ports = Vec::new();
    for _ in 0..12_000 {
        if ports.len() == n {
            return Ok(ports);
        }
        let port = (base + NEXT.fetch_add(1, Ordering::SeqCst) % 12_000) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            ports.push(port);
        }
    }
    Err("no free port on 127.0.0.1".into())
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The scratch folder of one run, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pinlb-compare-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
