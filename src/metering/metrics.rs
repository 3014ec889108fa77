//! The gateway's Prometheus metrics. Request, token, value and latency series are counted from
//! the ledger rows as they are recorded (`LedgerSink::record`), so `/metrics` and the ledger agree
//! by construction; pool, price, backend and queue gauges are read from live state at scrape time.

use super::row::LedgerRow;
use prometheus::{
    CounterVec, Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Latency buckets, seconds.
const BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

pub struct GatewayMetrics {
    registry: Registry,
    requests: IntCounterVec,
    tokens: IntCounterVec,
    usd: CounterVec,
    cache: IntCounterVec,
    latency: HistogramVec,
    ttft: HistogramVec,
    /// Per pool, set at scrape time.
    pub pool_utilisation: GaugeVec,
    pub pool_inflight: GaugeVec,
    pub pool_room: GaugeVec,
    pub pool_backlog: GaugeVec,
    pub pool_price: GaugeVec,
    pub pool_shadow_price: GaugeVec,
    pub lp_solve_seconds: Gauge,
    pub lp_solves: Gauge,
    pub backend_up: GaugeVec,
    pub backend_circuit_open: GaugeVec,
    pub backend_outstanding: GaugeVec,
    pub backend_limit: GaugeVec,
    pub ledger_queue: Gauge,
    pub runtime_tasks: Gauge,
    pub state_degraded: Gauge,
    pub state_seeded: Gauge,
    pub state_errors: Gauge,
    pub lp_leader: Gauge,
    /// Per tenant, set at scrape time: the extraction watch's score.
    pub extraction_score: GaugeVec,
    pub extraction_dropped: Gauge,
    extraction_actions: IntCounterVec,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    r.register(Box::new(c.clone())).expect("metric names are unique");
    c
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayMetrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            reg(&r, GaugeVec::new(Opts::new(name, help), labels).expect("valid gauge"))
        };
        let hist = |name: &str, help: &str| {
            reg(
                &r,
                HistogramVec::new(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()), &["model"])
                    .expect("valid histogram"),
            )
        };
        Self {
            requests: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "tollgate_requests_total",
                        "Requests by tenant, model served, admission decision and HTTP status",
                    ),
                    &["tenant", "model", "decision", "status"],
                )
                .expect("valid counter"),
            ),
            tokens: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "tollgate_tokens_total",
                        "Tokens metered, by tenant, model served and kind (input, output)",
                    ),
                    &["tenant", "model", "kind"],
                )
                .expect("valid counter"),
            ),
            usd: reg(
                &r,
                CounterVec::new(
                    Opts::new("tollgate_usd_total", "Value, revenue and cost metered, USD, by tenant and kind"),
                    &["tenant", "kind"],
                )
                .expect("valid counter"),
            ),
            cache: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "tollgate_cache_lookups_total",
                        "Response-cache lookups by tenant, model asked for and result (exact, semantic, miss)",
                    ),
                    &["tenant", "model", "result"],
                )
                .expect("valid counter"),
            ),
            latency: hist("tollgate_request_duration_seconds", "Time from request to its last byte, by model served"),
            ttft: hist(
                "tollgate_time_to_first_token_seconds",
                "Time from request to the first upstream byte, by model",
            ),
            pool_utilisation: gauge(
                "tollgate_pool_utilisation_ratio",
                "Share of a pool's room held by reservations",
                &["pool"],
            ),
            pool_inflight: gauge(
                "tollgate_pool_inflight_engine_seconds",
                "Engine-seconds reserved in flight",
                &["pool"],
            ),
            pool_room: gauge(
                "tollgate_pool_room_engine_seconds",
                "Engine-seconds a pool may hold in flight",
                &["pool"],
            ),
            pool_backlog: gauge(
                "tollgate_pool_prefill_backlog_engine_seconds",
                "Prefill engine-seconds admitted and waiting for a first token",
                &["pool"],
            ),
            pool_price: gauge(
                "tollgate_pool_price_usd_per_engine_second",
                "What an engine-second costs a request now (shadow price, correction, scarcity, running cost, power)",
                &["pool"],
            ),
            pool_shadow_price: gauge(
                "tollgate_pool_shadow_price_usd_per_engine_second",
                "The last LP solve's shadow price of a pool's capacity",
                &["pool"],
            ),
            lp_solve_seconds: reg(
                &r,
                Gauge::new("tollgate_lp_solve_seconds", "Duration of the last LP solve").expect("valid gauge"),
            ),
            lp_solves: reg(
                &r,
                Gauge::new("tollgate_lp_solves", "Price boards published since start").expect("valid gauge"),
            ),
            backend_up: gauge("tollgate_backend_up", "1 when a backend's health checks pass", &["backend"]),
            backend_circuit_open: gauge(
                "tollgate_backend_circuit_open",
                "1 when a backend's circuit breaker is open (0 closed, 0.5 half-open)",
                &["backend"],
            ),
            backend_outstanding: gauge(
                "tollgate_backend_outstanding_requests",
                "Requests in flight on a backend",
                &["backend"],
            ),
            backend_limit: gauge(
                "tollgate_backend_concurrency_limit",
                "A backend's concurrency limit: max_in_flight, halved by each burst of 429s, raised by one per success",
                &["backend"],
            ),
            ledger_queue: reg(
                &r,
                Gauge::new("tollgate_ledger_queue_rows", "Ledger rows waiting to be written").expect("valid gauge"),
            ),
            runtime_tasks: reg(
                &r,
                Gauge::new(
                    "tollgate_runtime_tasks",
                    "Tasks alive on the gateway's async runtime (a leak shows as growth)",
                )
                .expect("valid gauge"),
            ),
            state_degraded: reg(
                &r,
                Gauge::new(
                    "tollgate_state_degraded",
                    "1 while shared state (Redis) is unreachable (failing closed or degraded to local limits)",
                )
                .expect("valid gauge"),
            ),
            state_seeded: reg(
                &r,
                Gauge::new(
                    "tollgate_state_degraded_seeded_tenants",
                    "Tenants whose local spend started, at the last fall back to local limits, from the spend Redis last reported",
                )
                .expect("valid gauge"),
            ),
            state_errors: reg(
                &r,
                Gauge::new("tollgate_state_errors_total", "Shared state (Redis) calls that failed")
                    .expect("valid gauge"),
            ),
            lp_leader: reg(
                &r,
                Gauge::new("tollgate_lp_leader", "1 if this replica solves the LP and publishes prices")
                    .expect("valid gauge"),
            ),
            extraction_score: gauge(
                "tollgate_extraction_score",
                "The extraction watch's score of a tenant (0-1; its reasons in the admin API's /v1/tollgate/extraction)",
                &["tenant"],
            ),
            extraction_dropped: reg(
                &r,
                Gauge::new(
                    "tollgate_extraction_dropped_total",
                    "Observations the extraction watch dropped because its queue was full",
                )
                .expect("valid gauge"),
            ),
            extraction_actions: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "tollgate_extraction_actions_total",
                        "Requests a model's extraction policy acted on, by tenant, model and action",
                    ),
                    &["tenant", "model", "action"],
                )
                .expect("valid counter"),
            ),
            registry: r,
        }
    }

    /// Counts one recorded ledger row.
    pub fn observe(&self, row: &LedgerRow) {
        let model = row.model_served.as_deref().unwrap_or(&row.model_requested);
        let status = row.status.to_string();
        self.requests.with_label_values(&[&row.tenant, model, &row.decision, &status]).inc();
        if let Some(action) = row.guard.as_deref().and_then(|g| g.split(' ').next()) {
            self.extraction_actions.with_label_values(&[&row.tenant, &row.model_requested, action]).inc();
        }
        let tok =
            |kind: &str, n: i64| self.tokens.with_label_values(&[&row.tenant, model, kind]).inc_by(n.max(0) as u64);
        tok("input", row.input_tokens);
        tok("output", row.output_tokens);
        for (kind, v) in [("value", row.value_usd), ("revenue", row.revenue_usd), ("cost", row.cost_usd)] {
            if v > 0.0 {
                self.usd.with_label_values(&[&row.tenant, kind]).inc_by(v);
            }
        }
        if let Some(result) = &row.cache {
            self.cache.with_label_values(&[&row.tenant, &row.model_requested, result]).inc();
        }
        self.latency.with_label_values(&[model]).observe(row.latency_ms / 1000.0);
        if let Some(t) = row.ttft_ms {
            self.ttft.with_label_values(&[model]).observe(t / 1000.0);
        }
    }

    /// Cache lookups so far, as (tenant, model asked for, result, count).
    pub fn cache_counts(&self) -> Vec<(String, String, String, u64)> {
        use prometheus::core::Collector;
        let mut out = Vec::new();
        for family in self.cache.collect() {
            for m in family.get_metric() {
                let label = |name: &str| {
                    m.get_label().iter().find(|l| l.name() == name).map(|l| l.value().to_string()).unwrap_or_default()
                };
                out.push((label("tenant"), label("model"), label("result"), m.get_counter().get_value() as u64));
            }
        }
        out
    }

    /// The text exposition of every series.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}
