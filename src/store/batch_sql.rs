//! The Batch API's SQL, written once for SQLite and PostgreSQL like `sql.rs`:
//! [`impl_batch_store!`] implements [`super::batches::BatchStore`] for a store type holding a
//! `pool` of either. Claims are conditional updates (`WHERE state = 'pending'`), so replicas
//! sharing a PostgreSQL store never dispatch one line twice at once.

pub const BATCH_COLUMNS: &str = "id, tenant, key_id, endpoint, input_file_id, completion_window, status, \
     created_at_ms, expires_at_ms, in_progress_at_ms, finalizing_at_ms, completed_at_ms, failed_at_ms, \
     expired_at_ms, cancelling_at_ms, cancelled_at_ms, output_file_id, error_file_id, total, completed, failed, \
     metadata, errors";

macro_rules! impl_batch_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn batch_of(r: &<$db as sqlx::Database>::Row) -> $crate::store::batches::BatchRecord {
                use sqlx::Row;
                let status: String = r.get("status");
                $crate::store::batches::BatchRecord {
                    id: r.get("id"),
                    tenant: r.get("tenant"),
                    key_id: r.get("key_id"),
                    endpoint: r.get("endpoint"),
                    input_file_id: r.get("input_file_id"),
                    completion_window: r.get("completion_window"),
                    status: $crate::store::batches::BatchStatus::parse(&status)
                        .unwrap_or($crate::store::batches::BatchStatus::Failed),
                    created_at_ms: r.get("created_at_ms"),
                    expires_at_ms: r.get("expires_at_ms"),
                    in_progress_at_ms: r.get("in_progress_at_ms"),
                    finalizing_at_ms: r.get("finalizing_at_ms"),
                    completed_at_ms: r.get("completed_at_ms"),
                    failed_at_ms: r.get("failed_at_ms"),
                    expired_at_ms: r.get("expired_at_ms"),
                    cancelling_at_ms: r.get("cancelling_at_ms"),
                    cancelled_at_ms: r.get("cancelled_at_ms"),
                    output_file_id: r.get("output_file_id"),
                    error_file_id: r.get("error_file_id"),
                    total: r.get("total"),
                    completed: r.get("completed"),
                    failed: r.get("failed"),
                    metadata: r.get("metadata"),
                    errors: r.get("errors"),
                }
            }

            fn file_of(r: &<$db as sqlx::Database>::Row) -> $crate::store::batches::FileRecord {
                use sqlx::Row;
                $crate::store::batches::FileRecord {
                    id: r.get("id"),
                    tenant: r.get("tenant"),
                    purpose: r.get("purpose"),
                    filename: r.get("filename"),
                    bytes: r.get("bytes"),
                    created_at_ms: r.get("created_at_ms"),
                }
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::batches::BatchStore for $store {
            async fn put_file(
                &self,
                f: &$crate::store::batches::FileRecord,
            ) -> Result<(), $crate::store::records::StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM files WHERE id = $1").bind(&f.id).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO files (id, tenant, purpose, filename, bytes, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&f.id)
                .bind(&f.tenant)
                .bind(&f.purpose)
                .bind(&f.filename)
                .bind(f.bytes)
                .bind(f.created_at_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_file(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<$crate::store::batches::FileRecord>, $crate::store::records::StoreError> {
                let r = sqlx::query("SELECT * FROM files WHERE tenant = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(r.as_ref().map(Self::file_of))
            }

            async fn list_files(
                &self,
                tenant: &str,
                purpose: Option<&str>,
                limit: i64,
            ) -> Result<Vec<$crate::store::batches::FileRecord>, $crate::store::records::StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM files WHERE tenant = $1 AND ($2 IS NULL OR purpose = $2) \
                     ORDER BY created_at_ms DESC, id LIMIT $3",
                )
                .bind(tenant)
                .bind(purpose)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(Self::file_of).collect())
            }

            async fn delete_file(&self, tenant: &str, id: &str) -> Result<bool, $crate::store::records::StoreError> {
                let r = sqlx::query("DELETE FROM files WHERE tenant = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn create_batch(
                &self,
                b: &$crate::store::batches::BatchRecord,
                lines: &[$crate::store::batches::NewLine],
            ) -> Result<(), $crate::store::records::StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(&format!(
                    "INSERT INTO batches ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                     $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)",
                    $crate::store::batch_sql::BATCH_COLUMNS
                ))
                .bind(&b.id)
                .bind(&b.tenant)
                .bind(&b.key_id)
                .bind(&b.endpoint)
                .bind(&b.input_file_id)
                .bind(&b.completion_window)
                .bind(b.status.as_str())
                .bind(b.created_at_ms)
                .bind(b.expires_at_ms)
                .bind(b.in_progress_at_ms)
                .bind(b.finalizing_at_ms)
                .bind(b.completed_at_ms)
                .bind(b.failed_at_ms)
                .bind(b.expired_at_ms)
                .bind(b.cancelling_at_ms)
                .bind(b.cancelled_at_ms)
                .bind(&b.output_file_id)
                .bind(&b.error_file_id)
                .bind(b.total)
                .bind(b.completed)
                .bind(b.failed)
                .bind(&b.metadata)
                .bind(&b.errors)
                .execute(&mut *tx)
                .await?;
                for chunk in lines.chunks(256) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO batch_lines (batch_id, line, custom_id, body, state) ",
                    );
                    q.push_values(chunk, |mut v, l| {
                        v.push_bind(&b.id)
                            .push_bind(l.line)
                            .push_bind(&l.custom_id)
                            .push_bind(&l.body)
                            .push_bind("pending");
                    });
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_batch(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<$crate::store::batches::BatchRecord>, $crate::store::records::StoreError> {
                let r = sqlx::query("SELECT * FROM batches WHERE tenant = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(r.as_ref().map(Self::batch_of))
            }

            async fn list_batches(
                &self,
                tenant: &str,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<$crate::store::batches::BatchRecord>, $crate::store::records::StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM batches WHERE tenant = $1 AND ($2 IS NULL OR created_at_ms < \
                     (SELECT created_at_ms FROM batches WHERE tenant = $1 AND id = $2)) \
                     ORDER BY created_at_ms DESC, id LIMIT $3",
                )
                .bind(tenant)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(Self::batch_of).collect())
            }

            async fn open_batches(
                &self,
            ) -> Result<Vec<$crate::store::batches::BatchRecord>, $crate::store::records::StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM batches WHERE status IN ('in_progress', 'finalizing', 'cancelling') \
                     ORDER BY created_at_ms, id",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(Self::batch_of).collect())
            }

            async fn move_batch(
                &self,
                id: &str,
                from: &[$crate::store::batches::BatchStatus],
                to: $crate::store::batches::BatchStatus,
                at_ms: i64,
            ) -> Result<bool, $crate::store::records::StoreError> {
                let stamp = to.stamp_column().map(|c| format!(", {c} = $3")).unwrap_or_default();
                let from: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
                let sql =
                    format!("UPDATE batches SET status = $2{stamp} WHERE id = $1 AND status IN ({})", from.join(", "));
                let mut q = sqlx::query(&sql).bind(id).bind(to.as_str());
                if to.stamp_column().is_some() {
                    q = q.bind(at_ms);
                }
                Ok(q.execute(&self.pool).await?.rows_affected() > 0)
            }

            async fn set_batch_files(
                &self,
                id: &str,
                output: Option<&str>,
                error: Option<&str>,
            ) -> Result<(), $crate::store::records::StoreError> {
                sqlx::query("UPDATE batches SET output_file_id = $2, error_file_id = $3 WHERE id = $1")
                    .bind(id)
                    .bind(output)
                    .bind(error)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn claim_lines(
                &self,
                batch_id: &str,
                owner: &str,
                now_ms: i64,
                n: i64,
            ) -> Result<Vec<$crate::store::batches::NewLine>, $crate::store::records::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT line, custom_id, body FROM batch_lines WHERE batch_id = $1 AND state = 'pending' \
                     ORDER BY line LIMIT $2",
                )
                .bind(batch_id)
                .bind(n)
                .fetch_all(&self.pool)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let line: i64 = r.get("line");
                    let taken = sqlx::query(
                        "UPDATE batch_lines SET state = 'running', claimed_by = $3, claimed_at_ms = $4 \
                         WHERE batch_id = $1 AND line = $2 AND state = 'pending'",
                    )
                    .bind(batch_id)
                    .bind(line)
                    .bind(owner)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    if taken == 1 {
                        out.push($crate::store::batches::NewLine {
                            line,
                            custom_id: r.get("custom_id"),
                            body: r.get("body"),
                        });
                    }
                }
                Ok(out)
            }

            async fn renew_claims(&self, owner: &str, now_ms: i64) -> Result<(), $crate::store::records::StoreError> {
                sqlx::query("UPDATE batch_lines SET claimed_at_ms = $2 WHERE claimed_by = $1 AND state = 'running'")
                    .bind(owner)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn release_stale_claims(&self, before_ms: i64) -> Result<u64, $crate::store::records::StoreError> {
                let r = sqlx::query(
                    "UPDATE batch_lines SET state = 'pending', claimed_by = NULL, claimed_at_ms = NULL \
                     WHERE state = 'running' AND claimed_at_ms < $1",
                )
                .bind(before_ms)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected())
            }

            async fn unclaim_line(
                &self,
                batch_id: &str,
                line: i64,
                owner: &str,
            ) -> Result<(), $crate::store::records::StoreError> {
                sqlx::query(
                    "UPDATE batch_lines SET state = 'pending', claimed_by = NULL, claimed_at_ms = NULL \
                     WHERE batch_id = $1 AND line = $2 AND state = 'running' AND claimed_by = $3",
                )
                .bind(batch_id)
                .bind(line)
                .bind(owner)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn finish_line(
                &self,
                batch_id: &str,
                line: i64,
                owner: Option<&str>,
                ok: bool,
                result: &str,
                row: Option<&$crate::metering::row::LedgerRow>,
            ) -> Result<bool, $crate::store::records::StoreError> {
                let mut tx = self.pool.begin().await?;
                let (state, who) = match owner {
                    Some(_) => ("running", "AND claimed_by = $5"),
                    None => ("pending", ""),
                };
                let sql = format!(
                    "UPDATE batch_lines SET state = 'done', result = $3, ok = $4, claimed_by = NULL \
                     WHERE batch_id = $1 AND line = $2 AND state = '{state}' {who}"
                );
                let mut q = sqlx::query(&sql).bind(batch_id).bind(line).bind(result).bind(i64::from(ok));
                if let Some(o) = owner {
                    q = q.bind(o);
                }
                if q.execute(&mut *tx).await?.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                if let Some(r) = row {
                    Self::insert_rows(&mut tx, std::slice::from_ref(r)).await?;
                }
                let column = if ok { "completed" } else { "failed" };
                let value = row.map_or(0.0, |r| r.value_usd);
                sqlx::query(&format!(
                    "UPDATE batches SET {column} = {column} + 1, value_usd = value_usd + $2 WHERE id = $1"
                ))
                .bind(batch_id)
                .bind(value)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn pending_lines(
                &self,
                batch_id: &str,
            ) -> Result<Vec<$crate::store::batches::NewLine>, $crate::store::records::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT line, custom_id, body FROM batch_lines WHERE batch_id = $1 AND state = 'pending' \
                     ORDER BY line",
                )
                .bind(batch_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map(|r| $crate::store::batches::NewLine {
                        line: r.get("line"),
                        custom_id: r.get("custom_id"),
                        body: r.get("body"),
                    })
                    .collect())
            }

            async fn line_counts(
                &self,
                batch_id: &str,
            ) -> Result<$crate::store::batches::LineCounts, $crate::store::records::StoreError> {
                use sqlx::Row;
                // One round trip: the batch's value rides on each state's row.
                let rows = sqlx::query(
                    "SELECT state, COUNT(*) AS n, (SELECT value_usd FROM batches WHERE id = $1) AS v \
                     FROM batch_lines WHERE batch_id = $1 GROUP BY state",
                )
                .bind(batch_id)
                .fetch_all(&self.pool)
                .await?;
                let mut c = $crate::store::batches::LineCounts::default();
                for r in rows {
                    let (state, n): (String, i64) = (r.get("state"), r.get("n"));
                    c.value_usd = r.get::<Option<f64>, _>("v").unwrap_or(0.0);
                    match state.as_str() {
                        "pending" => c.pending = n,
                        "running" => c.running = n,
                        _ => c.done += n,
                    }
                }
                Ok(c)
            }

            async fn done_lines(
                &self,
                batch_id: &str,
            ) -> Result<Vec<$crate::store::batches::DoneLine>, $crate::store::records::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT line, ok, result FROM batch_lines WHERE batch_id = $1 AND state = 'done' ORDER BY line",
                )
                .bind(batch_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map(|r| $crate::store::batches::DoneLine {
                        line: r.get("line"),
                        ok: r.get::<i64, _>("ok") != 0,
                        result: r.get("result"),
                    })
                    .collect())
            }
        }
    };
}

pub(crate) use impl_batch_store;
