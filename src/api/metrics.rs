//! `GET /metrics` (admin key required: series name tenants): the gateway's Prometheus
//! exposition, with pool, price, backend and ledger-queue gauges read from live state.

use super::gateway::Gateway;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    let m = gw.sink.metrics();
    if let Some(a) = &gw.allocator {
        let board = a.board();
        for (i, p) in a.fleet.pools.iter().enumerate() {
            let load = &a.load(i);
            let l = [p.name.as_str()];
            m.pool_utilisation.with_label_values(&l).set(load.utilisation());
            m.pool_inflight.with_label_values(&l).set(load.inflight());
            m.pool_room.with_label_values(&l).set(load.room());
            m.pool_backlog.with_label_values(&l).set(load.backlog());
            m.pool_price.with_label_values(&l).set(a.price(i));
            m.pool_shadow_price.with_label_values(&l).set(board.pools.get(i).map(|b| b.lambda).unwrap_or(0.0));
        }
        m.lp_solve_seconds.set(board.solve_ms / 1000.0);
        m.lp_solves.set(board.version as f64);
    }
    for b in &gw.registry.backends {
        let l = [b.name.as_str()];
        m.backend_up.with_label_values(&l).set(if b.healthy() { 1.0 } else { 0.0 });
        let open = match b.circuit_label() {
            "open" => 1.0,
            "half_open" => 0.5,
            _ => 0.0,
        };
        m.backend_circuit_open.with_label_values(&l).set(open);
        m.backend_outstanding.with_label_values(&l).set(b.outstanding() as f64);
        m.backend_limit.with_label_values(&l).set(b.limit());
    }
    m.ledger_queue.set(gw.sink.queued() as f64);
    m.runtime_tasks.set(tokio::runtime::Handle::current().metrics().num_alive_tasks() as f64);
    let h = &gw.state_health;
    let flag = |b: &std::sync::atomic::AtomicBool| if b.load(std::sync::atomic::Ordering::Acquire) { 1.0 } else { 0.0 };
    m.state_degraded.set(flag(&h.degraded));
    m.state_seeded.set(h.seeded_tenants.load(std::sync::atomic::Ordering::Relaxed) as f64);
    m.state_errors.set(h.errors.load(std::sync::atomic::Ordering::Relaxed) as f64);
    m.lp_leader.set(flag(&h.leader));
    if let Some(w) = &gw.guard {
        m.extraction_score.reset();
        for (tenant, snap) in w.standings().0 {
            m.extraction_score.with_label_values(&[tenant.as_str()]).set(snap.score);
        }
        m.extraction_dropped.set(w.dropped() as f64);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], m.render()).into_response()
}
