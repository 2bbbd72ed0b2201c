//! The vendored pingora-timeout crate's own unit tests: vendored crates are not members of
//! the workspace, so the crate's modules are included here.

#[allow(dead_code, unused_imports)]
#[rustfmt::skip] // formatted as upstream, to keep the vendored diff small
#[path = "../vendor/pingora-timeout/src/lib.rs"]
mod pingora_timeout;
