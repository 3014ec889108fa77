//! The scarcity price of a pool's room, from the forecast and the measured load rather than a
//! fixed ramp: over the next request lifetime the pool can take the room left now plus what its
//! capacity frees meanwhile. Densest first, the classes that fit are served; the first that does
//! not fit in full is the marginal one, and the price is the value per engine-second of the class
//! below it (zero when there is none, or when everything fits): the marginal class is served
//! while there is room, the classes below it are kept out of room the denser ones are expected
//! to need. This is the protection-level rule of revenue management (Belobaba's EMSR, with the
//! forecast of the next lifetime as the demand to protect for). Pricing at the marginal class's
//! own density would refuse half of it even in an empty pool (a single class whose forecast
//! exceeds capacity would be refused while the pool sits idle).

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
    for (i, w) in wants.iter().enumerate() {
        asked += w.work_rate * horizon_s.max(0.0);
        if asked > supply {
            return wants.get(i + 1).map_or(0.0, |below| below.density);
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
        // Densities 5, 2, 1, each 1 engine-second per second. Capacity 3 takes all: no scarcity.
        assert_eq!(price(&wants(), 0.0, 3.0, 10.0), 0.0);
        // Capacity 2.5: the least dense class is marginal, served while there is room.
        assert_eq!(price(&wants(), 0.0, 2.5, 10.0), 0.0);
        // Capacity 1.5: the second is marginal; the third is kept out.
        assert_eq!(price(&wants(), 0.0, 1.5, 10.0), 1.0);
        // Capacity 0.5 and a full room: the densest is marginal, the others are kept out.
        assert_eq!(price(&wants(), 0.0, 0.5, 10.0), 2.0);
        // The same with 10 engine-seconds of room left: the second becomes the marginal one.
        assert_eq!(price(&wants(), 10.0, 0.5, 10.0), 1.0);
    }

    #[test]
    fn one_class_above_capacity_is_not_priced_out_of_an_empty_pool() {
        let one = [Want { density: 3.0, work_rate: 10.0 }];
        assert_eq!(price(&one, 5.0, 1.0, 2.0), 0.0);
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
