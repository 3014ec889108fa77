//! The batch dispatcher: one task per replica. Every second (or at once when a batch is
//! created) it renews its claims, releases lines whose replica stopped renewing (it died), and
//! for each open batch claims pending lines up to its free slots and runs each through the
//! gateway's own pipeline ([`crate::api::proxy::handle_metered`]) at the batch tier: admission
//! prices it as work that may wait (it waits in its pool's queue and holds out for a price that
//! rises over the batch's window), and limits, budgets and metering apply. A line refused for
//! now (429 for price or a rate limit, or no backend) goes back to pending and is tried again;
//! any other answer finishes it (a tenant out of budget fails the line, with its error and its
//! row). Its result and its ledger row are written in one transaction, so after a crash a line
//! is either done with exactly one row, or pending with none (and runs again). A batch with
//! nothing left is finalized (output and error files written); past its window its pending
//! lines expire; a cancelled batch's pending lines are cancelled; both end in the error file
//! with a ledger row.

use super::objects;
use crate::api::classify::Route;
use crate::api::gateway::{Gateway, RequestIds};
use crate::api::responses::response::Echo;
use crate::auth::Caller;
use crate::config::ServiceTier;
use crate::metering::{LedgerRow, LedgerSink, Meter, Outcome};
use crate::store::batches::{BatchRecord, BatchStatus, DoneLine, NewLine};
use crate::store::StoreError;
use axum::body::Bytes;
use axum::response::IntoResponse;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// Largest answer kept for one line.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Files(#[from] super::files::FileError),
}

struct Dispatcher {
    gw: Arc<Gateway>,
    /// This replica's name on its claims.
    owner: String,
    /// Rows of the lines' requests come here instead of the ledger writer...
    sink: LedgerSink,
    /// ... and are handed to the line waiting for them, by request id.
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<LedgerRow>>>>,
    slots: Arc<Semaphore>,
}

/// Starts the dispatcher on the current runtime.
pub fn spawn(gw: Arc<Gateway>) -> Vec<JoinHandle<()>> {
    let (sink, mut rows) = LedgerSink::detached();
    let waiting: Arc<Mutex<HashMap<String, oneshot::Sender<LedgerRow>>>> = Arc::default();
    let router = {
        let waiting = waiting.clone();
        tokio::spawn(async move {
            while let Some(row) = rows.recv().await {
                if let Some(tx) = waiting.lock().expect("waiting lock").remove(&row.id) {
                    let _ = tx.send(row);
                }
            }
        })
    };
    let slots = Arc::new(Semaphore::new(gw.cfg.batches.concurrency));
    let d = Arc::new(Dispatcher { gw, owner: format!("replica-{}", uuid::Uuid::new_v4()), sink, waiting, slots });
    vec![router, tokio::spawn(d.run())]
}

fn now_ms() -> i64 {
    crate::units::unix_ms()
}

impl Dispatcher {
    async fn run(self: Arc<Self>) {
        let ttl_ms = self.gw.cfg.batches.claim_ttl_s as i64 * 1000;
        let mut renewed = i64::MIN / 2;
        loop {
            let now = now_ms();
            if now - renewed >= ttl_ms / 3 {
                let store = &self.gw.store;
                if let Err(e) = store.renew_claims(&self.owner, now).await {
                    tracing::warn!(error = %e, "renewing batch line claims failed");
                }
                match store.release_stale_claims(now - ttl_ms).await {
                    Ok(n) if n > 0 => tracing::info!(lines = n, "batch lines of a stopped replica dispatched again"),
                    Err(e) => tracing::warn!(error = %e, "releasing stale batch claims failed"),
                    _ => {}
                }
                renewed = now;
            }
            match self.gw.store.open_batches().await {
                Ok(batches) => {
                    for b in batches {
                        if let Err(e) = self.step(&b, now).await {
                            tracing::warn!(batch = %b.id, error = %e, "batch step failed; trying again");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading open batches failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = self.gw.batch_wake.notified() => {}
            }
        }
    }

    async fn step(self: &Arc<Self>, b: &BatchRecord, now: i64) -> Result<(), DispatchError> {
        let store = &self.gw.store;
        match b.status {
            BatchStatus::InProgress if now >= b.expires_at_ms => {
                let msg = "This request could not be executed before the completion window expired.";
                self.close_pending(b, Outcome::BatchExpired, msg).await?;
                if store.line_counts(&b.id).await?.running == 0 {
                    self.finalize(b, BatchStatus::Expired).await?;
                }
            }
            BatchStatus::InProgress => {
                let free = self.slots.available_permits();
                if free > 0 {
                    for line in store.claim_lines(&b.id, &self.owner, now, free as i64).await? {
                        let permit = self.slots.clone().acquire_owned().await.expect("never closed");
                        tokio::spawn(self.clone().run_line(b.clone(), line, permit));
                    }
                }
                let c = store.line_counts(&b.id).await?;
                if c.pending == 0 && c.running == 0 {
                    self.finalize(b, BatchStatus::Completed).await?;
                }
            }
            BatchStatus::Cancelling => {
                self.close_pending(b, Outcome::BatchCancelled, "The batch was cancelled before this request ran.")
                    .await?;
                if store.line_counts(&b.id).await?.running == 0 {
                    self.finalize(b, BatchStatus::Cancelled).await?;
                }
            }
            BatchStatus::Finalizing => self.finalize(b, BatchStatus::Completed).await?,
            _ => {}
        }
        Ok(())
    }

    /// Runs one claimed line through the pipeline and records how it ended.
    async fn run_line(self: Arc<Self>, b: BatchRecord, l: NewLine, _slot: OwnedSemaphorePermit) {
        let Some(route) = super::route_of(&b.endpoint) else { return };
        let rid = objects::request_id(&b.id, l.line);
        let ids = RequestIds {
            id: rid.clone(),
            client: Some(l.custom_id.clone()),
            bid: None,
            service: Some(ServiceTier::Batch),
            window_ms: Some(b.created_at_ms..b.expires_at_ms),
        };
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().expect("waiting lock").insert(rid.clone(), tx);
        let caller = Caller { tenant: b.tenant.clone(), key_id: b.key_id.clone() };
        // A Responses line is answered as a Response object (not kept: `store` does not apply).
        let echo =
            (route == Route::Responses).then(|| serde_json::from_str(&l.body).map(|v| Echo::of(&v)).ok()).flatten();
        let mut resp =
            crate::api::proxy::handle_metered(&self.gw, self.sink.clone(), route, &caller, ids, Bytes::from(l.body))
                .await;
        if let Some(echo) = echo {
            resp = crate::api::responses::answer(resp, echo, None).await.unwrap_or_else(|e| e.into_response());
        }
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), MAX_ANSWER_BYTES).await;
        let row = tokio::time::timeout(std::time::Duration::from_secs(30), rx).await;
        self.waiting.lock().expect("waiting lock").remove(&rid);
        let store = &self.gw.store;
        let (Ok(body), Ok(Ok(row))) = (body, row) else {
            tracing::warn!(batch = %b.id, line = l.line, "a batch line's answer or row was lost; it runs again");
            let _ = store.unclaim_line(&b.id, l.line, &self.owner).await;
            return;
        };
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
        // Refused for now (price, rate limits) or no backend: nothing is recorded; it runs again.
        // A tenant out of budget is not refused for now: the line fails (as OpenAI's do).
        let out_of_budget = answer["error"]["code"] == "insufficient_quota";
        if (status.as_u16() == 429 && !out_of_budget || status.is_server_error()) && now_ms() < b.expires_at_ms {
            let _ = store.unclaim_line(&b.id, l.line, &self.owner).await;
            return;
        }
        let result = objects::answered(&b.id, l.line, &l.custom_id, status.as_u16(), &rid, answer);
        match store.finish_line(&b.id, l.line, Some(&self.owner), status.is_success(), &result, Some(&row)).await {
            Ok(true) => {
                // Counted in the gateway's metrics once its row is kept (a line run again is not).
                self.gw.sink.metrics().observe(&row);
                self.gw.batch_wake.notify_one()
            }
            Ok(false) => tracing::warn!(batch = %b.id, line = l.line, "another replica took this batch line over"),
            Err(e) => {
                tracing::warn!(batch = %b.id, line = l.line, error = %e, "recording a batch line failed; it runs again");
                let _ = store.unclaim_line(&b.id, l.line, &self.owner).await;
            }
        }
    }

    /// Ends every pending line of `b` unrun, each in the error file with its ledger row.
    async fn close_pending(&self, b: &BatchRecord, outcome: Outcome, message: &str) -> Result<(), DispatchError> {
        let status = if outcome == Outcome::BatchExpired { 408 } else { 499 };
        for l in self.gw.store.pending_lines(&b.id).await? {
            let rid = objects::request_id(&b.id, l.line);
            let mut meter = Meter::new(
                self.sink.clone(),
                rid,
                &b.tenant,
                &b.key_id,
                &b.endpoint,
                Default::default(),
                Default::default(),
            );
            meter.client_request_id(Some(l.custom_id.clone()));
            let model = serde_json::from_str::<serde_json::Value>(&l.body)
                .ok()
                .and_then(|v| v.get("model").and_then(|m| m.as_str()).map(str::to_string))
                .unwrap_or_default();
            meter.requested(&model, false);
            meter.service_tier(ServiceTier::Batch.as_str());
            let row = meter.into_row(status, outcome, Some(message.to_string()));
            let result = objects::not_run(&b.id, l.line, &l.custom_id, outcome.as_str(), message);
            if self.gw.store.finish_line(&b.id, l.line, None, false, &result, Some(&row)).await? {
                self.gw.sink.metrics().observe(&row);
            }
        }
        Ok(())
    }

    /// Writes `b`'s output and error files and moves it to `to` (through `finalizing` for a
    /// completed batch). Safe to repeat: the files' ids are the batch's.
    async fn finalize(&self, b: &BatchRecord, to: BatchStatus) -> Result<(), DispatchError> {
        let store = &self.gw.store;
        let now = now_ms();
        if to == BatchStatus::Completed
            && b.status == BatchStatus::InProgress
            && !store.move_batch(&b.id, &[BatchStatus::InProgress], BatchStatus::Finalizing, now).await?
        {
            return Ok(());
        }
        let done = store.done_lines(&b.id).await?;
        let mut ids = [None, None];
        for (slot, (ok, suffix)) in [(true, "output"), (false, "errors")].into_iter().enumerate() {
            let text: String =
                done.iter().filter(|d| d.ok == ok).map(|d: &DoneLine| format!("{}\n", d.result)).collect();
            if !text.is_empty() {
                ids[slot] =
                    Some(super::keep_file::<DispatchError>(&self.gw, &b.id, &b.tenant, suffix, &text, now).await?);
            }
        }
        store.set_batch_files(&b.id, ids[0].as_deref(), ids[1].as_deref()).await?;
        let from = [BatchStatus::InProgress, BatchStatus::Finalizing, BatchStatus::Cancelling];
        store.move_batch(&b.id, &from, to, now).await?;
        tracing::info!(batch = %b.id, status = to.as_str(), lines = done.len(), "batch finished");
        Ok(())
    }
}
