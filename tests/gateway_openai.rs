//! The gateway through the official `openai` Python client, in front of emulated engines:
//! streaming and not, usage, errors, auth, key revocation, and the ledger's one row per request.

mod common;

use tollgate::capacity::Profile;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_client_through_the_gateway() {
    let mut small = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    small.model = "llama3-8b".into();
    let mut big = Profile::builtin("llama2-70b-h100-tp4").unwrap();
    big.model = "llama2-70b".into();
    let (e1, e2) = (common::start_emulator(small, 1, 20.0).await, common::start_emulator(big, 1, 20.0).await);
    let config = format!(
        "{}{}\n[[models]]\nname = \"llama3-8b\"\nbackends = [\"emu-small\"]\n[[models]]\nname = \"llama2-70b\"\nbackends = [\"emu-big\"]\n{}",
        common::backend("emu-small", &e1.base, ""),
        common::backend("emu-big", &e2.base, ""),
        common::TIERS_AND_TENANTS
    ) + "[[tenants]]\nname = \"narrow\"\ntier = \"standard\"\nmodels = [\"llama3-8b\"]\n";
    let gw = common::start_gateway(&config).await;
    let (key, narrow) = (gw.key("acme").await, gw.key("narrow").await);
    let metered =
        common::run_python("tests/python/gateway_client.py", &[&gw.base, &key, &narrow, &gw.admin]).await as i64;
    // After a graceful stop the store holds exactly those rows.
    assert_eq!(gw.stop_and_count().await, metered);
}
