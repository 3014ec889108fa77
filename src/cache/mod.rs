//! Response caching, always scoped to a tenant: an exact cache (the same request, all generation
//! parameters included, from the same tenant) and an opt-in semantic cache (a close enough
//! earlier prompt in the same tenant, model and parameters). A hit costs no capacity: it is
//! answered before admission, and its ledger row says it came from the cache.
//!
//! The exact cache is used for deterministic requests (`temperature` 0 or a `seed`) unless the
//! tier says otherwise; answers are stored only when served by the model asked for (a
//! downgraded answer is not the model's answer).

pub mod embed;
pub mod entry;
pub mod error;
pub mod key;
pub mod local;
pub mod onnx;
pub mod semantic;

use crate::config::{CacheConfig, CacheMode, TierConfig};
pub use entry::{Cached, Kind};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// A lookup's result worth serving.
pub enum Hit {
    Exact(Arc<Cached>),
    Semantic(Arc<Cached>, f32),
}

impl Hit {
    pub fn answer(&self) -> &Cached {
        match self {
            Hit::Exact(c) | Hit::Semantic(c, _) => c,
        }
    }

    /// The ledger's and the response header's name of the cache that answered.
    pub fn label(&self) -> &'static str {
        match self {
            Hit::Exact(_) => "exact",
            Hit::Semantic(..) => "semantic",
        }
    }
}

/// Where a missed request's answer will be stored once served.
pub struct Probe {
    pub kind: Kind,
    exact: Option<key::Key>,
    semantic: Option<(key::Scope, Vec<f32>, Option<semantic::Salient>)>,
}

pub struct ResponseCache {
    exact: moka::sync::Cache<key::Key, Arc<Cached>>,
    semantic: Option<Semantic>,
    /// The exact cache shared with other replicas (Redis), behind the local one.
    shared: Option<Arc<dyn crate::state::SharedState>>,
    ttl: Duration,
}

struct Semantic {
    embedder: embed::Embedder,
    index: semantic::Index,
    threshold: f32,
    /// Whether a hit must have the prompt's salient words ([`semantic::Salient`]).
    check_salient: bool,
}

impl ResponseCache {
    /// The caches `cfg` asks for; fails only when an in-process embeddings model does not load.
    pub fn new(cfg: &CacheConfig) -> Result<Self, embed::EmbedError> {
        let ttl = Duration::from_secs(cfg.ttl_s.max(1));
        let exact = moka::sync::Cache::builder()
            .max_capacity(cfg.max_bytes)
            .weigher(|_, v: &Arc<Cached>| v.weight)
            .time_to_live(ttl)
            .build();
        let semantic = match &cfg.semantic {
            None => None,
            Some(s) => Some(Semantic {
                embedder: match (&s.model_dir, &s.url) {
                    (Some(dir), _) => embed::Embedder::local(dir)?,
                    (None, url) => embed::Embedder::Remote(embed::Remote::new(
                        url.as_deref().unwrap_or_default(),
                        &s.model,
                        s.api_key_env.as_ref().and_then(|k| std::env::var(k).ok()),
                        Duration::from_millis(s.timeout_ms),
                    )),
                },
                index: semantic::Index::new(s.max_entries_per_scope, ttl),
                threshold: s.threshold,
                check_salient: s.match_salient_words,
            }),
        };
        Ok(Self { exact, semantic, shared: None, ttl })
    }

    /// Shares exact entries with other replicas through `state` (looked up after a local miss,
    /// stored beside the local entry). The semantic index stays per replica.
    pub fn shared_through(mut self, state: Arc<dyn crate::state::SharedState>) -> Self {
        self.shared = Some(state);
        self
    }

    /// Looks a request up in the caches its tier allows. `None` when no cache applies to it;
    /// otherwise the probe (to store the answer after a miss) and the hit, if any.
    pub async fn lookup(
        &self,
        tier: Option<&TierConfig>,
        tenant: &str,
        model: &str,
        endpoint: &str,
        kind: Kind,
        request: &Value,
    ) -> Option<(Probe, Option<Hit>)> {
        let tier = tier?;
        let exact_ok = match tier.cache {
            CacheMode::Off => false,
            CacheMode::Deterministic => key::deterministic(request),
            CacheMode::Always => true,
        };
        let semantic = self.semantic.as_ref().filter(|_| tier.semantic_cache);
        if !exact_ok && semantic.is_none() {
            return None;
        }
        let mut probe = Probe { kind, exact: None, semantic: None };
        if exact_ok {
            let k = key::exact_key(tenant, model, endpoint, request);
            if let Some(hit) = self.exact.get(&k) {
                return Some((probe, Some(Hit::Exact(hit))));
            }
            if let Some(state) = &self.shared {
                if let Ok(Some(bytes)) = state.cache_get(&hex::encode(k.0)).await {
                    if let Some(answer) = Cached::from_bytes(&bytes) {
                        let answer = Arc::new(answer);
                        self.exact.insert(k, answer.clone());
                        return Some((probe, Some(Hit::Exact(answer))));
                    }
                }
            }
            probe.exact = Some(k);
        }
        if let Some(s) = semantic {
            if let Some(text) = semantic::prompt_text(request) {
                match s.embedder.embed(&[&text]).await {
                    Ok(mut v) => {
                        let vector = v.pop().expect("one vector per input");
                        let scope = key::scope(tenant, model, endpoint, request);
                        let words = s.check_salient.then(|| semantic::Salient::of(&text));
                        if let Some((answer, score)) = s.index.nearest(&scope, &vector, words.as_ref(), s.threshold) {
                            return Some((probe, Some(Hit::Semantic(answer, score))));
                        }
                        probe.semantic = Some((scope, vector, words));
                    }
                    Err(e @ embed::EmbedError::Busy { .. }) => tracing::debug!(error = %e, "semantic cache: a miss"),
                    Err(e) => tracing::warn!(error = %e, "semantic cache: embedding failed; looked up as a miss"),
                }
            }
        }
        (probe.exact.is_some() || probe.semantic.is_some()).then_some((probe, None))
    }

    /// Stores a served answer where the probe says.
    pub fn store(&self, probe: Probe, answer: Cached) {
        let answer = Arc::new(answer);
        if let Some(k) = probe.exact {
            if let Some(state) = &self.shared {
                state.cache_put(&hex::encode(k.0), answer.to_bytes(), self.ttl.as_millis() as u64);
            }
            self.exact.insert(k, answer.clone());
        }
        if let (Some(s), Some((scope, vector, words))) = (&self.semantic, probe.semantic) {
            s.index.insert(scope, vector, words, answer);
        }
    }
}

/// A missed request's way back to the cache: where to store its answer once it is served.
pub struct Capture {
    kind: Kind,
    cache: Option<(Arc<ResponseCache>, Probe)>,
    /// Also handed the answer: opt-in distillation keeps it (`crate::distill`).
    keep: Option<Keep>,
}

/// What else is done with a complete answer.
pub type Keep = Box<dyn FnOnce(&Cached) + Send>;

impl Capture {
    pub fn new(cache: Arc<ResponseCache>, probe: Probe) -> Self {
        Self { kind: probe.kind, cache: Some((cache, probe)), keep: None }
    }

    /// A capture that only keeps the answer (no cache).
    pub fn keeping(kind: Kind, keep: Keep) -> Self {
        Self { kind, cache: None, keep: Some(keep) }
    }

    /// This capture, also keeping the answer.
    pub fn and_keep(mut self, keep: Keep) -> Self {
        self.keep = Some(keep);
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn store(self, answer: Cached) {
        if let Some(keep) = self.keep {
            keep(&answer);
        }
        if let Some((cache, probe)) = self.cache {
            cache.store(probe, answer);
        }
    }
}
