//! `pinlb`: parse flags, load and check the config, then run the proxy.

use clap::Parser;
use pinlb::cli::Cli;
use pinlb::{build_server, config, runtime::Runtime};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = cli.conf.display();

    let config = match config::load(&cli.conf) {
        Ok(config) => config,
        Err(e) => return emerg(&e),
    };
    if cli.print_config {
        return match serde_json::to_string_pretty(&config) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => emerg(&e),
        };
    }
    if let Err(e) = pinlb::logging::init(config.error_log.as_ref()) {
        return emerg(&e);
    }
    let sinks = std::sync::Arc::new(pinlb::observe::access_log::Sinks::default());
    let runtime = match Runtime::build(&config, &sinks) {
        Ok(runtime) => runtime,
        Err(e) => return emerg(&e),
    };
    if cli.test {
        eprintln!("pinlb: the configuration file {file} syntax is ok");
        eprintln!("pinlb: configuration file {file} test is successful");
        return ExitCode::SUCCESS;
    }
    if !cli.upgrade {
        if let Err(e) = pinlb::check_listeners_free(&config) {
            return emerg(&e);
        }
    }
    log::info!("starting with {file}");
    build_server(&config, runtime, cli.pingora_opt()).run_forever()
}

fn emerg(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("pinlb: [emerg] {e}");
    ExitCode::FAILURE
}
