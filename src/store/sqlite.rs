//! The SQLite store (the default): one file in the data directory, WAL mode, schema migrations
//! embedded in the binary and applied at open.

use super::batch_sql::impl_batch_store;
use super::records::StoreError;
use super::sql::impl_sql_store;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::Path;
use std::str::FromStr;

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `<dir>/tollgate.db`.
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Dir { path: dir.display().to_string(), source: e })?;
        let url = format!("sqlite://{}", dir.join("tollgate.db").display());
        let opts = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }
}

impl_sql_store!(SqliteStore, sqlx::Sqlite);
impl_batch_store!(SqliteStore, sqlx::Sqlite);
