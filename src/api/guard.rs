//! The guard stage: tells the extraction watch of every classified request (before the cache, so
//! answers replayed from it count too) and applies the model's `extraction` policy to a tenant
//! the watch scores at or above the policy's threshold. What it did goes in the ledger's `guard`
//! column; the request's tokens reach the watch when its row is written.

use super::classify::Classified;
use super::error::ApiError;
use super::gateway::Gateway;
use crate::auth::Caller;
use crate::config::ExtractionPolicy;
use crate::guard::watch::request_hash;
use crate::guard::{Seen, Watch};
use crate::metering::{unix_ms, Meter};
use serde_json::Value;

/// How much of the token distribution a request asks for, in [0, 1]: chat's `top_logprobs` or
/// the completions API's `logprobs` count, over 20; at least a quarter when it asks at all.
pub fn logprob_level(body: &Value) -> f64 {
    let top = body.get("top_logprobs").and_then(Value::as_u64);
    let asked = match body.get("logprobs") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => return n.as_u64().map_or(0.0, |k| (k as f64 / 20.0).clamp(0.25, 1.0)),
        _ => false,
    };
    if !asked {
        return 0.0;
    }
    (top.unwrap_or(0) as f64 / 20.0).clamp(0.25, 1.0)
}

/// Applies the model's policy to the tenant's last standing and observes the request unless the
/// policy stopped it (a refused or throttled request reaches no model, so it does not push the
/// answers it is judged on out of the tenant's window: a refusal holds while they are in it).
/// Returns the risk premium (USD per 1,000 tokens) admission must add, or the refusal or
/// throttle.
pub fn guard(
    gw: &Gateway,
    caller: &Caller,
    c: &Classified,
    request_id: &str,
    meter: &mut Meter,
) -> Result<Option<f64>, ApiError> {
    let Some(watch) = &gw.guard else { return Ok(None) };
    let verdict = apply(gw, watch, caller, c, meter);
    if verdict.is_ok() {
        let hash = request_hash(request_id);
        let prompt = c.prompt.clone();
        watch.arrive(Seen {
            request_id: hash,
            tenant: caller.tenant.clone(),
            key: caller.key_id.clone(),
            t_ms: unix_ms(),
            text: Box::new(move || prompt.router_text()),
            logprobs: logprob_level(&c.json),
            max_tokens: c.max_tokens,
        });
        meter.watched(watch.clone(), hash);
    }
    verdict
}

fn apply(
    gw: &Gateway,
    watch: &Watch,
    caller: &Caller,
    c: &Classified,
    meter: &mut Meter,
) -> Result<Option<f64>, ApiError> {
    let Some(policy) = gw.cfg.model(&c.model).and_then(|m| m.extraction) else { return Ok(None) };
    let Some(standing) = watch.tenant(&caller.tenant) else { return Ok(None) };
    let snap = standing.snapshot();
    if snap.score < policy.threshold() {
        return Ok(None);
    }
    meter.guard(format!("{} {:.2}: {}", policy.name(), snap.score, snap.reasons.join(", ")));
    tracing::info!(tenant = %caller.tenant, model = %c.model, score = snap.score, action = policy.name(), "extraction policy applied");
    match policy {
        ExtractionPolicy::Flag { .. } => Ok(None),
        ExtractionPolicy::Premium { per_1k_usd, .. } => Ok(Some(per_1k_usd)),
        ExtractionPolicy::Throttle { per_minute, .. } => {
            let now = unix_ms();
            if standing.take(&c.model, per_minute, now) {
                return Ok(None);
            }
            let retry_after_s = ((60_000 - now.rem_euclid(60_000)) as u64).div_ceil(1000);
            Err(ApiError::ExtractionThrottled { model: c.model.clone(), per_minute, retry_after_s })
        }
        ExtractionPolicy::Refuse { .. } => Err(ApiError::ExtractionRisk(c.model.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::logprob_level;
    use serde_json::json;

    #[test]
    fn logprob_levels_follow_how_much_of_the_distribution_is_asked_for() {
        assert_eq!(logprob_level(&json!({})), 0.0);
        assert_eq!(logprob_level(&json!({"logprobs": false, "top_logprobs": 20})), 0.0);
        assert_eq!(logprob_level(&json!({"logprobs": true})), 0.25);
        assert_eq!(logprob_level(&json!({"logprobs": true, "top_logprobs": 20})), 1.0);
        assert_eq!(logprob_level(&json!({"logprobs": 5})), 0.25);
        assert_eq!(logprob_level(&json!({"logprobs": 0})), 0.25);
    }
}
