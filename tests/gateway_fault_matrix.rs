//! The gateway under every fault the emulator can inject, whole and streamed, alone and with a
//! healthy backend beside the faulty one: what the client sees (status, `Retry-After`, an SSE
//! error event after the chunks that arrived), that retries happen only before the first byte,
//! and that afterwards every request has exactly one ledger row with the right status and
//! nothing is left held (backend leases, pool reservations, budget holds).

mod common;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tollgate::capacity::Profile;
use tollgate::emulator::faults::{Fault, FaultPlan, FaultRule};

/// A fault, and what the client and the ledger must show for it.
struct Case {
    fault: &'static str,
    /// Status the client gets (a stream that fails after its first byte still starts with 200).
    whole: u16,
    /// For a stream: the client's status, and whether the body ends in an error event.
    stream: (u16, bool),
    /// The ledger row's status for a stream.
    stream_row: u16,
    /// Whether a healthy second backend turns the failure into a success (fails before any byte).
    retried: bool,
}

const CASES: &[Case] = &[
    Case { fault: "status=500", whole: 500, stream: (500, false), stream_row: 500, retried: true },
    Case { fault: "status=503", whole: 503, stream: (503, false), stream_row: 503, retried: true },
    Case { fault: "rate-limit=7", whole: 429, stream: (429, false), stream_row: 429, retried: true },
    Case { fault: "reset", whole: 502, stream: (502, false), stream_row: 502, retried: true },
    Case { fault: "stall-first=3000", whole: 504, stream: (504, false), stream_row: 504, retried: true },
    Case { fault: "stall-mid=3000", whole: 504, stream: (200, true), stream_row: 504, retried: false },
    Case { fault: "cut", whole: 502, stream: (200, true), stream_row: 502, retried: false },
    Case { fault: "truncate", whole: 502, stream: (200, true), stream_row: 502, retried: false },
    Case { fault: "malformed", whole: 502, stream: (200, true), stream_row: 502, retried: false },
    Case { fault: "slow=15", whole: 200, stream: (200, false), stream_row: 200, retried: false },
];

fn slug(fault: &str) -> String {
    fault.replace('=', "")
}

async fn emulator(fault: Option<&str>) -> common::RunningEmulator {
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "m".into();
    let rules = fault.map(|f| vec![FaultRule { fault: f.parse::<Fault>().unwrap(), rate: 1.0 }]).unwrap_or_default();
    common::start_emulator_with_faults(p, 1, 50.0, FaultPlan::new(rules).unwrap()).await
}

/// Sends one chat request; returns the status, the `Retry-After` header and the body text.
async fn send(base: &str, key: &str, model: &str, stream: bool, id: &str) -> (u16, Option<String>, String) {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "tell me a story"}],
                      "max_tokens": 24, "stream": stream});
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-request-id", id)
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (status, retry_after, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_ends_in_the_right_answer_one_ledger_row_and_nothing_held() {
    let healthy = emulator(None).await;
    let mut cfg = String::from("[health]\ninterval_ms = 60000\n[circuit]\nfailure_threshold = 100000\n");
    let timeouts = "first_byte_timeout_ms = 800\nidle_timeout_ms = 800";
    cfg += &common::backend("healthy", &healthy.base, timeouts);
    let mut emulators = Vec::new();
    for c in CASES {
        let name = slug(c.fault);
        let e = emulator(Some(c.fault)).await;
        cfg += &common::backend(&format!("{name}-1"), &e.base, timeouts);
        // The same faulty engine under a second name, so "alone" retries it too.
        cfg += &common::backend(&format!("{name}-2"), &e.base, timeouts);
        let capacity = "capacity = { profile = \"llama3-8b-h100-tp1\", replicas = 1 }";
        cfg += &format!(
            "[[models]]\nname = \"{name}\"\nupstream_model = \"m\"\nbackends = [\"{name}-1\", \"{name}-2\"]\n{capacity}\n"
        );
        cfg += &format!(
            "[[models]]\nname = \"{name}+ok\"\nupstream_model = \"m\"\nbackends = [\"{name}-1\", \"healthy\"]\n{capacity}\n"
        );
        emulators.push(e);
    }
    cfg += common::TIERS_AND_TENANTS;
    cfg = cfg.replace("models = [\"*\"]", "models = [\"*\"]\nmonthly_budget_usd = 100.0");
    let gw = common::start_gateway(&cfg).await;
    let key = gw.key("acme").await;

    let mut expected_rows: HashMap<String, u16> = HashMap::new();
    for c in CASES {
        let name = slug(c.fault);
        for stream in [false, true] {
            let id = format!("{name}-{}", if stream { "stream" } else { "whole" });
            let (status, retry_after, body) = send(&gw.base, &key, &name, stream, &id).await;
            let (want, want_error_event) = if stream { c.stream } else { (c.whole, false) };
            assert_eq!(status, want, "{id}: {body}");
            if status == 429 {
                assert_eq!(retry_after.as_deref(), Some("7"), "{id}: the upstream's Retry-After is passed on");
            }
            if status == 200 && stream {
                assert!(body.trim_end().ends_with("data: [DONE]"), "{id}: the stream is closed properly: {body}");
                let error_event = body.contains("data: {\"error\"");
                assert_eq!(error_event, want_error_event, "{id}: {body}");
                if want_error_event {
                    assert!(body.contains("\"content\""), "{id}: chunks before the fault arrived: {body}");
                    assert!(!body.contains("<html>"), "{id}: a malformed event is not forwarded");
                } else {
                    assert!(body.contains("\"finish_reason\":\"length\""), "{id}: {body}");
                }
            } else if status == 200 {
                let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{id}: {e}: {body}"));
                assert_eq!(v["usage"]["completion_tokens"], 24, "{id}");
            } else {
                let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{id}: {e}: {body}"));
                assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{id}: {body}");
            }
            expected_rows.insert(id, if stream { c.stream_row } else { c.whole });

            // Beside a healthy backend: faults before the first byte are retried there.
            let id = format!("{name}+ok-{}", if stream { "stream" } else { "whole" });
            let (status, _, body) = send(&gw.base, &key, &format!("{name}+ok"), stream, &id).await;
            if c.retried || c.whole == 200 {
                assert_eq!(status, 200, "{id}: {body}");
                expected_rows.insert(id, 200);
            } else {
                // Picked first half the time: either the fault's answer or the healthy one's.
                expected_rows.insert(id, 0);
            }
        }
    }

    let rows = gw.ledger(expected_rows.len() as i64).await;
    // Exactly one row per request id: none missing, none twice (a missing id and a duplicate
    // would cancel out in a count).
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for r in &rows {
        *per_id.entry(r["client_request_id"].as_str().unwrap()).or_default() += 1;
    }
    for id in expected_rows.keys() {
        assert_eq!(per_id.get(id.as_str()).copied(), Some(1), "{id}: rows");
    }
    assert_eq!(per_id.len(), expected_rows.len(), "rows for ids never sent");
    for r in &rows {
        let id = r["client_request_id"].as_str().unwrap();
        let want = expected_rows[id];
        let got = r["status"].as_u64().unwrap() as u16;
        if want != 0 {
            assert_eq!(got, want, "{id}: {r}");
        }
        if id.contains("+ok") && want == 200 && got == 200 && r["backend"] == "healthy" {
            // Retried: the faulty backend (if tried first) counts as an attempt.
            assert!(r["attempts"].as_u64().unwrap() <= 3, "{r}");
        }
        if id.starts_with("reset-") {
            // A reset is retried once on the same backend (it may be a stale pooled connection),
            // then on the pool's other backend: four attempts, no more.
            assert_eq!(r["attempts"], 4, "{r}");
        }
    }
    // Nothing held: backend leases, pool reservations, the tenant's budget hold.
    let g = &gw.handle.gateway;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let outstanding: usize = g.registry.backends.iter().map(|b| b.outstanding()).sum();
        let inflight: f64 = g.allocator.as_ref().unwrap().loads().map(|l| l.inflight()).sum();
        let (spent, held) = g.state.tenant_usage("acme").await.unwrap().unwrap();
        if outstanding == 0 && inflight == 0.0 && held == 0.0 {
            assert!(spent > 0.0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left held: {outstanding} backend leases, {inflight} engine-s reserved, {held} USD held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.stop_and_count().await, expected_rows.len() as i64);
    drop(emulators);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_said_429_gets_a_smaller_share() {
    let healthy = emulator(None).await;
    let limited = emulator(Some("rate-limit=30")).await;
    let cfg = format!(
        "[health]\ninterval_ms = 60000\n{}{}[[models]]\nname = \"m\"\nbackends = [\"limited\", \"healthy\"]\n{}",
        common::backend("limited", &limited.base, ""),
        common::backend("healthy", &healthy.base, ""),
        common::TIERS_AND_TENANTS
    );
    let gw = common::start_gateway(&cfg).await;
    let key = gw.key("acme").await;
    // Until the limited backend is first picked (each request picks one of two at random).
    let mut sent = 0;
    loop {
        let (status, _, body) = send(&gw.base, &key, "m", false, &format!("r{sent}")).await;
        assert_eq!(status, 200, "{body}");
        sent += 1;
        let rows = gw.ledger(sent).await;
        if rows[0]["attempts"] == 2 {
            break;
        }
        assert!(sent < 30, "the limited backend was never picked");
    }
    // Its limit was halved: beside an idle healthy backend it loses every choice, so every
    // request succeeds on its first attempt.
    for i in 0..10 {
        let (status, _, _) = send(&gw.base, &key, "m", false, &format!("after{i}")).await;
        assert_eq!(status, 200);
    }
    let rows = gw.ledger(sent + 10).await;
    assert!(rows[..10].iter().all(|r| r["attempts"] == 1 && r["backend"] == "healthy"), "{rows:?}");
    gw.stop_and_count().await;
}

/// A 429 is one answer, not a verdict on the backend: a pool whose only backend says 429 to
/// one request in four keeps sending every request to it, and the client sees about that share
/// of 429s (before, one 429 took the backend out until its Retry-After, and the requests in
/// between got 429 without reaching it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_never_goes_dark_because_of_one_429() {
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "m".into();
    let rules = vec![FaultRule { fault: "rate-limit=5".parse::<Fault>().unwrap(), rate: 0.25 }];
    let flaky = common::start_emulator_with_faults(p, 1, 50.0, FaultPlan::new(rules).unwrap()).await;
    let cfg = format!(
        "[health]\ninterval_ms = 60000\n{}[[models]]\nname = \"m\"\nbackends = [\"flaky\"]\n{}",
        common::backend("flaky", &flaky.base, ""),
        common::TIERS_AND_TENANTS
    );
    let gw = common::start_gateway(&cfg).await;
    let key = gw.key("acme").await;
    let n: u32 = 80;
    let mut limited: u32 = 0;
    for i in 0..n {
        let (status, retry_after, body) = send(&gw.base, &key, "m", false, &format!("f{i}")).await;
        match status {
            200 => {}
            429 => {
                limited += 1;
                assert_eq!(retry_after.as_deref(), Some("5"), "the upstream's Retry-After is passed on: {body}");
            }
            s => panic!("status {s}: {body}"),
        }
    }
    let rows = gw.ledger(i64::from(n)).await;
    assert!(rows.iter().all(|r| r["backend"] == "flaky" && r["attempts"] == 1), "every request reached the backend");
    let share = f64::from(limited) / f64::from(n);
    println!("429s seen by clients: {limited} of {n} ({share:.2}; injected at 0.25)");
    assert!((0.08..=0.45).contains(&share), "429 share {share} far from the injected 0.25");
    gw.stop_and_count().await;
}
