//! Units every layer shares, with no dependencies of its own: token counts, prices per million
//! tokens, and the wall clock in Unix milliseconds with its UTC calendar month.

use std::time::{SystemTime, UNIX_EPOCH};

/// USD per million tokens, input and output.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub input_per_1m: f64,
    pub output_per_1m: f64,
}

impl Rates {
    pub fn charge(&self, t: Tokens) -> f64 {
        self.charge_f(t.input as f64, t.output as f64)
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
}

pub fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Unix milliseconds of the first instant of the UTC month containing `now_ms`.
pub fn month_start_ms(now_ms: i64) -> i64 {
    // Howard Hinnant's civil-from-days and days-from-civil.
    let days = now_ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5; // days since the 1st of the month
    (days - day) * 86_400_000
}

#[cfg(test)]
mod tests {
    #[test]
    fn month_starts_are_utc_calendar_months() {
        assert_eq!(super::month_start_ms(1_795_327_200_000), 1_793_491_200_000);
        assert_eq!(super::month_start_ms(1_709_251_200_000), 1_709_251_200_000);
        assert_eq!(super::month_start_ms(1_709_164_800_000), 1_706_745_600_000);
    }
}
