//! The extraction watch at the gateway: a [`Tracker`] on a thread of its own, fed through a
//! bounded channel (a full channel drops the observation and counts it, never blocks a request),
//! publishing each tenant's and key's [`Snapshot`] on a board the request path reads (a read lock
//! to find the tenant, then an atomic load). Computing a prompt's sign (hashing its words)
//! happens on that thread too. Idle subjects are forgotten every minute, so a standing never
//! outlives the requests it was computed from by more than that.

use super::score::Snapshot;
use super::sketch::sign;
use super::tracker::{Arrival, Settings, Tracker};
use arc_swap::ArcSwap;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};

/// The text of a request's prompt, read on the watch's thread.
pub type Text = Box<dyn FnOnce() -> Option<String> + Send>;

/// What the request path tells the watch of one arrival.
pub struct Seen {
    pub request_id: u64,
    pub tenant: String,
    pub key: String,
    pub t_ms: i64,
    pub text: Text,
    pub logprobs: f64,
    pub max_tokens: Option<u32>,
}

enum Msg {
    Arrive(Seen),
    /// A request's end: its input and output tokens if it was answered.
    Done {
        request_id: u64,
        tokens: Option<(u32, u32)>,
    },
}

/// One subject's published standing, and its throttles' minutes.
#[derive(Default)]
pub struct Standing {
    snap: ArcSwap<Snapshot>,
    /// Per throttled model: the minute (Unix ms / 60,000) and the requests let through in it.
    minutes: Mutex<HashMap<String, (i64, u32)>>,
}

impl Standing {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snap.load_full()
    }

    pub fn score(&self) -> f64 {
        self.snap.load().score
    }

    /// Takes one of `per_minute` requests to `model` in the current minute; false when none is
    /// left.
    pub fn take(&self, model: &str, per_minute: u32, now_ms: i64) -> bool {
        let mut minutes = self.minutes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = now_ms.div_euclid(60_000);
        // The model's name is copied only the first time it is throttled.
        if !minutes.contains_key(model) {
            minutes.insert(model.to_string(), (now, 0));
        }
        let Some(m) = minutes.get_mut(model) else { return false };
        if m.0 != now {
            *m = (now, 0);
        }
        if m.1 >= per_minute {
            return false;
        }
        m.1 += 1;
        true
    }
}

type Subjects = RwLock<HashMap<String, Arc<Standing>>>;

/// Subjects (tenants or keys) by name with their standing, highest score first.
pub type Ranked = Vec<(String, Arc<Snapshot>)>;

/// What the watch publishes.
#[derive(Default)]
pub struct Board {
    tenants: Subjects,
    keys: Subjects,
}

fn publish(subjects: &Subjects, name: &str, snap: Snapshot) {
    let found = subjects.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(name).cloned();
    let s = match found {
        Some(s) => s,
        None => {
            let mut w = subjects.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            w.entry(name.to_string()).or_default().clone()
        }
    };
    s.snap.store(Arc::new(snap));
}

fn list(subjects: &Subjects) -> Ranked {
    let r = subjects.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut v: Vec<_> = r.iter().map(|(k, s)| (k.clone(), s.snapshot())).collect();
    v.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0)));
    v
}

/// The watch: the sender side and the board.
pub struct Watch {
    tx: SyncSender<Msg>,
    board: Arc<Board>,
    dropped: AtomicU64,
}

/// Messages waiting for the watch's thread at most (a flood past it is dropped, counted). Each
/// keeps its request's prompt alive until the thread reads it; at about 5 us an arrival the
/// thread drains a full queue in some 40 ms.
const QUEUE: usize = 8_192;

impl Watch {
    /// Starts the watch's thread; it ends when the watch is dropped.
    pub fn start(settings: Settings) -> Arc<Self> {
        Self::with_queue(settings, QUEUE)
    }

    fn with_queue(settings: Settings, queue: usize) -> Arc<Self> {
        let (tx, rx) = sync_channel(queue);
        let board = Arc::new(Board::default());
        let b = board.clone();
        std::thread::Builder::new()
            .name("tollgate-watch".into())
            .spawn(move || run(Tracker::new(settings), rx, &b))
            .expect("spawning the extraction watch's thread");
        Arc::new(Self { tx, board, dropped: AtomicU64::new(0) })
    }

    fn send(&self, m: Msg) {
        match self.tx.try_send(m) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                // The watch's thread is gone: standings stay as they were; say so once a while.
                if self.dropped.fetch_add(1, Ordering::Relaxed).is_multiple_of(10_000) {
                    tracing::error!("the extraction watch's thread has stopped; its standings are no longer updated");
                }
            }
        }
    }

    pub fn arrive(&self, seen: Seen) {
        self.send(Msg::Arrive(seen));
    }

    /// A request ended: with its input and output tokens if it was answered.
    pub fn done(&self, request_id: u64, tokens: Option<(u32, u32)>) {
        self.send(Msg::Done { request_id, tokens });
    }

    /// A tenant's standing, once it has one.
    pub fn tenant(&self, tenant: &str) -> Option<Arc<Standing>> {
        self.board.tenants.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(tenant).cloned()
    }

    /// Every tenant's and key's standing, highest score first.
    pub fn standings(&self) -> (Ranked, Ranked) {
        (list(&self.board.tenants), list(&self.board.keys))
    }

    /// Observations dropped because the watch's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The hash a request id is known by in the watch.
pub fn request_hash(id: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(11).hash_one(id)
}

fn prune(t: &mut Tracker, board: &Board) {
    let (tenants, keys) = t.prune(crate::units::unix_ms());
    for (subjects, gone) in [(&board.tenants, tenants), (&board.keys, keys)] {
        let mut w = subjects.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for g in gone {
            w.remove(&g);
        }
    }
}

/// Messages taken in before the subjects they touched are scored and published.
const BATCH: usize = 512;

/// Once woken by a message, the thread takes what comes every this long (sleeping, not waiting
/// on the channel, so that the request path's sends wake nobody), until a period brings nothing
/// and it waits on the channel again. Under load each subject is then scored once for many
/// requests, and the thread is woken once a period rather than once or twice a request (per
/// message, the watch took 11-14% of the gateway's CPU at saturation: `bench/profile.sh`; at
/// concurrency 1 it was woken 1.2 times a request). Standings lag by about this much more.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(10);

fn take(t: &mut Tracker, m: Msg, touched: &mut HashMap<String, HashSet<String>>) {
    let (tenant, key) = match m {
        Msg::Arrive(s) => {
            let sign = (s.text)().map(|t| sign(&t)).unwrap_or_default();
            let (tenant, key) = (s.tenant.clone(), s.key.clone());
            t.observe(Arrival {
                id: s.request_id,
                tenant: s.tenant,
                key: s.key,
                t_ms: s.t_ms,
                sign,
                logprobs: s.logprobs,
                max_tokens: s.max_tokens,
            });
            (tenant, key)
        }
        Msg::Done { request_id, tokens: None } => return t.forget(request_id),
        Msg::Done { request_id, tokens: Some((input, output)) } => {
            let Some(subject) = t.finish(request_id, input, output) else { return };
            subject
        }
    };
    touched.entry(tenant).or_default().insert(key);
}

fn run(mut t: Tracker, rx: Receiver<Msg>, board: &Board) {
    let every = std::time::Duration::from_secs(60);
    let mut last_prune = std::time::Instant::now();
    let mut touched: HashMap<String, HashSet<String>> = HashMap::new();
    loop {
        // Idle: wait for a message (or a minute, to prune). Only here does a send wake the thread.
        let mut next = match rx.recv_timeout(every) {
            Ok(m) => Some(m),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        // Busy: take what came, publish, sleep; idle again after a period that brought nothing.
        loop {
            if last_prune.elapsed() >= every {
                last_prune = std::time::Instant::now();
                prune(&mut t, board);
            }
            let mut taken = 0;
            while let Some(m) = next {
                take(&mut t, m, &mut touched);
                taken += 1;
                next = if taken < BATCH { rx.try_recv().ok() } else { None };
            }
            for (tenant, keys) in touched.drain() {
                for key in keys {
                    publish(&board.keys, &key, t.key_standing(&tenant, &key));
                }
                publish(&board.tenants, &tenant, t.tenant_standing(&tenant));
            }
            if taken == 0 {
                break;
            }
            if taken < BATCH {
                std::thread::sleep(COALESCE);
            }
            next = match rx.try_recv() {
                Ok(m) => Some(m),
                Err(std::sync::mpsc::TryRecvError::Empty) => None,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    fn seen(i: u64, text: Text) -> Seen {
        Seen {
            request_id: i,
            tenant: "flood".into(),
            key: "k".into(),
            t_ms: i as i64 * 1000,
            text,
            logprobs: 0.0,
            max_tokens: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking_and_the_rest_is_watched() {
        let w = Watch::with_queue(Settings::default(), 8);
        // The first arrival holds the watch's thread (its prompt is read there) until released.
        let (started_tx, started) = channel();
        let (release, held) = channel::<()>();
        w.arrive(seen(
            0,
            Box::new(move || {
                started_tx.send(()).unwrap();
                held.recv().ok();
                Some("Explain the Krebs cycle".into())
            }),
        ));
        started.recv().unwrap();
        // Eight fit in the queue behind it; the five after them are dropped, and no call waits.
        for i in 1..=13 {
            w.arrive(seen(i, Box::new(|| Some("Explain the Krebs cycle".into()))));
        }
        assert_eq!(w.dropped(), 5);
        release.send(()).unwrap();
        let mut requests = 0;
        for _ in 0..200 {
            requests = w.tenant("flood").map_or(0, |s| s.snapshot().features.requests);
            if requests == 9 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(requests, 9, "the first and the eight queued are watched");
        assert_eq!(w.dropped(), 5);
    }

    #[test]
    fn a_throttle_counts_each_model_and_minute_apart() {
        let s = Standing::default();
        assert!(s.take("small", 1, 1_000));
        assert!(!s.take("small", 1, 59_999), "one a minute");
        assert!(s.take("big", 1, 2_000), "another model's allowance is its own");
        assert!(s.take("small", 1, 60_000), "a new minute");
    }
}
