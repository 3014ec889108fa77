//! Why embedding failed, whichever model was asked (its own file: `embed` and `local` both use it).

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embeddings request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("embeddings server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("embeddings response: {0}")]
    Shape(String),
    #[error("in-process embeddings model: {0}")]
    Local(String),
    #[error("text of {tokens} tokens is longer than the embeddings model's {limit}")]
    TooLong { tokens: usize, limit: usize },
    #[error("the in-process embeddings model has {queued} jobs waiting")]
    Busy { queued: usize },
}
