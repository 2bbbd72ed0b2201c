//! Per-request state carried between the proxy hooks.

use crate::runtime::{ProxyRoute, Route, RouteAction, Runtime};
use crate::upstream::{InFlightGuard, Pool};
use std::sync::Arc;
use std::time::Instant;

/// What one request has decided and tried so far.
#[derive(Default)]
pub struct RequestCtx {
    /// Counts the request in the process-wide in-flight total (for the drain).
    pub counted: Option<InFlightGuard>,
    /// The config generation the request started with; it finishes with the same one.
    pub runtime: Option<Arc<Runtime>>,
    /// Index of the virtual server that took the request.
    pub virtual_server: Option<usize>,
    /// Indexes of the virtual server and route that matched.
    pub route: Option<(usize, usize)>,
    /// The pool the request is served from: the route's, or a pin's.
    pub pool: Option<Arc<Pool>>,
    /// The server a pin chose; tried first.
    pub pinned: Option<usize>,
    /// A pin that must not fall back to other servers (`on_unhealthy` `use` or `refuse`).
    pub strict_pin: bool,
    /// The server of the current attempt.
    pub current: Option<usize>,
    /// Counts the request in flight on the current server until the request ends.
    pub inflight: Option<InFlightGuard>,
    /// Servers that failed this request; never tried twice.
    pub tried: Vec<usize>,
    /// Attempts so far, the first included.
    pub attempts: u32,
    /// Request body bytes seen, for `client_max_body_size` on chunked uploads.
    pub body_bytes: u64,
    /// When the request header had been read.
    pub started: Option<Instant>,
    /// When the first upstream attempt began.
    pub upstream_started: Option<Instant>,
    /// The status the server answered (before pinlb's own changes).
    pub upstream_status: Option<u16>,
}

impl RequestCtx {
    /// The matched route, once `request_filter` has found one.
    pub fn route(&self) -> Option<&Route> {
        Some(self.runtime.as_ref()?.route_at(self.route?))
    }

    /// The matched route when it proxies.
    pub fn proxy_route(&self) -> Option<&ProxyRoute> {
        match &self.route()?.action {
            RouteAction::Proxy(p) => Some(p),
            RouteAction::Return { .. } => None,
        }
    }

    /// The current server failed this request: count it for passive health and never
    /// try it again for this request.
    pub fn current_failed(&mut self) {
        if let (Some(i), Some(pool)) = (self.current.take(), &self.pool) {
            pool.report_failure(i);
            self.tried.push(i);
        }
    }

    /// Marks the error for another attempt and counts the retry.
    pub fn retry(&self, e: &mut pingora::Error) {
        e.set_retry(true);
        if let Some(pool) = &self.pool {
            pool.metrics.retries.inc();
        }
    }

    /// Whether another attempt is allowed and some untried usable server remains.
    pub fn may_retry(&self) -> bool {
        let (Some(route), Some(pool)) = (self.route(), &self.pool) else {
            return false;
        };
        let limit = match route.settings.next_upstream_tries {
            0 => u32::MAX,
            n => n,
        };
        !self.strict_pin
            && self.attempts < limit
            && pool.has_candidate(|i| !self.tried.contains(&i))
    }
}
