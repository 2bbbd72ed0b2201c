//! Command-line flags, named as nginx and Pingora name them.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "pinlb",
    version,
    about = "Load balancer: pin by app header or cookie, then balance"
)]
pub struct Cli {
    /// Configuration file: `*.json` is native, anything else nginx syntax.
    #[arg(short = 'c', long = "conf", default_value = "/etc/pinlb/pinlb.json")]
    pub conf: PathBuf,

    /// Test the configuration (including host name resolution) and exit.
    #[arg(short = 't', long = "test")]
    pub test: bool,

    /// Print the effective configuration model as JSON and exit.
    #[arg(long = "print-config")]
    pub print_config: bool,

    /// Act on the running pinlb named by the config's pid file, as `nginx -s` does.
    #[arg(short = 's', long = "signal", value_enum)]
    pub signal: Option<Command>,

    /// Check the running pinlb's admin `/healthz` (for container health checks); exit 0
    /// if it answers 200.
    #[arg(long = "healthcheck")]
    pub healthcheck: bool,

    /// Print the signed pin value for server NAME (`NAME.MAC`) with the config's pin
    /// secret, and exit.
    #[arg(long = "sign-pin", value_name = "NAME")]
    pub sign_pin: Option<String>,

    /// Admin listener address, or `off`, instead of the config's.
    #[arg(long = "admin", value_name = "ADDR|off")]
    pub admin: Option<String>,

    /// Take over the listening sockets of a running pinlb (Pingora's graceful upgrade).
    #[arg(short = 'u', long = "upgrade")]
    pub upgrade: bool,

    /// Run in the background.
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
}

/// What `-s` asks of the running pinlb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Command {
    /// Re-read the config in place (SIGHUP).
    Reload,
    /// Stop at once (SIGINT).
    Stop,
    /// Stop gracefully: drain, then finish in-flight requests (SIGTERM).
    Quit,
    /// Start this binary and hand it the listening sockets, safely.
    Upgrade,
}

impl Cli {
    /// The flags Pingora itself acts on.
    pub fn pingora_opt(&self) -> pingora::prelude::Opt {
        pingora::prelude::Opt {
            upgrade: self.upgrade,
            daemon: self.daemon,
            ..Default::default()
        }
    }

    /// `--admin`, parsed: `Some(None)` turns the admin listener off.
    pub fn admin_override(&self) -> Result<Option<Option<std::net::SocketAddr>>, String> {
        match self.admin.as_deref() {
            None => Ok(None),
            Some("off") => Ok(Some(None)),
            Some(addr) => addr
                .parse()
                .map(|a| Some(Some(a)))
                .map_err(|_| format!("--admin: \"{addr}\" is not an ip:port address or \"off\"")),
        }
    }
}
