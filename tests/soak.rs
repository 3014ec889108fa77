//! Soak: a `tollgate serve` process in front of two `tollgate emulate` processes that inject
//! random faults (errors, 429s, resets, stalls, cuts, truncated and malformed streams, slow
//! streams), under mixed load (streamed and whole chats, embeddings, completions, clients that
//! leave mid-stream, bad requests) for `TOLLGATE_SOAK_SECS` (default 40; `bench/soak.sh`
//! runs longer). At the end it asserts:
//! - ledger rows = authenticated requests sent (every one answered, none lost);
//! - no client connection left open, nothing held (backend leases, pool reservations);
//! - client-visible errors within the error budget (the injected error rate plus a margin);
//! - file descriptors (less open connections) and runtime tasks (less one per client
//!   connection) back to their idle level before the load; RSS flat after warm-up.
//!
//! Figures go to stdout and `target/soak.json`.

mod common;

use futures::StreamExt;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 12;
/// Client-visible errors allowed, as a share of well-formed requests: the injected rate of the
/// faults that are errors (0.11: every rule below but `slow`), since a fault before the first
/// byte is retried on the other backend and one after it reaches the client, plus 0.04 for the
/// rare request that meets two faults and for admission's priced refusals.
const ERROR_BUDGET: f64 = 0.15;
const FAULTS: &[&str] = &[
    "status=503@0.02",
    "status=500@0.01",
    "rate-limit=1@0.02",
    "reset@0.01",
    "stall-first=3000@0.01",
    "stall-mid=3000@0.01",
    "cut@0.01",
    "truncate@0.01",
    "malformed@0.01",
    "slow=5@0.05",
];

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn log_file(name: &str) -> std::fs::File {
    std::fs::File::create(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)).unwrap()
}

fn emulator(port: u16, seed: u64) -> Proc {
    let mut args: Vec<String> = ["emulate", "--port", &port.to_string(), "--model-name", "m", "--time-scale", "4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--seed".into(), seed.to_string()]);
    for f in FAULTS {
        args.extend(["--fault".into(), f.to_string()]);
    }
    let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(log_file(&format!("soak-emulator-{seed}.log")))
        .spawn()
        .unwrap();
    Proc(child)
}

/// What one sample of the gateway process shows.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct Sample {
    at_s: f64,
    rss_mb: f64,
    fds: usize,
    tasks: f64,
    client_conns: usize,
    upstream_conns: usize,
}

fn rss_mb(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 =
        s.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024.0
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// The gateway's TCP sockets (those among its descriptors), listening ones left out, as
/// (state, local port, remote port).
fn sockets(pid: u32) -> Vec<(String, u16, u16)> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap() + &std::fs::read_to_string("/proc/net/tcp6").unwrap();
    let port_of = |a: &str| u16::from_str_radix(a.rsplit(':').next().unwrap(), 16).unwrap_or(0);
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        // Not the listening socket (state 0A): only connections.
        .filter(|f| f.len() >= 10 && f[3] != "0A" && inodes.contains(f[9]))
        .map(|f| (f[3].to_string(), port_of(f[1]), port_of(f[2])))
        .collect()
}

/// The gateway's connections: accepted on `port`, and opened to `upstreams`.
fn connections(pid: u32, port: u16, upstreams: &[u16]) -> (usize, usize) {
    let all = sockets(pid);
    let client = all.iter().filter(|(_, local, _)| *local == port).count();
    let upstream = all.iter().filter(|(_, _, remote)| upstreams.contains(remote)).count();
    (client, upstream)
}

/// The gateway's client sockets as (state, remote port), for a failure's message.
fn client_sockets(pid: u32, port: u16) -> Vec<(String, u16)> {
    sockets(pid).into_iter().filter(|(_, local, _)| *local == port).map(|(s, _, remote)| (s, remote)).collect()
}

async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(common::ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

async fn sample(client: &reqwest::Client, base: &str, pid: u32, port: u16, ups: &[u16], t0: Instant) -> Sample {
    let (client_conns, upstream_conns) = connections(pid, port, ups);
    Sample {
        at_s: t0.elapsed().as_secs_f64(),
        rss_mb: rss_mb(pid),
        fds: fds(pid),
        tasks: metric(client, base, "tollgate_runtime_tasks").await,
        client_conns,
        upstream_conns,
    }
}

/// How one request ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    Status(u16),
    /// 200, then an SSE error event (the upstream failed mid-stream).
    ErrorEvent,
    /// The client left mid-stream.
    Left,
}

impl Seen {
    fn label(self) -> String {
        match self {
            Seen::Status(s) => s.to_string(),
            Seen::ErrorEvent => "200 then an error event".into(),
            Seen::Left => "client left mid-stream".into(),
        }
    }
}

/// One client request of a random kind, read to its end (or left early).
async fn one_request(client: &reqwest::Client, base: &str, key: &str, rng: &mut rand_chacha::ChaCha8Rng) -> Seen {
    let roll: f64 = rng.random();
    let max_tokens = rng.random_range(4..96);
    let (path, body, leave_after) = if roll < 0.45 {
        let leave = (rng.random::<f64>() < 0.15).then(|| rng.random_range(1..4));
        let body = json!({"model": "m", "stream": true, "max_tokens": max_tokens,
                          "messages": [{"role": "user", "content": format!("story {}", rng.random::<u32>())}]});
        ("chat/completions", body.to_string(), leave)
    } else if roll < 0.75 {
        let body = json!({"model": "m", "max_tokens": max_tokens,
                          "messages": [{"role": "user", "content": format!("question {}", rng.random::<u32>())}]});
        ("chat/completions", body.to_string(), None)
    } else if roll < 0.85 {
        let body = json!({"model": "m", "max_tokens": max_tokens, "stream": rng.random::<bool>(),
                          "prompt": format!("once upon a time {}", rng.random::<u32>())});
        ("completions", body.to_string(), None)
    } else if roll < 0.95 {
        ("embeddings", json!({"model": "m", "input": ["a", "b c"]}).to_string(), None)
    } else {
        // Bad input: not JSON, a wrong type, an unknown model.
        let bad = [r#"{"model": "m", "messages": "#, r#"{"model": 7}"#, r#"{"model": "nope", "messages": []}"#];
        ("chat/completions", bad[rng.random_range(0..bad.len())].to_string(), None)
    };
    let resp = client
        .post(format!("{base}/v1/{path}"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the gateway answers every request");
    let status = resp.status().as_u16();
    let mut stream = resp.bytes_stream();
    let (mut chunks, mut error_event) = (0, false);
    while let Some(c) = stream.next().await {
        let Ok(c) = c else { break };
        chunks += 1;
        if leave_after == Some(chunks) {
            return Seen::Left;
        }
        const ERROR_EVENT: &[u8] = b"data: {\"error\"";
        error_event |= c.windows(ERROR_EVENT.len()).any(|w| w == ERROR_EVENT);
    }
    if error_event && status == 200 {
        Seen::ErrorEvent
    } else {
        Seen::Status(status)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_random_faults_loses_nothing_and_leaks_nothing() {
    let secs: u64 = std::env::var("TOLLGATE_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb, pg) = (common::llama::free_port(), common::llama::free_port(), common::llama::free_port());
    let mut ea = emulator(pa, 1);
    let mut eb = emulator(pb, 2);
    let timeouts = "first_byte_timeout_ms = 1500\nidle_timeout_ms = 1500";
    let config = format!(
        "data_dir = \"{data}\"\n{a}{b}[[models]]\nname = \"m\"\nbackends = [\"a\", \"b\"]\n\
         capacity = {{ profile = \"llama3-8b-h100-tp1\", replicas = 8 }}\n\
         [[tiers]]\nname = \"standard\"\ninput_price_per_1m = 1.0\noutput_price_per_1m = 2.0\nvalue_per_1m_output = 20.0\n\
         [[tenants]]\nname = \"acme\"\ntier = \"standard\"\nmodels = [\"*\"]\n\
         [[tenants]]\nname = \"budgeted\"\ntier = \"standard\"\nmodels = [\"*\"]\nmonthly_budget_usd = 1000.0\n",
        data = dir.path().display(),
        a = common::backend("a", &format!("http://127.0.0.1:{pa}"), timeouts),
        b = common::backend("b", &format!("http://127.0.0.1:{pb}"), timeouts),
    );
    let cfg_path = dir.path().join("tollgate.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let mut gw = Proc(
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["serve", "--config", cfg_path.to_str().unwrap(), "--listen", &format!("127.0.0.1:{pg}")])
            .env("TOLLGATE_ADMIN_KEY", common::ADMIN_KEY)
            .env("TOLLGATE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file("soak-gateway.log"))
            .spawn()
            .unwrap(),
    );
    let pid = gw.0.id();
    let base = format!("http://127.0.0.1:{pg}");
    // At most one idle connection: a request that starts before the last one's connection is back
    // in the pool opens a second, which would otherwise stay open and count as a client's.
    let admin = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for url in
        [format!("{base}/health"), format!("http://127.0.0.1:{pa}/health"), format!("http://127.0.0.1:{pb}/health")]
    {
        while admin.get(&url).send().await.map(|r| r.status() != 200).unwrap_or(true) {
            for (p, name) in
                [(&mut gw, "soak-gateway.log"), (&mut ea, "soak-emulator-1.log"), (&mut eb, "soak-emulator-2.log")]
            {
                let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
                common::process::assert_alive(&mut p.0, name, &log);
            }
            assert!(Instant::now() < deadline, "{url} did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut keys = Vec::new();
    for t in ["acme", "budgeted"] {
        let k = common::post_json(&format!("{base}/v1/tollgate/keys"), Some(common::ADMIN_KEY), &json!({"tenant": t}))
            .await;
        keys.push(k["key"].as_str().unwrap().to_string());
    }

    // Warm up (connection pools, the ledger's connections, lazily built state) with two seconds
    // of the same load, let it drain, then take the idle baseline the process must return to.
    let sent = Arc::new(AtomicU64::new(0));
    let warm_until = Instant::now() + Duration::from_secs(2);
    let warmers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (sent, base, key) = (sent.clone(), base.clone(), keys[i % 2].clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1000 + i as u64);
                while Instant::now() < warm_until {
                    sent.fetch_add(1, Ordering::SeqCst);
                    one_request(&client, &base, &key, &mut rng).await;
                }
            })
        })
        .collect();
    for w in warmers {
        w.await.unwrap();
    }
    let settle = Instant::now() + Duration::from_secs(15);
    while metric(&admin, &base, "tollgate_backend_outstanding").await > 0.0 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = sample(&admin, &base, pid, pg, &[pa, pb], Instant::now()).await;
    let t0 = Instant::now();
    let statuses: Arc<Mutex<BTreeMap<Seen, u64>>> = Arc::default();
    let stop_at = t0 + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (sent, statuses, base, key) = (sent.clone(), statuses.clone(), base.clone(), keys[i % 2].clone());
        tasks.push(tokio::spawn(async move {
            // One client per task, so a client's connections close when it ends.
            let client = reqwest::Client::new();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
            while Instant::now() < stop_at {
                sent.fetch_add(1, Ordering::SeqCst);
                let s = one_request(&client, &base, &key, &mut rng).await;
                *statuses.lock().unwrap().entry(s).or_default() += 1;
                if s == Seen::Status(429) {
                    // As a well-behaved client would: back off before trying again.
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }));
    }
    let ups = [pa, pb];
    let mut samples = Vec::new();
    let every = Duration::from_secs((secs / 20).clamp(2, 30));
    while Instant::now() < stop_at {
        tokio::time::sleep(every).await;
        samples.push(sample(&admin, &base, pid, pg, &ups, t0).await);
    }
    for t in tasks {
        t.await.unwrap();
    }
    let sent = sent.load(Ordering::SeqCst);

    // Every request sent has its row (a client that left has one too, once the gateway notices).
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let r = common::get_json(&format!("{base}/v1/tollgate/ledger?limit=1"), Some(common::ADMIN_KEY)).await;
        let total = r["total"].as_u64().unwrap();
        if total >= sent || Instant::now() > deadline {
            break total;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Nothing held, no client connection open, descriptors and tasks back to their idle level
    // (less connections; see below). Connections the clients closed and the tasks serving them
    // take a moment to go (a closed stream is noticed at its next write): the end state is the
    // first sample where all of it holds, or the last one after 30 s. A leak never settles.
    let fd_level = |s: &Sample| s.fds as i64 - s.upstream_conns as i64 - s.client_conns as i64;
    // Each accepted connection is one task; upstream connections run none (the backend client
    // drives each connection inline, `backends/client.rs`), so only client connections are
    // taken off.
    let task_level = |s: &Sample| s.tasks - s.client_conns as f64;
    let deadline = Instant::now() + Duration::from_secs(30);
    let end = loop {
        let held = metric(&admin, &base, "tollgate_pool_inflight").await
            + metric(&admin, &base, "tollgate_backend_outstanding").await;
        let s = sample(&admin, &base, pid, pg, &ups, t0).await;
        // The admin client's own connection is the only one left.
        let settled = held == 0.0
            && s.client_conns <= 1
            && fd_level(&s) <= fd_level(&idle) + 4
            && task_level(&s) <= task_level(&idle) + 4.0;
        if settled || Instant::now() > deadline {
            assert_eq!(held, 0.0, "reservations or backend leases left held");
            break s;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let warm = samples[samples.len() / 4];
    let peak_rss = samples.iter().map(|s| s.rss_mb).fold(0.0, f64::max);
    let seen = statuses.lock().unwrap().clone();
    // Client-visible errors among well-formed requests: 5xx, 429 and streams that ended in an
    // error event (the deliberately bad requests' 4xx are the right answer, not an error).
    let bad_input: u64 = seen
        .iter()
        .filter(|(s, _)| matches!(s, Seen::Status(c) if (400..500).contains(c) && *c != 429))
        .map(|(_, n)| n)
        .sum();
    let errors: u64 = seen
        .iter()
        .filter(|(s, _)| matches!(s, Seen::ErrorEvent) || matches!(s, Seen::Status(c) if *c == 429 || *c >= 500))
        .map(|(_, n)| n)
        .sum();
    let error_share = errors as f64 / (sent - bad_input).max(1) as f64;
    let statuses: BTreeMap<String, u64> = seen.iter().map(|(s, n)| (s.label(), *n)).collect();
    let summary = json!({
        "seconds": secs, "clients": CLIENTS, "faults": FAULTS, "sent": sent, "ledger_rows": rows,
        "requests_per_s": sent as f64 / secs as f64,
        "seen": statuses,
        "idle": idle, "warm": warm, "end": end, "peak_rss_mb": peak_rss, "samples": samples,
        "error_share": error_share, "error_budget": ERROR_BUDGET,
    });
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/soak.json");
    std::fs::write(out, summary.to_string()).unwrap();

    assert_eq!(rows, sent, "ledger rows = requests sent");
    assert!(
        error_share <= ERROR_BUDGET,
        "clients saw errors on {:.1}% of well-formed requests; the budget is {:.0}%: {statuses:?}",
        error_share * 100.0,
        ERROR_BUDGET * 100.0
    );
    assert!(end.client_conns <= 1, "{} client connections left open: {:?}", end.client_conns, client_sockets(pid, pg));
    // Descriptors (less the TCP connections open to clients and upstreams, counted from the
    // process's own sockets) and tasks back to the idle level between warm-up and load: a leak
    // of a handful shows.
    assert!(fd_level(&end) <= fd_level(&idle) + 4, "descriptors grew: idle {idle:?}, end {end:?}");
    assert!(task_level(&end) <= task_level(&idle) + 4.0, "tasks grew: idle {idle:?}, end {end:?}");
    assert!(end.rss_mb <= warm.rss_mb * 1.25 + 8.0, "RSS grew: warm {:.1} MB, end {:.1} MB", warm.rss_mb, end.rss_mb);
    assert!(end.rss_mb <= idle.rss_mb + 8.0, "RSS grew: idle {:.1} MB, end {:.1} MB", idle.rss_mb, end.rss_mb);
    let faults_seen: u64 =
        statuses.iter().filter(|(s, _)| s.starts_with('5') || s.contains("error")).map(|(_, n)| n).sum();
    assert!(faults_seen > 0, "the faults showed: {statuses:?}");
    drop(gw);
}
