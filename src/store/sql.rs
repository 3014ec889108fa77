//! The SQL both stores run, written once: the statements use numbered placeholders (`$1`), which
//! SQLite and PostgreSQL both accept, and read every column with a type both map the same way
//! (integers cast to BIGINT, sums of integers cast back from PostgreSQL's NUMERIC).
//! [`impl_sql_store!`] implements [`super::Store`] for a store type holding a `pool` of either.

/// Migrations in order; each runs once, recorded in `schema_migrations`.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_keys_and_ledger.sql")),
    (2, include_str!("../../migrations/0002_decisions.sql")),
    (3, include_str!("../../migrations/0003_revenue.sql")),
    (4, include_str!("../../migrations/0004_client_request_id.sql")),
    (5, include_str!("../../migrations/0005_cache.sql")),
    (6, include_str!("../../migrations/0006_stored_responses.sql")),
    (7, include_str!("../../migrations/0007_cache_tokens_bids_service_tier.sql")),
    (8, include_str!("../../migrations/0008_batches.sql")),
    (9, include_str!("../../migrations/0009_batch_value.sql")),
    (10, include_str!("../../migrations/0010_guard.sql")),
];

pub const LEDGER_COLUMNS: &str = "id, tenant, key_id, endpoint, model_requested, model_served, backend, stream, \
     status, outcome, error, input_tokens, output_tokens, tokens_estimated, attempts, ttft_ms, latency_ms, cost_usd, \
     value_usd, started_at_ms, finished_at_ms, decision, price, net_value, revenue_usd, client_request_id, cache, \
     cached_input_tokens, cache_write_tokens, bid_per_1k, service_tier, guard";

/// The ledger's columns as read back (the two INTEGER columns widened).
pub const LEDGER_SELECT: &str = "SELECT id, tenant, key_id, endpoint, model_requested, model_served, backend, \
     stream, CAST(status AS BIGINT) AS status, outcome, error, input_tokens, output_tokens, tokens_estimated, \
     CAST(attempts AS BIGINT) AS attempts, ttft_ms, latency_ms, cost_usd, value_usd, started_at_ms, finished_at_ms, \
     decision, price, net_value, revenue_usd, client_request_id, cache, cached_input_tokens, cache_write_tokens, \
     bid_per_1k, service_tier, guard FROM ledger \
     ORDER BY started_at_ms DESC, id LIMIT $1";

pub const USAGE: &str = "SELECT tenant, model_requested AS model, COUNT(*) AS requests, \
     CAST(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
     CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
     SUM(cost_usd) AS cost_usd, SUM(value_usd) AS value_usd, SUM(revenue_usd) AS revenue_usd \
     FROM ledger WHERE started_at_ms >= $1 GROUP BY tenant, model_requested ORDER BY tenant, model_requested";

/// Implements `Store` for `$store` (a struct with a `pool: sqlx::Pool<$db>`).
macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn migrate(&self) -> Result<(), $crate::store::records::StoreError> {
                sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
                    .execute(&self.pool)
                    .await?;
                for (version, sql) in $crate::store::sql::MIGRATIONS {
                    let mut tx = self.pool.begin().await?;
                    let done: Option<i64> =
                        sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                            .bind(version)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if done.is_none() {
                        sqlx::raw_sql(sql).execute(&mut *tx).await?;
                        sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                            .bind(version)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                }
                Ok(())
            }

            /// Appends ledger rows within `tx`.
            async fn insert_rows(
                tx: &mut sqlx::Transaction<'_, $db>,
                rows: &[$crate::metering::row::LedgerRow],
            ) -> Result<(), $crate::store::records::StoreError> {
                // Multi-row statements in chunks of power-of-two sizes, so the distinct statements
                // stay few and each is prepared once; 27 columns x 256 rows stays under both
                // databases' limits on bound variables.
                let mut rest = rows;
                while !rest.is_empty() {
                    let n = if rest.len() >= 256 { 256 } else { 1 << rest.len().ilog2() };
                    let (chunk, tail) = rest.split_at(n);
                    rest = tail;
                    let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                        "INSERT INTO ledger ({}) ",
                        $crate::store::sql::LEDGER_COLUMNS
                    ));
                    q.push_values(chunk, |mut b, r| {
                        b.push_bind(&r.id)
                            .push_bind(&r.tenant)
                            .push_bind(&r.key_id)
                            .push_bind(&r.endpoint)
                            .push_bind(&r.model_requested)
                            .push_bind(&r.model_served)
                            .push_bind(&r.backend)
                            .push_bind(r.stream)
                            .push_bind(i32::from(r.status))
                            .push_bind(&r.outcome)
                            .push_bind(&r.error)
                            .push_bind(r.input_tokens)
                            .push_bind(r.output_tokens)
                            .push_bind(r.tokens_estimated)
                            .push_bind(r.attempts as i32)
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
                            .push_bind(&r.cache)
                            .push_bind(r.cached_input_tokens)
                            .push_bind(r.cache_write_tokens)
                            .push_bind(r.bid_per_1k)
                            .push_bind(&r.service_tier)
                            .push_bind(&r.guard);
                    });
                    q.build().execute(&mut **tx).await?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::records::Store for $store {
            async fn insert_key(
                &self,
                k: &$crate::store::records::KeyRecord,
            ) -> Result<(), $crate::store::records::StoreError> {
                sqlx::query(
                    "INSERT INTO api_keys (id, tenant, hash, label, created_at_ms, revoked_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
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

            async fn find_key(
                &self,
                id: &str,
            ) -> Result<Option<$crate::store::records::KeyRecord>, $crate::store::records::StoreError> {
                use sqlx::Row;
                let row =
                    sqlx::query("SELECT * FROM api_keys WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| $crate::store::records::KeyRecord {
                    id: r.get("id"),
                    tenant: r.get("tenant"),
                    hash: r.get("hash"),
                    label: r.get("label"),
                    created_at_ms: r.get("created_at_ms"),
                    revoked_at_ms: r.get("revoked_at_ms"),
                }))
            }

            async fn list_keys(
                &self,
                tenant: Option<&str>,
            ) -> Result<Vec<$crate::store::records::KeyRecord>, $crate::store::records::StoreError> {
                use sqlx::Row;
                let rows =
                    sqlx::query("SELECT * FROM api_keys WHERE $1 IS NULL OR tenant = $1 ORDER BY created_at_ms, id")
                        .bind(tenant)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows
                    .iter()
                    .map(|r| $crate::store::records::KeyRecord {
                        id: r.get("id"),
                        tenant: r.get("tenant"),
                        hash: r.get("hash"),
                        label: r.get("label"),
                        created_at_ms: r.get("created_at_ms"),
                        revoked_at_ms: r.get("revoked_at_ms"),
                    })
                    .collect())
            }

            async fn revoke_key(&self, id: &str, at_ms: i64) -> Result<bool, $crate::store::records::StoreError> {
                let r = sqlx::query("UPDATE api_keys SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL")
                    .bind(at_ms)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn put_response(
                &self,
                r: &$crate::store::records::StoredResponse,
            ) -> Result<(), $crate::store::records::StoreError> {
                // Expired responses go as new ones come: no sweeper task to run.
                sqlx::query("DELETE FROM stored_responses WHERE expires_at_ms <= $1")
                    .bind(r.created_at_ms)
                    .execute(&self.pool)
                    .await?;
                sqlx::query(
                    "INSERT INTO stored_responses (id, tenant, created_at_ms, expires_at_ms, input, response) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&r.id)
                .bind(&r.tenant)
                .bind(r.created_at_ms)
                .bind(r.expires_at_ms)
                .bind(&r.input)
                .bind(&r.response)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_response(
                &self,
                tenant: &str,
                id: &str,
                now_ms: i64,
            ) -> Result<Option<$crate::store::records::StoredResponse>, $crate::store::records::StoreError> {
                use sqlx::Row;
                let row =
                    sqlx::query("SELECT * FROM stored_responses WHERE id = $1 AND tenant = $2 AND expires_at_ms > $3")
                        .bind(id)
                        .bind(tenant)
                        .bind(now_ms)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|r| $crate::store::records::StoredResponse {
                    id: r.get("id"),
                    tenant: r.get("tenant"),
                    created_at_ms: r.get("created_at_ms"),
                    expires_at_ms: r.get("expires_at_ms"),
                    input: r.get("input"),
                    response: r.get("response"),
                }))
            }

            async fn delete_response(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<bool, $crate::store::records::StoreError> {
                let r = sqlx::query("DELETE FROM stored_responses WHERE id = $1 AND tenant = $2")
                    .bind(id)
                    .bind(tenant)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn insert_ledger(
                &self,
                rows: &[$crate::metering::row::LedgerRow],
            ) -> Result<(), $crate::store::records::StoreError> {
                let mut tx = self.pool.begin().await?;
                Self::insert_rows(&mut tx, rows).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn ledger(
                &self,
                limit: i64,
            ) -> Result<Vec<$crate::metering::row::LedgerRow>, $crate::store::records::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query($crate::store::sql::LEDGER_SELECT).bind(limit).fetch_all(&self.pool).await?;
                Ok(rows
                    .iter()
                    .map(|r| $crate::metering::row::LedgerRow {
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
                        cached_input_tokens: r.get("cached_input_tokens"),
                        cache_write_tokens: r.get("cache_write_tokens"),
                        bid_per_1k: r.get("bid_per_1k"),
                        service_tier: r.get("service_tier"),
                        guard: r.get("guard"),
                    })
                    .collect())
            }

            async fn ledger_count(&self) -> Result<i64, $crate::store::records::StoreError> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM ledger").fetch_one(&self.pool).await?)
            }

            async fn usage(
                &self,
                since_ms: i64,
            ) -> Result<Vec<$crate::store::records::UsageRow>, $crate::store::records::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query($crate::store::sql::USAGE).bind(since_ms).fetch_all(&self.pool).await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        let (cost, value): (f64, f64) = (r.get("cost_usd"), r.get("value_usd"));
                        $crate::store::records::UsageRow {
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
    };
}

pub(crate) use impl_sql_store;
