//! `pinlb`: parse flags, load and check the config, then run the proxy (or act on a
//! running one with `-s`).

use clap::Parser;
use nix::sys::signal::Signal;
use pingora::server::RunArgs;
use pinlb::cli::{Cli, Command, Sub};
use pinlb::config::{self, Config};
use pinlb::lifecycle::{control, pidfile, shutdown};
use pinlb::observe::access_log::Sinks;
use pinlb::routing::signed_pin::PinKey;
use pinlb::runtime::{CompileEnv, Runtime};
use pinlb::state::Shared;
use pinlb::upstream::discovery::Discovery;
use pinlb::upstream::resolve::{Offline, SystemResolver};
use std::process::ExitCode;

// mimalloc: see `pinlb::allocator` for why, and why not through the `mimalloc` crate.
#[global_allocator]
static ALLOCATOR: pinlb::allocator::Mimalloc = pinlb::allocator::Mimalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Sub::Compare(args)) = &cli.command {
        return ExitCode::from(pinlb::compare::run(&pinlb::compare::Options {
            conf: args.conf.clone(),
            nginx: args.nginx.clone(),
            pinlb: args.pinlb.clone(),
            access_log: args.access_log.clone(),
            verbose: args.verbose,
        }));
    }
    let file = cli.conf.display();
    let config = match load(&cli) {
        Ok(config) => config,
        Err(e) => return emerg(&e),
    };
    if cli.print_config {
        // Checked as `-t` would, but without the network or opening log files, so that
        // a config written for another machine (compose service names) can be shown.
        let offline = CompileEnv {
            dns: &Offline::default(),
            discovered: None,
            sinks: &Sinks::offline(),
            previous: None,
        };
        if let Err(e) = Runtime::compile(&config, &offline) {
            return emerg(&e);
        }
        return match serde_json::to_string_pretty(&config) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => emerg(&e),
        };
    }
    if let Some(name) = &cli.sign_pin {
        return match sign_pin(&config, name) {
            Ok(values) => {
                values.iter().for_each(|v| println!("{v}"));
                ExitCode::SUCCESS
            }
            Err(e) => emerg(&e),
        };
    }
    if cli.healthcheck {
        return report(control::healthcheck(&config));
    }
    if let Err(e) = pinlb::logging::init(config.error_log.as_ref()) {
        return emerg(&e);
    }
    let sinks = Sinks::default();
    // `resolve` names: looked up now for the first requests (`-t` does not: as in nginx,
    // they need not resolve to pass), then again while running.
    let discovery = Discovery::default();
    if !cli.test && cli.signal.is_none() {
        discovery.resolve_new_names(&config);
    }
    let env = CompileEnv {
        dns: &SystemResolver,
        discovered: Some(&discovery),
        sinks: &sinks,
        previous: None,
    };
    let runtime = match Runtime::compile(&config, &env) {
        Ok(runtime) => runtime,
        Err(e) => return emerg(&e),
    };
    if cli.test {
        eprintln!("pinlb: the configuration file {file} syntax is ok");
        eprintln!("pinlb: configuration file {file} test is successful");
        return ExitCode::SUCCESS;
    }
    match cli.signal {
        Some(Command::Reload) => return report(control::reload(&config)),
        Some(Command::Upgrade) => {
            let forward: Vec<String> = cli
                .admin
                .iter()
                .flat_map(|a| ["--admin".to_string(), a.clone()])
                .collect();
            return report(control::upgrade(&config, &cli.conf, &forward));
        }
        Some(Command::Stop) => {
            return report(
                control::signal_running(&config, Signal::SIGINT)
                    .map(|pid| format!("stopping process {pid}")),
            );
        }
        Some(Command::Quit) => {
            return report(
                control::signal_running(&config, Signal::SIGTERM)
                    .map(|pid| format!("draining process {pid}")),
            );
        }
        None => {}
    }
    if !cli.upgrade {
        if let Err(e) = pinlb::check_listeners_free(&config) {
            return emerg(&e);
        }
    }
    // A daemon's pid is known only after it forks: Pingora writes that pid file itself.
    let pid_file = config.pid_file().to_path_buf();
    if !cli.daemon {
        if let Err(e) = pidfile::write(&pid_file) {
            return emerg(&e);
        }
    }
    log::info!("starting with {file}");
    let shared = Shared::new(cli.conf.clone(), config, runtime, sinks, discovery);
    let server = match pinlb::build_server(&shared, cli.pingora_opt()) {
        Ok(server) => server,
        Err(e) => return emerg(&e),
    };
    server.run(RunArgs {
        shutdown_signal: Box::new(shutdown::Signals::new(shared.clone(), pid_file.clone())),
    });
    shutdown::finish(&shared, &pid_file);
    ExitCode::SUCCESS
}

/// The config file with the command line's overrides applied.
fn load(cli: &Cli) -> Result<Config, String> {
    let mut config = config::load(&cli.conf).map_err(|e| e.to_string())?;
    if let Some(admin) = cli.admin_override()? {
        config.admin = admin;
    }
    Ok(config)
}

/// `--sign-pin NAME`: the value that pins to NAME under each distinct pin secret of the
/// config (one line each; usually there is one secret).
fn sign_pin(config: &Config, name: &str) -> Result<Vec<String>, String> {
    let mut secrets: Vec<&str> = Vec::new();
    for route in config.virtual_servers.iter().flat_map(|vs| &vs.routes) {
        if let config::Action::Proxy(pass) = &route.action {
            if let Some(secret) = pass.pin_secret.as_deref().filter(|s| !secrets.contains(s)) {
                secrets.push(secret);
            }
        }
    }
    if secrets.is_empty() {
        return Err(format!(
            "no pin secret in {} (pin.secret, pinlb_pin_secret)",
            config.source.display()
        ));
    }
    secrets
        .into_iter()
        .map(|secret| {
            let key = PinKey::new(secret.as_bytes()).map_err(|e| e.to_string())?;
            key.sign(name).map_err(|e| format!("{e}: \"{name}\""))
        })
        .collect()
}

fn report(outcome: Result<String, String>) -> ExitCode {
    match outcome {
        Ok(msg) => {
            eprintln!("pinlb: {msg}");
            ExitCode::SUCCESS
        }
        Err(e) => emerg(&e),
    }
}

fn emerg(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("pinlb: [emerg] {e}");
    ExitCode::FAILURE
}
