//! Prometheus metrics (prefix `pinlb_`). Per-server and per-upstream handles are resolved
//! once when a config is built, so a request only increments atomics.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;

/// Request duration buckets, in seconds: fine below 100 ms, where a proxy lives.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Metrics {
    registry: Registry,
    /// Requests by upstream, server and status class (`2xx` ...).
    requests: IntCounterVec,
    /// Request duration by upstream, from the request header to the last byte sent.
    duration: HistogramVec,
    /// Failed connects by upstream and server.
    connect_errors: IntCounterVec,
    /// Failed attempts (connect, broken response, timeout, listed status) by server.
    failures: IntCounterVec,
    /// Attempts moved to another server, by upstream.
    retries: IntCounterVec,
    /// Pin outcomes: `pinned`, `unknown`, `fell_back`, `refused`, `not_allowed`,
    /// `bad_signature`.
    pins: IntCounterVec,
    /// `limit_req` verdicts by zone and result (nginx's `$limit_req_status`, lowercased).
    limit_req: IntCounterVec,
    /// `limit_conn` verdicts by zone and result.
    limit_conn: IntCounterVec,
    /// 1 if the server may take requests (healthy, not failed, not down), by server.
    server_up: IntGaugeVec,
    /// Requests in flight by server.
    inflight: IntGaugeVec,
    /// Config reloads by result (`success`, `failure`).
    reloads: IntCounterVec,
    /// Access log lines dropped because a writer fell behind.
    pub access_log_dropped: IntCounter,
    /// Lookups of `resolve` names by upstream, name and result (`ok`, `empty`,
    /// `nxdomain`, `error`).
    dns: IntCounterVec,
    /// Servers (addresses) of each upstream in the configuration in force.
    servers: IntGaugeVec,
    /// Responses that set a sticky cookie, by upstream.
    sticky_set: IntCounterVec,
    /// ACME orders by certificate (`acme:ISSUER:ID`) and result (`success`, `failure`).
    acme_orders: IntCounterVec,
    /// Expiry (Unix seconds) of the certificate served, by ACME certificate; absent
    /// while the self-signed stand-in is served.
    acme_expiry: IntGaugeVec,
    /// Failed ACME orders in a row, by certificate; 0 after a success.
    acme_failures: IntGaugeVec,
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Status classes counted separately.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "pinlb_request_duration_seconds",
                "Time from request header to last byte sent.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["upstream"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(duration.clone()))
            .expect("unique metric");
        let access_log_dropped = IntCounter::new(
            "pinlb_access_log_dropped_total",
            "Access log lines dropped because a writer fell behind.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(access_log_dropped.clone()))
            .expect("unique metric");
        Metrics {
            requests: counter(
                "pinlb_requests_total",
                "Requests answered, by upstream, server and status class.",
                &["upstream", "server", "code"],
            ),
            duration,
            connect_errors: counter(
                "pinlb_upstream_connect_errors_total",
                "Failed connects to a server.",
                &["upstream", "server"],
            ),
            failures: counter(
                "pinlb_upstream_failures_total",
                "Failed attempts on a server (connect, response, timeout, listed status).",
                &["upstream", "server"],
            ),
            retries: counter(
                "pinlb_retries_total",
                "Attempts moved to another server.",
                &["upstream"],
            ),
            pins: counter(
                "pinlb_pin_total",
                "Pinned requests by outcome.",
                &["outcome"],
            ),
            limit_req: counter(
                "pinlb_limit_req_total",
                "Requests checked by a limit_req zone, by result.",
                &["zone", "result"],
            ),
            limit_conn: counter(
                "pinlb_limit_conn_total",
                "Requests checked by a limit_conn zone, by result.",
                &["zone", "result"],
            ),
            acme_orders: counter(
                "pinlb_acme_orders_total",
                "ACME orders by certificate and result.",
                &["certificate", "result"],
            ),
            acme_expiry: gauge(
                "pinlb_acme_certificate_expiry_timestamp_seconds",
                "When the ACME certificate served expires.",
                &["certificate"],
            ),
            acme_failures: gauge(
                "pinlb_acme_consecutive_failures",
                "Failed ACME orders in a row.",
                &["certificate"],
            ),
            server_up: gauge(
                "pinlb_server_up",
                "1 if the server may take requests.",
                &["upstream", "server"],
            ),
            inflight: gauge(
                "pinlb_inflight_requests",
                "Requests in flight.",
                &["upstream", "server"],
            ),
            reloads: counter(
                "pinlb_config_reloads_total",
                "Configuration reloads by result.",
                &["result"],
            ),
            access_log_dropped,
            dns: counter(
                "pinlb_dns_resolutions_total",
                "Lookups of resolve names by upstream, name and result.",
                &["upstream", "name", "result"],
            ),
            servers: gauge(
                "pinlb_upstream_servers",
                "Servers (addresses) of each upstream.",
                &["upstream"],
            ),
            sticky_set: counter(
                "pinlb_sticky_cookies_set_total",
                "Responses that set a sticky cookie, by upstream.",
                &["upstream"],
            ),
            registry,
        }
    }

    /// Handles for one upstream and its servers.
    pub fn pool(&self, upstream: &str, servers: &[&str]) -> PoolMetrics {
        self.servers
            .with_label_values(&[upstream])
            .set(i64::try_from(servers.len()).unwrap_or(i64::MAX));
        PoolMetrics {
            sticky_set: self.sticky_set.with_label_values(&[upstream]),
            duration: self.duration.with_label_values(&[upstream]),
            retries: self.retries.with_label_values(&[upstream]),
            servers: servers
                .iter()
                .map(|server| ServerMetrics {
                    requests: CLASSES
                        .map(|class| self.requests.with_label_values(&[upstream, server, class])),
                    connect_errors: self.connect_errors.with_label_values(&[upstream, server]),
                    failures: self.failures.with_label_values(&[upstream, server]),
                    up: self.server_up.with_label_values(&[upstream, server]),
                    inflight: self.inflight.with_label_values(&[upstream, server]),
                })
                .collect(),
        }
    }

    /// Counts a request that reached no server (a `return`, a 404, a refused pin...).
    pub fn request_without_server(
        &self,
        upstream: &str,
        status: u16,
        duration: std::time::Duration,
    ) {
        self.requests
            .with_label_values(&[upstream, "", class(status)])
            .inc();
        self.duration
            .with_label_values(&[upstream])
            .observe(duration.as_secs_f64());
    }

    /// Handles for one `limit_req_zone`.
    pub fn limit_req(&self, zone: &str) -> ReqCounters {
        let c = |result: &str| self.limit_req.with_label_values(&[zone, result]);
        ReqCounters {
            passed: c("passed"),
            delayed: c("delayed"),
            rejected: c("rejected"),
            delayed_dry_run: c("delayed_dry_run"),
            rejected_dry_run: c("rejected_dry_run"),
        }
    }

    /// Handles for one `limit_conn_zone`.
    pub fn limit_conn(&self, zone: &str) -> ConnCounters {
        let c = |result: &str| self.limit_conn.with_label_values(&[zone, result]);
        ConnCounters {
            passed: c("passed"),
            rejected: c("rejected"),
            rejected_dry_run: c("rejected_dry_run"),
        }
    }

    pub fn pin(&self, outcome: PinOutcome) {
        self.pins.with_label_values(&[outcome.label()]).inc();
    }

    /// One lookup of a `resolve` name.
    pub fn dns_resolution(&self, upstream: &str, name: &str, result: &str) {
        self.dns.with_label_values(&[upstream, name, result]).inc();
    }

    pub fn reload(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
    }

    /// An ACME order of `certificate` ended; `failures` in a row now.
    pub fn acme_order(&self, certificate: &str, ok: bool, failures: u32) {
        let result = if ok { "success" } else { "failure" };
        self.acme_orders
            .with_label_values(&[certificate, result])
            .inc();
        self.acme_failures
            .with_label_values(&[certificate])
            .set(i64::from(failures));
    }

    /// `certificate` now serves one that expires at `not_after` (Unix seconds).
    pub fn acme_expiry(&self, certificate: &str, not_after: i64) {
        self.acme_expiry
            .with_label_values(&[certificate])
            .set(not_after);
    }

    /// Forgets the series of servers no longer configured.
    pub fn forget_server(&self, upstream: &str, server: &str) {
        for class in CLASSES {
            let _ = self
                .requests
                .remove_label_values(&[upstream, server, class]);
        }
        for vec in [&self.connect_errors, &self.failures] {
            let _ = vec.remove_label_values(&[upstream, server]);
        }
        for vec in [&self.server_up, &self.inflight] {
            let _ = vec.remove_label_values(&[upstream, server]);
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::warn!("cannot encode metrics: {e}");
        }
        out
    }
}

fn class(status: u16) -> &'static str {
    CLASSES[usize::from((status / 100).clamp(1, 5) - 1)]
}

/// How a pin ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinOutcome {
    Pinned,
    Unknown,
    FellBack,
    Refused,
    /// The client is outside the route's `allow_from`.
    NotAllowed,
    /// The value is not signed with the route's secret.
    BadSignature,
}

impl PinOutcome {
    fn label(self) -> &'static str {
        match self {
            PinOutcome::Pinned => "pinned",
            PinOutcome::Unknown => "unknown",
            PinOutcome::FellBack => "fell_back",
            PinOutcome::Refused => "refused",
            PinOutcome::NotAllowed => "not_allowed",
            PinOutcome::BadSignature => "bad_signature",
        }
    }
}

/// Counter handles of one `limit_req_zone`, by nginx's `$limit_req_status` values.
#[derive(Clone)]
pub struct ReqCounters {
    pub passed: IntCounter,
    pub delayed: IntCounter,
    pub rejected: IntCounter,
    pub delayed_dry_run: IntCounter,
    pub rejected_dry_run: IntCounter,
}

/// Counter handles of one `limit_conn_zone`, by nginx's `$limit_conn_status` values.
#[derive(Clone)]
pub struct ConnCounters {
    pub passed: IntCounter,
    pub rejected: IntCounter,
    pub rejected_dry_run: IntCounter,
}

/// Metric handles of one upstream.
pub struct PoolMetrics {
    pub sticky_set: IntCounter,
    pub duration: Histogram,
    pub retries: IntCounter,
    pub servers: Vec<ServerMetrics>,
}

/// Metric handles of one server.
pub struct ServerMetrics {
    requests: [IntCounter; 5],
    pub connect_errors: IntCounter,
    pub failures: IntCounter,
    pub up: IntGauge,
    pub inflight: IntGauge,
}

impl ServerMetrics {
    pub fn answered(&self, status: u16) {
        self.requests[usize::from((status / 100).clamp(1, 5) - 1)].inc();
    }

    /// Requests answered by this server, all classes.
    pub fn requests(&self) -> u64 {
        self.requests.iter().map(IntCounter::get).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_handles_count_into_the_exposition() {
        let m = Metrics::new();
        let pool = m.pool("web", &["app1", "app2"]);
        pool.servers[1].answered(200);
        pool.servers[1].answered(503);
        pool.servers[1].answered(204);
        m.pin(PinOutcome::FellBack);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains("pinlb_requests_total{code=\"2xx\",server=\"app2\",upstream=\"web\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("pinlb_requests_total{code=\"5xx\",server=\"app2\",upstream=\"web\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pinlb_pin_total{outcome=\"fell_back\"} 1"),
            "{text}"
        );
        assert_eq!(pool.servers[1].requests(), 3);
        m.forget_server("web", "app2");
        assert!(
            !String::from_utf8(m.render())
                .unwrap()
                .contains("server=\"app2\"")
        );
    }

    #[test]
    fn status_classes() {
        assert_eq!(
            (class(101), class(200), class(404), class(599), class(0)),
            ("1xx", "2xx", "4xx", "5xx", "1xx")
        );
    }
}
