//! Client-side latency at a fixed concurrency: direct to an upstream and through tollgate,
//! interleaved in rounds so both see the same machine conditions.
//!
//! cargo run --release --example latency -- DIRECT_URL GATEWAY_URL KEY MODEL CONCURRENCY REQUESTS_PER_ROUND ROUNDS

use std::time::Instant;

async fn round(client: &reqwest::Client, url: &str, key: &str, model: &str, conc: usize, n: usize) -> Vec<f64> {
    let per = n / conc;
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let (client, url, key, model) = (client.clone(), url.to_string(), key.to_string(), model.to_string());
            tokio::spawn(async move {
                let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "ignore_eos": true});
                let mut lat = Vec::with_capacity(per);
                for _ in 0..per {
                    let t = Instant::now();
                    let r = client.post(format!("{url}/v1/chat/completions")).bearer_auth(&key).json(&body).send().await.unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    r.bytes().await.unwrap();
                    lat.push(t.elapsed().as_secs_f64() * 1e6);
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (direct, gateway, key, model) = (&a[1], &a[2], &a[3], &a[4]);
    let conc: usize = a[5].parse().unwrap();
    let n: usize = a[6].parse().unwrap();
    let rounds: usize = a[7].parse().unwrap();
    let client = reqwest::Client::builder().pool_max_idle_per_host(conc * 2).build().unwrap();
    // Warm-up both paths.
    round(&client, direct, key, model, conc, conc * 4).await;
    round(&client, gateway, key, model, conc, conc * 4).await;
    let (mut d, mut g) = (Vec::new(), Vec::new());
    let (mut dt, mut gt) = (0.0, 0.0);
    for _ in 0..rounds {
        let t = Instant::now();
        d.extend(round(&client, direct, key, model, conc, n).await);
        dt += t.elapsed().as_secs_f64();
        let t = Instant::now();
        g.extend(round(&client, gateway, key, model, conc, n).await);
        gt += t.elapsed().as_secs_f64();
    }
    let (dl, gl) = (d.len() as f64, g.len() as f64);
    println!("concurrency {conc}: {} requests per target in {rounds} interleaved rounds", d.len());
    println!("{:<10} {:>9} {:>9} {:>9} {:>10}", "target", "p50 us", "p90 us", "p99 us", "req/s");
    let (d50, d90, d99) = (pct(&mut d, 0.5), pct(&mut d, 0.9), pct(&mut d, 0.99));
    let (g50, g90, g99) = (pct(&mut g, 0.5), pct(&mut g, 0.9), pct(&mut g, 0.99));
    println!("{:<10} {:>9.0} {:>9.0} {:>9.0} {:>10.0}", "direct", d50, d90, d99, dl / dt);
    println!("{:<10} {:>9.0} {:>9.0} {:>9.0} {:>10.0}", "tollgate", g50, g90, g99, gl / gt);
    println!("{:<10} {:>9.0} {:>9.0} {:>9.0}", "added", g50 - d50, g90 - d90, g99 - d99);
}
