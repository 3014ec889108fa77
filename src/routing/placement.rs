//! Placement of a request on one replica of a pool: round-robin, least-loaded, or prefix-aware.
//! Prefix-aware placement keeps an affinity index from prompt-prefix block hashes (chained, so a
//! hash names the whole prefix up to its block) to the replica that last served that prefix,
//! and sends a request to the replica holding its longest prefix, unless that replica is busier
//! than the least-loaded one by more than the guard, so one replica is not swamped by a popular
//! prefix. The simulator and the gateway both place through [`Placer`].

use std::collections::{HashMap, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    RoundRobin,
    #[default]
    LeastLoaded,
    Prefix,
}

impl Placement {
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::RoundRobin => "round_robin",
            Placement::LeastLoaded => "least_loaded",
            Placement::Prefix => "prefix",
        }
    }
}

/// Most prefix blocks remembered; the oldest are forgotten first.
const MAX_BLOCKS: usize = 1 << 20;

#[derive(Debug)]
pub struct Placer {
    policy: Placement,
    next: usize,
    /// Block hash -> replica that last received a prompt with that prefix.
    owner: HashMap<u64, usize>,
    order: VecDeque<u64>,
    /// A prefix match is honoured while its replica's load is at most the least load plus
    /// `guard_abs`, and at most `guard_ratio` times it.
    guard_abs: u32,
    guard_ratio: f64,
}

impl Placer {
    pub fn new(policy: Placement) -> Self {
        Self { policy, next: 0, owner: HashMap::new(), order: VecDeque::new(), guard_abs: 4, guard_ratio: 2.0 }
    }

    pub fn policy(&self) -> Placement {
        self.policy
    }

    /// The replica for a request whose prompt's block hashes are `hashes`, given each replica's
    /// load (requests running and waiting); `eligible[i]` false excludes replica i. `None` if
    /// no replica is eligible. Records the choice in the affinity index.
    pub fn choose(&mut self, hashes: &[u64], loads: &[u32], eligible: &[bool]) -> Option<usize> {
        let ok: Vec<usize> = (0..loads.len()).filter(|&i| eligible.get(i).copied().unwrap_or(true)).collect();
        let least = *ok.iter().min_by_key(|&&i| (loads[i], i))?;
        let chosen = match self.policy {
            Placement::RoundRobin => {
                let pick = ok[self.next % ok.len()];
                self.next = self.next.wrapping_add(1);
                pick
            }
            Placement::LeastLoaded => least,
            Placement::Prefix => {
                let limit = (loads[least] + self.guard_abs)
                    .min((f64::from(loads[least].max(1)) * self.guard_ratio) as u32 + self.guard_abs);
                // The deepest block whose owner is eligible and within the guard.
                hashes
                    .iter()
                    .map_while(|h| self.owner.get(h).copied())
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .find(|&r| ok.contains(&r) && loads[r] <= limit)
                    .unwrap_or(least)
            }
        };
        if self.policy == Placement::Prefix {
            self.record(hashes, chosen);
        }
        Some(chosen)
    }

    fn record(&mut self, hashes: &[u64], replica: usize) {
        for h in hashes {
            if self.owner.insert(*h, replica).is_none() {
                self.order.push_back(*h);
                if self.order.len() > MAX_BLOCKS {
                    if let Some(old) = self.order.pop_front() {
                        self.owner.remove(&old);
                    }
                }
            }
        }
    }
}

/// Chained hashes of a prompt's text in blocks of `block_chars` characters (the gateway does not
/// tokenise for placement: equal text prefixes are equal token prefixes). Only full blocks.
pub fn text_block_hashes(text: &str, block_chars: usize) -> Vec<u64> {
    use std::hash::{Hash, Hasher};
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / block_chars.max(1));
    let mut prev = 0u64;
    for block in bytes.chunks_exact(block_chars.max(1)) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        prev.hash(&mut h);
        block.hash(&mut h);
        prev = h.finish();
        out.push(prev);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_placement_follows_the_prefix_within_the_guard() {
        let mut p = Placer::new(Placement::Prefix);
        let all = [true; 3];
        // A new prefix goes to the least loaded; the same prefix follows it there.
        assert_eq!(p.choose(&[1, 2, 3], &[2, 0, 1], &all), Some(1));
        assert_eq!(p.choose(&[1, 2, 9], &[0, 1, 0], &all), Some(1));
        // The longest match wins: [1, 2] lives on 1, [1, 5] was placed on 0.
        assert_eq!(p.choose(&[7], &[0, 3, 3], &all), Some(0));
        assert_eq!(p.choose(&[1, 2, 3, 4], &[0, 0, 0], &all), Some(1));
        // Past the guard (least 0, limit 4), a busy owner is passed over for the least loaded.
        assert_eq!(p.choose(&[1, 2, 3], &[1, 9, 0], &all), Some(2));
        // An ineligible owner (circuit open, tried) is skipped.
        assert_eq!(p.choose(&[1, 2, 3], &[5, 0, 0], &[true, true, false]), Some(1));
        assert_eq!(p.choose(&[1], &[0, 0, 0], &[false; 3]), None);
    }

    #[test]
    fn round_robin_and_least_loaded() {
        let mut rr = Placer::new(Placement::RoundRobin);
        let picks: Vec<_> = (0..4).map(|_| rr.choose(&[], &[5, 0, 0], &[true; 3]).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0]);
        let mut ll = Placer::new(Placement::LeastLoaded);
        assert_eq!(ll.choose(&[1], &[3, 1, 2], &[true; 3]), Some(1));
    }

    #[test]
    fn text_blocks_are_chained() {
        let a = text_block_hashes(&"x".repeat(10), 4);
        assert_eq!(a.len(), 2);
        let b = text_block_hashes(&format!("{}yyyy", "x".repeat(4)), 4);
        assert_eq!(a[0], b[0]);
        assert_ne!(a[1], b[1]);
        let c = text_block_hashes(&format!("yyyy{}", "x".repeat(4)), 4);
        assert_ne!(a[1], c[1], "same block after a different prefix hashes differently");
    }
}
