//! What makes two requests the same for the caches: the tenant, the model asked for, the endpoint
//! and every generation parameter, in a canonical form (keys sorted, transport-only fields left
//! out). The tenant is part of every key and scope, so no lookup can reach another tenant's entry.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Fields that change how a response is delivered, not what it says.
const TRANSPORT_FIELDS: &[&str] = &["stream", "stream_options", "user", "model"];

/// The fields that carry the prompt itself (compared by embedding in the semantic cache).
const PROMPT_FIELDS: &[&str] = &["messages", "prompt"];

/// An exact-cache key: SHA-256 over tenant, model, endpoint and the canonical request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(pub [u8; 32]);

/// A semantic-cache scope: requests that differ at most in their prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scope(pub [u8; 32]);

fn digest(tenant: &str, model: &str, endpoint: &str, request: &Value, skip: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [tenant, model, endpoint] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    if let Value::Object(m) = request {
        // serde_json's map is ordered by key (no `preserve_order`), so this is canonical.
        for (k, v) in m.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
            let v = serde_json::to_vec(v).unwrap_or_default();
            h.update((k.len() as u64).to_le_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(&v);
        }
    }
    h.finalize().into()
}

pub fn exact_key(tenant: &str, model: &str, endpoint: &str, request: &Value) -> Key {
    Key(digest(tenant, model, endpoint, request, TRANSPORT_FIELDS))
}

pub fn scope(tenant: &str, model: &str, endpoint: &str, request: &Value) -> Scope {
    let skip: Vec<&str> = TRANSPORT_FIELDS.iter().chain(PROMPT_FIELDS).copied().collect();
    Scope(digest(tenant, model, endpoint, request, &skip))
}

/// Whether a request asks for a reproducible answer: `temperature` 0 or a `seed`.
pub fn deterministic(request: &Value) -> bool {
    let seeded = request.get("seed").is_some_and(|s| !s.is_null());
    let cold = request.get("temperature").and_then(Value::as_f64) == Some(0.0);
    seeded || cold
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_ignore_order_and_transport_but_not_parameters_or_tenant() {
        let a =
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "stream": true});
        let b =
            json!({"temperature": 0, "stream": false, "messages": [{"role": "user", "content": "hi"}], "model": "x"});
        assert_eq!(exact_key("t", "m", "/c", &a), exact_key("t", "m", "/c", &b));
        assert_ne!(exact_key("t", "m", "/c", &a), exact_key("u", "m", "/c", &a));
        assert_ne!(exact_key("t", "m", "/c", &a), exact_key("t", "n", "/c", &a));
        let c = json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 5});
        assert_ne!(exact_key("t", "m", "/c", &a), exact_key("t", "m", "/c", &c));
        // Ambiguous concatenations do not collide: lengths are hashed.
        assert_ne!(exact_key("ab", "c", "/c", &a), exact_key("a", "bc", "/c", &a));
        // The scope ignores the prompt only.
        let d = json!({"messages": [{"role": "user", "content": "hello"}], "temperature": 0});
        assert_eq!(scope("t", "m", "/c", &a), scope("t", "m", "/c", &d));
        assert_ne!(scope("t", "m", "/c", &a), scope("t", "m", "/c", &c));
        assert_ne!(scope("t", "m", "/c", &a), scope("u", "m", "/c", &a));
    }

    #[test]
    fn determinism() {
        assert!(deterministic(&json!({"temperature": 0})));
        assert!(deterministic(&json!({"temperature": 0.0})));
        assert!(deterministic(&json!({"seed": 7, "temperature": 1})));
        assert!(!deterministic(&json!({})));
        assert!(!deterministic(&json!({"temperature": 0.2, "seed": null})));
    }
}
