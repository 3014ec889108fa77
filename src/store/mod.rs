//! Persistence behind one trait: API keys (hashed), the ledger, stored responses and the Batch
//! API's files, batches and lines. SQLite (WAL) is the default
//! implementation; PostgreSQL (`ledger = "postgres://..."`) implements the same trait with the
//! same SQL, for replicas that share one ledger.

mod batch_sql;
pub mod batches;
mod error;
mod postgres;
pub(crate) mod sql;
mod sqlite;

pub(crate) mod records;

pub use postgres::PostgresStore;
pub use records::{KeyRecord, Store, StoreError, StoredResponse, UsageRow};
pub use sqlite::SqliteStore;

/// Opens the configured store: PostgreSQL when `ledger` is a `postgres://` URL, else SQLite in
/// the data directory.
pub async fn open(ledger: Option<&str>, data_dir: &std::path::Path) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    Ok(match ledger {
        Some(url) => std::sync::Arc::new(PostgresStore::connect(url).await?),
        None => std::sync::Arc::new(SqliteStore::open(data_dir).await?),
    })
}
