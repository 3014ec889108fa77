//! A model's router at serving: the trained router and, when it weighs the prompt's sentence
//! embedding, the in-process embeddings model it was trained with. Admission asks it once per
//! request for the probability that a fallback's answer is as good.

use crate::cache::local::LocalEmbedder;
use crate::routing::RouterModel;
use std::sync::Arc;

pub struct Router {
    model: RouterModel,
    embedder: Option<Arc<LocalEmbedder>>,
}

impl Router {
    /// A router, with the embeddings model it needs: given exactly when it weighs embeddings.
    pub fn new(model: RouterModel, embedder: Option<Arc<LocalEmbedder>>) -> Result<Self, String> {
        match (model.embeddings_model(), &embedder) {
            (Some(name), None) => Err(format!("it weighs `{name}` embeddings: set `router_model_dir` to that model")),
            (None, Some(_)) => Err("it was trained without embeddings: remove `router_model_dir`".into()),
            _ => Ok(Self { model, embedder }),
        }
    }

    /// The router's estimate for `text`; `None` when the embeddings model is busy or fails (the
    /// request then keeps its model: nothing is routed down on a guess).
    pub async fn estimate(&self, text: &str) -> Option<f64> {
        let embedding = match &self.embedder {
            None => None,
            Some(e) => match e.embed_head(&[text]).await {
                Ok(mut v) => v.pop(),
                Err(err) => {
                    tracing::debug!(error = %err, "router: no embedding, no estimate");
                    return None;
                }
            },
        };
        self.model.p_weak_as_good(text, embedding.as_deref())
    }
}
