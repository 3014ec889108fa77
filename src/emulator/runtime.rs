//! Drives engine models in real time: one tokio task per replica owns an [`Engine`], applies
//! submissions and aborts at step boundaries, sleeps for each step's modelled duration (divided
//! by the time scale) and then delivers the step's tokens to the waiting requests.
//!
//! A request's [`Ticket`] aborts it in its engine when dropped, so a client that goes away
//! frees its batch slot and KV cache at the next step boundary.

use super::engine::{Engine, Event, RequestId, Submission, SubmitError};
use super::metrics::Metrics;
use crate::capacity::Profile;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// What a request receives from its engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Token { index: u32, last: bool, cached: u32 },
    Prefilled { cached: u32 },
}

enum Command {
    Submit(Submission, mpsc::UnboundedSender<Delivery>, oneshot::Sender<Result<(), SubmitError>>),
    Abort(RequestId),
}

struct Replica {
    tx: mpsc::UnboundedSender<Command>,
    outstanding: Arc<AtomicUsize>,
}

/// A set of engine replicas of one profile behind one entry point.
pub struct Fleet {
    replicas: Vec<Replica>,
    next_id: AtomicU64,
}

/// A submitted request: its token stream, and an abort-on-drop guard.
pub struct Ticket {
    pub rx: mpsc::UnboundedReceiver<Delivery>,
    id: RequestId,
    tx: mpsc::UnboundedSender<Command>,
    done: bool,
}

impl Ticket {
    /// Marks the request finished so dropping the ticket does not abort it.
    pub fn finish(&mut self) {
        self.done = true;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.tx.send(Command::Abort(self.id));
        }
    }
}

impl Fleet {
    /// Starts `replicas` engines of `profile` on the current tokio runtime.
    pub fn start(profile: &Profile, replicas: usize, time_scale: f64, metrics: Metrics) -> Fleet {
        let replicas = (0..replicas.max(1))
            .map(|i| {
                let (tx, rx) = mpsc::unbounded_channel();
                let outstanding = Arc::new(AtomicUsize::new(0));
                let driver = Driver {
                    engine: Engine::new(profile.clone()),
                    rx,
                    scale: time_scale,
                    metrics: metrics.clone(),
                    label: i.to_string(),
                    outstanding: outstanding.clone(),
                    streams: HashMap::new(),
                };
                tokio::spawn(driver.run());
                Replica { tx, outstanding }
            })
            .collect();
        Fleet { replicas, next_id: AtomicU64::new(1) }
    }

    pub fn next_id(&self) -> RequestId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Submits to the replica with the fewest outstanding requests.
    pub async fn submit(&self, mut s: Submission) -> Result<Ticket, SubmitError> {
        let r =
            self.replicas.iter().min_by_key(|r| r.outstanding.load(Ordering::Relaxed)).expect("at least one replica");
        if s.id == 0 {
            s.id = self.next_id();
        }
        let id = s.id;
        let (tok_tx, tok_rx) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = oneshot::channel();
        r.outstanding.fetch_add(1, Ordering::Relaxed);
        let sent = r.tx.send(Command::Submit(s, tok_tx, ack_tx)).is_ok();
        let mut ticket = Ticket { rx: tok_rx, id, tx: r.tx.clone(), done: false };
        let accepted =
            if sent { ack_rx.await.unwrap_or(Err(SubmitError::EmptyPrompt)) } else { Err(SubmitError::EmptyPrompt) };
        if let Err(e) = accepted {
            ticket.finish();
            return Err(e);
        }
        Ok(ticket)
    }
}

struct Driver {
    engine: Engine,
    rx: mpsc::UnboundedReceiver<Command>,
    scale: f64,
    metrics: Metrics,
    label: String,
    outstanding: Arc<AtomicUsize>,
    streams: HashMap<RequestId, mpsc::UnboundedSender<Delivery>>,
}

impl Driver {
    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Submit(s, tx, ack) => {
                let id = s.id;
                let r = self.engine.submit(s);
                if r.is_ok() {
                    self.streams.insert(id, tx);
                } else {
                    self.outstanding.fetch_sub(1, Ordering::Relaxed);
                }
                let _ = ack.send(r);
            }
            Command::Abort(id) => self.forget(id),
        }
    }

    fn forget(&mut self, id: RequestId) {
        self.engine.abort(id);
        if self.streams.remove(&id).is_some() {
            self.outstanding.fetch_sub(1, Ordering::Relaxed);
        }
    }

    async fn run(mut self) {
        let model = self.engine.profile().model.clone();
        let labels = [model.as_str(), self.label.as_str()];
        let running = self.metrics.running.with_label_values(&labels);
        let waiting = self.metrics.waiting.with_label_values(&labels);
        let kv = self.metrics.kv_usage.with_label_values(&labels);
        let kv1 = self.metrics.kv_usage_v1.with_label_values(&labels);
        let gen = self.metrics.generation_tokens.with_label_values(&[model.as_str()]);
        let prompt = self.metrics.prompt_tokens.with_label_values(&[model.as_str()]);
        let pq = self.metrics.prefix_queries.with_label_values(&[model.as_str()]);
        let ph = self.metrics.prefix_hits.with_label_values(&[model.as_str()]);
        let pre = self.metrics.preemptions.with_label_values(&[model.as_str()]);
        let lag = self.metrics.step_lag.with_label_values(&[self.label.as_str()]);
        let steps = self.metrics.steps.with_label_values(&[self.label.as_str()]);
        // Engine time `base_clock` corresponds to wall time `base_wall`.
        let mut base_wall = Instant::now();
        let mut base_clock = 0.0;
        let mut last = self.engine.counters();
        loop {
            if self.engine.is_idle() {
                let Some(cmd) = self.rx.recv().await else {
                    return;
                };
                self.apply(cmd);
                base_wall = Instant::now();
                base_clock = self.engine.clock();
            }
            while let Ok(cmd) = self.rx.try_recv() {
                self.apply(cmd);
            }
            let Some(step) = self.engine.step() else {
                continue;
            };
            let due = base_wall + std::time::Duration::from_secs_f64((self.engine.clock() - base_clock) / self.scale);
            tokio::time::sleep_until(due).await;
            lag.observe(Instant::now().saturating_duration_since(due).as_secs_f64());
            steps.inc();
            for ev in step.events {
                self.deliver(ev);
            }
            let load = self.engine.load();
            running.set(load.running as i64);
            waiting.set(load.waiting as i64);
            kv.set(load.kv_usage);
            kv1.set(load.kv_usage);
            let c = self.engine.counters();
            gen.inc_by(c.generated_tokens - last.generated_tokens);
            prompt.inc_by(c.prompt_tokens_computed - last.prompt_tokens_computed);
            pq.inc_by(c.prefix_queried_tokens - last.prefix_queried_tokens);
            ph.inc_by(c.prefix_hit_tokens - last.prefix_hit_tokens);
            pre.inc_by(c.preemptions - last.preemptions);
            last = c;
        }
    }

    fn deliver(&mut self, ev: Event) {
        let (id, d, done) = match ev {
            Event::Token { id, index, last, cached } => (id, Delivery::Token { index, last, cached }, last),
            Event::Prefilled { id, cached } => (id, Delivery::Prefilled { cached }, true),
        };
        let Some(tx) = self.streams.get(&id) else {
            return;
        };
        // A closed receiver means the client went away: stop working for it now.
        if tx.send(d).is_err() || done {
            self.forget(id);
        }
    }
}
