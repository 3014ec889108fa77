//! The semantic cache's index: per scope (tenant, model, endpoint and every parameter but the
//! prompt), the embeddings of earlier prompts and their answers; a lookup returns the nearest
//! earlier answer if its cosine similarity reaches the threshold. Scopes never mix, so one
//! tenant's answers are never candidates for another's prompt.

use super::entry::Cached;
use super::key::Scope;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest prompt text embedded; longer prompts are not looked up (an embedding of a truncated
/// prompt would match prompts that differ past the cut).
pub const MAX_PROMPT_CHARS: usize = 2_000;

struct Entry {
    vector: Vec<f32>,
    /// The prompt's salient words, when the cache checks them.
    salient: Option<Salient>,
    answer: Arc<Cached>,
    stored: Instant,
}

pub struct Index {
    scopes: Mutex<HashMap<Scope, VecDeque<Entry>>>,
    per_scope: usize,
    ttl: Duration,
}

impl Index {
    pub fn new(per_scope: usize, ttl: Duration) -> Self {
        Self { scopes: Mutex::new(HashMap::new()), per_scope, ttl }
    }

    /// The nearest live answer in `scope` and its similarity, if it reaches `threshold` and (when
    /// given) its prompt has the same salient words.
    pub fn nearest(
        &self,
        scope: &Scope,
        vector: &[f32],
        salient: Option<&Salient>,
        threshold: f32,
    ) -> Option<(Arc<Cached>, f32)> {
        let mut scopes = self.scopes.lock().expect("semantic index lock");
        let entries = scopes.get_mut(scope)?;
        let ttl = self.ttl;
        while entries.front().is_some_and(|e| e.stored.elapsed() > ttl) {
            entries.pop_front();
        }
        entries
            .iter()
            .map(|e| (e, dot(&e.vector, vector)))
            .filter(|(e, s)| *s >= threshold && salient.is_none_or(|w| e.salient.as_ref().is_some_and(|x| x.agrees(w))))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(e, s)| (e.answer.clone(), s))
    }

    pub fn insert(&self, scope: Scope, vector: Vec<f32>, salient: Option<Salient>, answer: Arc<Cached>) {
        let mut scopes = self.scopes.lock().expect("semantic index lock");
        let entries = scopes.entry(scope).or_default();
        if entries.len() >= self.per_scope {
            entries.pop_front();
        }
        entries.push_back(Entry { vector, salient, answer, stored: Instant::now() });
    }
}

/// The dot product (the cosine of unit vectors); vectors of different lengths never match. Eight
/// running sums, so the compiler can use SIMD lanes (a single running sum must stay sequential).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::NEG_INFINITY;
    }
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Scales to unit length (so a dot product is the cosine); `None` for a zero or non-finite vector.
pub fn normalised(mut v: Vec<f32>) -> Option<Vec<f32>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !(norm.is_finite() && norm > 0.0) {
        return None;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    Some(v)
}

/// What a paraphrase must keep, which a sentence embedding barely weighs: numbers, names (a
/// capitalised word other than a sentence's first, a word with a capital inside or mixing letters
/// and digits) and negation. Two prompts are one another's paraphrase only if each one's salient
/// words appear, in any case, among the other's words ("type A" / "type AB", "2017" / "2018" and
/// "why" / "why not" never match, however close their vectors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salient {
    /// Lower-cased, sorted, without repeats; negation is the word "not".
    salient: Vec<String>,
    /// Every word, the same way.
    words: Vec<String>,
}

impl Salient {
    pub fn of(text: &str) -> Self {
        const NEGATIONS: [&str; 6] = ["not", "no", "never", "without", "cannot", "nor"];
        let (mut salient, mut words) = (Vec::new(), Vec::new());
        let mut sentence_start = true;
        for raw in text.split_whitespace() {
            let word = raw.trim_matches(|c: char| !c.is_alphanumeric());
            let word = word.strip_suffix("'s").or_else(|| word.strip_suffix("\u{2019}s")).unwrap_or(word);
            if !word.is_empty() {
                let lower = word.to_lowercase();
                let digit = word.chars().any(|c| c.is_ascii_digit());
                let capital = !sentence_start && word != "I" && word.chars().next().is_some_and(char::is_uppercase);
                let inner = word.chars().skip(1).any(char::is_uppercase);
                let lower = if NEGATIONS.contains(&lower.as_str()) || lower.ends_with("n't") {
                    salient.push("not".to_string());
                    "not".to_string()
                } else {
                    if digit || capital || inner {
                        salient.push(lower.clone());
                    }
                    lower
                };
                words.push(lower);
                sentence_start = false;
            }
            if raw.ends_with(['.', '?', '!', ':', '\n']) {
                sentence_start = true;
            }
        }
        for v in [&mut salient, &mut words] {
            v.sort();
            v.dedup();
        }
        Self { salient, words }
    }

    /// Whether each text's salient words are among the other's words.
    pub fn agrees(&self, other: &Salient) -> bool {
        let within = |a: &Salient, b: &Salient| a.salient.iter().all(|w| b.words.binary_search(w).is_ok());
        within(self, other) && within(other, self)
    }
}

/// The text compared: the conversation's messages (`role: content` lines) or the completion
/// prompt; `None` if it has parts that are not text, or is longer than [`MAX_PROMPT_CHARS`].
pub fn prompt_text(request: &Value) -> Option<String> {
    let mut out = String::new();
    if let Some(msgs) = request.get("messages").and_then(Value::as_array) {
        for m in msgs {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
            out.push_str(role);
            out.push_str(": ");
            match m.get("content") {
                Some(Value::String(s)) => out.push_str(s),
                Some(Value::Array(parts)) => {
                    for p in parts {
                        out.push_str(p.get("text").and_then(Value::as_str)?);
                    }
                }
                None | Some(Value::Null) => {}
                Some(_) => return None,
            }
            // A tool call or tool result makes the conversation too specific to match by meaning.
            if m.get("tool_calls").is_some() || m.get("tool_call_id").is_some() {
                return None;
            }
            out.push('\n');
        }
        // One user message: embed its text alone, the way the model was trained to compare.
        if msgs.len() == 1 {
            out = msgs[0].get("content").and_then(Value::as_str).map(str::to_string).unwrap_or(out);
        }
    } else {
        match request.get("prompt")? {
            Value::String(s) => out.push_str(s),
            _ => return None,
        }
    }
    (out.chars().count() <= MAX_PROMPT_CHARS && !out.trim().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::Kind;
    use serde_json::json;

    fn answer(text: &str) -> Arc<Cached> {
        let body =
            json!({"choices": [{"index": 0, "text": text}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}});
        Arc::new(Cached::from_whole(Kind::Completion, &serde_json::to_vec(&body).unwrap()).unwrap())
    }

    #[test]
    fn nearest_within_a_scope_only_and_above_the_threshold() {
        let idx = Index::new(2, Duration::from_secs(60));
        let (a, b) = (Scope([1; 32]), Scope([2; 32]));
        idx.insert(a, normalised(vec![1.0, 0.0]).unwrap(), None, answer("x"));
        idx.insert(
            a,
            normalised(vec![0.6, 0.8]).unwrap(),
            Some(Salient::of("Is the iPhone 7 waterproof?")),
            answer("y"),
        );
        let q = normalised(vec![0.8, 0.6]).unwrap();
        let (got, s) = idx.nearest(&a, &q, None, 0.9).unwrap();
        assert!((s - 0.96).abs() < 1e-6);
        assert_eq!(got, answer("y"));
        assert!(idx.nearest(&a, &q, None, 0.97).is_none());
        assert!(idx.nearest(&b, &q, None, 0.0).is_none(), "another scope never matches");
        // With salient words checked, only an entry with the same words is a candidate.
        let (seven, eight) = (Salient::of("Is iPhone 7 waterproof?"), Salient::of("Is the iPhone 8 waterproof?"));
        assert_eq!(idx.nearest(&a, &q, Some(&seven), 0.9).unwrap().0, answer("y"));
        assert!(idx.nearest(&a, &q, Some(&eight), 0.5).is_none());
        // The per-scope bound evicts the oldest.
        idx.insert(a, normalised(vec![0.0, 1.0]).unwrap(), None, answer("z"));
        assert!(idx.nearest(&a, &[1.0, 0.0], None, 0.99).is_none());
    }

    #[test]
    fn dot_products() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let want: f32 = a.iter().map(|x| x * x).sum();
        assert_eq!(dot(&a, &a), want);
        assert_eq!(dot(&a, &a[..18]), f32::NEG_INFINITY);
    }

    #[test]
    fn salient_words() {
        let agree = |a: &str, b: &str| Salient::of(a).agrees(&Salient::of(b));
        assert!(!agree("What is blood type AB? Is it rare?", "What is blood type A? Is it rare?"));
        assert!(!agree("Who won in 2017?", "Who won in 2018?"));
        assert!(!agree("Why do cats like water?", "Why don't cats like water?"));
        assert!(agree("How can I lose weight quickly?", "What is the fastest way to lose weight?"));
        assert!(agree("Should I learn Python or Rust?", "Rust or Python: which should I learn?"));
        assert!(agree("Do most Women enjoy it?", "Do women enjoy it?"), "case alone does not differ");
        assert!(agree("What is the Aam Aadmi Party's future?", "What is the future of the Aam Aadmi Party?"));
        assert!(!agree("Is the iPhone 7 waterproof?", "Is the iPhone 8 waterproof?"));
    }

    #[test]
    fn prompt_texts() {
        assert_eq!(prompt_text(&json!({"messages": [{"role": "user", "content": "hi"}]})).as_deref(), Some("hi"));
        let two = json!({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}]});
        assert_eq!(prompt_text(&two).as_deref(), Some("system: be brief\nuser: hi\n"));
        assert_eq!(prompt_text(&json!({"prompt": "abc"})).as_deref(), Some("abc"));
        assert!(prompt_text(&json!({"prompt": ["a", "b"]})).is_none());
        assert!(prompt_text(&json!({"prompt": "x".repeat(MAX_PROMPT_CHARS + 1)})).is_none());
        assert!(prompt_text(&json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})).is_none());
    }
}
