//! The admission stage of the gateway's request path: counts the prompt, checks the tier's
//! context limit and the tenant's budget, prices the request on every pool that may serve it and
//! asks the pure policy ([`crate::admission::decide`]) what to do: serve (possibly on a cheaper
//! model), hold batch work until its price clears or its deadline, or refuse with a quote.
//! What it grants (a capacity reservation, a budget hold) lives in [`Admitted`], released on drop.

use super::classify::Classified;
use super::ApiError;
use crate::admission::defer::Window;
use crate::admission::reservation::Reservation;
use crate::admission::round::{self, Outcome};
use crate::admission::{Candidate, Verdict};
use crate::allocator::forecast::{ClassKey, PRIOR_OUTPUT};
use crate::allocator::waiting::Waiting;
use crate::auth::Caller;
use crate::metering::{Meter, Rates, Tokens};
use crate::state::{Denied, TenantHold};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long after its deadline a waiting request stops waiting even if no price correction
/// wakes it (they come every 50 ms; this only guards against their stopping).
const DEFER_BACKSTOP: Duration = Duration::from_secs(1);

/// What admission granted a request; dropping it gives everything back.
pub struct Admitted {
    /// The model (pool) that will serve: the one asked for, or a cheaper fallback.
    pub model: String,
    pub decision: Verdict,
    pub price: Option<f64>,
    hold: Option<TenantHold>,
    _reservation: Option<Reservation>,
    class: ClassKey,
    /// The pool serving it and when it was admitted, for the pool's lifetime estimate.
    pool: Option<usize>,
    admitted_at: Instant,
    charge: Rates,
    gw_allocator: Option<Arc<crate::allocator::Allocator>>,
    /// `max_tokens` to send upstream for a request that set none but whose hold assumed it.
    pub output_cap: Option<u32>,
    /// For a request served because of its bid: the price per 1,000 tokens that cleared it (what
    /// it is charged, never above the bid).
    pub cleared_per_1k: Option<f64>,
}

impl Admitted {
    /// The upstream's first token came: the request's prefill leaves its pool's backlog.
    pub fn first_token(&mut self) {
        let ttft = self.admitted_at.elapsed().as_secs_f64();
        let Some(q) = self._reservation.as_mut().and_then(|r| r.first_token()) else { return };
        if let (Some(a), Some(pool)) = (&self.gw_allocator, self.pool) {
            a.observe_first_token(pool, q, ttft);
        }
    }

    /// The client left mid-response: nothing is charged, but what was generated counts against
    /// the tenant's token window. The forecast learns nothing from a cut response.
    pub fn abandon(mut self, tokens: Tokens) {
        if let Some(h) = self.hold.take() {
            h.settle(0.0, (tokens.input + tokens.output).max(0) as u64);
        }
    }

    /// Settles the budget with the real charge (nothing for a failed response) and feeds the
    /// real output length back into the forecast.
    pub fn settle(mut self, tokens: Tokens, ok: bool) {
        if let Some(h) = self.hold.take() {
            let used = (tokens.input + tokens.output).max(0) as u64;
            h.settle(if ok { self.charge.charge(tokens) } else { 0.0 }, used);
        }
        if let Some(a) = &self.gw_allocator {
            a.observe_finish(&self.class, tokens.output as f64);
            if let (Some(pool), true) = (self.pool, ok) {
                a.observe_lifetime(pool, self.admitted_at.elapsed().as_secs_f64());
            }
        }
    }
}

/// What admission reads: the configuration, the allocator (when any model is capacity-managed),
/// the shared state (budgets, windows, reservations across replicas) and the routers.
#[derive(Clone, Copy)]
pub struct Admission<'a> {
    pub cfg: &'a crate::config::Config,
    pub allocator: Option<&'a Arc<crate::allocator::Allocator>>,
    pub state: &'a Arc<dyn crate::state::SharedState>,
    pub routers: &'a std::collections::HashMap<String, Arc<super::estimate::Router>>,
}

/// Admits a request that may bid up to `bid_per_1k` USD per 1,000 tokens (the client's
/// `x-tollgate-max-price`, checked against the tenant's `max_bid_per_1k`). A bid raises the value
/// the request is priced at; a request served only because of its bid is charged the price that
/// cleared it, per token, never more than its bid; one its tier's value clears pays its tier.
/// Work that may wait (a deferrable tier's, or a batch line with its `window_ms`) holds out for
/// a lower price the more of its window is ahead. A risk premium (`premium_per_1k`, from the
/// model's extraction policy) is taken off the value the request is priced at: it must clear the
/// capacity's price and the premium.
#[allow(clippy::too_many_arguments)]
pub async fn admit(
    gw: Admission<'_>,
    caller: &Caller,
    c: &Classified,
    bid_per_1k: Option<f64>,
    premium_per_1k: Option<f64>,
    window_ms: Option<&std::ops::Range<i64>>,
    meter: &mut Meter,
) -> Result<Admitted, ApiError> {
    let cfg = gw.cfg;
    let bid = allowed_bid(cfg, &caller.tenant, bid_per_1k)?;
    if let Some(b) = bid {
        meter.bid(b);
    }
    // The tenant's tier, or the one its `service_tier` names: limits, charge and value all follow it.
    let tier = cfg.request_tier(&caller.tenant, c.service());
    let class = ClassKey { tenant: caller.tenant.clone(), model: c.model.clone(), service: c.service() };
    let managed = gw.allocator.filter(|a| cfg.admission.enabled && a.fleet.pool(&c.model).is_some());
    let limit = tier.and_then(|t| t.max_context_tokens);
    let tenant_cfg = cfg.tenant(&caller.tenant);
    let token_limited = tenant_cfg.is_some_and(|t| t.tokens_per_minute.is_some());
    let budgeted = tenant_cfg.is_some_and(|t| t.monthly_budget_usd.is_some());
    let input = if managed.is_some() || limit.is_some() || token_limited || budgeted { c.prompt.count() } else { 0 };
    if let Some(limit) = limit {
        if input > i64::from(limit) {
            return Err(ApiError::PromptTooLong { tokens: input as u64, limit });
        }
    }
    // The most this request may generate: nothing for embeddings; else `max_tokens` (times
    // `n`), or, for a tenant whose budget or token window must hold, the tier's
    // `default_max_tokens`, which is then sent upstream so the bound is real.
    let output_cap = if c.prompt.is_embedding() {
        Some(0)
    } else {
        c.max_tokens
            .or_else(|| {
                (budgeted || token_limited)
                    .then(|| tier.map(|t| t.default_max_tokens).unwrap_or(crate::config::DEFAULT_MAX_TOKENS))
            })
            .map(|m| m.saturating_mul(c.choices))
    };
    let out_est = match managed {
        Some(a) => a.expected_output(&class, c.max_tokens),
        None => output_cap.map(f64::from).unwrap_or(PRIOR_OUTPUT),
    };
    let charge = tier.map(crate::config::TierConfig::price_rates).unwrap_or_default();
    // The budget holds and the token window counts the most this request may use, its prompt
    // and its output cap (the expected output when it has none, for tenants without limits);
    // both are settled to the real count.
    let bound_out = output_cap.map(f64::from).unwrap_or(out_est);
    let counted_tokens = input.max(0) as u64 + bound_out.ceil() as u64;
    // A bid may be charged in full: the hold covers the larger of the tier's charge and the bid.
    let bid_usd = |tokens: f64| bid.map_or(0.0, |b| b * tokens / 1000.0);
    let hold_usd = charge.charge_f(input as f64, bound_out).max(bid_usd(input as f64 + bound_out));
    let hold = admit_tenant(gw, &caller.tenant, hold_usd, counted_tokens).await?;
    let mut admitted = Admitted {
        model: c.model.clone(),
        decision: Verdict::None,
        price: None,
        hold: Some(hold),
        _reservation: None,
        class: class.clone(),
        pool: None,
        admitted_at: Instant::now(),
        charge,
        gw_allocator: managed.cloned(),
        output_cap: output_cap.filter(|_| c.max_tokens.is_none() && !c.prompt.is_embedding()),
        cleared_per_1k: None,
    };
    let Some(alloc) = managed else { return Ok(admitted) };

    alloc.observe_arrival(&class, input as f64);
    let tier_value =
        tier.map(crate::config::TierConfig::value_rates).unwrap_or_default().charge_f(input as f64, out_est);
    let premium = premium_per_1k.map_or(0.0, |p| p * (input as f64 + out_est) / 1000.0);
    let value = tier_value.max(bid_usd(input as f64 + out_est)) - premium;
    let deferrable = tier.is_some_and(|t| t.deferrable);
    // How long it may wait for its price to clear (a deferrable tier's deadline, or a share of
    // the tier's TTFT objective), as the simulator's requests do.
    let patience_s =
        tier.map_or(0.0, |t| crate::admission::defer::patience_s(t.deferrable, t.deadline_ms, t.ttft_slo_s()));
    let arrived = Instant::now();
    let deadline = arrived.checked_add(Duration::from_secs_f64(patience_s.min(1e9))).unwrap_or(arrived);
    let window = deferrable.then(|| waiting_window(alloc.now(), window_ms));
    let ttft_slo_s = tier.map(|t| t.ttft_slo_s()).unwrap_or(f64::INFINITY);
    let tokens = input as f64 + out_est;
    // The router's estimate for this prompt, computed once: the fallbacks' quality.
    let p_weak = match (gw.routers.get(&c.model), c.prompt.router_text()) {
        (Some(r), Some(t)) => r.estimate(&t).await,
        _ => None,
    };
    let mut waiting: Option<Waiting> = None;
    loop {
        let wait = window.map(|w| (w, alloc.now()));
        // What is left of its TTFT objective after any wait so far.
        let ttft_slo_s = ttft_slo_s - arrived.elapsed().as_secs_f64();
        let req =
            round::Request { class: &class, input: input as f64, output: out_est, value, ttft_slo_s, wait, p_weak };
        let r = round::round(alloc, cfg, &req).expect("managed model has a pool");
        match r.outcome {
            Outcome::Serve { cand, reservation, downgraded, net, price } => {
                if let Some(res) = share(gw, alloc, cand.pool, reservation).await? {
                    admitted.model = alloc.fleet.pools[cand.pool].name.clone();
                    admitted.decision = if waiting.is_some() {
                        Verdict::Defer
                    } else if downgraded {
                        Verdict::Downgrade
                    } else {
                        Verdict::Admit
                    };
                    admitted.price = Some(price);
                    admitted.pool = Some(cand.pool);
                    admitted.admitted_at = Instant::now();
                    admitted._reservation = Some(res);
                    if let Some(b) = bid {
                        // What the pool's capacity costs this request, kept at the pool's quality.
                        let cleared = price * cand.work / cand.quality.max(1e-9);
                        if cleared > tier_value {
                            let per_1k = (cleared / tokens.max(1.0) * 1000.0).min(b);
                            admitted.charge = Rates::new(per_1k * 1000.0, per_1k * 1000.0);
                            admitted.cleared_per_1k = Some(per_1k);
                            meter.rates(admitted.charge, Rates::new(b * 1000.0, b * 1000.0));
                        }
                    }
                    meter.decision(admitted.decision, Some(price), Some(net));
                    meter.keep_value_share(cand.quality);
                    if downgraded {
                        tracing::debug!(tenant = %class.tenant, asked = %class.model, served = %admitted.model, net, price, "downgraded: the asked-for pool is dearer than the request's value");
                    }
                    return Ok(admitted);
                }
                // Another replica took the room meanwhile: price again (or wait, for batch).
                if !deferrable {
                    continue;
                }
            }
            // Another request took the room meanwhile: price again (or wait, for batch).
            Outcome::Contended if !deferrable => continue,
            Outcome::Contended | Outcome::Defer => {}
            // Not worth serving now: refused, unless it may still wait for its price.
            Outcome::Refuse { quote_per_1k, price } => {
                if Instant::now() >= deadline {
                    return Err(refuse(alloc, &class, &r.asked, quote_per_1k, price, value, meter));
                }
            }
        }
        // Work that may wait does, for its price to clear, until its deadline. Only the densest
        // waiting request of the pool is priced again (after each price correction, or at once
        // when the one ahead leaves the queue); the others keep waiting. Past its deadline a
        // request is refused without being priced again, as in the simulator (where one not at
        // the head gets no last try either).
        let asked = r.asked;
        let past = || Instant::now() >= deadline;
        if !past() {
            let w = waiting.get_or_insert_with(|| {
                let window = window.unwrap_or_else(|| waiting_window(alloc.now(), None));
                let until = alloc.now() + deadline.saturating_duration_since(Instant::now()).as_secs_f64();
                Waiting::enqueue(alloc, asked.pool, value / asked.work.max(1e-12), window, until)
            });
            w.turn(deadline, DEFER_BACKSTOP).await;
        }
        if past() {
            return Err(refuse(alloc, &class, &asked, asked.quote_per_1k(tokens), asked.price, value, meter));
        }
    }
}

/// The window over which work that may wait holds out for a lower price, on the allocator's
/// clock (`now` being its time now): a batch line's completion window. A request its client
/// holds open (a deferrable tier's) has none: it takes whatever clears, as soon as it clears,
/// and waits at most its tier's `deadline_ms`.
fn waiting_window(now: f64, window_ms: Option<&std::ops::Range<i64>>) -> Window {
    match window_ms {
        Some(w) => {
            let unix = crate::units::unix_ms();
            Window { opened_s: now - (unix - w.start) as f64 / 1000.0, closes_s: now + (w.end - unix) as f64 / 1000.0 }
        }
        None => Window { opened_s: now, closes_s: now },
    }
}

/// The request's bid if its tenant may bid that much: a tenant without `max_bid_per_1k` may not
/// bid at all, and no bid may exceed it.
fn allowed_bid(cfg: &crate::config::Config, tenant: &str, bid: Option<f64>) -> Result<Option<f64>, ApiError> {
    let Some(b) = bid else { return Ok(None) };
    let invalid = |message: String| ApiError::InvalidValue { message, param: "x-tollgate-max-price" };
    match cfg.tenant(tenant).and_then(|t| t.max_bid_per_1k) {
        None => Err(invalid("Your tenant may not bid: x-tollgate-max-price is not accepted.".into())),
        Some(max) if b > max => {
            Err(invalid(format!("A bid of {b} USD per 1,000 tokens is above your tenant's limit of {max}.")))
        }
        Some(_) => Ok(Some(b)),
    }
}

/// Admits the tenant (budget hold, token and request windows) through the state, mapping a
/// refusal to its error.
pub async fn admit_tenant(gw: Admission<'_>, tenant: &str, hold_usd: f64, tokens: u64) -> Result<TenantHold, ApiError> {
    let limits = gw.cfg.tenant(tenant);
    match gw.state.admit_tenant(tenant, hold_usd, tokens).await {
        Ok(Ok(grant)) => Ok(TenantHold::new(gw.state.clone(), grant)),
        Ok(Err(Denied::Budget)) => Err(ApiError::BudgetExceeded),
        Ok(Err(Denied::Tokens(retry_after_s))) => Err(ApiError::RateLimited {
            what: "tokens",
            limit: limits.and_then(|t| t.tokens_per_minute).unwrap_or(0),
            retry_after_s,
        }),
        Ok(Err(Denied::Requests(retry_after_s))) => Err(ApiError::RateLimited {
            what: "requests",
            limit: limits.and_then(|t| t.requests_per_minute).unwrap_or(0),
            retry_after_s,
        }),
        Err(e) => {
            tracing::debug!(error = %e, "admission refused: shared state unreachable");
            Err(ApiError::StateUnavailable)
        }
    }
}

/// Holds a reservation made in this replica's view (which counts the other replicas' last known
/// load) across every replica too, atomically, when replicas share state. A refusal from the
/// shared state refreshes the view, so the next pricing sees the room is gone.
async fn share(
    gw: Admission<'_>,
    alloc: &crate::allocator::Allocator,
    pool: usize,
    mut r: Reservation,
) -> Result<Option<Reservation>, ApiError> {
    let load = &alloc.load(pool);
    let room = crate::state::micro(load.room());
    match gw.state.reserve_pool(pool, r.amount(), r.prefill(), room).await {
        Ok(None) => Ok(Some(r)),
        Ok(Some(view)) if view.granted => {
            let state = gw.state.clone();
            let epoch = view.epoch;
            r.share(Box::new(move |work, prefill| state.release_pool(pool, work, prefill, epoch)));
            load.set_others(&view);
            Ok(Some(r))
        }
        Ok(Some(view)) => {
            drop(r);
            load.set_others(&view);
            Ok(None)
        }
        Err(e) => {
            tracing::debug!(error = %e, "reservation refused: shared state unreachable");
            Err(ApiError::StateUnavailable)
        }
    }
}

fn refuse(
    alloc: &crate::allocator::Allocator,
    class: &ClassKey,
    asked: &Candidate,
    quote_per_1k: f64,
    price: f64,
    value: f64,
    meter: &mut Meter,
) -> ApiError {
    let retry_after_s = alloc.drain_seconds(asked.pool);
    meter.decision(Verdict::Refuse, Some(price), Some(asked.net(value)));
    tracing::debug!(tenant = %class.tenant, model = %class.model, price, value, quote_per_1k, "refused: capacity is priced above the request's value");
    ApiError::Priced { model: class.model.clone(), quote_per_1k, price, retry_after_s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::classify::{read_request, Route};
    use crate::metering::LedgerSink;
    use crate::state::{LocalState, SharedState, TenantLimits};
    use std::collections::HashMap;

    struct Deps {
        cfg: crate::config::Config,
        alloc: Arc<crate::allocator::Allocator>,
        state: Arc<dyn SharedState>,
        routers: HashMap<String, Arc<crate::api::estimate::Router>>,
    }

    impl Deps {
        fn new() -> Self {
            let cfg = crate::config::one_pool_for_tests(1);
            let limits = cfg
                .tenants
                .iter()
                .map(|t| (t.name.clone(), TenantLimits { budget_usd: t.monthly_budget_usd, ..Default::default() }))
                .collect();
            let alloc = Arc::new(crate::allocator::Allocator::new(&cfg).unwrap());
            Self { cfg, alloc, state: Arc::new(LocalState::new(limits)), routers: HashMap::new() }
        }

        fn admission(&self) -> Admission<'_> {
            Admission { cfg: &self.cfg, allocator: Some(&self.alloc), state: &self.state, routers: &self.routers }
        }
    }

    fn chat(text: &str, max_tokens: Option<u32>) -> Classified {
        let mut body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": text}]});
        if let Some(m) = max_tokens {
            body["max_tokens"] = m.into();
        }
        read_request(Route::Chat, body.to_string().as_bytes()).unwrap()
    }

    fn meter(tenant: &str) -> Meter {
        let (sink, _rows) = LedgerSink::detached();
        Meter::new(sink, "req_test".into(), tenant, "k", "/v1/chat/completions", Rates::default(), Rates::default())
    }

    fn caller(tenant: &str) -> Caller {
        Caller { tenant: tenant.into(), key_id: "k".into() }
    }

    #[tokio::test]
    async fn a_managed_request_is_admitted_on_its_pool_and_gives_its_capacity_back() {
        let d = Deps::new();
        let admitted = admit(d.admission(), &caller("a"), &chat("hello", Some(8)), None, None, None, &mut meter("a"))
            .await
            .unwrap();
        assert_eq!((admitted.model.as_str(), admitted.decision), ("m", Verdict::Admit));
        assert!(admitted.price.is_some() && d.alloc.load(0).inflight() > 0.0);
        assert_eq!(admitted.output_cap, None, "the client's max_tokens stands");
        admitted.settle(Tokens::new(5, 8, false), true);
        assert_eq!(d.alloc.load(0).inflight(), 0.0);
    }

    #[tokio::test]
    async fn a_budgeted_hold_counts_the_prompt_and_caps_an_unbounded_output() {
        let d = Deps::new();
        // 100 micro-USD at 1 and 2 USD per 1M tokens: a long prompt alone does not fit.
        let long = "word ".repeat(200);
        let err =
            admit(d.admission(), &caller("b"), &chat(&long, Some(1)), None, None, None, &mut meter("b")).await.err();
        assert!(matches!(err, Some(ApiError::BudgetExceeded)), "{err:?}");
        // No max_tokens: the tier's default cap is held, and sent upstream.
        let admitted = admit(d.admission(), &caller("b"), &chat("hi", None), None, None, None, &mut meter("b")).await;
        let err = admitted.err();
        assert!(
            matches!(err, Some(ApiError::BudgetExceeded)),
            "4,096 output tokens at 2 USD/1M exceed 100 micro-USD: {err:?}"
        );
        let admitted =
            admit(d.admission(), &caller("b"), &chat("hi", Some(20)), None, None, None, &mut meter("b")).await.unwrap();
        let (spent, held) = d.state.tenant_usage("b").await.unwrap().unwrap();
        assert_eq!(spent, 0.0);
        assert!(held >= 40e-6, "the hold covers the output cap: {held}");
        drop(admitted);
    }
}
