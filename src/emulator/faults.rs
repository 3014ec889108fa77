//! Fault injection: what can go wrong with a real engine, on purpose. A fault is chosen per
//! request, either named in the request's `x-emulator-fault` header (always) or drawn from the
//! server's `--fault KIND[=ARG]@RATE` rules (at random, reproducibly from the seed).
//!
//! | kind | argument | effect |
//! |---|---|---|
//! | `status` | HTTP status (default 500) | an OpenAI-shaped error with that status |
//! | `rate-limit` | seconds (default 1) | 429 with `Retry-After` |
//! | `reset` | | the connection is reset before any response |
//! | `stall-first` | ms (default 30000) | nothing at all for that long, then the answer |
//! | `stall-mid` | ms (default 30000) | half the answer, a pause, the rest |
//! | `slow` | ms (default 50) | each stream event that much later |
//! | `cut` | | half the answer, then the connection is reset |
//! | `truncate` | | half the answer, then a clean end (no `[DONE]`, or half a JSON body) |
//! | `malformed` | | an event (or a whole body) that is not JSON |

use rand::Rng;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The request header naming a fault for one request.
pub const HEADER: &str = "x-emulator-fault";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Status(u16),
    RateLimit { retry_after_s: u64 },
    Reset,
    StallFirst(Duration),
    StallMid(Duration),
    Slow(Duration),
    Cut,
    Truncate,
    Malformed,
}

/// Where in a response a fault acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Before any byte of the response.
    Before,
    /// Half way through the answer.
    Midway,
    /// On every event of a stream.
    Throughout,
}

impl Fault {
    pub fn stage(self) -> Stage {
        match self {
            Fault::Status(_) | Fault::RateLimit { .. } | Fault::Reset | Fault::StallFirst(_) => Stage::Before,
            Fault::StallMid(_) | Fault::Cut | Fault::Truncate | Fault::Malformed => Stage::Midway,
            Fault::Slow(_) => Stage::Throughout,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultParseError {
    #[error("unknown fault '{0}' (status, rate-limit, reset, stall-first, stall-mid, slow, cut, truncate, malformed)")]
    Unknown(String),
    #[error("fault '{kind}': bad argument '{arg}'")]
    BadArgument { kind: String, arg: String },
    #[error("fault '{0}' takes no argument")]
    NoArgument(String),
    #[error("fault rule '{0}': expected KIND[=ARG]@RATE with RATE between 0 and 1")]
    BadRate(String),
}

impl FromStr for Fault {
    type Err = FaultParseError;

    /// `KIND` or `KIND=ARG`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (kind, arg) = match s.split_once('=') {
            Some((k, a)) => (k.trim(), Some(a.trim())),
            None => (s, None),
        };
        let bad = || FaultParseError::BadArgument { kind: kind.to_string(), arg: arg.unwrap_or("").to_string() };
        let num = |default: u64| -> Result<u64, FaultParseError> {
            arg.map_or(Ok(default), |a| a.parse::<u64>().map_err(|_| bad()))
        };
        let none = |f: Fault| if arg.is_some() { Err(FaultParseError::NoArgument(kind.to_string())) } else { Ok(f) };
        match kind {
            "status" => {
                let code = num(500)?;
                if !(400..=599).contains(&code) {
                    return Err(bad());
                }
                Ok(Fault::Status(code as u16))
            }
            "rate-limit" => Ok(Fault::RateLimit { retry_after_s: num(1)? }),
            "stall-first" => Ok(Fault::StallFirst(Duration::from_millis(num(30_000)?))),
            "stall-mid" => Ok(Fault::StallMid(Duration::from_millis(num(30_000)?))),
            "slow" => Ok(Fault::Slow(Duration::from_millis(num(50)?))),
            "reset" => none(Fault::Reset),
            "cut" => none(Fault::Cut),
            "truncate" => none(Fault::Truncate),
            "malformed" => none(Fault::Malformed),
            other => Err(FaultParseError::Unknown(other.to_string())),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Status(c) => write!(f, "status={c}"),
            Fault::RateLimit { retry_after_s } => write!(f, "rate-limit={retry_after_s}"),
            Fault::Reset => f.write_str("reset"),
            Fault::StallFirst(d) => write!(f, "stall-first={}", d.as_millis()),
            Fault::StallMid(d) => write!(f, "stall-mid={}", d.as_millis()),
            Fault::Slow(d) => write!(f, "slow={}", d.as_millis()),
            Fault::Cut => f.write_str("cut"),
            Fault::Truncate => f.write_str("truncate"),
            Fault::Malformed => f.write_str("malformed"),
        }
    }
}

/// A fault and the share of requests it hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRule {
    pub fault: Fault,
    pub rate: f64,
}

impl FromStr for FaultRule {
    type Err = FaultParseError;

    /// `KIND[=ARG]@RATE`, e.g. `status=503@0.02`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (fault, rate) = s.rsplit_once('@').ok_or_else(|| FaultParseError::BadRate(s.to_string()))?;
        let rate: f64 = rate.trim().parse().map_err(|_| FaultParseError::BadRate(s.to_string()))?;
        if !(0.0..=1.0).contains(&rate) {
            return Err(FaultParseError::BadRate(s.to_string()));
        }
        Ok(FaultRule { fault: fault.parse()?, rate })
    }
}

/// The server's fault rules; at most one fault per request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    pub rules: Vec<FaultRule>,
}

#[derive(Debug, thiserror::Error)]
#[error("fault rates add up to {0}, more than 1")]
pub struct RatesTooHigh(f64);

impl FaultPlan {
    pub fn new(rules: Vec<FaultRule>) -> Result<Self, RatesTooHigh> {
        let total: f64 = rules.iter().map(|r| r.rate).sum();
        if total > 1.0 + 1e-9 {
            return Err(RatesTooHigh(total));
        }
        Ok(FaultPlan { rules })
    }

    /// The fault for one request: the header's if it names one, else a draw from the rules.
    pub fn choose(&self, header: Option<Fault>, rng: &mut impl Rng) -> Option<Fault> {
        if header.is_some() {
            return header;
        }
        if self.rules.is_empty() {
            return None;
        }
        let mut u: f64 = rng.random();
        for r in &self.rules {
            if u < r.rate {
                return Some(r.fault);
            }
            u -= r.rate;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_and_prints_every_kind() {
        for s in [
            "status=503",
            "rate-limit=2",
            "reset",
            "stall-first=1500",
            "stall-mid=10",
            "slow=5",
            "cut",
            "truncate",
            "malformed",
        ] {
            let f: Fault = s.parse().unwrap();
            assert_eq!(f.to_string(), s);
        }
        assert_eq!("status".parse::<Fault>().unwrap(), Fault::Status(500));
        assert!(matches!("status=200".parse::<Fault>(), Err(FaultParseError::BadArgument { .. })));
        assert!(matches!("reset=1".parse::<Fault>(), Err(FaultParseError::NoArgument(_))));
        assert!(matches!("melt".parse::<Fault>(), Err(FaultParseError::Unknown(_))));
        assert!(matches!("slow=fast".parse::<Fault>(), Err(FaultParseError::BadArgument { .. })));
    }

    #[test]
    fn rules_need_a_rate_in_range_and_rates_at_most_one() {
        let r: FaultRule = "status=502@0.25".parse().unwrap();
        assert_eq!(r, FaultRule { fault: Fault::Status(502), rate: 0.25 });
        assert!("reset".parse::<FaultRule>().is_err());
        assert!("reset@1.5".parse::<FaultRule>().is_err());
        assert!("reset@x".parse::<FaultRule>().is_err());
        assert!(FaultPlan::new(vec![r, r, r, r, r]).is_err());
    }

    #[test]
    fn draws_follow_the_rates_and_the_header_wins() {
        let plan = FaultPlan::new(vec![
            FaultRule { fault: Fault::Reset, rate: 0.1 },
            FaultRule { fault: Fault::Cut, rate: 0.2 },
        ])
        .unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let n = 20_000;
        let (mut reset, mut cut) = (0, 0);
        for _ in 0..n {
            match plan.choose(None, &mut rng) {
                Some(Fault::Reset) => reset += 1,
                Some(Fault::Cut) => cut += 1,
                None => {}
                Some(other) => panic!("unexpected {other}"),
            }
        }
        assert!((reset as f64 / n as f64 - 0.1).abs() < 0.01, "{reset}");
        assert!((cut as f64 / n as f64 - 0.2).abs() < 0.01, "{cut}");
        assert_eq!(plan.choose(Some(Fault::Malformed), &mut rng), Some(Fault::Malformed));
        assert_eq!(FaultPlan::default().choose(None, &mut rng), None);
    }
}
