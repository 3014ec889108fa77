//! The store's error, shared by its contracts ([`super::records`], [`super::batches`]).

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("creating {path}: {source}")]
    Dir { path: String, source: std::io::Error },
}
