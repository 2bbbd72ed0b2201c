//! Per-request state carried between the proxy hooks: the configuration the request
//! started with, where `request_filter` sent it (set once), and its upstream attempts.

use super::limits::Slots;
use crate::observe::metrics::PinOutcome;
use crate::request;
use crate::runtime::{ProxyRoute, Route, RouteAction};
use crate::state::Generation;
use crate::upstream::{Group, InFlightGuard, Pool};
use pingora::http::RequestHeader;
use std::sync::Arc;
use std::time::Instant;

/// What one request has decided and tried so far.
pub struct RequestCtx {
    /// Counts the request in the process-wide in-flight total (for the drain).
    _counted: InFlightGuard,
    /// When the request head had been read.
    pub started: Instant,
    /// The configuration the request started with; it finishes with the same one.
    pub generation: Arc<Generation>,
    /// The virtual server that took the request, once known.
    pub virtual_server: Option<usize>,
    /// The route the request matched and, when it is proxied, where to; set once by
    /// `request_filter`.
    pub routed: Option<Routed>,
    /// Attempts on upstream servers so far.
    pub upstream: Attempts,
    /// Request body bytes seen, for `client_max_body_size` on chunked uploads.
    pub body_bytes: u64,
    /// The normalised path when it differs from the request's own (see [`Self::uri`]).
    pub normalized: Option<Box<[u8]>>,
    /// How the route's pin went, for the served-by reason.
    pub pin_outcome: Option<PinOutcome>,
    /// `limit_conn` slots, given back when the request ends (the context drops).
    pub conn_slots: Slots,
}

/// The routing decision of a request that matched a route.
pub struct Routed {
    /// Indexes of the virtual server and the route.
    pub at: (usize, usize),
    /// The pool a proxied request is served from: the route's, or a pin's.
    pub pool: Option<Arc<Pool>>,
    /// The server a pin or the sticky cookie chose, tried first.
    pub pin: Option<Pinned>,
    /// The server the request's sticky cookie named, whether or not it was usable:
    /// a response from it needs no new cookie (unless the cookie has an `expires`).
    pub sticky: Option<usize>,
}

/// A server named by a pin (any of its addresses) or by a sticky cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pinned {
    pub server: Group,
    /// Never fall back to another server (`on_unhealthy` `use` or `refuse`).
    pub strict: bool,
}

/// The upstream attempts of one request.
#[derive(Default)]
pub struct Attempts {
    /// Attempts so far, the first included.
    pub count: u32,
    /// The server of the current attempt.
    pub current: Option<usize>,
    /// Counts the request in flight on the current server until the request ends.
    pub inflight: Option<InFlightGuard>,
    /// Servers that failed this request; never tried twice.
    pub tried: Vec<usize>,
    /// When the first attempt began.
    pub started: Option<Instant>,
    /// The status the server answered (before pinlb's own changes).
    pub status: Option<u16>,
}

impl RequestCtx {
    pub fn new(generation: Arc<Generation>, counted: InFlightGuard) -> Self {
        RequestCtx {
            _counted: counted,
            started: Instant::now(),
            generation,
            virtual_server: None,
            routed: None,
            upstream: Attempts::default(),
            body_bytes: 0,
            normalized: None,
            pin_outcome: None,
            conn_slots: Slots::None,
        }
    }

    /// `$uri`: the request's path as nginx normalises it.
    pub fn uri<'a>(&'a self, req: &'a RequestHeader) -> &'a [u8] {
        match &self.normalized {
            Some(path) => path,
            None => request::path(req),
        }
    }

    /// The matched route, once `request_filter` has found one.
    pub fn route(&self) -> Option<&Route> {
        Some(self.generation.runtime.route_at(self.routed.as_ref()?.at))
    }

    /// The matched route when it proxies.
    pub fn proxy_route(&self) -> Option<&ProxyRoute> {
        match &self.route()?.action {
            RouteAction::Proxy(p) => Some(p),
            RouteAction::Return { .. } => None,
        }
    }

    /// The pool a proxied request is served from.
    pub fn pool(&self) -> Option<&Arc<Pool>> {
        self.routed.as_ref()?.pool.as_ref()
    }

    /// Starts an attempt on server `i` of `pool`.
    pub fn start_attempt(&mut self, pool: &Pool, i: usize) {
        self.upstream.started.get_or_insert_with(Instant::now);
        self.upstream.inflight = Some(pool.start_request(i));
        self.upstream.current = Some(i);
    }

    /// The current server failed this request: count it for passive health and never
    /// try it again for this request.
    pub fn current_failed(&mut self) {
        let current = self.upstream.current.take();
        if let (Some(i), Some(pool)) = (current, self.pool()) {
            pool.report_failure(i);
            self.upstream.tried.push(i);
        }
    }

    /// Marks the error for another attempt and counts the retry.
    pub fn retry(&self, e: &mut pingora::Error) {
        e.set_retry(true);
        if let Some(pool) = self.pool() {
            pool.metrics.retries.inc();
        }
    }

    /// Whether another attempt is allowed and some untried usable server remains.
    pub fn may_retry(&self) -> bool {
        let (Some(route), Some(routed)) = (self.route(), &self.routed) else {
            return false;
        };
        let Some(pool) = &routed.pool else {
            return false;
        };
        let limit = match route.settings.next_upstream_tries {
            0 => u32::MAX,
            n => n,
        };
        let strict = routed.pin.is_some_and(|p| p.strict);
        !strict
            && self.upstream.count < limit
            && pool.has_candidate(|i| !self.upstream.tried.contains(&i))
    }
}
