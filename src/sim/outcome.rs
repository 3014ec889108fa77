//! What a simulation yields: each request's fate and the pools' state sampled once a second.

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fate {
    Served {
        pool: usize,
        quality: f64,
        ttft: f64,
        e2e: f64,
        deferred: bool,
    },
    Refused,
    /// Admitted but dropped (FIFO's queue timeout, a deferral past its deadline, or lost with
    /// its replica).
    Dropped,
}

/// A pool's state at one moment.
#[derive(Debug, Clone, Copy)]
pub struct PoolSample {
    pub t: f64,
    pub pool: usize,
    /// USD per engine-second (bid-price only; other policies do not price).
    pub price: f64,
    /// Share of the pool's reservation room in use (policies that reserve).
    pub room_use: f64,
    /// Share of the replicas' KV cache held, averaged over replicas.
    pub kv_use: f64,
    /// Requests waiting in the replicas' queues.
    pub waiting: usize,
}
