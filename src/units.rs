//! Units every layer shares, with no dependencies of its own: token counts, prices per million
//! tokens, and the wall clock in Unix milliseconds with its UTC calendar month.

use std::time::{SystemTime, UNIX_EPOCH};

/// USD per million tokens, input and output; input read from or written to an upstream's prompt
/// cache at its own rate where one is set (else as other input).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub input_per_1m: f64,
    pub output_per_1m: f64,
    pub cached_input_per_1m: Option<f64>,
    pub cache_write_per_1m: Option<f64>,
}

impl Rates {
    /// Input and output at these rates, cache reads and writes as other input.
    pub fn new(input_per_1m: f64, output_per_1m: f64) -> Self {
        Self { input_per_1m, output_per_1m, ..Self::default() }
    }

    /// The same rates with cache reads and writes priced apart (`None`: as other input).
    pub fn with_cache(self, cached_input_per_1m: Option<f64>, cache_write_per_1m: Option<f64>) -> Self {
        Self { cached_input_per_1m, cache_write_per_1m, ..self }
    }

    /// Every rate times `share` (a downgraded request keeps `share` of its value).
    pub fn scaled(self, share: f64) -> Self {
        Self {
            input_per_1m: self.input_per_1m * share,
            output_per_1m: self.output_per_1m * share,
            cached_input_per_1m: self.cached_input_per_1m.map(|r| r * share),
            cache_write_per_1m: self.cache_write_per_1m.map(|r| r * share),
        }
    }

    /// USD for `t`: cache reads and writes (parts of the input) at their rates, the rest of the
    /// input and the output at theirs.
    pub fn charge(&self, t: Tokens) -> f64 {
        let read = t.cached_input.clamp(0, t.input.max(0));
        let write = t.cache_write.clamp(0, t.input.max(0) - read);
        let plain = (t.input - read - write) as f64;
        let at = |r: Option<f64>| r.unwrap_or(self.input_per_1m);
        (read as f64 * at(self.cached_input_per_1m) + write as f64 * at(self.cache_write_per_1m)) / 1e6
            + self.charge_f(plain, t.output as f64)
    }

    /// USD for (possibly expected, fractional) token counts.
    pub fn charge_f(&self, input: f64, output: f64) -> f64 {
        (input * self.input_per_1m + output * self.output_per_1m) / 1e6
    }
}

/// Tokens a request used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: i64,
    pub output: i64,
    pub estimated: bool,
    /// Of `input`: read from the upstream's prompt cache (as the upstream reported).
    pub cached_input: i64,
    /// Of `input`: written to the upstream's prompt cache (Anthropic's cache creation).
    pub cache_write: i64,
}

impl Tokens {
    /// Input and output without cache reads or writes.
    pub fn new(input: i64, output: i64, estimated: bool) -> Self {
        Self { input, output, estimated, ..Self::default() }
    }
}

pub fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The UTC calendar date (year, month 1-12, day 1-31) of a Unix time in milliseconds (Howard
/// Hinnant's civil-from-days).
pub fn civil_date(ms: i64) -> (i64, u32, u32) {
    let days = ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m as u32, d as u32)
}

/// Unix milliseconds of the first instant of the UTC month containing `now_ms`.
pub fn month_start_ms(now_ms: i64) -> i64 {
    let (_, _, day) = civil_date(now_ms);
    (now_ms.div_euclid(86_400_000) - i64::from(day) + 1) * 86_400_000
}

/// An `f64` ordered by `total_cmp` (equal only when that says so), for ordered keys and heaps.
#[derive(Debug, Clone, Copy)]
pub struct Total(pub f64);

impl PartialEq for Total {
    fn eq(&self, o: &Self) -> bool {
        self.0.total_cmp(&o.0).is_eq()
    }
}
impl Eq for Total {}
impl PartialOrd for Total {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Total {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_reads_and_writes_are_priced_apart_where_a_rate_is_set() {
        let t = Tokens { cached_input: 600, cache_write: 100, ..Tokens::new(1000, 50, false) };
        let plain = Rates::new(3.0, 15.0);
        assert!((plain.charge(t) - (1000.0 * 3.0 + 50.0 * 15.0) / 1e6).abs() < 1e-15);
        let cached = plain.with_cache(Some(0.3), Some(3.75));
        assert!((cached.charge(t) - (300.0 * 3.0 + 600.0 * 0.3 + 100.0 * 3.75 + 50.0 * 15.0) / 1e6).abs() < 1e-15);
        // Counts an upstream got wrong (more cached than input) are clamped to the input.
        let odd = Tokens { cached_input: 5000, cache_write: 7, ..Tokens::new(1000, 0, false) };
        assert!((cached.charge(odd) - 1000.0 * 0.3 / 1e6).abs() < 1e-15);
        assert!((cached.scaled(0.5).charge(t) - cached.charge(t) / 2.0).abs() < 1e-15);
    }

    #[test]
    fn month_starts_are_utc_calendar_months() {
        assert_eq!(super::month_start_ms(1_795_327_200_000), 1_793_491_200_000);
        assert_eq!(super::month_start_ms(1_709_251_200_000), 1_709_251_200_000);
        assert_eq!(super::month_start_ms(1_709_164_800_000), 1_706_745_600_000);
    }
}
