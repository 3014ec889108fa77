//! Entry points for fuzzing (`fuzz/`, run with `cargo fuzz`) and for replaying the kept corpus
//! as an ordinary test (`tests/fuzz_corpus.rs`): each takes arbitrary bytes, drives one parser
//! the way the gateway does, and panics only if an invariant breaks. Bad input must give an
//! error, never a panic.

use crate::api::classify::{read_request, PromptInput, Route};
use crate::api::openai::{parse_generation_request, ChatRequest, CompletionRequest, Prompt};
use crate::api::sse::SseSplitter;
use crate::api::tally::Tally;
use crate::api::tokens;
use crate::cache::{Cached, Kind};

/// A client's request body as the gateway reads it (the first byte picks the endpoint), and as
/// the emulator reads it.
pub fn request(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else { return };
    let routes = [Route::Chat, Route::Completions, Route::Embeddings, Route::Messages, Route::Responses];
    let route = routes[usize::from(which) % routes.len()];
    match read_request(route, body) {
        Ok(c) => {
            // What is sent upstream is JSON with the pool's model name in it.
            let up = c.body_for("upstream-model", None).expect("a read request serialises");
            let v: serde_json::Value = serde_json::from_slice(&up).expect("the upstream body is JSON");
            assert_eq!(v["model"], "upstream-model");
            assert!(c.prompt.count() >= 0);
            let _ = c.prompt.prefix_hashes();
        }
        Err(e) => {
            // Every rejection is an OpenAI-shaped client error.
            assert!(e.status().is_client_error(), "{e:?} for a client's body");
            assert!(e.body()["error"]["message"].is_string());
        }
    }
    // The emulator's own reading of the same bytes.
    match route {
        Route::Chat => {
            if let Ok((req, g)) = parse_generation_request::<ChatRequest>(body) {
                let _ = (g.validate(), g.max_tokens(), g.min_tokens());
                let _ = tokens::chat_prompt_tokens(&req.messages);
            }
        }
        Route::Completions => {
            if let Ok((req, g)) = parse_generation_request::<CompletionRequest>(body) {
                let _ = (g.validate(), g.max_tokens(), g.min_tokens());
                let _ = tokens::completion_prompt_tokens(&req.prompt);
            }
        }
        Route::Embeddings | Route::Messages | Route::Responses => {}
    }
}

/// A chat stream cut where the input says (the first byte: the piece length), translated into
/// Anthropic's events: the same events wherever the bytes are cut, each a named event with a
/// JSON body, and a whole answer's translation always a message or an error.
pub fn messages_stream(data: &[u8]) {
    use crate::api::anthropic::{response, stream::Translator};
    let Some((&step, body)) = data.split_first() else { return };
    let mut t = Translator::new("m");
    cut_anywhere(step, body, || Translator::new("m"), |t, b| t.push(b), &mut t);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let m = response::from_chat(&v);
        assert_eq!(m["type"], "message");
        assert!(m["content"].is_array());
    }
}

/// As [`messages_stream`], into the Responses API's events: every event numbered in order, and a
/// whole answer's translation always a response with an output list.
pub fn responses_stream(data: &[u8]) {
    use crate::api::responses::{response, stream::Translator};
    let Some((&step, body)) = data.split_first() else { return };
    let echo = response::Echo::of(&serde_json::json!({"model": "m"}));
    let mut t = Translator::new(echo.clone());
    let whole = cut_anywhere(step, body, || Translator::new(echo.clone()), |t, b| t.push(b), &mut t);
    for (i, v) in whole.iter().enumerate() {
        assert_eq!(v["sequence_number"], i as u64, "{v}");
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let r = response::from_chat(&v, &echo);
        assert_eq!(r["object"], "response");
        assert!(r["output"].is_array());
    }
}

/// An Anthropic upstream's bytes: cut where the input says (the first byte: the piece length)
/// and read back as chat (the same chat stream wherever the bytes are cut, every event readable
/// by the gateway's own chat reader, nothing after `[DONE]`); the same bytes as a whole answer
/// always read back as a chat completion, and as a chat request either refused or a Messages
/// request with turns and a `max_tokens`.
pub fn anthropic_upstream(data: &[u8]) {
    use crate::api::anthropic::{upstream, upstream_stream::FromMessages};
    upstream_translation(data, FromMessages::new, FromMessages::push, upstream::answer, |chat| {
        if let Ok(m) = upstream::request(chat) {
            assert!(m["messages"].is_array() && m["max_tokens"].is_u64(), "{m}");
        }
    });
}

/// A Responses upstream's stream, whole answer and the chat request sent to it.
pub fn responses_upstream(data: &[u8]) {
    use crate::api::responses::{upstream, upstream_stream::FromResponses};
    upstream_translation(data, FromResponses::new, FromResponses::push, upstream::answer, |chat| {
        if let Ok(r) = upstream::request(chat) {
            assert!(r["input"].is_array() && r["store"] == false && r.get("messages").is_none(), "{r}");
        }
    });
}

/// An upstream translation read back as chat: the stream (cut where the first byte says) the same
/// wherever it is cut and nothing after `[DONE]`; a whole answer a chat completion with a finish
/// reason; `request` checks what a chat request becomes.
fn upstream_translation<T>(
    data: &[u8],
    fresh: fn() -> T,
    push: fn(&mut T, &[u8]) -> Vec<u8>,
    answer: fn(&serde_json::Value) -> serde_json::Value,
    request: impl Fn(&serde_json::Value),
) {
    use crate::api::chat_stream::{ChatEvent, ChatEvents};
    let Some((&step, body)) = data.split_first() else { return };
    let whole = push(&mut fresh(), body);
    let mut t = fresh();
    let mut cut = Vec::new();
    for piece in body.chunks(usize::from(step).max(1)) {
        cut.extend(push(&mut t, piece));
    }
    assert_eq!(cut, whole, "the translation depends on where the stream was cut");
    let events = ChatEvents::default().push(&whole);
    if let Some(end) = events.iter().position(|e| *e == ChatEvent::Done) {
        assert_eq!(end + 1, events.len(), "events after [DONE]");
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let c = answer(&v);
        assert_eq!(c["object"], "chat.completion");
        assert!(c["choices"][0]["finish_reason"].is_string());
        request(&v);
    }
}

/// Feeds `body` to a fresh translator whole and to `t` in pieces of `step` bytes; the output must
/// be the same, and every event a named event whose data is JSON with a `type`. Returns the
/// events' data.
fn cut_anywhere<T>(
    step: u8,
    body: &[u8],
    fresh: impl Fn() -> T,
    push: impl Fn(&mut T, &[u8]) -> Vec<u8>,
    t: &mut T,
) -> Vec<serde_json::Value> {
    let whole = push(&mut fresh(), body);
    let mut cut = Vec::new();
    for piece in body.chunks(usize::from(step).max(1)) {
        cut.extend(push(t, piece));
    }
    assert_eq!(cut, whole, "the translation depends on where the stream was cut");
    String::from_utf8_lossy(&whole)
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            let mut lines = event.lines();
            assert!(lines.next().is_some_and(|l| l.starts_with("event: ")), "{event}");
            let data = lines.next().and_then(|l| l.strip_prefix("data: ")).expect("a data line");
            let v: serde_json::Value = serde_json::from_str(data).expect("event data is JSON");
            assert!(v["type"].is_string());
            v
        })
        .collect()
}

/// An upstream's SSE stream, cut into chunks where the input says (the first byte: the chunk
/// length), through the relay's tally and the cache's assembly of a streamed answer.
pub fn sse(data: &[u8]) {
    let Some((&step, stream)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let mut tally = Tally::new(data.len().is_multiple_of(2));
    tally.capture();
    let mut splitter = SseSplitter::default();
    let (mut forwarded, mut events) = (0usize, Vec::new());
    for chunk in stream.chunks(step) {
        let out = tally.process(bytes::Bytes::copy_from_slice(chunk));
        forwarded += out.len();
        events.extend(splitter.push(chunk));
    }
    // Nothing is invented: what goes to the client is at most what came.
    assert!(forwarded <= stream.len());
    // Whole events are framed the same however the bytes were chunked.
    let mut again = SseSplitter::default();
    assert_eq!(again.push(stream), events);
    let t = tally.running();
    assert!(t.input >= 0 || t.output >= 0 || t.estimated);
    if tally.captured().is_some() {
        for kind in [Kind::Chat, Kind::Completion] {
            if let Some(answer) = tally.captured().and_then(|kept| Cached::from_events(kind, kept)) {
                replay_is_valid(&answer);
            }
        }
    }
    for kind in [Kind::Chat, Kind::Completion] {
        if let Some(answer) = Cached::from_whole(kind, stream) {
            replay_is_valid(&answer);
        }
    }
    let _ = crate::api::tally::whole_tokens(stream, &PromptInput::Completion(Prompt::Text(String::new())));
}

/// A cached answer replays as JSON, and as SSE events that are each JSON (or `[DONE]`).
fn replay_is_valid(answer: &Cached) {
    let whole = answer.whole("id", 0);
    serde_json::from_slice::<serde_json::Value>(&whole).expect("a replayed answer is JSON");
    let sse = answer.sse("id", 0, true);
    for ev in SseSplitter::default().push(&sse) {
        if ev.data() != "[DONE]" {
            serde_json::from_str::<serde_json::Value>(ev.data()).expect("a replayed event is JSON");
        }
    }
}

/// A configuration file.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cfg) = crate::config::Config::from_toml(text, "fuzz") {
        // A configuration that loads names backends that exist for every model.
        for m in &cfg.models {
            for b in &m.backends {
                assert!(cfg.backends.iter().any(|x| &x.name == b), "model {} names unknown backend {b}", m.name);
            }
        }
    }
}
