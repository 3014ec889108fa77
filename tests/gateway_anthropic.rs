//! Anthropic's Messages API through the gateway with the official `anthropic` Python client:
//! whole and streamed text from emulated engines, tool use (whole, streamed, and the result sent
//! back) from a stub upstream that calls a tool, `count_tokens`, `x-api-key` and bearer auth, and
//! errors in Anthropic's shape; then one ledger row per request under `/v1/messages`.

mod common;

use common::stub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_client_through_the_gateway() {
    let (_emu, tools, config) = stub::text_and_tools().await;
    let gw = common::start_gateway(&config).await;
    let key = gw.key("acme").await;
    let metered = common::run_python("tests/python/anthropic_client.py", &[&gw.base, &key]).await;

    // The tool's result reached the upstream as chat: the call on the assistant turn, the
    // result as a `tool` message answering it.
    let last = tools.last_body.lock().unwrap().clone().expect("the stub was called");
    stub::assert_tool_result_as_chat(&last);
    // The client's key never reaches the upstream, in either header.
    let headers = tools.last_headers.lock().unwrap().clone().unwrap();
    assert!(headers.get("x-api-key").is_none());
    assert!(headers.get("authorization").is_none_or(|v| !v.to_str().unwrap_or("").contains(&key)));

    let rows = gw.stop_and_ledger().await;
    // Refused and metered: the unknown model and the two bad bodies.
    common::assert_rows(&rows, metered, "/v1/messages", 3);
}
