//! Metering: what each request used, cost and was worth, written to the ledger exactly once.
//!
//! A [`Meter`] is created for every request that passed authentication and travels with it. It
//! writes its ledger row when finished, or on drop if the request ended any other way (the client
//! went away, a task was cancelled), so no path can skip or double the row.

pub mod metrics;
pub mod row;
mod writer;

pub use row::{LedgerRow, Outcome};
pub use writer::{Durable, LedgerSink, LedgerWriter};

use crate::admission::Verdict;
use std::time::Instant;

pub use crate::units::{month_start_ms, unix_ms, Rates, Tokens};

/// The ledger entry of one request in flight.
pub struct Meter {
    row: LedgerRow,
    sink: LedgerSink,
    started: Instant,
    first_token: Option<Instant>,
    value_rates: Rates,
    price_rates: Rates,
    cost_rates: Rates,
    tokens: Tokens,
    written: bool,
    /// The request's trace span (disabled unless traces are exported): what the row says is
    /// recorded into it too.
    span: tracing::Span,
    /// The extraction watch, told the request's tokens when its row is written.
    watch: Option<(std::sync::Arc<crate::guard::Watch>, u64)>,
}

impl Meter {
    /// `price_rates`: what the tenant pays per token; `value_rates`: what its work is worth.
    pub fn new(
        sink: LedgerSink,
        id: String,
        tenant: &str,
        key_id: &str,
        endpoint: &str,
        price_rates: Rates,
        value_rates: Rates,
    ) -> Self {
        let now = unix_ms();
        Self {
            row: LedgerRow {
                id,
                client_request_id: None,
                tenant: tenant.into(),
                key_id: key_id.into(),
                endpoint: endpoint.into(),
                model_requested: String::new(),
                model_served: None,
                backend: None,
                stream: false,
                status: 0,
                outcome: String::new(),
                error: None,
                input_tokens: 0,
                output_tokens: 0,
                cached_input_tokens: 0,
                cache_write_tokens: 0,
                tokens_estimated: false,
                attempts: 0,
                ttft_ms: None,
                latency_ms: 0.0,
                cost_usd: 0.0,
                value_usd: 0.0,
                revenue_usd: 0.0,
                started_at_ms: now,
                finished_at_ms: now,
                decision: Verdict::None.as_str().into(),
                price: None,
                net_value: None,
                service_tier: None,
                bid_per_1k: None,
                cache: None,
                guard: None,
            },
            sink,
            started: Instant::now(),
            first_token: None,
            value_rates,
            price_rates,
            cost_rates: Rates::default(),
            tokens: Tokens::default(),
            written: false,
            span: tracing::Span::none(),
            watch: None,
        }
    }

    pub fn id(&self) -> &str {
        &self.row.id
    }

    /// Records the client's own request id beside the gateway's.
    pub fn client_request_id(&mut self, id: Option<String>) {
        self.row.client_request_id = id;
    }

    /// The request is charged and valued at these rates (its service tier's, once classified).
    pub fn rates(&mut self, price_rates: Rates, value_rates: Rates) {
        self.price_rates = price_rates;
        self.value_rates = value_rates;
    }

    pub fn requested(&mut self, model: &str, stream: bool) {
        self.row.model_requested = model.into();
        self.row.stream = stream;
    }

    /// Records an attempt on `backend` serving `model` at `cost_rates`.
    pub fn attempt(&mut self, model: &str, backend: &str, cost_rates: Rates) {
        self.row.attempts += 1;
        self.row.model_served = Some(model.into());
        self.row.backend = Some(backend.into());
        self.cost_rates = cost_rates;
    }

    /// Scales the value this request earns (a downgraded request keeps `quality` of it).
    pub fn keep_value_share(&mut self, quality: f64) {
        self.value_rates = self.value_rates.scaled(quality);
    }

    /// Records admission's decision.
    pub fn decision(&mut self, decision: Verdict, price: Option<f64>, net_value: Option<f64>) {
        self.row.decision = decision.as_str().into();
        self.row.price = price;
        self.row.net_value = net_value;
    }

    /// Records the service tier the request is served at.
    pub fn service_tier(&mut self, tier: &'static str) {
        self.row.service_tier = Some(tier.into());
    }

    /// Records the request's bid, USD per 1,000 tokens.
    pub fn bid(&mut self, bid_per_1k: f64) {
        self.row.bid_per_1k = Some(bid_per_1k);
    }

    /// Records a cache lookup's result (`exact`, `semantic` or `miss`).
    pub fn cache(&mut self, result: &'static str) {
        self.row.cache = Some(result.into());
    }

    /// The request was answered from the cache: `model`'s stored answer, no backend, no cost.
    pub fn served_from_cache(&mut self, model: &str, tokens: Tokens) {
        self.row.model_served = Some(model.into());
        self.row.decision = Verdict::Cache.as_str().into();
        self.cost_rates = Rates::default();
        self.tokens = tokens;
        self.first_token();
    }

    /// Tokens recorded so far.
    pub fn current_tokens(&self) -> Tokens {
        self.tokens
    }

    pub fn first_token(&mut self) {
        self.first_token.get_or_insert_with(Instant::now);
    }

    /// Tokens known so far (updated as a stream goes, so a cut stream still records them).
    pub fn tokens(&mut self, t: Tokens) {
        self.tokens = t;
    }

    /// Writes the row with its final status; the response's end may wait on the returned
    /// [`Durable`] for the row's commit.
    /// Records this request's attributes into `span` as they become known.
    pub fn trace(&mut self, span: tracing::Span) {
        self.span = span;
    }

    /// What the extraction watch did about this request.
    pub fn guard(&mut self, what: String) {
        self.row.guard = Some(what);
    }

    /// Tells `watch` this request's tokens (under `request_hash`) when it ends.
    pub fn watched(&mut self, watch: std::sync::Arc<crate::guard::Watch>, request_hash: u64) {
        self.watch = Some((watch, request_hash));
    }

    pub fn finish(mut self, status: u16, outcome: Outcome, error: Option<String>) -> Durable {
        self.write(status, outcome, error)
    }

    /// The row this meter would write, not written anywhere: the caller records it (a batch
    /// line's row goes into the transaction that records the line's result).
    pub fn into_row(mut self, status: u16, outcome: Outcome, error: Option<String>) -> LedgerRow {
        self.written = true;
        self.fill(status, outcome, error);
        self.row.clone()
    }

    fn write(&mut self, status: u16, outcome: Outcome, error: Option<String>) -> Durable {
        if self.written {
            return Durable::none();
        }
        self.written = true;
        self.fill(status, outcome, error);
        self.sink.record(self.row.clone())
    }

    fn fill(&mut self, status: u16, outcome: Outcome, error: Option<String>) {
        if let Some((w, id)) = self.watch.take() {
            // Only an answer counts as one: a refused or failed request is an arrival alone.
            let t = self.tokens;
            let tokens = |n: i64| n.clamp(0, i64::from(u32::MAX)) as u32;
            w.done(id, (outcome == Outcome::Ok).then(|| (tokens(t.input), tokens(t.output))));
        }
        let r = &mut self.row;
        r.status = status;
        r.outcome = outcome.as_str().into();
        r.error = error;
        r.input_tokens = self.tokens.input;
        r.output_tokens = self.tokens.output;
        r.cached_input_tokens = self.tokens.cached_input;
        r.cache_write_tokens = self.tokens.cache_write;
        r.tokens_estimated = self.tokens.estimated;
        r.ttft_ms = self.first_token.map(|t| t.duration_since(self.started).as_secs_f64() * 1e3);
        r.latency_ms = self.started.elapsed().as_secs_f64() * 1e3;
        r.finished_at_ms = unix_ms();
        // Value is earned only by a completed response; cost is incurred by whatever was generated.
        r.value_usd = if outcome == Outcome::Ok { self.value_rates.charge(self.tokens) } else { 0.0 };
        r.revenue_usd = if outcome == Outcome::Ok { self.price_rates.charge(self.tokens) } else { 0.0 };
        r.cost_usd = self.cost_rates.charge(self.tokens);
        if !self.span.is_disabled() {
            let s = &self.span;
            s.record("gen_ai.request.model", r.model_requested.as_str());
            if let Some(m) = &r.model_served {
                s.record("gen_ai.response.model", m.as_str());
            }
            s.record("gen_ai.usage.input_tokens", r.input_tokens);
            s.record("gen_ai.usage.output_tokens", r.output_tokens);
            s.record("tollgate.decision", r.decision.as_str());
            if let Some(p) = r.price {
                s.record("tollgate.price", p);
            }
            if let Some(c) = &r.cache {
                s.record("tollgate.cache", c.as_str());
            }
            s.record("http.response.status_code", i64::from(r.status));
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        // Any end other than `finish`: the client went away (nginx's 499).
        let _ = self.write(499, Outcome::ClientClosed, Some("client closed the connection".into()));
    }
}
