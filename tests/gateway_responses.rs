//! OpenAI's Responses API through the gateway with the official `openai` Python client: whole and
//! streamed text from emulated engines (string and item inputs), function calls (whole, streamed,
//! and their output sent back by `previous_response_id`) from a stub upstream that calls a tool;
//! stored responses (retrieve, input items, delete, `store: false`, hidden from another tenant);
//! errors in OpenAI's shape; then one ledger row per request under `/v1/responses`.

mod common;

use common::stub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_responses_client_through_the_gateway() {
    let (_emu, tools, config) = stub::text_and_tools().await;
    let config = config + "[[tenants]]\nname = \"globex\"\ntier = \"standard\"\n";
    let gw = common::start_gateway(&config).await;
    let (key, other) = (gw.key("acme").await, gw.key("globex").await);
    let metered = common::run_python("tests/python/responses_client.py", &[&gw.base, &key, &other]).await;

    // The function call's output, sent by reference to the stored response, reached the upstream
    // as chat: the earlier question, the call on the assistant turn, the output as a `tool`
    // message answering it. (The last call to the stub is the streamed one; the continuation's
    // body is among those it saw.)
    let bodies = tools.bodies.lock().unwrap().clone();
    let last = bodies
        .iter()
        .find(|b| b["messages"].as_array().is_some_and(|m| m.len() == 3))
        .expect("the continuation")
        .clone();
    stub::assert_tool_result_as_chat(&last);
    let headers = tools.last_headers.lock().unwrap().clone().unwrap();
    assert!(headers.get("authorization").is_none_or(|v| !v.to_str().unwrap_or("").contains(&key)));

    let rows = gw.stop_and_ledger().await;
    // Refused and metered: the unknown model and the built-in tool.
    common::assert_rows(&rows, metered, "/v1/responses", 2);
}
