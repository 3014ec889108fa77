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

    /// The nearest live answer in `scope` and its similarity, if it reaches `threshold`.
    pub fn nearest(&self, scope: &Scope, vector: &[f32], threshold: f32) -> Option<(Arc<Cached>, f32)> {
        let mut scopes = self.scopes.lock().expect("semantic index lock");
        let entries = scopes.get_mut(scope)?;
        let ttl = self.ttl;
        while entries.front().is_some_and(|e| e.stored.elapsed() > ttl) {
            entries.pop_front();
        }
        entries
            .iter()
            .map(|e| (e, dot(&e.vector, vector)))
            .filter(|(_, s)| *s >= threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(e, s)| (e.answer.clone(), s))
    }

    pub fn insert(&self, scope: Scope, vector: Vec<f32>, answer: Arc<Cached>) {
        let mut scopes = self.scopes.lock().expect("semantic index lock");
        let entries = scopes.entry(scope).or_default();
        if entries.len() >= self.per_scope {
            entries.pop_front();
        }
        entries.push_back(Entry { vector, answer, stored: Instant::now() });
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
        idx.insert(a, normalised(vec![1.0, 0.0]).unwrap(), answer("x"));
        idx.insert(a, normalised(vec![0.6, 0.8]).unwrap(), answer("y"));
        let q = normalised(vec![0.8, 0.6]).unwrap();
        let (got, s) = idx.nearest(&a, &q, 0.9).unwrap();
        assert!((s - 0.96).abs() < 1e-6);
        assert_eq!(got, answer("y"));
        assert!(idx.nearest(&a, &q, 0.97).is_none());
        assert!(idx.nearest(&b, &q, 0.0).is_none(), "another scope never matches");
        // The per-scope bound evicts the oldest.
        idx.insert(a, normalised(vec![0.0, 1.0]).unwrap(), answer("z"));
        assert!(idx.nearest(&a, &[1.0, 0.0], 0.99).is_none());
    }

    #[test]
    fn dot_products() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let want: f32 = a.iter().map(|x| x * x).sum();
        assert_eq!(dot(&a, &a), want);
        assert_eq!(dot(&a, &a[..18]), f32::NEG_INFINITY);
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
