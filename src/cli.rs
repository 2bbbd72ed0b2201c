//! Command-line flags, named as nginx and Pingora name them.

use clap::Parser;
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

    /// Take over the listening sockets of a running pinlb (Pingora's graceful upgrade).
    #[arg(short = 'u', long = "upgrade")]
    pub upgrade: bool,

    /// Run in the background.
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
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
}
