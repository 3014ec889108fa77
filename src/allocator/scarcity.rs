//! The scarcity price of a pool's room, from the forecast and the measured load rather than a
//! fixed ramp: over the next request lifetime the pool can take the room left now plus what its
//! capacity frees meanwhile; the price is the value per engine-second of the densest-first class
//! at which the forecast work of that time no longer fits (zero when all of it fits). This is the
//! protection-level rule of revenue management (Belobaba's EMSR, with the forecast of the next
//! lifetime as the demand to protect for): room is kept for work worth more only when that work
//! is expected to need it.

use serde::{Deserialize, Serialize};

/// One forecast class asking for a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Want {
    /// Value per engine-second on this pool, USD.
    pub density: f64,
    /// Engine-seconds per second the class asks of it.
    pub work_rate: f64,
}

/// Sorts `wants` densest first (the order [`price`] reads them in).
pub fn order(wants: &mut [Want]) {
    wants.sort_by(|a, b| b.density.total_cmp(&a.density));
}

/// The price of the pool's room now, USD per engine-second: `wants` densest first, `room_left`
/// engine-seconds free, `capacity` engine-seconds freed per second, `horizon_s` a request's
/// lifetime.
pub fn price(wants: &[Want], room_left: f64, capacity: f64, horizon_s: f64) -> f64 {
    let supply = room_left.max(0.0) + capacity.max(0.0) * horizon_s.max(0.0);
    let mut asked = 0.0;
    for w in wants {
        asked += w.work_rate * horizon_s.max(0.0);
        if asked > supply {
            return w.density;
        }
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wants() -> Vec<Want> {
        let mut v = vec![
            Want { density: 1.0, work_rate: 1.0 },
            Want { density: 5.0, work_rate: 1.0 },
            Want { density: 2.0, work_rate: 1.0 },
        ];
        order(&mut v);
        v
    }

    #[test]
    fn free_while_the_forecast_fits_and_the_marginal_class_once_it_does_not() {
        // Capacity 3 per second takes all three classes: no scarcity.
        assert_eq!(price(&wants(), 0.0, 3.0, 10.0), 0.0);
        // Capacity 2: the least dense class is the one that does not fit.
        assert_eq!(price(&wants(), 0.0, 2.0, 10.0), 1.0);
        // Capacity 1 and a full room: only the densest fits.
        assert_eq!(price(&wants(), 0.0, 1.0, 10.0), 2.0);
        // The same with 15 engine-seconds of room left: the second class fits too.
        assert_eq!(price(&wants(), 15.0, 1.0, 10.0), 1.0);
    }

    #[test]
    fn more_room_never_raises_the_price() {
        let w = wants();
        let mut last = f64::INFINITY;
        for r in 0..40 {
            let p = price(&w, r as f64, 0.5, 10.0);
            assert!(p <= last);
            last = p;
        }
    }
}
