//! The scale-out test's parts: a replica process, the client that records what it saw, reading
//! the admin API and Redis, and measuring a tenant's busiest minute in the ledger.

use crate::common;
use futures::StreamExt;
use serde_json::Value;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

pub struct Replica {
    pub child: Mutex<Option<Child>>,
    pub base: String,
}

impl Replica {
    /// SIGKILL: the process dies with whatever it holds.
    pub fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM: the gateway drains its requests and flushes its ledger, then exits.
    pub fn terminate(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap();
            let _ = c.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether replica `id` holds reservations on the pool `big` (under any epoch of its presence).
pub async fn holds_room(conn: &mut redis::aio::MultiplexedConnection, id: &str) -> bool {
    let fields: Vec<String> = redis::cmd("HKEYS").arg("tollgate:pool:big:inflight").query_async(conn).await.unwrap();
    fields.iter().any(|f| f.strip_prefix(id).is_some_and(|rest| rest.starts_with('.')))
}

/// What clients saw: (client request id, replica index, HTTP status, completed).
pub type Seen = Arc<Mutex<Vec<(String, usize, u16, bool)>>>;

/// The most a tenant's answered requests weigh in any 60 whole seconds (by the second each
/// started), over the whole run.
pub fn worst_minute(
    rows: &[tollgate::metering::LedgerRow],
    tenant: &str,
    weight: impl Fn(&tollgate::metering::LedgerRow) -> i64,
) -> i64 {
    let mut by_second: Vec<(i64, i64)> = rows
        .iter()
        .filter(|r| r.tenant == tenant && r.status == 200)
        .map(|r| (r.started_at_ms / 1000, weight(r)))
        .collect();
    by_second.sort();
    let (Some(first), Some(last)) = (by_second.first(), by_second.last()) else { return 0 };
    (first.0..=last.0)
        .map(|s| by_second.iter().filter(|(t, _)| *t >= s && *t < s + 60).map(|x| x.1).sum::<i64>())
        .max()
        .unwrap_or(0)
}

pub async fn admin_get(base: &str, path: &str) -> Value {
    common::get_json(&format!("{base}{path}"), Some(common::ADMIN_KEY)).await
}

/// One request; `stream` reads SSE to `[DONE]`. Records what the client saw.
pub async fn send(client: &reqwest::Client, r: &Replica, idx: usize, key: &str, body: Value, seen: &Seen) -> u16 {
    let id = uuid::Uuid::new_v4().to_string();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let resp = client
        .post(format!("{}/v1/chat/completions", r.base))
        .bearer_auth(key)
        .header("x-request-id", &id)
        .json(&body)
        .send()
        .await;
    let Ok(resp) = resp else {
        seen.lock().unwrap().push((id, idx, 0, false));
        return 0;
    };
    let status = resp.status().as_u16();
    let complete = if status == 200 && stream {
        let mut text = String::new();
        let mut s = resp.bytes_stream();
        let mut ok = true;
        while let Some(c) = s.next().await {
            match c {
                Ok(b) => text.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        ok && text.contains("data: [DONE]") && !text.contains("\"error\"")
    } else {
        resp.bytes().await.is_ok()
    };
    seen.lock().unwrap().push((id, idx, status, complete));
    status
}
