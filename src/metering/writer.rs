//! The ledger writer: rows go through an unbounded channel to one task that writes them in
//! batches (one transaction each), off the request path. Under load it wakes on a timer, not per
//! row, so recording a row costs the request path no thread wake-up. A failed write is retried, never
//! dropped; `LedgerWriter::close` drains what is queued before returning.
//!
//! Durable mode (`ledger_durable`, on with PostgreSQL): each row carries an acknowledgement sent
//! once its transaction commits, and the writer does not linger (rows queued while a write runs
//! share the next commit), so the request path can hold a response's last bytes until its row
//! is safe: a replica killed mid-load has recorded every request a client saw complete.

use super::metrics::GatewayMetrics;
use super::row::LedgerRow;
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

/// The longest a response waits for its row to commit; past it the response goes out and the
/// row stays queued (retried until the database is back).
const DURABLE_WAIT: Duration = Duration::from_secs(10);

type Queued = (LedgerRow, Option<oneshot::Sender<()>>);

/// Where meters send their rows. Cheap to clone.
#[derive(Clone)]
pub struct LedgerSink {
    tx: mpsc::UnboundedSender<Queued>,
    queued: Arc<AtomicI64>,
    metrics: Arc<GatewayMetrics>,
    durable: bool,
}

/// A recorded row's commit, to wait for before a response ends (durable mode).
pub struct Durable(Option<oneshot::Receiver<()>>);

impl Durable {
    /// Nothing to wait for.
    pub fn none() -> Self {
        Self(None)
    }

    /// Waits until the row is committed (at most [`DURABLE_WAIT`]); at once when not durable.
    pub async fn wait(self) {
        if let Some(rx) = self.0 {
            if tokio::time::timeout(DURABLE_WAIT, rx).await.is_err() {
                tracing::warn!("ledger row not committed within 10 s; answering anyway, the row stays queued");
            }
        }
    }
}

impl LedgerSink {
    /// A sink whose rows are not written anywhere but handed to the receiver, for stage tests
    /// that need no database.
    pub fn detached() -> (LedgerSink, mpsc::UnboundedReceiver<LedgerRow>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Queued>();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicI64::new(0));
        let q = queued.clone();
        std::thread::spawn(move || {
            while let Some((row, ack)) = rx.blocking_recv() {
                q.fetch_sub(1, Ordering::Relaxed);
                let _ = out_tx.send(row);
                if let Some(a) = ack {
                    let _ = a.send(());
                }
            }
        });
        (LedgerSink { tx, queued, metrics: Arc::new(GatewayMetrics::new()), durable: false }, out_rx)
    }

    /// Queues a row for the ledger and counts it in the metrics.
    pub fn record(&self, row: LedgerRow) -> Durable {
        self.metrics.observe(&row);
        self.queued.fetch_add(1, Ordering::Relaxed);
        let (ack, rx) = if self.durable {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        if self.tx.send((row, ack)).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("ledger writer is gone; a row was not recorded");
            return Durable(None);
        }
        Durable(rx)
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
    /// `durable`: rows are acknowledged once committed, and written without lingering.
    pub fn start(store: Arc<dyn Store>, durable: bool) -> (LedgerWriter, LedgerSink) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicI64::new(0));
        let (close_tx, close_rx) = oneshot::channel();
        let linger = if durable { Duration::ZERO } else { LINGER };
        let task = tokio::spawn(run(store, rx, close_rx, queued.clone(), linger));
        let metrics = Arc::new(GatewayMetrics::new());
        (LedgerWriter { close: Some(close_tx), task }, LedgerSink { tx, queued, metrics, durable })
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
    mut rx: mpsc::UnboundedReceiver<Queued>,
    mut close: oneshot::Receiver<()>,
    queued: Arc<AtomicI64>,
    linger: Duration,
) {
    let mut batch: Vec<LedgerRow> = Vec::with_capacity(BATCH);
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    fn take(q: Queued, batch: &mut Vec<LedgerRow>, acks: &mut Vec<oneshot::Sender<()>>) {
        batch.push(q.0);
        acks.extend(q.1);
    }
    let mut closing = false;
    loop {
        // Idle: wait for a row. This is the only time a row's arrival wakes the writer.
        tokio::select! {
            row = rx.recv() => match row {
                Some(q) => take(q, &mut batch, &mut acks),
                None => closing = true,
            },
            _ = &mut close => closing = true,
        }
        // Busy: every LINGER, write what came meanwhile (sleeping, not waiting on the channel,
        // so that senders on the request path wake nobody); idle again after a quiet LINGER.
        let mut full = false;
        loop {
            if !closing && !full && !linger.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(linger) => {}
                    _ = &mut close => closing = true,
                }
            }
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(q) => take(q, &mut batch, &mut acks),
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
            for a in acks.drain(..) {
                let _ = a.send(());
            }
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
