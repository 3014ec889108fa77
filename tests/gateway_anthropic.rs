//! Anthropic's Messages API through the gateway with the official `anthropic` Python client:
//! whole and streamed text from emulated engines, tool use (whole, streamed, and the result sent
//! back) from a stub upstream that calls a tool, `count_tokens`, `x-api-key` and bearer auth, and
//! errors in Anthropic's shape; then one ledger row per request under `/v1/messages`.

mod common;

use common::stub;
use std::sync::atomic::Ordering;
use tollgate::capacity::Profile;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_client_through_the_gateway() {
    let mut small = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    small.model = "llama3-8b".into();
    let emu = common::start_emulator(small, 1, 20.0).await;
    let (tools, tools_url) = stub::start().await;
    tools.mode.store(stub::TOOL_CALL, Ordering::SeqCst);
    let config = format!(
        "{}{}\n[[models]]\nname = \"llama3-8b\"\nbackends = [\"emu\"]\n[[models]]\nname = \"tools\"\nbackends = [\"stub\"]\n{}",
        common::backend("emu", &emu.base, ""),
        common::backend("stub", &tools_url, ""),
        common::TIERS_AND_TENANTS
    );
    let gw = common::start_gateway(&config).await;
    let key = gw.key("acme").await;
    let metered = common::run_python("tests/python/anthropic_client.py", &[&gw.base, &key]).await;

    // The tool's result reached the upstream as chat: the call on the assistant turn, the
    // result as a `tool` message answering it.
    let last = tools.last_body.lock().unwrap().clone().expect("the stub was called");
    let msgs = last["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{last}");
    assert_eq!(msgs[1]["tool_calls"][0]["function"]["name"], "weather");
    assert_eq!(msgs[2]["role"], "tool");
    assert_eq!(msgs[2]["tool_call_id"], msgs[1]["tool_calls"][0]["id"]);
    assert_eq!(msgs[2]["content"], "18C, clear");
    assert_eq!(last["tools"][0]["function"]["parameters"]["required"][0], "city");
    // The client's key never reaches the upstream, in either header.
    let headers = tools.last_headers.lock().unwrap().clone().unwrap();
    assert!(headers.get("x-api-key").is_none());
    assert!(headers.get("authorization").is_none_or(|v| !v.to_str().unwrap_or("").contains(&key)));

    let rows = gw.stop_and_ledger().await;
    assert_eq!(rows.len(), metered, "one ledger row per request that passed authentication");
    assert!(rows.iter().all(|r| r.endpoint == "/v1/messages"), "every row is a Messages row");
    let served: Vec<_> = rows.iter().filter(|r| r.status == 200).collect();
    assert_eq!(served.len(), metered - 3, "all but the unknown model and the two bad bodies");
    assert!(served.iter().all(|r| r.output_tokens > 0 && r.input_tokens > 0));
    assert!(served.iter().any(|r| r.stream) && served.iter().any(|r| !r.stream));
}
