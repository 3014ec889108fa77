//! Three gateway replicas (separate `tollgate serve` processes) on loopback sharing one Redis and
//! one PostgreSQL, in front of an emulated fleet, with load spread across them:
//! - a tenant's monthly budget is not overspent (to the rounding of micro-USD holds);
//! - a tokens-per-minute limit holds within 1% in every minute, and is not under-used, with
//!   `max_tokens` and without it (the tier's `default_max_tokens` is held and sent upstream);
//! - a requests-per-minute limit holds exactly in every minute (by the second each request was
//!   admitted: clients send at the middle of a second), and is used;
//! - the replicas install the same price boards: same version, same prices and the same room;
//! - reservations on a capacity-managed pool never exceed its room across replicas;
//! - the LP leader is killed (SIGKILL) mid-load: another replica takes the lease within the TTL,
//!   the dead replica's reservations are reclaimed within the TTL, and every request a client saw
//!   complete (from any replica, the dead one included) has its ledger row in PostgreSQL;
//! - the ledger holds exactly one row per answered request.
//!
//! Prints the measured figures (overshoot, minute peaks, handover and reclaim times).

mod common;
#[path = "scale_out/support.rs"]
mod support;

use common::services::{Postgres, Redis};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tollgate::state::SharedState;

const TTL_MS: u64 = 2000;
const BUDGET_USD: f64 = 0.05;
const TPM: u64 = 6000;
const RPM: usize = 40;
const LOAD_S: u64 = 70;
use support::{admin_get, holds_room, send, worst_minute, Replica, Seen};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_budgets_limits_reservations_and_prices() {
    let redis = Redis::start();
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (big, big_path) = common::test_profile("llama3-8b-h100-tp1", "big", 4, dir.path());
    let (free, _) = common::test_profile("llama3-8b-h100-tp1", "free", 64, dir.path());
    let emu_big = common::start_emulator(big, 1, 1.0).await;
    let emu_free = common::start_emulator(free, 1, 20.0).await;
    let config = format!(
        r#"listen = "127.0.0.1:0"
state = "{redis}"
ledger = "{pg}"
[redis]
replicas = 3
ttl_ms = {TTL_MS}
[admission]
solve_interval_ms = 500
{b1}{b2}
[[models]]
name = "big"
backends = ["big"]
[models.capacity]
profile = "{big_path}"
replicas = 1
cost_per_engine_second = 0.0001
# Room for about as many of the test's requests in flight as it has high-value clients: with
# one room shared by the replicas (published with the board), a room of three is taken and kept
# by whichever replica's clients come back first, and the leader may never hold any.
queue_window_s = 8.0
[[models]]
name = "free"
backends = ["free"]
[[tiers]]
name = "ent"
input_price_per_1m = 10.0
output_price_per_1m = 30.0
[[tiers]]
name = "std"
input_price_per_1m = 10.0
output_price_per_1m = 10.0
[[tiers]]
name = "vip"
input_price_per_1m = 1000.0
output_price_per_1m = 3000.0
[[tenants]]
name = "ent"
tier = "ent"
[[tenants]]
name = "vip"
tier = "vip"
[[tenants]]
name = "budget"
tier = "std"
monthly_budget_usd = {BUDGET_USD}
[[tiers]]
name = "capped"
input_price_per_1m = 10.0
output_price_per_1m = 10.0
default_max_tokens = 100
[[tenants]]
name = "tpm"
tier = "std"
tokens_per_minute = {TPM}
[[tenants]]
name = "tpm-uncapped"
tier = "capped"
tokens_per_minute = {TPM}
[[tenants]]
name = "rpm"
tier = "std"
requests_per_minute = {RPM}
"#,
        redis = redis.url,
        pg = pg.url,
        b1 = common::backend("big", &emu_big.base, ""),
        b2 = common::backend("free", &emu_free.base, ""),
    );
    let cfg_path = dir.path().join("tollgate.toml");
    std::fs::write(&cfg_path, config).unwrap();

    let mut replicas = Vec::new();
    for i in 0..3 {
        let port = common::llama::free_port();
        let log_path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("scale_out-r{i}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["serve", "--config", cfg_path.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(dir.path())
            .env("TOLLGATE_ADMIN_KEY", common::ADMIN_KEY)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        replicas.push(Replica { child: Mutex::new(Some(child)), base: format!("http://127.0.0.1:{port}") });
    }
    let client = reqwest::Client::new();
    for (i, r) in replicas.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.get(format!("{}/health", r.base)).send().await.map(|r| r.status() != 200).unwrap_or(true) {
            let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("scale_out-r{i}.log"));
            if let Some(c) = r.child.lock().unwrap().as_mut() {
                common::process::assert_alive(c, &format!("replica {i}"), &log);
            }
            assert!(Instant::now() < deadline, "replica {} did not start", r.base);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Keys are created through one replica and stored in PostgreSQL: every replica knows them.
    let mut keys = HashMap::new();
    for t in ["ent", "vip", "budget", "tpm", "tpm-uncapped", "rpm"] {
        let k = common::post_json(
            &format!("{}/v1/tollgate/keys", replicas[0].base),
            Some(common::ADMIN_KEY),
            &json!({"tenant": t}),
        )
        .await;
        keys.insert(t, k["key"].as_str().unwrap().to_string());
    }
    let replicas = Arc::new(replicas);
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    let dead: Arc<Mutex<Option<usize>>> = Arc::new(Mutex::new(None));

    // Tokens per minute: three clients, one per replica, each a request a second of about 120
    // tokens: three times the limit.
    for i in 0..3 {
        let (replicas, seen, dead, key, client) =
            (replicas.clone(), seen.clone(), dead.clone(), keys["tpm"].clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while start.elapsed() < Duration::from_secs(LOAD_S) {
                let r = (i + n) % 3;
                n += 1;
                if *dead.lock().unwrap() == Some(r) {
                    continue;
                }
                let body = json!({"model": "free", "messages": [{"role": "user", "content": format!("count to ten please, run {n}")}], "max_tokens": 100, "ignore_eos": true});
                send(&client, &replicas[r], r, &key, body, &seen).await;
                tokio::time::sleep(Duration::from_millis(1000)).await;
            }
        }));
    }
    // The same without `max_tokens`; and requests per minute: three clients each, one per
    // replica, a request a second at the middle of the second (so its admission falls in the
    // second it started): 4.5 and 4.5 times the limits.
    for i in 0..6 {
        let tenant = if i < 3 { "tpm-uncapped" } else { "rpm" };
        let (replicas, seen, dead, key, client) =
            (replicas.clone(), seen.clone(), dead.clone(), keys[tenant].clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while start.elapsed() < Duration::from_secs(LOAD_S) {
                let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_millis();
                tokio::time::sleep(Duration::from_millis(u64::from((1500 - ms) % 1000))).await;
                let r = (i + n) % 3;
                n += 1;
                if *dead.lock().unwrap() == Some(r) {
                    continue;
                }
                let mut body = json!({"model": "free", "messages": [{"role": "user", "content": format!("count to ten please, run {n}")}]});
                if tenant == "tpm-uncapped" {
                    body["ignore_eos"] = json!(true);
                }
                send(&client, &replicas[r], r, &key, body, &seen).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    // Budget: twelve clients (four per replica) until the budget refuses them all.
    for i in 0..12 {
        let (replicas, seen, key, client) = (replicas.clone(), seen.clone(), keys["budget"].clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let r = i % 3;
            let mut refused = 0;
            while refused < 3 && start.elapsed() < Duration::from_secs(15) {
                let body = json!({"model": "free", "messages": [{"role": "user", "content": "a short answer please"}], "max_tokens": 60, "ignore_eos": true});
                let s = send(&client, &replicas[r], r, &key, body, &seen).await;
                refused = if s == 429 { refused + 1 } else { 0 };
            }
        }));
    }
    // The managed pool: 24 streaming clients (eight per replica) of long answers, over its
    // capacity (admission prices most away before the room is full; the contention test below
    // drives the room itself to its bound); half of them worth a hundred times more.
    for i in 0..24 {
        let tenant = if i % 2 == 0 { "ent" } else { "vip" };
        let (replicas, seen, key, client, dead) =
            (replicas.clone(), seen.clone(), keys[tenant].clone(), client.clone(), dead.clone());
        tasks.push(tokio::spawn(async move {
            let r = (i / 2) % 3;
            while start.elapsed() < Duration::from_secs(LOAD_S - 10) {
                if *dead.lock().unwrap() == Some(r) {
                    break;
                }
                let body = json!({"model": "big", "stream": true, "messages": [{"role": "user", "content": "write a long story"}], "max_tokens": 200, "ignore_eos": true});
                if send(&client, &replicas[r], r, &key, body, &seen).await != 200 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
    }

    // Sample the pool's total reservations across replicas (Redis) against the replicas' rooms.
    let observer = tollgate::state::RedisState::new(
        &redis.url,
        &tollgate::config::RedisConfig::default(),
        HashMap::new(),
        vec!["big".into()],
    )
    .unwrap();
    let mut peak_ratio: f64 = 0.0;
    let mut samples = 0;
    let mut rooms = [f64::INFINITY; 3];
    let mut boards: [Option<Value>; 3] = [None, None, None];
    let mut boards_compared = 0;
    let mut killed: Option<(usize, String, Instant)> = None;
    let (mut handover, mut reclaimed): (Option<Duration>, Option<Duration>) = (None, None);
    let mut redis_conn =
        redis::Client::open(redis.url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let mut last_rooms = Instant::now() - Duration::from_secs(1);
    while start.elapsed() < Duration::from_secs(LOAD_S) {
        if last_rooms.elapsed() > Duration::from_millis(250) {
            last_rooms = Instant::now();
            for (i, r) in replicas.iter().enumerate() {
                if killed.as_ref().is_some_and(|k| k.0 == i) {
                    continue;
                }
                let p = admin_get(&r.base, "/v1/tollgate/prices").await;
                rooms[i] = p["live"][0]["room_engine_s"].as_f64().unwrap();
                boards[i] = Some(p["board"].clone());
            }
            // Live replicas on the same board version hold the same board (prices and room), and
            // their pool's room is the board's.
            for i in 0..3 {
                for j in i + 1..3 {
                    let dead = killed.as_ref().map(|k| k.0);
                    let (Some(a), Some(b)) = (&boards[i], &boards[j]) else { continue };
                    if dead == Some(i) || dead == Some(j) || a["version"] != b["version"] || a["version"] == 0 {
                        continue;
                    }
                    assert_eq!(a["pools"], b["pools"], "replicas {i} and {j} installed different boards");
                    boards_compared += 1;
                }
            }
        }
        let view = observer.reserve_pool(0, 0, 0, 0).await.unwrap().unwrap();
        let room = rooms.iter().cloned().filter(|r| r.is_finite()).fold(0.0, f64::max);
        if room > 0.0 {
            peak_ratio = peak_ratio.max(view.inflight as f64 / 1e6 / room);
            samples += 1;
        }
        // From 20 s, kill the LP leader at a moment it holds reservations.
        if killed.is_none() && start.elapsed() > Duration::from_secs(20) {
            let mut leaders = 0;
            for (i, r) in replicas.iter().enumerate() {
                let p = admin_get(&r.base, "/v1/tollgate/prices").await;
                if p["leader"] == true {
                    leaders += 1;
                    let id = p["replica"].as_str().unwrap().to_string();
                    let held = holds_room(&mut redis_conn, &id).await;
                    if held {
                        *dead.lock().unwrap() = Some(i);
                        r.kill();
                        killed = Some((i, id, Instant::now()));
                    }
                    break;
                }
            }
            assert_eq!(leaders, 1, "one replica leads");
            if start.elapsed() > Duration::from_secs(40) {
                let mut all = Vec::new();
                for r in replicas.iter() {
                    all.push(admin_get(&r.base, "/v1/tollgate/prices").await);
                }
                let v: redis::Value =
                    redis::cmd("HGETALL").arg("tollgate:pool:big:inflight").query_async(&mut redis_conn).await.unwrap();
                panic!(
                    "the leader never held reservations: {v:?} {}",
                    serde_json::to_string(
                        &all.iter()
                            .map(|p| json!({"r": p["replica"], "leader": p["leader"], "live": p["live"]}))
                            .collect::<Vec<_>>()
                    )
                    .unwrap()
                );
            }
        }
        if let Some((i, id, at)) = &killed {
            if handover.is_none() {
                for (j, r) in replicas.iter().enumerate() {
                    if j != *i && admin_get(&r.base, "/v1/tollgate/prices").await["leader"] == true {
                        handover = Some(at.elapsed());
                    }
                }
            }
            if reclaimed.is_none() {
                let held = holds_room(&mut redis_conn, id).await;
                if !held {
                    reclaimed = Some(at.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (killed_idx, _, _) = killed.expect("the leader was killed");

    // Stop the survivors gracefully (SIGTERM drains and flushes), then read PostgreSQL.
    tokio::task::block_in_place(|| replicas.iter().for_each(Replica::terminate));
    let store = tollgate::store::PostgresStore::connect(&pg.url).await.unwrap();
    use tollgate::store::Store;
    let rows = store.ledger(1_000_000).await.unwrap();
    let seen = seen.lock().unwrap().clone();

    // Every answer a client received has exactly one row; nothing else but rows of requests the
    // dead replica finished as it died.
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for r in &rows {
        *by_id.entry(r.client_request_id.as_deref().unwrap_or("")).or_default() += 1;
    }
    let answered: Vec<_> = seen.iter().filter(|s| s.2 != 0 && (s.3 || s.1 != killed_idx)).collect();
    for s in &answered {
        assert_eq!(by_id.get(s.0.as_str()).copied().unwrap_or(0), 1, "one ledger row for answered request {s:?}");
    }
    let cut = seen.iter().filter(|s| s.1 == killed_idx && !s.3).count();
    assert!(
        rows.len() >= answered.len() && rows.len() <= answered.len() + cut,
        "rows {} answered {} cut {cut}",
        rows.len(),
        answered.len()
    );
    let completed_on_dead = seen.iter().filter(|s| s.1 == killed_idx && s.3).count();

    // Budget: spent against the budget, and the most a request of it cost.
    let budget_rows: Vec<_> = rows.iter().filter(|r| r.tenant == "budget" && r.status == 200).collect();
    let spent: f64 = budget_rows.iter().map(|r| r.revenue_usd).sum();
    let dearest = budget_rows.iter().map(|r| r.revenue_usd).fold(0.0, f64::max);
    let overshoot = spent - BUDGET_USD;
    // Holds cover the prompt and `max_tokens`: the budget is never passed, across replicas,
    // beyond the micro-USD rounding of the holds.
    assert!(overshoot <= 1e-5, "budget overspent by {overshoot} USD (dearest request {dearest})");
    assert!(spent >= BUDGET_USD - 2.0 * dearest, "the budget was used: spent {spent}");

    // Tokens and requests per minute over every minute (by the second each request started).
    let worst = worst_minute(&rows, "tpm", |r| r.input_tokens + r.output_tokens);
    let worst_ratio = worst as f64 / TPM as f64;
    let worst_uncapped = worst_minute(&rows, "tpm-uncapped", |r| r.input_tokens + r.output_tokens);
    let uncapped_ratio = worst_uncapped as f64 / TPM as f64;
    let worst_rpm = worst_minute(&rows, "rpm", |_| 1) as usize;
    let refused_tpm = seen.iter().filter(|s| s.2 == 429).count();

    let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    for r in &rows {
        let err = r.error.as_deref().unwrap_or("").chars().take(40).collect::<String>();
        *outcomes.entry(format!("{} {} {} {err}", r.tenant, r.status, r.decision)).or_default() += 1;
    }
    println!("outcomes: {outcomes:#?}");
    let handover = handover.expect("another replica took the LP lease");
    let reclaimed = reclaimed.expect("the dead replica's reservations were reclaimed");
    println!(
        "scale-out figures: budget {BUDGET_USD} USD, spent {spent:.6} (overshoot {overshoot:+.6} USD, dearest request {dearest:.6}); \
         tokens per minute: busiest minute {worst} of {TPM} ({:.2}%), without max_tokens {worst_uncapped} ({:.2}%), 429s {refused_tpm}; \
         requests per minute: busiest minute {worst_rpm} of {RPM}; boards compared {boards_compared} times; pool reservations: peak {:.1}% of the room over {samples} samples; \
         leader killed: lease handed over in {} ms, reservations reclaimed in {} ms (TTL {TTL_MS} ms); \
         ledger rows {} for {} answered requests ({} completed by the killed replica, {cut} cut by the kill)",
        worst_ratio * 100.0,
        uncapped_ratio * 100.0,
        peak_ratio * 100.0,
        handover.as_millis(),
        reclaimed.as_millis(),
        rows.len(),
        answered.len(),
        completed_on_dead,
    );
    assert!(worst_ratio <= 1.01, "tokens per minute over the limit: {worst} > {TPM}");
    assert!(worst_ratio >= 0.9, "tokens per minute under-used: {worst} of {TPM}");
    assert!(uncapped_ratio <= 1.01, "tokens per minute without max_tokens over the limit: {worst_uncapped}");
    assert!(uncapped_ratio >= 0.5, "tokens per minute without max_tokens under-used: {worst_uncapped}");
    assert!(worst_rpm <= RPM, "requests per minute over the limit: {worst_rpm} > {RPM}");
    assert!(worst_rpm >= RPM - 2, "requests per minute under-used: {worst_rpm} of {RPM}");
    assert!(boards_compared > 10, "boards compared only {boards_compared} times");
    assert!(peak_ratio <= 1.0 + 1e-9, "reservations exceeded the room: {peak_ratio}");
    assert!(peak_ratio > 0.5, "the pool was loaded: {peak_ratio}");
    assert!(handover <= Duration::from_millis(TTL_MS + TTL_MS / 6 + 500), "lease handover took {handover:?}");
    assert!(reclaimed <= Duration::from_millis(TTL_MS + 500), "reclaim took {reclaimed:?}");
    assert!(completed_on_dead > 0, "the killed replica had completed requests");
}
