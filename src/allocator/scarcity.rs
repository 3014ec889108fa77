//! The scarcity price of a pool's room, from the forecast and the measured load rather than a
//! fixed ramp: nested protection levels (Littlewood's rule, as EMSR-b applies it to nested
//! classes), with the room as a reusable resource.
//!
//! Densest first, the classes `1..=k` are protected against class `k + 1` by a level `y_k` of
//! free room that only they may take. Room comes back at the pool's capacity (engine-seconds
//! per second) while the denser classes draw it at their forecast work rate, so the room those
//! classes need beyond what is freed is the maximum of a random walk with negative drift
//! `capacity - rate`; with Poisson arrivals of works of mean `w` (and, lacking a measured second
//! moment, an exponential spread: `E[w^2] = 2 w^2`) its tail is about
//! `exp(-2 (capacity - rate) y / variance_rate)` (Kingman's approximation). Littlewood's rule
//! protects `y` where that tail equals the ratio of the densities, `d_{k+1} / d_{1..k}`:
//!
//! `y_k = variance_rate / (2 (capacity - rate)) x ln(d_{1..k} / d_{k+1})`,
//!
//! and all of the room when the denser classes alone ask for the whole capacity (as the LP would
//! plan it). Free room below `y_k` refuses class `k + 1` and everything less dense: the price is
//! then between the densities of the last class let in and the first one kept out (their
//! geometric mean, so a request's own density may vary around its class's). Zero when the room
//! left protects every class. No constant here depends on a workload: rates, works and densities
//! come from the forecast the LP was solved on.

use serde::{Deserialize, Serialize};

/// One forecast class asking for a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Want {
    /// Value per engine-second on this pool, USD.
    pub density: f64,
    /// Engine-seconds per second the class asks of it.
    pub work_rate: f64,
    /// Engine-seconds one request of the class takes (its mean).
    #[serde(default)]
    pub work: f64,
}

/// Sorts `wants` densest first (the order [`price`] reads them in).
pub fn order(wants: &mut [Want]) {
    wants.sort_by(|a, b| b.density.total_cmp(&a.density));
}

/// The free room (engine-seconds) that the classes `0..=k` of `wants` (densest first) keep from
/// the less dense ones, for every `k` but the last; nested (never smaller for a larger `k`).
pub fn protection_levels(wants: &[Want], capacity: f64) -> Vec<f64> {
    let (mut rate, mut var, mut value) = (0.0, 0.0, 0.0);
    let mut level: f64 = 0.0;
    let mut out = Vec::with_capacity(wants.len().saturating_sub(1));
    for (k, w) in wants.iter().enumerate() {
        let Some(below) = wants.get(k + 1) else { break };
        rate += w.work_rate.max(0.0);
        var += 2.0 * w.work_rate.max(0.0) * w.work.max(0.0);
        value += w.density * w.work_rate.max(0.0);
        let drift = capacity - rate;
        let y = if drift <= 0.0 {
            f64::INFINITY
        } else if rate <= 0.0 || below.density <= 0.0 {
            // Nothing denser is expected, or what is below is worth nothing.
            if below.density <= 0.0 && rate > 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        } else {
            let mean_density = value / rate;
            var / (2.0 * drift) * (mean_density / below.density).ln().max(0.0)
        };
        level = level.max(y);
        out.push(level);
    }
    out
}

/// The price of the pool's room now, USD per engine-second: `wants` densest first, `room_left`
/// engine-seconds free, `capacity` engine-seconds freed per second.
pub fn price(wants: &[Want], room_left: f64, capacity: f64) -> f64 {
    let levels = protection_levels(wants, capacity);
    match levels.iter().position(|&y| room_left < y) {
        Some(k) => (wants[k].density.max(0.0) * wants[k + 1].density.max(0.0)).sqrt(),
        None => 0.0,
    }
}

/// What protects the classes denser than `below` (USD per engine-second) on a pool's room: the
/// room they are expected to hold over a lifetime (`mean`, engine-seconds) and the margin
/// Littlewood's rule keeps above it (`margin`, which may be negative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Booking {
    pub below: f64,
    pub mean: f64,
    pub margin: f64,
}

/// Booking limits for the room as what it is: a reusable resource that a request holds for its
/// whole lifetime. Free-room levels ([`protection_levels`]) see room come back at the pool's
/// capacity; but work admitted now holds its room for a lifetime, so what protects denser
/// classes is a cap on how much of the room less dense work holds at once. Over a lifetime
/// `lifetime_s` the work the classes `0..=k` hold is that of an infinite-server queue: mean
/// `rate x lifetime`, variance `2 x rate x work x lifetime` (Poisson arrivals, exponential
/// works), about normal. Littlewood's rule protects the quantile of it where its tail equals the
/// ratio of the densities, `d_{k+1} / d_{1..k}`; less dense work may hold the rest
/// ([`booking_price`]). One per class but the densest, densest first; the threshold between
/// classes `k` and `k + 1` is their densities' geometric mean, as in [`price`].
pub fn booking_limits(wants: &[Want], lifetime_s: f64) -> Vec<Booking> {
    let (mut rate, mut var, mut value) = (0.0, 0.0, 0.0);
    let mut out = Vec::with_capacity(wants.len().saturating_sub(1));
    for (k, w) in wants.iter().enumerate() {
        let Some(below) = wants.get(k + 1) else { break };
        let r = w.work_rate.max(0.0);
        rate += r;
        var += 2.0 * r * w.work.max(0.0) * lifetime_s;
        value += w.density * r;
        let margin = if rate > 0.0 && below.density > 0.0 {
            let ratio = below.density / (value / rate);
            if ratio < 1.0 {
                normal_quantile(1.0 - ratio) * var.sqrt()
            } else {
                f64::NEG_INFINITY
            }
        } else if rate > 0.0 {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        };
        let below = (w.density.max(0.0) * below.density.max(0.0)).sqrt();
        out.push(Booking { below, mean: rate * lifetime_s, margin });
    }
    out
}

/// The price the booking limits set on a room of `room` engine-seconds with `held_below(d)`
/// engine-seconds in flight of work less dense than `d` and `held` in all: the threshold of the
/// first (densest) limit that work below it exceeds; zero when none is. Over the lifetime of work
/// admitted now, the denser classes' expected hold runs from what they hold now to the forecast
/// mean, so the larger of the two is protected; limits are nested (a less dense threshold never
/// leaves more room below it).
pub fn booking_price(limits: &[Booking], room: f64, held: f64, held_below: impl Fn(f64) -> f64) -> f64 {
    let mut level = f64::NEG_INFINITY;
    for b in limits {
        let below = held_below(b.below);
        let peak = b.mean.max(held - below);
        level = level.max(peak + b.margin).min(room);
        if below > room - level {
            return b.below;
        }
    }
    0.0
}

/// The standard normal quantile (Abramowitz and Stegun 26.2.23, error under 4.5e-4).
fn normal_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let q = if p < 0.5 { p } else { 1.0 - p };
    let t = (-2.0 * q.ln()).sqrt();
    let x = t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1.0 + t * (1.432788 + t * (0.189269 + 0.001308 * t)));
    if p < 0.5 {
        -x
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wants() -> Vec<Want> {
        let mut v = vec![
            Want { density: 1.0, work_rate: 1.0, work: 1.0 },
            Want { density: 5.0, work_rate: 1.0, work: 1.0 },
            Want { density: 2.0, work_rate: 1.0, work: 1.0 },
        ];
        order(&mut v);
        v
    }

    #[test]
    fn the_densest_classes_keep_room_by_littlewoods_rule() {
        // Capacity 4: the densest (5) asks 1, so drift 3, variance rate 2:
        // y_1 = 2 / 6 x ln(5 / 2); the two densest ask 2 (mean density 3.5), drift 2, variance 4:
        // y_2 = 4 / 4 x ln(3.5 / 1).
        let y = protection_levels(&wants(), 4.0);
        assert!((y[0] - (2.0 / 6.0) * (2.5f64).ln()).abs() < 1e-12, "{y:?}");
        assert!((y[1] - (3.5f64).ln()).abs() < 1e-12, "{y:?}");
        // Plenty of room: free. Below y_2: the least dense is kept out, the price between 2 and 1.
        assert_eq!(price(&wants(), 10.0, 4.0), 0.0);
        assert!((price(&wants(), 1.0, 4.0) - 2f64.sqrt()).abs() < 1e-12);
        // Below y_1: only the densest is let in.
        assert!((price(&wants(), 0.1, 4.0) - 10f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn denser_classes_that_fill_the_capacity_keep_all_of_the_room() {
        // Capacity 1.5: the densest alone fits (y_1 finite), the two densest do not.
        let y = protection_levels(&wants(), 1.5);
        assert!(y[0].is_finite() && y[1].is_infinite(), "{y:?}");
        assert!(price(&wants(), 1e9, 1.5) > 1.0, "the least dense class is kept out at any room");
    }

    #[test]
    fn one_class_is_never_priced_out_of_its_pool() {
        let one = [Want { density: 3.0, work_rate: 10.0, work: 1.0 }];
        assert_eq!(price(&one, 0.0, 1.0), 0.0);
        assert_eq!(price(&one, 5.0, 1.0), 0.0);
    }

    #[test]
    fn more_room_never_raises_the_price() {
        let w = wants();
        let mut last = f64::INFINITY;
        for r in 0..40 {
            let p = price(&w, r as f64 / 4.0, 4.0);
            assert!(p <= last);
            last = p;
        }
    }

    #[test]
    fn levels_are_nested_and_grow_with_the_denser_demand() {
        let mut w = wants();
        let y = protection_levels(&w, 4.0);
        assert!(y.windows(2).all(|p| p[0] <= p[1]));
        w[0].work_rate = 2.0;
        let busier = protection_levels(&w, 4.0);
        assert!(busier[0] > y[0], "{busier:?} vs {y:?}");
    }

    #[test]
    fn normal_quantiles_are_close() {
        for (p, z) in [(0.5, 0.0), (0.8, 0.841_621), (0.975, 1.959_964), (0.1, -1.281_552)] {
            assert!((normal_quantile(p) - z).abs() < 5e-4, "{p}: {}", normal_quantile(p));
        }
    }

    #[test]
    fn booking_limits_keep_the_quantile_of_what_denser_work_holds_over_a_lifetime() {
        // The denser class (5) holds 1 engine-second per second for 100 s, works of 1: mean 100,
        // variance 200; the ratio 2 / 5 protects its 60% quantile.
        let b = booking_limits(&wants(), 100.0);
        assert_eq!(b[0].mean, 100.0);
        assert!((b[0].margin - normal_quantile(0.6) * 200f64.sqrt()).abs() < 1e-9, "{b:?}");
        assert!((b[0].below - 10f64.sqrt()).abs() < 1e-12);
        let y0 = 100.0 + b[0].margin;
        // Nothing in flight, or less dense work within its limit: no price.
        assert_eq!(booking_price(&b, 400.0, 0.0, |_| 0.0), 0.0);
        assert_eq!(booking_price(&b, 400.0, 250.0, |d| if d > 3.0 { 399.0 - y0 } else { 0.0 }), 0.0);
        // Work below the first threshold holding more than its limit prices the room there.
        assert_eq!(booking_price(&b, 400.0, 301.0, |d| if d > 3.0 { 301.0 - y0 } else { 0.0 }), 0.0);
        assert_eq!(booking_price(&b, 400.0, 301.0, |d| if d > 3.0 { 401.0 - y0 } else { 0.0 }), 10f64.sqrt());
        // The denser class holding more than its forecast mean protects what it holds.
        let held_by_densest = 200.0;
        let rest = 400.0 - (held_by_densest + b[0].margin) + 1.0;
        let at = |d: f64| if d > 3.0 { rest } else { 0.0 };
        assert_eq!(booking_price(&b, 400.0, held_by_densest + rest, at), 10f64.sqrt());
        // Only the least dense in flight, below the second limit but above the first: the first.
        let y1 = b[1].mean + b[1].margin;
        assert!(y1 > y0, "nested: {b:?}");
        let x = 400.0 - (y0 + y1) / 2.0;
        assert_eq!(booking_price(&b, 400.0, x, |_| x), 2f64.sqrt());
        // Denser demand that fills the room leaves nothing to less dense work.
        let full = [Want { density: 5.0, work_rate: 5.0, work: 1.0 }, Want { density: 1.0, work_rate: 1.0, work: 1.0 }];
        let b = booking_limits(&full, 100.0);
        assert_eq!(booking_price(&b, 400.0, 1.0, |_| 1.0), 5f64.sqrt());
    }
}
