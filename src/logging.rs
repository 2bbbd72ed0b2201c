//! Diagnostics: `log` records to stderr or to the `error_log` file, from the configured
//! level (`RUST_LOG` overrides it).

use crate::config::{ErrorLog, LogLevel};
use std::fs::OpenOptions;

/// Starts logging as `error_log` says (stderr at `info` without one). Called once.
pub fn init(error_log: Option<&ErrorLog>) -> Result<(), String> {
    let level = error_log.map_or(LogLevel::Info, |e| e.level);
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level.filter());
    // rustls warns about what a client did (an IP address sent as SNI by every client that
    // connects by address, ...), once per connection; nginx logs a client's handshake
    // errors at `info`, below its default. Those records show from `debug` on.
    let rustls = match level.filter() >= log::LevelFilter::Debug {
        true => level.filter(),
        false => log::LevelFilter::Error,
    };
    builder.filter_module("rustls", rustls);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    if let Some(file) = error_log
        .map(|e| e.path.as_str())
        .filter(|p| *p != "stderr")
    {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| format!("open() \"{file}\" failed ({})", io_text(&e)))?;
        builder.target(env_logger::Target::Pipe(Box::new(out)));
    }
    builder.try_init().map_err(|e| e.to_string())
}

/// An io error's text without Rust's " (os error N)" suffix, as nginx prints it.
pub fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}
