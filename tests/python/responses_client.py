"""Exercises tollgate's /v1/responses with the official `openai` Python client.

Run by tests/gateway_responses.rs as: responses_client.py BASE KEY OTHER_TENANT_KEY
The gateway fronts an emulated `llama3-8b` (text) and a stub `tools` model that always calls the
tool `weather` for Paris. Every check is an assert. Prints METERED=n: the requests that passed
authentication and reached the request path (each must leave one ledger row).
"""
import sys

import openai

base, key, other_key = sys.argv[1:4]
metered = 0
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=60)

# Whole: a string input with instructions; the exact output length asked of the emulator.
raw = client.responses.with_raw_response.create(
    model="llama3-8b", instructions="You are terse.", input="hello", max_output_tokens=7,
    metadata={"run": "test"}, extra_body={"ignore_eos": True})
metered += 1
r = raw.parse()
assert r.object == "response" and r.id.startswith("resp_") and r.status == "incomplete", r
assert r.incomplete_details.reason == "max_output_tokens", r.incomplete_details
assert r.output[0].type == "message" and r.output_text, r.output
assert r.usage.output_tokens == 7 and r.usage.input_tokens > 0, r.usage
assert r.instructions == "You are terse." and r.metadata == {"run": "test"} and r.store is True, r
assert raw.headers["x-tollgate-model"] == "llama3-8b"

# Items as input (a multi-turn conversation), streamed: typed events with sequence numbers, the
# text deltas adding up to the final response's text. A length stop ends with
# `response.incomplete`, as the API does (the SDK's get_final_response() waits for
# `response.completed` only, so the last event's response is read).
with client.responses.stream(
        model="llama3-8b", max_output_tokens=9,
        input=[{"role": "user", "content": "Tell me a story"},
               {"role": "assistant", "content": [{"type": "output_text", "text": "Once"}]},
               {"role": "user", "content": [{"type": "input_text", "text": "Go on"}]}],
        extra_body={"ignore_eos": True}) as stream:
    events = list(stream)
final = events[-1].response
metered += 1
kinds = [e.type for e in events]
assert kinds[0] == "response.created" and kinds[-1] == "response.incomplete", kinds
assert "response.output_text.delta" in kinds and "response.output_item.done" in kinds, kinds
assert [e.sequence_number for e in events] == list(range(len(events)))
deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
assert deltas == final.output_text and final.usage.output_tokens == 9, (deltas, final)

# Function calling: the model calls `weather`; the call's output goes back as an input item.
tools = [{"type": "function", "name": "weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
r = client.responses.create(model="tools", input="Weather in Paris?", tools=tools, tool_choice="auto")
metered += 1
call = r.output[0]
assert call.type == "function_call" and call.name == "weather" and call.arguments == '{"city":"Paris"}', r.output
assert r.status == "completed", r

# Streamed function call: arguments arrive as deltas.
with client.responses.stream(model="tools", input="Weather in Paris?", tools=tools) as stream:
    events = list(stream)
    final = stream.get_final_response()
metered += 1
args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
assert args == '{"city":"Paris"}' and final.output[0].arguments == args, (args, final.output)

# The tool's output sent back by reference to the stored response: the gateway expands
# `previous_response_id` into the earlier turns (what the upstream got is checked by the test).
r2 = client.responses.create(model="tools", tools=tools, previous_response_id=r.id, input=[
    {"type": "function_call_output", "call_id": call.call_id, "output": "18C, clear"},
])
metered += 1
assert r2.previous_response_id == r.id and r2.id != r.id, r2

# Stored responses: retrieved as answered, their input items listed, hidden from another tenant,
# deleted; `store: false` keeps nothing.
got = client.responses.retrieve(r.id)
assert got.id == r.id and got.output[0].call_id == call.call_id, got
items = client.responses.input_items.list(r2.id, order="asc")
kinds = [i.type for i in items.data]
assert kinds == ["message", "function_call", "function_call_output"], kinds
other = openai.OpenAI(base_url=base + "/v1", api_key=other_key, max_retries=0)
for op in (lambda: other.responses.retrieve(r.id), lambda: other.responses.delete(r.id)):
    try:
        op()
        raise AssertionError("another tenant reached a stored response")
    except openai.NotFoundError:
        pass
try:
    other.responses.create(model="tools", tools=tools, previous_response_id=r.id, input="and?")
    raise AssertionError("another tenant continued a stored response")
except openai.BadRequestError as e:
    assert e.body["param"] == "previous_response_id", e.body
client.responses.delete(r.id)
try:
    client.responses.retrieve(r.id)
    raise AssertionError("a deleted response was retrieved")
except openai.NotFoundError:
    pass
unkept = client.responses.create(model="llama3-8b", input="hi", max_output_tokens=2, store=False,
                                 extra_body={"ignore_eos": True})
metered += 1
assert unkept.store is False
try:
    client.responses.retrieve(unkept.id)
    raise AssertionError("a store: false response was kept")
except openai.NotFoundError:
    pass
# A streamed response is kept too, once it ends.
with client.responses.stream(model="tools", input="Weather in Paris?", tools=tools) as stream:
    streamed = stream.get_final_response()
metered += 1
for _ in range(50):
    try:
        assert client.responses.retrieve(streamed.id).output[0].arguments == '{"city":"Paris"}'
        break
    except openai.NotFoundError:
        import time
        time.sleep(0.1)
else:
    raise AssertionError("a streamed response was not kept")

# Errors in OpenAI's shape: an unknown model (404), a built-in tool (400), both metered; an
# unknown previous response (400, refused before the request path: not metered).
try:
    client.responses.create(model="no-such-model", input="hi")
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as e:
    metered += 1
    assert e.body["code"] == "model_not_found" or "no-such-model" in str(e), e
try:
    client.responses.create(model="llama3-8b", input="hi", tools=[{"type": "web_search"}])
    raise AssertionError("a built-in tool was accepted")
except openai.BadRequestError as e:
    metered += 1
    assert e.body["param"] == "tools[0]", e.body
try:
    client.responses.create(model="llama3-8b", input="hi", previous_response_id="resp_nope")
    raise AssertionError("an unknown previous response was accepted")
except openai.BadRequestError as e:
    assert e.body["param"] == "previous_response_id", e.body

# No key: 401 in OpenAI's shape, not metered.
try:
    openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0).responses.create(model="llama3-8b", input="hi")
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError:
    pass

print(f"METERED={metered}")
