//! The emulator as the official `openai` Python client sees it: chat, completions, streaming
//! with usage, embeddings, prefix caching, errors and vLLM-named metrics.

mod common;

use tollgate::capacity::{Profile, DEFAULT_PROFILE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_client_passes_every_check() {
    let profile = Profile::builtin(DEFAULT_PROFILE).unwrap();
    let max_context = profile.max_context;
    let model = profile.model.clone();
    let emu = common::start_emulator(profile, 2, 50.0).await;
    let out = tokio::process::Command::new(common::python())
        .arg(common::script("tests/python/emulator_client.py"))
        .args([&emu.base, &model, &max_context.to_string()])
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "python client failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
}
