//! What pinlb tells operators about the requests it serves: Prometheus metrics and the
//! access log.

pub mod access_log;
pub mod log_format;
pub mod metrics;

use access_log::Sink;
use log_format::Format;
use std::sync::Arc;

/// One `access_log`: where, and in which format.
#[derive(Clone)]
pub struct LogTarget {
    pub sink: Arc<Sink>,
    pub format: Arc<Format>,
}
