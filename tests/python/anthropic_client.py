"""Exercises tollgate's /v1/messages with the official `anthropic` Python client.

Run by tests/gateway_anthropic.rs as: anthropic_client.py BASE KEY
The gateway fronts an emulated `llama3-8b` (text) and a stub `tools` model that always calls the
tool `weather` for Paris. Every check is an assert. Prints METERED=n: the requests that passed
authentication and reached the request path (each must leave one ledger row).
"""
import json
import sys
import urllib.error
import urllib.request

import anthropic

base, key = sys.argv[1:3]
metered = 0
# The SDK's default: the key in `x-api-key`, with `anthropic-version`.
client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0, timeout=60)

# Whole: text, the exact output length asked of the emulator, usage and stop reason.
raw = client.messages.with_raw_response.create(
    model="llama3-8b", max_tokens=7, system="You are terse.",
    messages=[{"role": "user", "content": "hello"}], extra_body={"ignore_eos": True})
metered += 1
m = raw.parse()
assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_"), m
assert m.content[0].type == "text" and m.content[0].text, m
assert m.usage.output_tokens == 7 and m.usage.input_tokens > 0, m.usage
assert m.stop_reason == "max_tokens", m.stop_reason
assert raw.headers["x-tollgate-model"] == "llama3-8b"
assert raw.headers.get("request-id"), "request-id header"

# The same key as a bearer token.
bearer = anthropic.Anthropic(base_url=base, auth_token=key, max_retries=0, timeout=60)
m = bearer.messages.create(model="llama3-8b", max_tokens=3, messages=[{"role": "user", "content": "hi"}],
                           extra_body={"ignore_eos": True})
metered += 1
assert m.usage.output_tokens == 3

# Multi-turn, streamed: typed events, text deltas, the final message's usage.
with client.messages.stream(
        model="llama3-8b", max_tokens=9,
        messages=[{"role": "user", "content": "Tell me a story"}, {"role": "assistant", "content": "Once"},
                  {"role": "user", "content": "Go on"}],
        extra_body={"ignore_eos": True}) as stream:
    kinds = [e.type for e in stream]
    final = stream.get_final_message()
metered += 1
assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
assert "content_block_start" in kinds and "content_block_delta" in kinds and "message_delta" in kinds, kinds
assert final.usage.output_tokens == 9 and final.usage.input_tokens > 0, final.usage
assert final.stop_reason == "max_tokens" and final.content[0].text, final

# Tool use, whole: a tool_use block with parsed input; then the result goes back.
tools = [{"name": "weather", "description": "Weather now",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
m = client.messages.create(model="tools", max_tokens=50, tools=tools, tool_choice={"type": "any"},
                           messages=[{"role": "user", "content": "Weather in Paris?"}])
metered += 1
assert m.stop_reason == "tool_use", m
use = [b for b in m.content if b.type == "tool_use"][0]
assert use.name == "weather" and use.input == {"city": "Paris"}, use

# Tool use, streamed: input_json_delta pieces assemble into the same input.
with client.messages.stream(model="tools", max_tokens=50, tools=tools,
                            messages=[{"role": "user", "content": "Weather in Paris?"}]) as stream:
    deltas = [e.delta.partial_json for e in stream if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
    final = stream.get_final_message()
metered += 1
assert len(deltas) == 2, deltas
use = [b for b in final.content if b.type == "tool_use"][0]
assert use.input == {"city": "Paris"} and final.stop_reason == "tool_use", final
assert final.usage.output_tokens == 8 and final.usage.input_tokens == 30, final.usage

# The tool's result goes back (the last request the stub sees: the test checks its translation).
m = client.messages.create(model="tools", max_tokens=50, tools=tools, messages=[
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": [{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C, clear"}]}])
metered += 1
print("TOOL_RESULT_SENT")

# count_tokens: a longer prompt has more; tools count too. Not an inference: no ledger row.
short = client.messages.count_tokens(model="llama3-8b", messages=[{"role": "user", "content": "hi"}])
longer = client.messages.count_tokens(model="llama3-8b", messages=[{"role": "user", "content": "hi " * 50}])
with_tools = client.messages.count_tokens(model="llama3-8b", tools=tools, messages=[{"role": "user", "content": "hi"}])
assert 0 < short.input_tokens < longer.input_tokens and with_tools.input_tokens > short.input_tokens, (short, longer)

# Errors in Anthropic's shape and statuses.
try:
    anthropic.Anthropic(base_url=base, api_key="tg-wrong", max_retries=0).messages.create(
        model="llama3-8b", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    raise AssertionError("a wrong key was accepted")
except anthropic.AuthenticationError as e:
    assert e.status_code == 401 and e.body["type"] == "error", e.body
    assert e.body["error"]["type"] == "authentication_error", e.body
try:
    client.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    raise AssertionError("an unknown model was accepted")
except anthropic.NotFoundError as e:
    metered += 1
    assert e.body["error"]["type"] == "not_found_error", e.body


def post(body):
    req = urllib.request.Request(base + "/v1/messages", data=json.dumps(body).encode(), method="POST",
                                 headers={"x-api-key": key, "anthropic-version": "2023-06-01",
                                          "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


status, body = post({"model": "llama3-8b", "messages": [{"role": "user", "content": "hi"}]})
metered += 1
assert status == 400 and body["type"] == "error", body
assert body["error"]["type"] == "invalid_request_error" and "max_tokens" in body["error"]["message"], body
status, body = post({"model": "llama3-8b", "max_tokens": 5, "messages": [{"role": "robot", "content": "hi"}]})
metered += 1
assert status == 400 and "role" in body["error"]["message"], body

print(f"METERED={metered}")
