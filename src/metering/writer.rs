//! The ledger writer: rows go through an unbounded channel to one task that writes them in
//! batches (one transaction each), off the request path. Under load it wakes on a timer, not per
//! row, so recording a row costs the request path no thread wake-up. A failed write is retried, never
//! dropped; `LedgerWriter::close` drains what is queued before returning.

use super::metrics::GatewayMetrics;
use super::LedgerRow;
use crate::store::Store;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const BATCH: usize = 512;
/// How long the writer waits, after a row arrives, for more to share its transaction. Each
/// commit appends WAL frames for every page it touched, so under load one commit per few rows
/// costs more than the inserts; a few milliseconds of lag turn hundreds of commits a second into
/// tens. Rows are in memory either way until written.
const LINGER: Duration = Duration::from_millis(10);

/// Where meters send their rows. Cheap to clone.
#[derive(Clone)]
pub struct LedgerSink {
    tx: mpsc::UnboundedSender<LedgerRow>,
    queued: Arc<AtomicI64>,
    metrics: Arc<GatewayMetrics>,
}

impl LedgerSink {
    /// Queues a row for the ledger and counts it in the metrics.
    pub fn record(&self, row: LedgerRow) {
        self.metrics.observe(&row);
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(row).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("ledger writer is gone; a row was not recorded");
        }
    }

    /// Rows waiting to be written.
    pub fn queued(&self) -> i64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// The metrics the recorded rows are counted in.
    pub fn metrics(&self) -> &GatewayMetrics {
        &self.metrics
    }
}

pub struct LedgerWriter {
    close: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl LedgerWriter {
    pub fn start(store: Arc<dyn Store>) -> (LedgerWriter, LedgerSink) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicI64::new(0));
        let (close_tx, close_rx) = oneshot::channel();
        let task = tokio::spawn(run(store, rx, close_rx, queued.clone()));
        let metrics = Arc::new(GatewayMetrics::new());
        (LedgerWriter { close: Some(close_tx), task }, LedgerSink { tx, queued, metrics })
    }

    /// Writes everything queued, then stops.
    pub async fn close(mut self) {
        if let Some(c) = self.close.take() {
            let _ = c.send(());
        }
        let _ = (&mut self.task).await;
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<LedgerRow>,
    mut close: oneshot::Receiver<()>,
    queued: Arc<AtomicI64>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut closing = false;
    loop {
        // Idle: wait for a row. This is the only time a row's arrival wakes the writer.
        tokio::select! {
            row = rx.recv() => match row {
                Some(r) => batch.push(r),
                None => closing = true,
            },
            _ = &mut close => closing = true,
        }
        // Busy: every LINGER, write what came meanwhile (sleeping, not waiting on the channel,
        // so that senders on the request path wake nobody); idle again after a quiet LINGER.
        let mut full = false;
        loop {
            if !closing && !full {
                tokio::select! {
                    _ = tokio::time::sleep(LINGER) => {}
                    _ = &mut close => closing = true,
                }
            }
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            full = batch.len() == BATCH;
            write(&*store, &batch).await;
            queued.fetch_sub(batch.len() as i64, Ordering::Relaxed);
            batch.clear();
        }
        if closing {
            return;
        }
    }
}

async fn write(store: &dyn Store, batch: &[LedgerRow]) {
    let mut delay = Duration::from_millis(50);
    loop {
        match store.insert_ledger(batch).await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = %e, rows = batch.len(), "ledger write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
