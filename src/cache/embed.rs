//! Where the semantic cache and `tollgate cache eval` get embeddings: a model run in process
//! ([`super::local`]), or a client of an OpenAI-compatible `/v1/embeddings` endpoint (llama.cpp's
//! server, vLLM, a hosted API). Vectors come back normalised to unit length.

use super::semantic::normalised;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

pub use super::error::EmbedError;

/// An embeddings model: in process, or behind an HTTP endpoint.
#[derive(Clone)]
pub enum Embedder {
    Local(std::sync::Arc<super::local::LocalEmbedder>),
    Remote(Remote),
}

impl Embedder {
    /// Loads the model in folder `dir` and runs it in process.
    pub fn local(dir: &std::path::Path) -> Result<Self, EmbedError> {
        Ok(Self::Local(std::sync::Arc::new(super::local::LocalEmbedder::start(dir)?)))
    }

    /// Unit vectors for `texts`, in order.
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        match self {
            Self::Local(m) => m.embed(texts).await,
            Self::Remote(r) => r.embed(texts).await,
        }
    }
}

/// A client of an OpenAI-compatible `/v1/embeddings` endpoint.
#[derive(Clone)]
pub struct Remote {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<String>,
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Datum>,
}

#[derive(Deserialize)]
struct Datum {
    index: usize,
    embedding: Vec<f32>,
}

impl Remote {
    pub fn new(base_url: &str, model: &str, api_key: Option<String>, timeout: Duration) -> Self {
        let client = reqwest::Client::builder().timeout(timeout).build().expect("a plain HTTP client builds");
        Self { client, url: format!("{}/v1/embeddings", base_url.trim_end_matches('/')), model: model.into(), api_key }
    }

    /// Unit vectors for `texts`, in order.
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut req = self.client.post(&self.url).json(&json!({"model": self.model, "input": texts}));
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(EmbedError::Status { status: status.as_u16(), body: body.chars().take(300).collect() });
        }
        let mut r: Response = resp.json().await?;
        if r.data.len() != texts.len() {
            return Err(EmbedError::Shape(format!("{} vectors for {} inputs", r.data.len(), texts.len())));
        }
        r.data.sort_by_key(|d| d.index);
        r.data
            .into_iter()
            .map(|d| normalised(d.embedding).ok_or_else(|| EmbedError::Shape("a zero or non-finite vector".into())))
            .collect()
    }
}
