//! Command-line flags, named as nginx and Pingora name them.

use clap::{Args, Parser, Subcommand, ValueEnum};
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

    #[command(subcommand)]
    pub command: Option<Sub>,
}

/// Tools beside running the proxy.
#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Run an nginx.conf through nginx and through pinlb against echo backends, replay
    /// the same requests through both and print every difference. Exit 0: none that the
    /// README does not document; 1: some; 2: nothing compared (nginx missing or failing).
    Compare(CompareArgs),
}

/// `pinlb compare`'s flags.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The nginx configuration (nginx syntax; a JSON config has nothing to compare with).
    #[arg(short = 'c', long = "conf")]
    pub conf: PathBuf,

    /// The nginx binary. Default: `nginx` on PATH, else /usr/sbin/nginx.
    #[arg(long = "nginx", value_name = "PATH")]
    pub nginx: Option<PathBuf>,

    /// The pinlb binary to compare (another build, say). Default: this one.
    #[arg(long = "pinlb", value_name = "PATH")]
    pub pinlb: Option<PathBuf>,

    /// Also replay the first 1,000 requests of this access log (nginx `combined` format).
    #[arg(long = "access-log", value_name = "FILE")]
    pub access_log: Option<PathBuf>,

    /// Print every documented difference, not one line per kind.
    #[arg(long = "verbose")]
    pub verbose: bool,
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
