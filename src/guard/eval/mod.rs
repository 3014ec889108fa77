//! `tollgate guard eval`: the extraction watch on generated traffic. Two halves, built from
//! disjoint halves of the prompts and of the traces' time: the watch's weights and the flagging
//! threshold are chosen on the first (the least threshold that flags at most 0.5% of its normal
//! tenants), and recall, false flags and time to detection are reported on the second. A
//! leave-one-kind-out run checks each campaign kind with weights fitted without it.

pub mod data;
pub mod population;

use super::score::Weights;
use super::signals::Features;
use super::sketch::sign;
use super::tracker::{Arrival, Settings, Tracker};
use population::{Kind, Population, Tenant};
use serde::Serialize;

/// Detection must come within this long of a campaign's first request.
pub const DETECT_WITHIN_MS: i64 = 600_000;

/// The largest share of normal tenants the watch may flag (the target).
pub const FALSE_FLAG_TARGET: f64 = 0.01;

/// The share of the tuning half's normal tenants the chosen threshold may flag: half the target,
/// since a share estimated on a thousand tenants moves by about that much between halves (with
/// the full target and 400 tenants a half, the held-out half's rate was 1.25-2% on two seeds of
/// the development runs).
pub const TUNING_FALSE_FLAGS: f64 = FALSE_FLAG_TARGET / 2.0;

/// One tenant's signals after each of its requests (time, signals).
pub struct Replay {
    pub tenants: Vec<Tenant>,
    pub first_ms: Vec<i64>,
    pub trail: Vec<Vec<(i64, Features)>>,
}

/// Runs a half's requests through the watch's tracker (each request's end recorded as it
/// arrives) and keeps every tenant's signals after each request.
pub fn replay(pop: Population, settings: Settings) -> Replay {
    let mut t = Tracker::new(settings);
    let n = pop.tenants.len();
    let (mut first_ms, mut trail) = (vec![i64::MAX; n], vec![Vec::new(); n]);
    for (i, r) in pop.requests.into_iter().enumerate() {
        let a = Arrival {
            id: i as u64,
            tenant: pop.tenants[r.tenant].name.clone(),
            key: r.key,
            t_ms: r.t_ms,
            sign: sign(&r.text),
            logprobs: r.logprobs,
            max_tokens: r.max_tokens,
        };
        t.observe(a);
        // Only the tenant's signals are kept (a campaign is one tenant), so its keys are not scored.
        let Some((tenant, _)) = t.finish(i as u64, r.input_tokens, r.output_tokens) else { continue };
        first_ms[r.tenant] = first_ms[r.tenant].min(r.t_ms);
        trail[r.tenant].push((r.t_ms, t.tenant_standing(&tenant).features));
    }
    Replay { tenants: pop.tenants, first_ms, trail }
}

/// Per tenant: its highest score and when it first reached `threshold` (ms after its first
/// request), if it did.
fn outcomes(r: &Replay, w: &Weights, min: usize, threshold: f64) -> Vec<(f64, Option<i64>)> {
    r.trail
        .iter()
        .zip(&r.first_ms)
        .map(|(tr, first)| {
            let (mut high, mut at) = (0.0f64, None);
            for (t, f) in tr {
                let s = w.snapshot(*f, min).score;
                high = high.max(s);
                if at.is_none() && s >= threshold {
                    at = Some(t - first);
                }
            }
            (high, at)
        })
        .collect()
}

/// Fits weights on a replay's tenants (every fourth of a tenant's requests from the minimum on;
/// each tenant weighing the same within its class, campaigns as much in all as normal tenants),
/// leaving out campaigns of `without`.
pub fn fit(r: &Replay, min: usize, without: Option<Kind>) -> Weights {
    let mut samples = Vec::new();
    let kept = |c: bool| r.tenants.iter().filter(|t| t.kind.is_campaign() == c && Some(t.kind) != without).count();
    let class = [kept(false).max(1) as f64, kept(true).max(1) as f64];
    for (t, tr) in r.tenants.iter().zip(&r.trail) {
        if Some(t.kind) == without {
            continue;
        }
        let picked: Vec<&Features> = tr.iter().map(|x| &x.1).filter(|f| f.requests >= min).step_by(4).collect();
        let w = 1.0 / picked.len().max(1) as f64 / class[usize::from(t.kind.is_campaign())];
        samples.extend(picked.into_iter().map(|f| (*f, t.kind.is_campaign(), w)));
    }
    Weights::fit(&samples, 1e-3)
}

/// The least threshold flagging at most [`TUNING_FALSE_FLAGS`] of a replay's normal tenants.
pub fn choose_threshold(r: &Replay, w: &Weights, min: usize) -> f64 {
    let mut highs: Vec<f64> = outcomes(r, w, min, 2.0)
        .into_iter()
        .zip(&r.tenants)
        .filter(|(_, t)| !t.kind.is_campaign())
        .map(|(o, _)| o.0)
        .collect();
    highs.sort_by(|a, b| b.total_cmp(a));
    let allowed = (highs.len() as f64 * TUNING_FALSE_FLAGS).floor() as usize;
    // Just above the highest normal score that must not be flagged.
    highs.get(allowed).map_or(0.5, |h| (h + 1e-6).min(1.0))
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub name: String,
    pub tenants: usize,
    pub flagged: usize,
    pub within_10_min: usize,
    /// Median and largest time to detection of those flagged, seconds.
    pub median_s: Option<f64>,
    pub max_s: Option<f64>,
}

fn group(name: String, of: &[(&Tenant, (f64, Option<i64>))]) -> Group {
    let mut at: Vec<f64> = of.iter().filter_map(|(_, o)| o.1).map(|ms| ms as f64 / 1e3).collect();
    at.sort_by(f64::total_cmp);
    Group {
        name,
        tenants: of.len(),
        flagged: at.len(),
        within_10_min: at.iter().filter(|&&s| s * 1e3 <= DETECT_WITHIN_MS as f64).count(),
        median_s: at.get(at.len() / 2).copied(),
        max_s: at.last().copied(),
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub weights: Weights,
    pub threshold: f64,
    pub min_requests: usize,
    /// Normal tenants flagged on the tuning half (at most 1% by construction).
    pub tuning_false_flags: Group,
    /// Reported on the held-out half.
    pub normal: Group,
    pub campaigns: Group,
    pub by_kind: Vec<Group>,
    pub by_rate: Vec<Group>,
    pub by_stealth: Vec<Group>,
    /// Normal tenants flagged on the held-out half, by kind.
    pub false_flags_by_kind: Vec<Group>,
    /// Each campaign kind on the held-out half, with weights and threshold chosen on the tuning
    /// half without that kind.
    pub leave_one_kind_out: Vec<Group>,
    /// The gateway's shipped weights and default threshold on the held-out half: normal tenants,
    /// campaigns.
    pub shipped: [Group; 2],
    /// The held-out half's campaigns not flagged within [`DETECT_WITHIN_MS`].
    pub late: Vec<Late>,
}

/// A campaign the watch did not flag within [`DETECT_WITHIN_MS`] of its first request.
#[derive(Debug, Clone, Serialize)]
pub struct Late {
    pub name: String,
    /// Its requests in that time.
    pub requests: usize,
    /// Its highest score in that time.
    pub score: f64,
    /// When it was flagged, seconds after its first request, if it was.
    pub flagged_s: Option<f64>,
}

fn late(r: &Replay, w: &Weights, min: usize, o: &[(f64, Option<i64>)]) -> Vec<Late> {
    let rows = r.tenants.iter().zip(&r.trail).zip(&r.first_ms).zip(o);
    rows.filter(|(((t, _), _), o)| t.kind.is_campaign() && o.1.is_none_or(|ms| ms > DETECT_WITHIN_MS))
        .map(|(((t, tr), first), o)| {
            let early: Vec<&Features> = tr.iter().filter(|x| x.0 - first <= DETECT_WITHIN_MS).map(|x| &x.1).collect();
            Late {
                name: t.name.clone(),
                requests: early.len(),
                score: early.iter().map(|f| w.snapshot(**f, min).score).fold(0.0, f64::max),
                flagged_s: o.1.map(|ms| ms as f64 / 1e3),
            }
        })
        .collect()
}

/// Chooses on `tune`, reports on `test`.
pub fn evaluate(tune: &Replay, test: &Replay, min: usize) -> Report {
    let weights = fit(tune, min, None);
    let threshold = choose_threshold(tune, &weights, min);
    let o = outcomes(test, &weights, min, threshold);
    let late = late(test, &weights, min, &o);
    let rows: Vec<(&Tenant, (f64, Option<i64>))> = test.tenants.iter().zip(o).collect();
    let sel = |f: &dyn Fn(&Tenant) -> bool| rows.iter().filter(|(t, _)| f(t)).cloned().collect::<Vec<_>>();
    let tuned = outcomes(tune, &weights, min, threshold);
    let tuned: Vec<_> = tune.tenants.iter().zip(tuned).filter(|(t, _)| !t.kind.is_campaign()).collect();
    let leave = Kind::CAMPAIGNS
        .iter()
        .map(|&k| {
            let w = fit(tune, min, Some(k));
            let th = choose_threshold(tune, &w, min);
            let o = outcomes(test, &w, min, th);
            let of: Vec<_> = test.tenants.iter().zip(o).filter(|(t, _)| t.kind == k).collect();
            group(format!("{k:?} (threshold {th:.3})"), &of)
        })
        .collect();
    Report {
        weights,
        threshold,
        min_requests: min,
        tuning_false_flags: group("normal (tuning half)".into(), &tuned),
        normal: group("normal".into(), &sel(&|t| !t.kind.is_campaign())),
        campaigns: group("campaigns".into(), &sel(&|t| t.kind.is_campaign())),
        by_kind: Kind::CAMPAIGNS.iter().map(|&k| group(format!("{k:?}"), &sel(&|t| t.kind == k))).collect(),
        by_rate: population::RATES
            .iter()
            .map(|&r| group(format!("{r} req/s"), &sel(&|t| t.kind.is_campaign() && t.rate_per_s == r)))
            .collect(),
        by_stealth: [false, true]
            .iter()
            .map(|&s| {
                let name = if s { "stealthy" } else { "open" };
                group(name.into(), &sel(&|t| t.kind.is_campaign() && t.stealth == s))
            })
            .collect(),
        false_flags_by_kind: Kind::NORMAL
            .iter()
            .map(|&(k, _)| group(format!("{k:?}"), &sel(&|t| t.kind == k)))
            .collect(),
        leave_one_kind_out: leave,
        shipped: {
            let o = outcomes(test, &Weights::default(), min, super::score::DEFAULT_THRESHOLD);
            let of: Vec<_> = test.tenants.iter().zip(o).collect();
            let part = |c: bool| of.iter().filter(|(t, _)| t.kind.is_campaign() == c).cloned().collect::<Vec<_>>();
            [
                group("normal (shipped defaults)".into(), &part(false)),
                group("campaigns (shipped defaults)".into(), &part(true)),
            ]
        },
        late,
    }
}

#[cfg(test)]
mod tests {
    use super::data::{Prompts, Timing};
    use super::*;
    use crate::sim::trace::TraceRequest;

    /// Small made-up prompts and a bursty made-up trace: enough for every kind to run.
    fn inputs(salt: &str) -> (Prompts, Vec<Timing>) {
        let q = |n: usize, what: &str| -> Vec<String> {
            (0..n)
                .map(|i| format!("{what} {salt} question number {i} about topic{} and matter{}", i % 13, i % 7))
                .collect()
        };
        let prompts = Prompts {
            mmlu: (0..6).map(|s| (format!("subject{s}"), q(40, &format!("subject{s}")))).collect(),
            gsm8k: q(60, "arithmetic"),
            quora: q(200, "curious"),
        };
        let mut at = 0.0;
        let requests = (0..2000)
            .map(|i| {
                at += if i % 8 == 0 { 20.0 } else { 0.2 };
                TraceRequest {
                    at_s: at,
                    input_tokens: 500,
                    output_tokens: 100 + (i % 200) as u32,
                    block_hashes: vec![],
                }
            })
            .collect();
        (prompts, vec![Timing { name: "bursty".into(), requests }])
    }

    #[test]
    fn weights_and_threshold_chosen_on_one_half_flag_campaigns_of_the_other() {
        let settings = Settings::default();
        let (p0, t0) = inputs("a");
        let (p1, t1) = inputs("b");
        let tune = replay(population::generate(&p0, &t0, 1, 200, 1800.0), settings);
        let test = replay(population::generate(&p1, &t1, 2, 200, 1800.0), settings);
        let r = evaluate(&tune, &test, settings.min_requests);
        assert_eq!(r.campaigns.tenants, 48);
        assert_eq!(r.normal.tenants, 200);
        assert!(
            r.tuning_false_flags.flagged <= 1,
            "at most 0.5% of 200 on the tuning half: {:?}",
            r.tuning_false_flags
        );
        assert!(r.campaigns.flagged >= 36, "most campaigns are flagged: {:?}", r.campaigns);
        assert!(r.normal.flagged <= 10, "{:?}", r.normal);
        assert!(r.by_rate.iter().all(|g| g.tenants == 16));
        assert_eq!(r.leave_one_kind_out.len(), 4);
    }
}
