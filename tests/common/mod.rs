//! Helpers shared by the integration tests: starting an emulator in-process and finding the
//! Python interpreter and engines that `scripts/test-deps.sh` prepared.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use tollgate::capacity::Profile;
use tollgate::emulator::{Emulator, EmulatorConfig};

/// An emulator serving on a loopback port; stops with the test's runtime.
pub struct RunningEmulator {
    pub base: String,
    pub emu: Arc<Emulator>,
}

pub async fn start_emulator(profile: Profile, replicas: usize, time_scale: f64) -> RunningEmulator {
    let cfg = EmulatorConfig { model_name: profile.model.clone(), profile, replicas, seed: 1, time_scale };
    let emu = Emulator::start(cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = emu.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    RunningEmulator { base, emu }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv Python with the `openai` client: `$TOLLGATE_PYTHON`, else `.venv/bin/python`.
pub fn python() -> PathBuf {
    let p = std::env::var_os("TOLLGATE_PYTHON").map(PathBuf::from).unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "no Python with the openai client at {}: run scripts/test-deps.sh (or scripts/test.sh)",
        p.display()
    );
    p
}

/// A path named by `var`, prepared by scripts/test-deps.sh.
pub fn prepared(var: &str) -> PathBuf {
    let p = std::env::var_os(var).map(PathBuf::from);
    match p {
        Some(p) if p.exists() => p,
        _ => panic!("${var} is not set to an existing file: run the tests through scripts/test.sh"),
    }
}

pub fn script(name: &str) -> PathBuf {
    repo().join(name)
}
