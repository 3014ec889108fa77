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
}
