//! How a pinlb process lives: the pid file, reloads in place, graceful shutdown and
//! binary upgrades, and the `-s` commands that drive them.

pub mod control;
pub mod pidfile;
pub mod ready;
pub mod reload;
pub mod shutdown;
