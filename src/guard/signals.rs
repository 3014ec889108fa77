//! One subject's (a tenant's or a key's) recent requests and the extraction signals read off
//! them. Pure: events in, [`Features`] out, each a level in [0, 1] where higher looks more like a
//! harvest. Counts over the window are kept as it slides, so reading the signals costs a pass over
//! at most [`Window::CAP`] events, not over their words.

use super::sketch::Sign;
use std::collections::{HashMap, VecDeque};

/// What the watch knows of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The request's id (a hash of the gateway's): a completion finds its arrival by it.
    pub id: u64,
    pub t_ms: i64,
    /// The key it came with (hashed).
    pub key: u64,
    pub sign: Sign,
    /// How much of the token distribution it asked for: `top_logprobs` / 20 (capped at 1), a
    /// quarter for `logprobs` alone, 0 for neither.
    pub logprobs: f64,
    pub max_tokens: Option<u32>,
    pub input_tokens: u32,
    /// Output tokens, once it ended.
    pub output_tokens: Option<u32>,
}

/// The signals, in the order of [`Features::NAMES`].
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Features {
    /// Requests in the window.
    pub requests: usize,
    /// Arrivals machine-steady rather than in bursts: 1 - (coefficient of variation of the gaps
    /// between arrivals) / 1.5, at least 0 (Poisson arrivals give 0.33, bursts 0).
    pub steady: f64,
    /// Output per input token: r / (1 + r) for r = output / input over completed requests.
    pub long_outputs: f64,
    /// Share of completed requests with a `max_tokens` whose answer reached it.
    pub at_max: f64,
    /// Token distributions harvested: r / (1 + r) for r = the mean over completed requests of
    /// output tokens x logprob level (see [`Event::logprobs`]) / 25. A classifier reading the
    /// top 5 of one or two tokens stays near 0; top-20 logprobs over long answers near 1.
    pub logprobs: f64,
    /// Topic breadth: distinct content words over all content words in the last
    /// [`Window::BREADTH_SPAN`] requests (a fixed span, so the level does not fall as the window
    /// fills: distinct words grow slower than words).
    pub breadth: f64,
    /// Share of requests sharing the window's commonest opening or closing words.
    pub template: f64,
    /// Many keys behaving as one: 1 - 1 / (keys with at least two requests in the window).
    pub keys: f64,
}

impl Features {
    pub const NAMES: [&'static str; 7] =
        ["steady", "long_outputs", "at_max", "logprobs", "breadth", "template", "keys"];

    pub fn levels(&self) -> [f64; 7] {
        [self.steady, self.long_outputs, self.at_max, self.logprobs, self.breadth, self.template, self.keys]
    }
}

/// The last requests of one subject, at most [`Window::CAP`] and none older than its horizon.
#[derive(Debug, Clone)]
pub struct Window {
    events: VecDeque<Event>,
    horizon_ms: i64,
    /// Content words of the last [`Window::BREADTH_SPAN`] requests, counted, and their total.
    recent_words: HashMap<u32, u32, foldhash::fast::FixedState>,
    recent_total: usize,
    heads: HashMap<u64, u32, foldhash::fast::FixedState>,
    tails: HashMap<u64, u32, foldhash::fast::FixedState>,
    keys: HashMap<u64, u32, foldhash::fast::FixedState>,
}

fn add<K: std::hash::Hash + Eq>(m: &mut HashMap<K, u32, foldhash::fast::FixedState>, k: K) {
    *m.entry(k).or_insert(0) += 1;
}

fn sub<K: std::hash::Hash + Eq>(m: &mut HashMap<K, u32, foldhash::fast::FixedState>, k: K) {
    if let Some(c) = m.get_mut(&k) {
        *c -= 1;
        if *c == 0 {
            m.remove(&k);
        }
    }
}

impl Window {
    pub const CAP: usize = 256;
    /// Requests breadth is read over: the gateway's default minimum before a subject is scored.
    pub const BREADTH_SPAN: usize = 20;

    pub fn new(horizon_ms: i64) -> Self {
        Self {
            events: VecDeque::new(),
            horizon_ms,
            recent_words: HashMap::default(),
            recent_total: 0,
            heads: HashMap::default(),
            tails: HashMap::default(),
            keys: HashMap::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The time of the last request seen.
    pub fn last_ms(&self) -> Option<i64> {
        self.events.back().map(|e| e.t_ms)
    }

    pub fn push(&mut self, e: Event) {
        self.expire(e.t_ms);
        if self.events.len() == Self::CAP {
            self.pop();
        }
        add(&mut self.heads, e.sign.head);
        add(&mut self.tails, e.sign.tail);
        add(&mut self.keys, e.key);
        for w in &e.sign.words {
            add(&mut self.recent_words, *w);
        }
        self.recent_total += e.sign.words.len();
        self.events.push_back(e);
        // The request that just left the breadth span.
        if let Some(old) = self.events.len().checked_sub(Self::BREADTH_SPAN + 1).and_then(|i| self.events.get(i)) {
            for w in &old.sign.words {
                sub(&mut self.recent_words, *w);
            }
            self.recent_total -= old.sign.words.len();
        }
    }

    /// Drops what is older than the horizon before `now_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        while self.events.front().is_some_and(|f| f.t_ms < now_ms - self.horizon_ms) {
            self.pop();
        }
    }

    fn pop(&mut self) {
        let in_span = self.events.len() <= Self::BREADTH_SPAN;
        let Some(e) = self.events.pop_front() else { return };
        if in_span {
            for w in &e.sign.words {
                sub(&mut self.recent_words, *w);
            }
            self.recent_total -= e.sign.words.len();
        }
        sub(&mut self.heads, e.sign.head);
        sub(&mut self.tails, e.sign.tail);
        sub(&mut self.keys, e.key);
    }

    /// Records a request's tokens once it ended; false if it is no longer in the window.
    pub fn complete(&mut self, id: u64, input_tokens: u32, output_tokens: u32) -> bool {
        match self.events.iter_mut().rev().find(|e| e.id == id) {
            Some(e) => {
                e.input_tokens = input_tokens;
                e.output_tokens = Some(output_tokens);
                true
            }
            None => false,
        }
    }

    pub fn features(&self) -> Features {
        let n = self.events.len();
        if n == 0 {
            return Features::default();
        }
        let (mut out, mut inp, mut done, mut with_max, mut at_max, mut lp) = (0f64, 0f64, 0usize, 0usize, 0usize, 0f64);
        for e in &self.events {
            if let Some(o) = e.output_tokens {
                lp += e.logprobs * f64::from(o) / 25.0;
                done += 1;
                out += f64::from(o);
                inp += f64::from(e.input_tokens.max(1));
                if let Some(m) = e.max_tokens {
                    with_max += 1;
                    at_max += usize::from(o.saturating_add(1) >= m);
                }
            }
        }
        let ratio = if done > 0 { out / inp } else { 0.0 };
        let commonest = |m: &HashMap<u64, u32, foldhash::fast::FixedState>| m.values().copied().max().unwrap_or(0);
        let busy_keys = self.keys.values().filter(|&&c| c >= 2).count().max(1);
        Features {
            requests: n,
            steady: self.steadiness(),
            long_outputs: ratio / (1.0 + ratio),
            at_max: if with_max > 0 { at_max as f64 / with_max as f64 } else { 0.0 },
            logprobs: if done > 0 { (lp / done as f64) / (1.0 + lp / done as f64) } else { 0.0 },
            breadth: self.breadth(),
            template: f64::from(commonest(&self.heads).max(commonest(&self.tails))) / n as f64,
            keys: 1.0 - 1.0 / busy_keys as f64,
        }
    }

    /// Distinct content words over content words in the last [`Self::BREADTH_SPAN`] requests.
    fn breadth(&self) -> f64 {
        if self.recent_total > 0 {
            self.recent_words.len() as f64 / self.recent_total as f64
        } else {
            0.0
        }
    }

    /// 1 - CV / 1.5 of the gaps between arrivals (0 with fewer than eight gaps).
    fn steadiness(&self) -> f64 {
        if self.events.len() < 9 {
            return 0.0;
        }
        // The gaps are read twice (mean, then spread) rather than collected.
        let gaps = || self.events.iter().zip(self.events.iter().skip(1)).map(|(a, b)| (b.t_ms - a.t_ms).max(0) as f64);
        let n = (self.events.len() - 1) as f64;
        let mean = gaps().sum::<f64>() / n;
        if mean < 1.0 {
            return 0.0;
        }
        let var = gaps().map(|g| (g - mean).powi(2)).sum::<f64>() / n;
        (1.0 - var.sqrt() / mean / 1.5).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::sketch::sign;

    fn ev(id: u64, t_ms: i64, text: &str) -> Event {
        Event {
            id,
            t_ms,
            key: 1,
            sign: sign(text),
            logprobs: 0.0,
            max_tokens: Some(100),
            input_tokens: 50,
            output_tokens: None,
        }
    }

    #[test]
    fn steady_arrivals_and_long_answers_at_the_cap_read_as_such() {
        let mut w = Window::new(3_600_000);
        for i in 0..20 {
            w.push(ev(i, i as i64 * 1000, &format!("Explain in detail: topic{} thing", char::from(b'a' + i as u8))));
            assert!(w.complete(i, 50, 100));
        }
        let f = w.features();
        assert_eq!(f.requests, 20);
        assert!(f.steady > 0.99, "{f:?}");
        assert!((f.long_outputs - 2.0 / 3.0).abs() < 1e-9, "{f:?}");
        assert_eq!(f.at_max, 1.0);
        assert_eq!(f.template, 1.0);
        assert_eq!(f.keys, 0.0);
    }

    #[test]
    fn bursts_are_not_steady_and_the_window_forgets_what_is_past_its_horizon() {
        let mut w = Window::new(60_000);
        let mut t = 0;
        for i in 0..30 {
            t += if i % 10 == 0 { 50_000 } else { 100 };
            w.push(ev(i, t, "Why is the sky blue?"));
        }
        assert!(w.features().steady < 0.01, "{:?}", w.features());
        w.expire(t + 61_000);
        assert!(w.is_empty());
        assert!(w.heads.is_empty() && w.keys.is_empty() && w.recent_words.is_empty());
        assert_eq!(w.recent_total, 0);
    }

    #[test]
    fn breadth_kept_as_the_window_slides_equals_breadth_read_afresh() {
        let afresh = |w: &Window| {
            let mut words: Vec<u32> =
                w.events.iter().rev().take(Window::BREADTH_SPAN).flat_map(|e| e.sign.words.clone()).collect();
            let total = words.len();
            words.sort_unstable();
            words.dedup();
            if total > 0 {
                words.len() as f64 / total as f64
            } else {
                0.0
            }
        };
        let mut w = Window::new(500_000);
        let mut t = 0;
        for i in 0..700u64 {
            // The window fills to its cap; a pause longer than the horizon empties it, and a
            // request older than the horizon leaves it now and then.
            t += if i % 300 == 0 { 600_000 } else { 300 + (i as i64 * 37) % 900 };
            w.push(ev(i, t, &format!("Explain photosynthesis{} chlorophyll{} membranes", i % 7, i % 23)));
            assert!((w.features().breadth - afresh(&w)).abs() < 1e-12, "after request {i}");
        }
        w.expire(t + 600_000);
        assert_eq!((w.recent_total, w.recent_words.len()), (0, 0));
    }

    #[test]
    fn the_window_keeps_at_most_its_cap_and_its_counts_follow() {
        let mut w = Window::new(i64::MAX / 4);
        for i in 0..(Window::CAP as u64 + 10) {
            let mut e = ev(i, i as i64, "Photosynthesis chloroplast");
            e.key = i % 4;
            w.push(e);
        }
        assert_eq!(w.len(), Window::CAP);
        assert_eq!(w.features().breadth, 2.0 / (2 * Window::BREADTH_SPAN) as f64, "two words, repeated");
        assert!((w.features().keys - 0.75).abs() < 1e-9);
        assert!(!w.complete(0, 5, 5), "the first request left the window");
    }
}
