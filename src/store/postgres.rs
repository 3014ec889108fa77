//! The PostgreSQL store, for replicas that share one ledger and key store: the same schema and
//! migrations as SQLite (applied at connect, each in a transaction, so replicas starting together
//! are safe: the loser of a race fails on the version's primary key and retries).

use super::batch_sql::impl_batch_store;
use super::records::StoreError;
use super::sql::impl_sql_store;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::time::Duration;

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool =
            PgPoolOptions::new().max_connections(8).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
        let store = Self { pool };
        // Replicas starting at once race to create the schema; whoever loses sees a unique
        // violation and tries again against the winner's tables.
        let mut tries = 0;
        loop {
            match store.migrate().await {
                Ok(()) => return Ok(store),
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::debug!(error = %e, "migration raced another replica; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl_sql_store!(PostgresStore, sqlx::Postgres);
impl_batch_store!(PostgresStore, sqlx::Postgres);
