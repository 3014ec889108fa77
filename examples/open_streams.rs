//! Many open streams through a gateway: opens N streaming chat completions (one connection
//! each, 500 a second by default) against a slow upstream, holds them open together, and reports, as one JSON line, how long they took
//! to open, the gateway's resident memory and CPU while all were open, and how many ended
//! whole (`[DONE]` after every token asked for) or in error. `bench/harness.py` runs it.
//!
//! cargo run --release --example open_streams -- URL KEY STREAMS TOKENS GATEWAY_PIDS [OPENED_PER_S]
//! (GATEWAY_PIDS: the proxy's processes, comma-separated, summed: nginx's workers and master;
//! raise the open-file limit first: `ulimit -n 65536`)

use futures::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// CPU seconds (user + system) of processes `pids`.
fn cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| cpu_seconds_of(p)).sum()
}

/// Resident memory of processes `pids`, in KiB.
fn rss_kib(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| rss_kib_of(p)).sum()
}

fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else { return f64::NAN };
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(f64::NAN)).collect();
    (f.get(11).copied().unwrap_or(f64::NAN) + f.get(12).copied().unwrap_or(f64::NAN)) / 100.0
}

fn rss_kib_of(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (url, key) = (a[1].clone(), a[2].clone());
    let streams: usize = a[3].parse().expect("STREAMS");
    let tokens: u32 = a[4].parse().expect("TOKENS");
    let pid: Vec<u32> = a[5].split(',').map(|p| p.parse().expect("GATEWAY_PIDS")).collect();
    // One connection per stream, as separate clients would hold.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    let rss_before = rss_kib(&pid);
    // Streams that have had their first bytes, and those that failed before.
    let started = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    // Streams are opened at a steady rate (agents arrive over time, not in one instant); each
    // then stays open until its last token.
    let rate: f64 = a.get(6).and_then(|r| r.parse().ok()).unwrap_or(500.0);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|i| {
            let (client, url, key) = (client.clone(), url.clone(), key.clone());
            let (refused, started) = (refused.clone(), started.clone());
            let at = tokio::time::Instant::from_std(t0) + Duration::from_secs_f64(i as f64 / rate);
            let ended = ended.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let mut opened = false;
                let r = stream(&client, &url, &key, i, tokens, &mut opened, &started).await;
                if r.is_err() && !opened {
                    refused.fetch_add(1, Ordering::Relaxed);
                } else if opened {
                    ended.fetch_add(1, Ordering::Relaxed);
                }
                r
            })
        })
        .collect();
    // All open: every stream has had its first bytes (or failed before).
    let settled = || started.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed);
    while settled() < streams && t0.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let opened_s = t0.elapsed().as_secs_f64();
    // Open now: started and not yet ended.
    let open = started.load(Ordering::Relaxed) - ended.load(Ordering::Relaxed);
    // While they are open: memory, and CPU over a window.
    let window = 3.0;
    let (c0, w0) = (cpu_seconds(&pid), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(window)).await;
    let cpu_open = (cpu_seconds(&pid) - c0) / w0.elapsed().as_secs_f64();
    let rss_open = rss_kib(&pid);
    let (mut whole, mut errors, mut kinds) = (0usize, 0usize, std::collections::BTreeMap::<String, usize>::new());
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => whole += 1,
            Err(e) => {
                errors += 1;
                *kinds.entry(e).or_default() += 1;
            }
        }
    }
    let out = serde_json::json!({
        "streams": streams, "tokens": tokens, "open_at_once": open, "seconds_to_open": opened_s,
        "whole": whole, "errors": errors, "error_kinds": kinds,
        "rss_before_kib": rss_before, "rss_open_kib": rss_open,
        "kib_per_open_stream": (rss_open - rss_before) / streams as f64,
        "cpu_cores_while_open": cpu_open, "total_s": t0.elapsed().as_secs_f64(),
    });
    println!("{out}");
}

/// One stream: opened, read to its end, checked whole.
async fn stream(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    i: usize,
    tokens: u32,
    opened: &mut bool,
    started: &AtomicUsize,
) -> Result<usize, String> {
    let body = serde_json::json!({
        "model": "m", "messages": [{"role": "user", "content": format!("stream {i}")}],
        "max_tokens": tokens, "ignore_eos": true, "stream": true,
    });
    let resp = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("could not send: {}", innermost(&e)))?;
    if !resp.status().is_success() {
        // The status and the error's type, to tell refusals from failures.
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let message: String = body["error"]["message"].as_str().unwrap_or("?").chars().take(80).collect();
        return Err(format!("status {status}: {message}"));
    }
    let mut s = resp.bytes_stream();
    let (mut first, mut text) = (true, Vec::new());
    while let Some(b) = s.next().await {
        let b = b.map_err(|e| format!("stream cut: {}", innermost(&e)))?;
        if first {
            started.fetch_add(1, Ordering::Relaxed);
            *opened = true;
            first = false;
        }
        text.extend_from_slice(&b);
    }
    let body = String::from_utf8_lossy(&text);
    let n = body.matches("\"delta\":{\"content\":\"").count();
    if !body.trim_end().ends_with("data: [DONE]") || body.contains("\"error\"") {
        return Err("stream did not end with [DONE]".into());
    }
    // The first chunk's delta is the empty role chunk.
    if n < tokens as usize {
        return Err("stream short of tokens".into());
    }
    Ok::<_, String>(n)
}

/// The innermost cause of an error (the socket's, not only reqwest's summary).
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
