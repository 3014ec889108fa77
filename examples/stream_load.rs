//! Load generator for the emulator: holds N concurrent streaming chat completions open and
//! reports whether the engine model kept up (step lag from the emulator's metrics), the token
//! cadence clients saw, and the emulator's CPU use.
//!
//! cargo run --release --example stream_load -- URL STREAMS TOKENS [EMULATOR_PID]
//! (raise the open-file limit first: `ulimit -n 65536`)

use futures::StreamExt;
use std::time::{Duration, Instant};

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Sum and count of a histogram, and the upper bound of the bucket holding quantile `q`.
fn histogram(metrics: &str, name: &str, q: f64) -> (f64, f64, f64) {
    let val = |l: &str| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let (mut sum, mut count) = (0.0, 0.0);
    for l in metrics.lines() {
        if let Some(rest) = l.strip_prefix(&format!("{name}_bucket{{")) {
            let le = rest.split("le=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("+Inf");
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
            match buckets.iter_mut().find(|(b, _)| *b == le) {
                Some(e) => e.1 += val(l),
                None => buckets.push((le, val(l))),
            }
        } else if l.starts_with(&format!("{name}_sum")) {
            sum += val(l);
        } else if l.starts_with(&format!("{name}_count")) {
            count += val(l);
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bound = buckets.iter().find(|(_, c)| *c >= q * count).map(|b| b.0).unwrap_or(f64::NAN);
    (sum, count, bound)
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).cloned().unwrap_or_else(|| "http://127.0.0.1:8000".into());
    let streams: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let tokens: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200);
    let pid: Option<u32> = args.get(4).and_then(|s| s.parse().ok());
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let model: serde_json::Value = client.get(format!("{url}/v1/models")).send().await.unwrap().json().await.unwrap();
    let model = model["data"][0]["id"].as_str().unwrap().to_string();
    let metrics_before = client.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    let cpu0 = pid.and_then(cpu_seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|i| {
            let (client, url, model) = (client.clone(), url.clone(), model.clone());
            tokio::spawn(async move {
                let body = serde_json::json!({
                    "model": model, "messages": [{"role": "user", "content": format!("stream {i}")}],
                    "max_tokens": tokens, "ignore_eos": true, "stream": true,
                });
                let resp = client.post(format!("{url}/v1/chat/completions")).json(&body).send().await?;
                let mut s = resp.bytes_stream();
                let (mut chunks, mut last, mut gaps) = (0u32, None::<Instant>, Vec::new());
                while let Some(b) = s.next().await {
                    let b = b?;
                    let now = Instant::now();
                    const PAT: &[u8] = b"\"content\":\" ";
                    let n = b.windows(PAT.len()).filter(|w| *w == PAT).count() as u32;
                    if n > 0 {
                        if let Some(l) = last {
                            gaps.push(now.duration_since(l).as_secs_f64() / f64::from(n));
                        }
                        last = Some(now);
                        chunks += n;
                    }
                }
                Ok::<_, reqwest::Error>((chunks, gaps))
            })
        })
        .collect();
    let mut peak_running = 0.0f64;
    let poll = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let mut peak = 0.0f64;
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let Ok(r) = client.get(format!("{url}/metrics")).send().await else { continue };
                let text = r.text().await.unwrap_or_default();
                let running: f64 = text
                    .lines()
                    .filter(|l| l.starts_with("vllm:num_requests_running"))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum();
                peak = peak.max(running);
                if peak > 0.0 && running == 0.0 {
                    return peak;
                }
            }
        })
    };
    let (mut ok, mut failed, mut toks, mut gaps) = (0, 0, 0u64, Vec::new());
    for t in tasks {
        match t.await.unwrap() {
            Ok((n, g)) if n == tokens => {
                ok += 1;
                toks += u64::from(n);
                gaps.extend(g);
            }
            Ok((n, _)) => {
                failed += 1;
                if failed <= 5 {
                    eprintln!("short stream: {n} tokens");
                }
            }
            Err(e) => {
                failed += 1;
                if failed <= 5 {
                    eprintln!("stream error: {e}");
                }
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    if let Ok(Ok(p)) = tokio::time::timeout(Duration::from_secs(2), poll).await {
        peak_running = p;
    }
    let cpu = match (cpu0, pid.and_then(cpu_seconds)) {
        (Some(a), Some(b)) => format!("{:.1} CPU-s ({:.0}% of one core)", b - a, 100.0 * (b - a) / wall),
        _ => "n/a (pass the emulator's pid)".into(),
    };
    let metrics = client.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    let (s0, c0, _) = histogram(&metrics_before, "tollgate_emulator_step_lag_seconds", 0.5);
    let (s1, c1, p99) = histogram(&metrics, "tollgate_emulator_step_lag_seconds", 0.99);
    let (_, _, p50) = histogram(&metrics, "tollgate_emulator_step_lag_seconds", 0.5);
    println!("streams {streams} x {tokens} tokens: {ok} complete, {failed} failed, {toks} tokens in {wall:.1} s ({:.0} tokens/s)", toks as f64 / wall);
    println!("peak running (sum over replicas): {peak_running}");
    println!(
        "client inter-token gap: p50 {:.1} ms, p99 {:.1} ms",
        1000.0 * percentile(&mut gaps, 0.5),
        1000.0 * percentile(&mut gaps, 0.99)
    );
    println!(
        "engine step lag: {} steps, mean {:.2} ms, p50 <= {:.1} ms, p99 <= {:.1} ms",
        c1 - c0,
        1000.0 * (s1 - s0) / (c1 - c0).max(1.0),
        1000.0 * p50,
        1000.0 * p99
    );
    println!("emulator CPU: {cpu}");
}
