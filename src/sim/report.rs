//! What a replay reports: per policy, the value captured (and its share of the hindsight bound),
//! decisions per class, latency and SLA attainment per tier, decisions and value over time, and
//! each pool's price and room use over time. Serialised as the `--json` file and drawn by the
//! HTML report.

use super::des::{Fate, PoolSample, SimRequest};
use super::scenario::Scenario;
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct ClassReport {
    pub class: String,
    pub tier: String,
    pub requests: usize,
    pub admitted: usize,
    pub downgraded: usize,
    pub deferred: usize,
    pub refused: usize,
    pub dropped: usize,
    pub within_sla: usize,
    pub value_usd: f64,
}

/// Latency and SLA attainment of one tier's served requests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TierReport {
    pub tier: String,
    pub served: usize,
    pub ttft_p50_s: f64,
    pub ttft_p95_s: f64,
    pub e2e_p50_s: f64,
    pub e2e_p95_s: f64,
    /// Share of served requests within the TTFT objective, and within the end-to-end objective
    /// (or batch deadline); 1 where the tier has none.
    pub ttft_attainment: f64,
    pub e2e_attainment: f64,
}

/// Requests by arrival time: one bucket, per class.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    pub start_s: f64,
    /// Per class, in scenario order: [admitted, downgraded, deferred, refused or dropped].
    pub decisions: Vec<[usize; 4]>,
    /// Value captured from the requests that arrived in the bucket, USD.
    pub value_usd: f64,
}

/// A pool over time, averaged per point: price (USD per engine-second), share of its
/// reservation room in use, share of its KV cache held, requests waiting in its engines.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolSeries {
    pub pool: String,
    pub t_s: Vec<f64>,
    pub price: Vec<f64>,
    pub room_use: Vec<f64>,
    pub kv_use: Vec<f64>,
    pub waiting: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    pub policy: String,
    pub value_usd: f64,
    /// Value over the hindsight bound on SLA-safe capacity (absent when not computed).
    pub share_of_hindsight: Option<f64>,
    /// Value over the bound on every engine's whole time: a true bound on any policy here.
    pub share_of_full_bound: Option<f64>,
    /// Value over the hindsight schedule replayed through the engines (the achievable reference).
    pub share_of_replay: Option<f64>,
    /// Share of served requests within their SLA.
    pub sla_attainment: f64,
    pub classes: Vec<ClassReport>,
    pub tiers: Vec<TierReport>,
    pub timeline: Vec<Bucket>,
    pub pools: Vec<PoolSeries>,
    /// Share of prompt tokens the engines served from their prefix caches.
    pub prefix_hit_share: f64,
}

/// The hindsight figures: the bound on SLA-safe capacity, a feasible schedule's value under it,
/// and the looser bound on every engine's whole time (USD).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Hindsight {
    pub bound_usd: f64,
    pub feasible_usd: f64,
    pub full_engines_bound_usd: f64,
    /// The better of the two hindsight schedules (planned on SLA-safe capacity, and on full
    /// engines) replayed through the engines: value within SLA, USD, and which it was.
    pub replay_usd: f64,
    pub replay_basis: super::plan::Basis,
}

/// A whole run: the `--json` file, and what the HTML report draws.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub description: String,
    pub overload: f64,
    pub requests: usize,
    pub duration_s: f64,
    pub hindsight: Option<Hindsight>,
    pub policies: Vec<PolicyReport>,
}

/// Points kept per time series.
const POINTS: usize = 240;

/// Whether a served request met its tier's objectives: (TTFT, end to end or deadline).
pub fn sla_parts(sc: &Scenario, class: usize, ttft: f64, e2e: f64) -> (bool, bool) {
    let Some(tier) = sc.tier(&sc.classes[class].tier) else { return (true, true) };
    let ttft_ok = ttft <= tier.ttft_slo_s();
    let e2e_ok = tier.e2e_slo_ms.is_none_or(|s| e2e <= s as f64 / 1000.0);
    let deadline_ok = !tier.deferrable || e2e <= tier.deadline_ms as f64 / 1000.0;
    (ttft_ok, e2e_ok && deadline_ok)
}

/// The `q` quantile of ascending `sorted` samples (nearest rank); 0 when there are none.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Summarises one policy's replay. `value_of` is a request's full value, USD.
pub fn summarise(
    sc: &Scenario,
    policy: &str,
    reqs: &[SimRequest],
    fates: &[Fate],
    prices: &[PoolSample],
    value_of: impl Fn(&SimRequest) -> f64,
    hindsight: Option<f64>,
) -> PolicyReport {
    let mut classes: Vec<ClassReport> = sc
        .classes
        .iter()
        .map(|c| ClassReport { class: c.name.clone(), tier: c.tier.clone(), ..Default::default() })
        .collect();
    let tier_of = |class: usize| sc.tiers.iter().position(|t| t.name == sc.classes[class].tier);
    let mut lat: Vec<(Vec<f64>, Vec<f64>, usize, usize)> = vec![Default::default(); sc.tiers.len()];
    let span = reqs.last().map(|r| r.at).unwrap_or(0.0).max(1e-9);
    let width = nice_width(span / 120.0);
    let mut timeline: Vec<Bucket> = (0..=(span / width) as usize)
        .map(|k| Bucket { start_s: k as f64 * width, decisions: vec![[0; 4]; sc.classes.len()], value_usd: 0.0 })
        .collect();
    let (mut value, mut met, mut served) = (0.0, 0, 0);
    for (r, f) in reqs.iter().zip(fates) {
        let c = &mut classes[r.class];
        let last = timeline.len() - 1;
        let b = &mut timeline[((r.at / width) as usize).min(last)];
        c.requests += 1;
        match *f {
            Fate::Served { pool, quality, ttft, e2e, deferred } => {
                served += 1;
                let kind = if deferred {
                    c.deferred += 1;
                    2
                } else if sc.pools[pool].name != sc.classes[r.class].pool {
                    c.downgraded += 1;
                    1
                } else {
                    c.admitted += 1;
                    0
                };
                b.decisions[r.class][kind] += 1;
                let (ttft_ok, e2e_ok) = sla_parts(sc, r.class, ttft, e2e);
                if let Some(t) = tier_of(r.class) {
                    let l = &mut lat[t];
                    l.0.push(ttft);
                    l.1.push(e2e);
                    l.2 += usize::from(ttft_ok);
                    l.3 += usize::from(e2e_ok);
                }
                if ttft_ok && e2e_ok {
                    met += 1;
                    c.within_sla += 1;
                    let v = quality * value_of(r);
                    c.value_usd += v;
                    b.value_usd += v;
                    value += v;
                }
            }
            Fate::Refused => {
                c.refused += 1;
                b.decisions[r.class][3] += 1;
            }
            Fate::Dropped => {
                c.dropped += 1;
                b.decisions[r.class][3] += 1;
            }
        }
    }
    let tiers = sc
        .tiers
        .iter()
        .zip(lat)
        .map(|(t, (mut ttft, mut e2e, ttft_ok, e2e_ok))| {
            ttft.sort_by(f64::total_cmp);
            e2e.sort_by(f64::total_cmp);
            let n = ttft.len();
            let share = |k: usize| if n > 0 { k as f64 / n as f64 } else { 1.0 };
            TierReport {
                tier: t.name.clone(),
                served: n,
                ttft_p50_s: percentile(&ttft, 0.5),
                ttft_p95_s: percentile(&ttft, 0.95),
                e2e_p50_s: percentile(&e2e, 0.5),
                e2e_p95_s: percentile(&e2e, 0.95),
                ttft_attainment: share(ttft_ok),
                e2e_attainment: share(e2e_ok),
            }
        })
        .collect();
    PolicyReport {
        policy: policy.to_string(),
        value_usd: value,
        share_of_hindsight: hindsight.filter(|h| *h > 0.0).map(|h| value / h),
        share_of_full_bound: None,
        share_of_replay: None,
        sla_attainment: if served > 0 { met as f64 / served as f64 } else { 0.0 },
        classes,
        tiers,
        timeline,
        pools: pool_series(sc, prices),
        prefix_hit_share: 0.0,
    }
}

/// A bucket width of 1, 2 or 5 times a power of ten seconds, at least `raw`.
fn nice_width(raw: f64) -> f64 {
    let raw = raw.max(1.0);
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|w| *w >= raw).unwrap_or(10.0 * p)
}

/// Each pool's samples, averaged down to at most [`POINTS`] points.
fn pool_series(sc: &Scenario, prices: &[PoolSample]) -> Vec<PoolSeries> {
    sc.pools
        .iter()
        .enumerate()
        .map(|(p, spec)| {
            let mine: Vec<&PoolSample> = prices.iter().filter(|s| s.pool == p).collect();
            let per = mine.len().div_ceil(POINTS).max(1);
            let mut s = PoolSeries { pool: spec.name.clone(), ..Default::default() };
            for chunk in mine.chunks(per) {
                let n = chunk.len() as f64;
                let avg = |f: fn(&PoolSample) -> f64| chunk.iter().map(|x| f(x)).sum::<f64>() / n;
                s.t_s.push(chunk[0].t);
                s.price.push(avg(|x| x.price));
                s.room_use.push(avg(|x| x.room_use));
                s.kv_use.push(avg(|x| x.kv_use));
                s.waiting.push(avg(|x| x.waiting as f64));
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_widths_are_round() {
        assert_eq!(nice_width(0.3), 1.0);
        assert_eq!(nice_width(4.0), 5.0);
        assert_eq!(nice_width(7.0), 10.0);
        assert_eq!(nice_width(120.0), 200.0);
    }

    #[test]
    fn percentiles_pick_the_ranked_sample() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
