//! `tollgate calibrate` against a real llama.cpp `llama-server` (built by scripts/test-deps.sh):
//! the tiny random-weight model written at test time, and SmolLM2-135M-Instruct.

mod common;

use common::llama::{llama_server, tiny_gguf};
use std::path::Path;
use std::process::Command;
use tollgate::capacity::Profile;

/// Calibration measures time: run one at a time so the two tests do not slow each other down.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn calibrate(url: &str, model: &str, out: &Path, extra: &[&str]) -> Profile {
    let run = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["calibrate", "--url", url, "--model", model, "--out", out.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(run.status.success(), "calibrate failed: {stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    Profile::from_file(out).expect("calibrate writes a loadable profile")
}

#[test]
fn calibrates_a_tiny_llama_server_and_the_emulator_runs_the_result() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(dir.path());
    let (_server, url) = llama_server(&gguf, 4, 4096);
    let out = dir.path().join("tiny.toml");
    let p = calibrate(
        &url,
        "tiny",
        &out,
        &["--prompt-sizes", "16,128,512,900", "--batches", "1,2,4", "--decode-tokens", "64", "--repeats", "2"],
    );
    // Limits come from llama-server's /props: 4 slots of 1,024 tokens each.
    assert_eq!((p.max_batch, p.max_context, p.kv_tokens), (4, 1024, 4096));
    assert!(p.prefill.per_token_ms > 0.0 || p.prefill.per_pair_ms > 0.0, "{p:?}");
    assert!(p.decode.base_ms + p.decode.per_seq_ms > 0.0, "{p:?}");
    assert!(p.fit.rows == 4 * 2 + 3 * 2 + 2);
    // The timing model describes the measurements it was fitted on.
    assert!(p.fit.prompt_time_median_rel_err < 0.35, "{:?}", p.fit);
    assert!(p.fit.token_time_median_rel_err < 0.35, "{:?}", p.fit);

    // The emulator serves with the calibrated profile.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let emu = common::start_emulator(p.clone(), 1, 10.0).await;
        let body = serde_json::json!({"model": "tiny", "prompt": "hello", "max_tokens": 5, "ignore_eos": true});
        let r = common::post_json(&format!("{}/v1/completions", emu.base), None, &body).await;
        assert_eq!(r["usage"]["completion_tokens"], 5, "{r}");
    });
}

#[test]
fn calibrates_smollm2_on_llama_server() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let gguf = common::prepared("TOLLGATE_SMOLLM2_GGUF");
    let (_server, url) = llama_server(&gguf, 4, 4096);
    let dir = tempfile::tempdir().unwrap();
    let p = calibrate(
        &url,
        "smollm2",
        &dir.path().join("smollm2.toml"),
        &["--prompt-sizes", "16,64,128,256", "--batches", "1,2,4", "--decode-tokens", "32", "--repeats", "1"],
    );
    assert_eq!((p.max_batch, p.kv_tokens), (4, 4096));
    assert!(p.fit.prompt_time_median_rel_err < 0.35 && p.fit.token_time_median_rel_err < 0.35, "{:?}", p.fit);
    // A real model on one core: prefill costs more per token than the tiny one's noise floor.
    assert!(p.prefill_ms(512.0, 512.0 * 512.0) > p.prefill_ms(16.0, 256.0), "{p:?}");
    // A 135M-parameter model on one core: a decode step takes well over half a millisecond (the
    // fit may put that time in the base or the per-sequence term).
    assert!(p.decode_ms(1.0, 100.0) > 0.5, "{p:?}");
}

/// A llama-server that dies at start (here: a model file that is not a GGUF) fails the test
/// within seconds, with its exit status and stderr in the message, instead of after the two-minute
/// health-check wait.
#[test]
fn a_llama_server_that_dies_at_start_fails_fast_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-a-model.gguf");
    std::fs::write(&bad, b"this is not a GGUF file").unwrap();
    let t0 = std::time::Instant::now();
    let err = std::panic::catch_unwind(|| llama_server(&bad, 1, 256)).err().expect("a bad model must not start");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(t0.elapsed() < std::time::Duration::from_secs(20), "took {:?}", t0.elapsed());
    assert!(msg.contains("llama-server exited with"), "{msg}");
    assert!(msg.to_lowercase().contains("gguf") || msg.to_lowercase().contains("model"), "no stderr in: {msg}");
}
