//! Schemathesis (PyPI) against the gateway's OpenAPI document, every check on: generated valid
//! and invalid requests to every operation, tenant routes with a tenant key and admin routes with
//! the admin key. It fails on a 5xx, an undocumented status or content type, a response that does
//! not match its schema, invalid input accepted, valid input refused, or auth ignored.

mod common;

use tollgate::capacity::Profile;

fn schemathesis(base: &str, key: &str, paths: &str, dir: &std::path::Path) -> (bool, String) {
    let bin = common::python().parent().unwrap().join("schemathesis");
    assert!(bin.exists(), "schemathesis is not installed in the test venv: run scripts/test-deps.sh");
    let out = std::process::Command::new(bin)
        .args(["run", &format!("{base}/openapi.json"), "--checks", "all", "--max-examples", "50", "--seed", "7"])
        .args(["--include-path-regex", paths, "-H", &format!("Authorization: Bearer {key}")])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_conforms_to_its_openapi_document() {
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "m".into();
    let emu = common::start_emulator(p, 1, 50.0).await;
    // Schemathesis also calls without credentials (each must be 401): let it, however often.
    let gw = common::start_gateway(&format!(
        "auth_failures_per_minute = 1000000\n{}[service_tiers]\nflex = \"standard\"\npriority = \"standard\"\n[[models]]\nname = \"m\"\nbackends = [\"e\"]\n{}",
        common::backend("e", &emu.base, ""),
        common::TIERS_AND_TENANTS
    ))
    .await;
    let key = gw.key("acme").await;
    let dir = tempfile::tempdir().unwrap();
    let (base, admin) = (gw.base.clone(), gw.admin.clone());
    let d = dir.path().to_path_buf();
    let runs = tokio::task::spawn_blocking(move || {
        [
            schemathesis(
                &base,
                &key,
                "^/v1/(chat/completions|completions|embeddings|models|responses.*|messages.*)$",
                &d,
            ),
            schemathesis(&base, &admin, "^/(v1/tollgate/|metrics|health|openapi)", &d),
        ]
    })
    .await
    .unwrap();
    for (ok, text) in runs {
        assert!(ok, "schemathesis found failures:\n{text}");
        assert!(text.contains("passed"), "{text}");
    }
    gw.stop_and_count().await;
}
