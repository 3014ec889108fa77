//! A real llama.cpp `llama-server` for tests (built by scripts/test-deps.sh).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts llama-server on `model` with `slots` parallel sequences sharing `ctx` KV tokens.
pub fn llama_server(model: &Path, slots: u32, ctx: u32) -> (Server, String) {
    start(model, slots, ctx, &[])
}

/// Starts llama-server serving `/v1/embeddings` from a BERT-style GGUF (mean pooling).
pub fn embeddings_server(model: &Path) -> (Server, String) {
    start(model, 1, 512, &["--embeddings", "--pooling", "mean"])
}

fn start(model: &Path, slots: u32, ctx: u32, extra: &[&str]) -> (Server, String) {
    let port = free_port();
    let mut cmd = Command::new(super::prepared("TOLLGATE_LLAMA_SERVER"));
    cmd.args(["-m", model.to_str().unwrap(), "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["-t", "1", "--parallel", &slots.to_string(), "-c", &ctx.to_string()])
        .args(extra);
    let (child, log) = super::process::spawn_logged(&mut cmd, "llama-server");
    let mut server = Server(child);
    let url = format!("http://127.0.0.1:{port}");
    let health = format!("{url}/health");
    super::process::wait_ready(&mut server.0, "llama-server", &log, Duration::from_secs(120), || {
        reqwest::blocking::get(&health).map(|r| r.status().is_success()).unwrap_or(false)
    });
    (server, url)
}

/// Writes the tiny random-weight GGUF into `dir`.
pub fn tiny_gguf(dir: &Path) -> PathBuf {
    let gguf = dir.join("tiny.gguf");
    let made =
        Command::new(super::python()).arg(super::script("scripts/make_tiny_gguf.py")).arg(&gguf).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    gguf
}
