//! The model of nginx's realip settings (`set_real_ip_from`, `real_ip_header`,
//! `real_ip_recursive`) as they apply at one level, already merged with the levels
//! around it. The values are read as written; `Runtime::compile` judges them.

use super::Origin;
use serde::Serialize;

/// nginx's default `real_ip_header`.
pub const DEFAULT_REAL_IP_HEADER: &str = "X-Real-IP";

/// Which client address a server or route believes. Without any trusted address realip
/// is off, and the model holds `None` instead of this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RealIp {
    /// Addresses, networks or `unix:` whose word on the client is taken
    /// (`set_real_ip_from`), as written.
    pub from: Vec<RealIpFrom>,
    /// Where that word is read: `X-Forwarded-For`, `X-Real-IP` (default), any header name,
    /// or `proxy_protocol` (`real_ip_header`).
    pub header: String,
    /// Skip trusted addresses in the header from its end (`real_ip_recursive`, default off).
    pub recursive: bool,
    #[serde(skip)]
    pub origin: Origin,
}

/// One `set_real_ip_from` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RealIpFrom {
    pub source: String,
    #[serde(skip)]
    pub origin: Origin,
}
