//! OpenAI's Responses API through the gateway with the official `openai` Python client: whole and
//! streamed text from emulated engines (string and item inputs), function calls (whole, streamed,
//! and their output sent back by `previous_response_id`) from a stub upstream that calls a tool;
//! stored responses (retrieve, input items, delete, `store: false`, hidden from another tenant);
//! errors in OpenAI's shape; then one ledger row per request under `/v1/responses`.

mod common;

use common::stub;
use std::sync::atomic::Ordering;
use tollgate::capacity::Profile;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_responses_client_through_the_gateway() {
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
    ) + "[[tenants]]\nname = \"globex\"\ntier = \"standard\"\n";
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
    let msgs = last["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{last}");
    assert_eq!(msgs[1]["tool_calls"][0]["function"]["name"], "weather");
    assert_eq!(msgs[2]["role"], "tool");
    assert_eq!(msgs[2]["tool_call_id"], msgs[1]["tool_calls"][0]["id"]);
    assert_eq!(msgs[2]["content"], "18C, clear");
    assert_eq!(last["tools"][0]["function"]["parameters"]["required"][0], "city");
    let headers = tools.last_headers.lock().unwrap().clone().unwrap();
    assert!(headers.get("authorization").is_none_or(|v| !v.to_str().unwrap_or("").contains(&key)));

    let rows = gw.stop_and_ledger().await;
    assert_eq!(rows.len(), metered, "one ledger row per request that passed authentication");
    assert!(rows.iter().all(|r| r.endpoint == "/v1/responses"), "every row is a Responses row");
    let served: Vec<_> = rows.iter().filter(|r| r.status == 200).collect();
    assert_eq!(served.len(), metered - 2, "all but the unknown model and the built-in tool");
    assert!(served.iter().all(|r| r.output_tokens > 0 && r.input_tokens > 0));
    assert!(served.iter().any(|r| r.stream) && served.iter().any(|r| !r.stream));
}
