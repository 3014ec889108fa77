//! The SQLite store: one file in the data directory, WAL mode, schema migrations embedded in the
//! binary and applied at open.

use super::{KeyRecord, Store, StoreError, UsageRow};
use crate::metering::LedgerRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;

/// Migrations in order; each runs once, recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_keys_and_ledger.sql")),
    (2, include_str!("../../migrations/0002_decisions.sql")),
    (3, include_str!("../../migrations/0003_revenue.sql")),
    (4, include_str!("../../migrations/0004_client_request_id.sql")),
    (5, include_str!("../../migrations/0005_cache.sql")),
];

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

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
            .execute(&self.pool)
            .await?;
        for (version, sql) in MIGRATIONS {
            let done: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&self.pool)
                .await?;
            if done.is_none() {
                let mut tx = self.pool.begin().await?;
                sqlx::raw_sql(sql).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO schema_migrations (version) VALUES (?)")
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

fn key_from_row(r: &sqlx::sqlite::SqliteRow) -> KeyRecord {
    KeyRecord {
        id: r.get("id"),
        tenant: r.get("tenant"),
        hash: r.get("hash"),
        label: r.get("label"),
        created_at_ms: r.get("created_at_ms"),
        revoked_at_ms: r.get("revoked_at_ms"),
    }
}

fn ledger_from_row(r: &sqlx::sqlite::SqliteRow) -> LedgerRow {
    LedgerRow {
        id: r.get("id"),
        client_request_id: r.get("client_request_id"),
        tenant: r.get("tenant"),
        key_id: r.get("key_id"),
        endpoint: r.get("endpoint"),
        model_requested: r.get("model_requested"),
        model_served: r.get("model_served"),
        backend: r.get("backend"),
        stream: r.get("stream"),
        status: r.get::<i64, _>("status") as u16,
        outcome: r.get("outcome"),
        error: r.get("error"),
        input_tokens: r.get("input_tokens"),
        output_tokens: r.get("output_tokens"),
        tokens_estimated: r.get("tokens_estimated"),
        attempts: r.get::<i64, _>("attempts") as u32,
        ttft_ms: r.get("ttft_ms"),
        latency_ms: r.get("latency_ms"),
        cost_usd: r.get("cost_usd"),
        value_usd: r.get("value_usd"),
        revenue_usd: r.get("revenue_usd"),
        started_at_ms: r.get("started_at_ms"),
        finished_at_ms: r.get("finished_at_ms"),
        decision: r.get("decision"),
        price: r.get("price"),
        net_value: r.get("net_value"),
        cache: r.get("cache"),
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn insert_key(&self, k: &KeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant, hash, label, created_at_ms, revoked_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&k.id)
        .bind(&k.tenant)
        .bind(&k.hash)
        .bind(&k.label)
        .bind(k.created_at_ms)
        .bind(k.revoked_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(key_from_row))
    }

    async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_keys WHERE ?1 IS NULL OR tenant = ?1 ORDER BY created_at_ms, id")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(key_from_row).collect())
    }

    async fn revoke_key(&self, id: &str, at_ms: i64) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE api_keys SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL")
            .bind(at_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn insert_ledger(&self, rows: &[LedgerRow]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Multi-row statements: a statement is a round trip to SQLite's thread. Chunks of
        // power-of-two sizes keep the distinct statements few, so each is prepared once and
        // cached; 27 columns x 256 rows stays under SQLite's limit on bound variables (32,766).
        let mut rest = rows;
        while !rest.is_empty() {
            let n = if rest.len() >= 256 { 256 } else { 1 << rest.len().ilog2() };
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO ledger (id, tenant, key_id, endpoint, model_requested, model_served, backend, stream, status, \
                 outcome, error, input_tokens, output_tokens, tokens_estimated, attempts, ttft_ms, latency_ms, cost_usd, \
                 value_usd, started_at_ms, finished_at_ms, decision, price, net_value, revenue_usd, client_request_id, cache) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(&r.id)
                    .push_bind(&r.tenant)
                    .push_bind(&r.key_id)
                    .push_bind(&r.endpoint)
                    .push_bind(&r.model_requested)
                    .push_bind(&r.model_served)
                    .push_bind(&r.backend)
                    .push_bind(r.stream)
                    .push_bind(i64::from(r.status))
                    .push_bind(&r.outcome)
                    .push_bind(&r.error)
                    .push_bind(r.input_tokens)
                    .push_bind(r.output_tokens)
                    .push_bind(r.tokens_estimated)
                    .push_bind(i64::from(r.attempts))
                    .push_bind(r.ttft_ms)
                    .push_bind(r.latency_ms)
                    .push_bind(r.cost_usd)
                    .push_bind(r.value_usd)
                    .push_bind(r.started_at_ms)
                    .push_bind(r.finished_at_ms)
                    .push_bind(&r.decision)
                    .push_bind(r.price)
                    .push_bind(r.net_value)
                    .push_bind(r.revenue_usd)
                    .push_bind(&r.client_request_id)
                    .push_bind(&r.cache);
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn ledger(&self, limit: i64) -> Result<Vec<LedgerRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM ledger ORDER BY started_at_ms DESC, id LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(ledger_from_row).collect())
    }

    async fn ledger_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM ledger").fetch_one(&self.pool).await?)
    }

    async fn usage(&self, since_ms: i64) -> Result<Vec<UsageRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, model_requested AS model, COUNT(*) AS requests, \
             SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors, \
             SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, \
             SUM(cost_usd) AS cost_usd, SUM(value_usd) AS value_usd, SUM(revenue_usd) AS revenue_usd \
             FROM ledger WHERE started_at_ms >= ? GROUP BY tenant, model_requested ORDER BY tenant, model_requested",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let (cost, value): (f64, f64) = (r.get("cost_usd"), r.get("value_usd"));
                UsageRow {
                    tenant: r.get("tenant"),
                    model: r.get("model"),
                    requests: r.get("requests"),
                    errors: r.get("errors"),
                    input_tokens: r.get("input_tokens"),
                    output_tokens: r.get("output_tokens"),
                    cost_usd: cost,
                    value_usd: value,
                    revenue_usd: r.get("revenue_usd"),
                    margin_usd: value - cost,
                }
            })
            .collect())
    }
}
