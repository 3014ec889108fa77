//! Backends behind TLS (`https://` URLs, as hosted APIs are): a TLS terminator with a
//! self-signed certificate for `localhost` in front of an emulator. With the certificate named
//! in the backend's `ca_file`, whole and streamed answers come through the gateway over TLS and
//! health checks pass; without it the upstream is not trusted, nothing is sent to it, and the
//! request ends in an upstream error with its ledger row.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// Accepts TLS on a loopback port and relays each connection's plaintext to `upstream`; counts
/// the handshakes that completed and the ALPN protocol each chose.
struct Terminator {
    port: u16,
    handshakes: Arc<AtomicUsize>,
    http11: Arc<AtomicUsize>,
}

async fn terminate(upstream: String, cert: &rcgen::CertifiedKey) -> Terminator {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    #[allow(deprecated)] // as the gateway's client (src/backends/tls.rs) says
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (handshakes, http11) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (h, a) = (handshakes.clone(), http11.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, upstream, h, a) = (acceptor.clone(), upstream.clone(), h.clone(), a.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                h.fetch_add(1, Ordering::SeqCst);
                if tls.get_ref().1.alpn_protocol() == Some(b"http/1.1") {
                    a.fetch_add(1, Ordering::SeqCst);
                }
                let mut plain = TcpStream::connect(upstream.trim_start_matches("http://")).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    Terminator { port, handshakes, http11 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_backends_are_reached_over_tls_and_only_when_trusted() {
    let mut small = tollgate::capacity::Profile::builtin("llama3-8b-h100-tp1").unwrap();
    small.model = "llama3-8b".into();
    let emu = common::start_emulator(small, 1, 50.0).await;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let tls = terminate(emu.base.clone(), &cert).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let url = format!("https://localhost:{}", tls.port);
    // Health checks start after 2 s, when the requests below are done.
    let config = format!(
        "[health]\ninterval_ms = 2000\n{}{}[[models]]\nname = \"llama3-8b\"\nbackends = [\"tls\"]\n\
         [[models]]\nname = \"untrusted\"\nupstream_model = \"llama3-8b\"\nbackends = [\"untrusted\"]\n{}",
        common::backend("tls", &url, &format!("ca_file = \"{}\"", ca.display())),
        common::backend("untrusted", &url, ""),
        common::TIERS_AND_TENANTS
    );
    let gw = common::start_gateway(&config).await;
    let key = gw.key("acme").await;
    let client = reqwest::Client::new();
    let chat = |model: &str, stream: bool| {
        let body = serde_json::json!({
            "model": model, "stream": stream, "max_tokens": 8,
            "messages": [{"role": "user", "content": "Say hello over TLS."}],
        });
        client.post(format!("{}/v1/chat/completions", gw.base)).bearer_auth(&key).json(&body).send()
    };

    // Trusted: whole and streamed answers, each from the emulator behind the terminator.
    let whole = chat("llama3-8b", false).await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["x-tollgate-backend"], "tls");
    let whole: serde_json::Value = whole.json().await.unwrap();
    assert!(!whole["choices"][0]["message"]["content"].as_str().unwrap().is_empty(), "{whole}");
    let streamed = chat("llama3-8b", true).await.unwrap();
    assert_eq!(streamed.status(), 200);
    let text = streamed.text().await.unwrap();
    assert!(text.contains("\"delta\"") && text.trim_end().ends_with("data: [DONE]"), "{text}");
    let after_trusted = tls.handshakes.load(Ordering::SeqCst);
    assert!(after_trusted >= 1, "the answers came through the TLS terminator");
    assert_eq!(tls.http11.load(Ordering::SeqCst), after_trusted, "HTTP/1.1 chosen by ALPN on every connection");

    // Untrusted: the handshake fails on the gateway's side, so no request reaches the upstream.
    let refused = chat("untrusted", false).await.unwrap();
    assert!(refused.status().is_server_error(), "{}", refused.status());
    let err: serde_json::Value = refused.json().await.unwrap();
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("untrusted") && message.contains("certificate"), "{message}");
    assert_eq!(tls.handshakes.load(Ordering::SeqCst), after_trusted, "no TLS session with an untrusted upstream");

    // Health checks go over TLS too: the untrusted backend is marked down, the trusted one stays up.
    let up = |m: &str, b: &str| m.lines().any(|l| l == format!("tollgate_backend_up{{backend=\"{b}\"}} 1"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut metrics = gw.metrics().await;
    while up(&metrics, "untrusted") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        metrics = gw.metrics().await;
    }
    assert!(!up(&metrics, "untrusted") && up(&metrics, "tls"), "{metrics}");
    let rows = gw.stop_and_ledger().await;
    assert_eq!(rows.len(), 3, "one ledger row per request");
    let bad = rows.iter().find(|r| r.model_requested == "untrusted").unwrap();
    assert!(bad.status >= 500 && bad.output_tokens == 0, "{bad:?}");
    assert!(bad.error.as_deref().is_some_and(|e| e.contains("certificate")), "{bad:?}");
    let ok: Vec<_> = rows.iter().filter(|r| r.model_requested == "llama3-8b").collect();
    assert!(ok.iter().all(|r| r.status == 200 && r.output_tokens > 0 && r.backend.as_deref() == Some("tls")));
}

/// A `ca_file` that holds no certificate, or on a plain `http://` backend, stops the gateway
/// from starting with a message naming it.
#[tokio::test]
async fn a_bad_ca_file_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let body = |url: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{}[[models]]\nname = \"m\"\nbackends = [\"b\"]\n{}",
            dir.path().display(),
            common::backend("b", url, &format!("ca_file = \"{}\"", empty.display())),
            common::TIERS_AND_TENANTS
        )
    };
    let err = tollgate::config::Config::from_toml(&body("http://127.0.0.1:9"), "test").unwrap_err();
    assert!(format!("{err:#}").contains("ca_file"), "{err:#}");
    let cfg = tollgate::config::Config::from_toml(&body("https://127.0.0.1:9"), "test").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = tollgate::serve::spawn(cfg, None, listener, None).await.err().expect("refused at start");
    let msg = format!("{err:#}");
    assert!(msg.contains("ca_file") && msg.contains("no PEM certificate"), "{msg}");
}
