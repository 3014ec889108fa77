//! Security defaults, each checked from outside: no anonymous access anywhere; keys stored only
//! as hashes; the admin API refuses tenant keys; request header and body limits; only configured
//! upstreams are contacted, whatever the client puts in its body or headers, and none of the
//! client's headers reach them; and neither secrets nor prompts appear in the logs, at the
//! default level or at debug. (Caches never crossing tenants, gated models and failed-auth rate
//! limiting are tested in gateway_cache, semantic_minilm, admission_rules and auth_limits.)

mod common;

use serde_json::json;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate::capacity::Profile;

async fn emulator() -> common::RunningEmulator {
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "m".into();
    common::start_emulator(p, 1, 50.0).await
}

fn config(emu: &str) -> String {
    format!(
        "{}[[models]]\nname = \"m\"\nbackends = [\"e\"]\n{}",
        common::backend("e", emu, ""),
        common::TIERS_AND_TENANTS
    )
}

/// A listener that counts the connections made to it (nothing should ever connect).
fn canary() -> (String, Arc<AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            h.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    (url, hits)
}

/// Sends raw bytes over one connection and returns the status line's code.
fn raw_status(base: &str, request: &[u8]) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_anonymous_access_hashed_keys_and_a_separate_admin_api() {
    let emu = emulator().await;
    // Failed attempts are rate limited per address (tests/auth_limits.rs): allow this test's.
    let gw = common::start_gateway(&format!("auth_failures_per_minute = 1000\n{}", config(&emu.base))).await;
    let key = gw.key("acme").await;
    let client = reqwest::Client::new();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    let tenant_routes = [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/embeddings"),
        ("GET", "/v1/models"),
    ];
    let admin_routes = [
        ("GET", "/v1/tollgate/ledger"),
        ("GET", "/v1/tollgate/usage"),
        ("POST", "/v1/tollgate/keys"),
        ("GET", "/v1/tollgate/keys"),
        ("GET", "/v1/tollgate/prices"),
        ("GET", "/v1/tollgate/tenants"),
        ("GET", "/v1/tollgate/tiers"),
        ("GET", "/v1/tollgate/decisions"),
        ("DELETE", "/v1/tollgate/keys/1"),
        ("GET", "/metrics"),
    ];
    for (method, path) in tenant_routes.iter().chain(&admin_routes) {
        for auth in [None, Some("Bearer "), Some("Bearer tg_not_a_real_key"), Some("Basic Zm9vOmJhcg==")] {
            let mut r = client.request(method.parse().unwrap(), format!("{}{path}", gw.base)).json(&body);
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            let resp = r.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{method} {path} with {auth:?}");
            let v: serde_json::Value = resp.json().await.unwrap();
            assert!(v["error"]["message"].is_string(), "{path}: OpenAI-shaped error");
        }
    }
    // A tenant key opens the tenant routes and none of the admin ones.
    for (method, path) in admin_routes {
        let resp = client
            .request(method.parse().unwrap(), format!("{}{path}", gw.base))
            .bearer_auth(&key)
            .json(&json!({"tenant": "acme"}))
            .send()
            .await
            .unwrap();
        // SECURITY.md: a tenant key on an admin route is not the admin key, so 401.
        assert_eq!(resp.status().as_u16(), 401, "{path} with a tenant key");
    }
    let ok =
        client.post(format!("{}/v1/chat/completions", gw.base)).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    // The key is nowhere in the store's files; only its hash is kept.
    let dir = gw._dir.path().to_path_buf();
    gw.ledger(1).await;
    // The key's random part (its tail; the id before it is not secret).
    let secret = key[key.len() - 24..].to_string();
    let mut files = 0;
    for entry in walk(&dir) {
        let bytes = std::fs::read(&entry).unwrap();
        files += 1;
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds the key's secret",
            entry.display()
        );
    }
    assert!(files >= 1, "the store wrote files under {}", dir.display());
    gw.stop_and_count().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_body_limits() {
    let emu = emulator().await;
    let gw = common::start_gateway(&format!("body_limit_bytes = 4096\n{}", config(&emu.base))).await;
    let key = gw.key("acme").await;
    let base = gw.base.clone();
    let key2 = key.clone();
    let statuses = tokio::task::spawn_blocking(move || {
        let req = |extra: &str, body: &str| {
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key2}\r\n\
                 content-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
                body.len()
            )
        };
        let small = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":1}"#;
        let big_header = format!("x-padding: {}\r\n", "a".repeat(100 * 1024));
        let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
        let big_body =
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#, "word ".repeat(2000));
        [
            raw_status(&base, req("", small).as_bytes()),
            raw_status(&base, req(&big_header, small).as_bytes()),
            raw_status(&base, req(&many, small).as_bytes()),
            raw_status(&base, req("", &big_body).as_bytes()),
        ]
    })
    .await
    .unwrap();
    assert_eq!(statuses, [200, 431, 431, 413], "normal, 100 KiB header, 150 headers, 10 KB body");
    gw.stop_and_count().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_configured_upstreams_are_contacted_and_client_headers_stay_behind() {
    let (s, stub_url) = common::stub::start().await;
    let (canary_url, canary_hits) = canary();
    let gw = common::start_gateway(&format!(
        "{}[[models]]\nname = \"m\"\nbackends = [\"s\"]\n{}",
        common::backend("s", &stub_url, ""),
        common::TIERS_AND_TENANTS
    ))
    .await;
    let key = gw.key("acme").await;
    let client = reqwest::Client::new();
    let host = canary_url.trim_start_matches("http://");
    // Models named by URL, upstream addresses in the body, routing headers: none is followed.
    let bodies = [
        json!({"model": canary_url, "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": format!("{canary_url}/v1#m"), "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "base_url": canary_url,
               "api_base": canary_url, "url": canary_url}),
    ];
    for b in &bodies {
        let _ = client
            .post(format!("{}/v1/chat/completions", gw.base))
            .bearer_auth(&key)
            .header("x-forwarded-host", host)
            .header("forwarded", format!("host={host}"))
            .header("x-tollgate-backend", &canary_url)
            .header("x-emulator-fault", "reset")
            .header("cookie", "session=client-cookie")
            .json(b)
            .send()
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(canary_hits.load(Ordering::SeqCst), 0, "an unconfigured address was contacted");
    assert_eq!(s.hits.load(Ordering::SeqCst), 1, "only the valid model reached its configured upstream");
    let seen = s.last_headers.lock().unwrap().clone().unwrap();
    for h in ["x-forwarded-host", "forwarded", "x-tollgate-backend", "x-emulator-fault", "cookie", "authorization"] {
        let v = seen.get(h).map(|v| v.to_str().unwrap_or("").to_string());
        assert!(v.is_none() || !v.as_deref().unwrap().contains(&key), "{h} forwarded: {v:?}");
        if h != "authorization" {
            assert!(v.is_none(), "client header {h} reached the upstream: {v:?}");
        }
    }
    let body = s.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(body["model"], "m");
    gw.stop_and_count().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_secrets_and_no_prompts() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tollgate.toml"),
        format!(
            "data_dir = \"{}\"\n{}[[models]]\nname = \"m\"\nbackends = [\"e\"]\n{}",
            dir.path().display(),
            common::backend("e", &emu.base, "api_key_env = \"TOLLGATE_TEST_UPSTREAM_SECRET\""),
            common::TIERS_AND_TENANTS
        ),
    )
    .unwrap();
    const UPSTREAM_SECRET: &str = "upstream-secret-7f3a9c1e5b";
    const PROMPT: &str = "my confidential question about project nightingale";
    const BAD_KEY: &str = "tg_live_attacker_guess_4f8b2e6a1c9d";
    for level in [None, Some("debug")] {
        let port = common::llama::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.args(["serve", "--config", dir.path().join("tollgate.toml").to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("TOLLGATE_ADMIN_KEY", common::ADMIN_KEY)
            .env("TOLLGATE_TEST_UPSTREAM_SECRET", UPSTREAM_SECRET)
            .env_remove("TOLLGATE_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(l) = level {
            cmd.env("TOLLGATE_LOG", l);
        }
        let mut child = cmd.spawn().unwrap();
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.get(format!("{base}/health")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
            assert!(Instant::now() < deadline, "gateway did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let made =
            common::post_json(&format!("{base}/v1/tollgate/keys"), Some(common::ADMIN_KEY), &json!({"tenant": "acme"}))
                .await;
        let key = made["key"].as_str().unwrap().to_string();
        for (stream, k) in [(false, key.as_str()), (true, key.as_str()), (false, BAD_KEY)] {
            let body = json!({"model": "m", "stream": stream, "max_tokens": 4,
                              "messages": [{"role": "user", "content": PROMPT}]});
            let _ = client
                .post(format!("{base}/v1/chat/completions"))
                .bearer_auth(k)
                .json(&body)
                .send()
                .await
                .unwrap()
                .text()
                .await;
        }
        // A request the gateway rejects with the prompt in it, and one whose upstream fails.
        let bad = json!({"model": "m", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": "many"});
        let _ = client.post(format!("{base}/v1/chat/completions")).bearer_auth(&key).json(&bad).send().await;
        let _ = client.get(format!("{base}/metrics")).bearer_auth(common::ADMIN_KEY).send().await;
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        let out = tokio::task::spawn_blocking(move || {
            let mut s = String::new();
            child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
            child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
            child.wait().unwrap();
            s
        })
        .await
        .unwrap();
        assert!(out.contains("listening"), "the gateway's output at {level:?}: {out}");
        if level.is_some() {
            assert!(out.lines().count() > 20, "debug logging is on: {out}");
        }
        let secret_part = &key[key.len() - 24..];
        for (what, needle) in [
            ("tenant key", secret_part),
            ("admin key", common::ADMIN_KEY),
            ("upstream key", UPSTREAM_SECRET),
            ("rejected key", BAD_KEY),
            ("prompt", "nightingale"),
        ] {
            assert!(!out.contains(needle), "the {what} is in the logs at {level:?}:\n{out}");
        }
    }
}

/// A client that sends its headers too slowly (slow-headers, slowloris) is disconnected at the
/// configured time, and one that sends them in time is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_headers_client_is_cut_off_at_the_configured_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = common::start_gateway(&format!(
        "header_timeout_ms = 500\n{}[[models]]\nname = \"m\"\nbackends = [\"e\"]\n{}",
        common::backend("e", "http://127.0.0.1:9", ""),
        common::TIERS_AND_TENANTS
    ))
    .await;
    let addr = gw.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let t0 = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    let waited = t0.elapsed();
    assert!(read.is_ok(), "the connection was not closed within 10 s");
    assert!(
        waited >= std::time::Duration::from_millis(400) && waited < std::time::Duration::from_secs(3),
        "closed after {waited:?}, configured 500 ms"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(!text.contains("200 OK"), "the unfinished request was not served: {text}");
    // In time: served.
    let mut quick = tokio::net::TcpStream::connect(&addr).await.unwrap();
    quick.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    quick.read_to_end(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf));
    gw.stop_and_count().await;
}
