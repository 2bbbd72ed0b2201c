//! Per-request state carried between the proxy hooks.

use crate::runtime::{Route, Runtime};
use std::sync::Arc;

/// What one request has decided and tried so far.
#[derive(Default)]
pub struct RequestCtx {
    /// The config generation the request started with; it finishes with the same one.
    pub runtime: Option<Arc<Runtime>>,
    /// Indexes of the virtual server and route that matched.
    pub route: Option<(usize, usize)>,
    /// The server a pin chose; tried first.
    pub pinned: Option<usize>,
    /// A pin that must not fall back to other servers (`on_unhealthy` `use` or `refuse`).
    pub strict_pin: bool,
    /// The server of the current attempt.
    pub current: Option<usize>,
    /// Servers that failed this request; never tried twice.
    pub tried: Vec<usize>,
    /// Attempts so far, the first included.
    pub attempts: u32,
}

impl RequestCtx {
    /// The matched route, once `request_filter` has found one.
    pub fn route(&self) -> Option<&Route> {
        Some(self.runtime.as_ref()?.route_at(self.route?))
    }

    /// Records that the current server failed this request.
    pub fn current_failed(&mut self) {
        if let Some(i) = self.current.take() {
            self.tried.push(i);
        }
    }

    /// Whether another attempt is allowed and some untried healthy server remains.
    pub fn may_retry(&self) -> bool {
        let Some(route) = self.route() else {
            return false;
        };
        let limit = match route.settings.next_upstream_tries {
            0 => u32::MAX,
            n => n,
        };
        !self.strict_pin
            && self.attempts < limit
            && route.pool.has_candidate(|i| !self.tried.contains(&i))
    }
}
