"""Every ingress (chat, Messages, Responses) reaching Anthropic Messages and OpenAI Responses
upstreams through tollgate, with the official `openai` and `anthropic` Python clients.

Run by tests/upstream_kinds.rs as: upstream_kinds.py BASE KEY
The gateway serves `llama3-8b` from an emulator's /v1/messages (a backend of kind "anthropic"),
`gpt-r` from the emulator's /v1/responses (kind "responses"; the emulator calls a tool when offered
one, with arguments from its schema: a string property gets its own name), `claude-tools` and
`gpt-tools` from stub upstreams of those kinds that always call the tool `weather` for Paris, and
`failover` / `failover-r` from backends of different kinds, some down. Every check is an assert.
Prints METERED=n: the requests that passed authentication (each must leave one ledger row).
"""
import json
import sys

import anthropic
import openai

base, key = sys.argv[1:3]
metered = 0
oc = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=60)
ac = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0, timeout=60)
hello = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hello"}]

# Chat in, Messages upstream: whole, then streamed with usage. Without `ignore_eos` (Anthropic
# has none) the emulator may stop before the limit.
r = oc.chat.completions.create(model="llama3-8b", messages=hello, max_tokens=7)
metered += 1
assert r.choices[0].message.content, r
assert 0 < r.usage.completion_tokens <= 7 and r.usage.prompt_tokens > 0, r.usage
assert r.choices[0].finish_reason in ("stop", "length"), r.choices[0]
chunks = list(oc.chat.completions.create(model="llama3-8b", messages=hello, max_tokens=7, stream=True,
                                         stream_options={"include_usage": True}))
metered += 1
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
assert text and chunks[-1].choices == [] and 0 < chunks[-1].usage.completion_tokens <= 7, chunks[-1]
# Without usage asked for, none reaches the client (the gateway still meters it).
chunks = list(oc.chat.completions.create(model="llama3-8b", messages=hello, max_tokens=4, stream=True))
metered += 1
assert chunks and all(c.choices for c in chunks), "usage-only chunk leaked"

# Messages in, Messages upstream: whole and streamed.
m = ac.messages.create(model="llama3-8b", max_tokens=6, system="Be terse.",
                       messages=[{"role": "user", "content": "hello"}])
metered += 1
assert m.content[0].type == "text" and m.content[0].text and 0 < m.usage.output_tokens <= 6, m
with ac.messages.stream(model="llama3-8b", max_tokens=6, messages=[{"role": "user", "content": "hi"}]) as s:
    streamed = "".join(s.text_stream)
    final = s.get_final_message()
metered += 1
assert streamed and final.usage.output_tokens > 0 and final.stop_reason in ("end_turn", "max_tokens"), final

# Responses in, Messages upstream: whole and streamed.
r = oc.responses.create(model="llama3-8b", input="hello", max_output_tokens=5, store=False)
metered += 1
assert r.output_text and 0 < r.usage.output_tokens <= 5, r
events = list(oc.responses.create(model="llama3-8b", input="hello", max_output_tokens=5, stream=True, store=False))
metered += 1
assert events[0].type == "response.created" and events[-1].type in ("response.completed", "response.incomplete")

# Tools through the stub Anthropic upstream: a call whole and streamed, then its result sent back.
tools = [{"type": "function", "function": {"name": "weather", "description": "Weather now",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
ask = [{"role": "user", "content": "Weather in Paris?"}]
r = oc.chat.completions.create(model="claude-tools", messages=ask, tools=tools, tool_choice="required",
                               parallel_tool_calls=False)
metered += 1
call = r.choices[0].message.tool_calls[0]
assert r.choices[0].finish_reason == "tool_calls" and call.function.name == "weather", r
assert json.loads(call.function.arguments) == {"city": "Paris"}, call
# Cache reads are counted apart: Anthropic's input plus cache reads and writes make the prompt.
assert r.usage.prompt_tokens == 13 + 4 + 2 and r.usage.prompt_tokens_details.cached_tokens == 4, r.usage
chunks = list(oc.chat.completions.create(model="claude-tools", messages=ask, tools=tools, stream=True,
                                         stream_options={"include_usage": True}))
metered += 1
args = "".join(c.choices[0].delta.tool_calls[0].function.arguments or ""
               for c in chunks if c.choices and c.choices[0].delta.tool_calls)
assert json.loads(args) == {"city": "Paris"}, args
assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
back = ask + [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
              {"role": "tool", "tool_call_id": call.id, "content": "18C, clear"}]
oc.chat.completions.create(model="claude-tools", messages=back, tools=tools)
metered += 1
# The Anthropic SDK's tool use reaches the same upstream.
# Its prompt-caching marks reach the Anthropic upstream where the client put them.
m = ac.messages.create(model="claude-tools", max_tokens=50, messages=[{"role": "user", "content": "Weather?"}],
                       system=[{"type": "text", "text": "A long manual.", "cache_control": {"type": "ephemeral"}}],
                       tools=[{"name": "weather", "input_schema": {"type": "object"}}])
metered += 1
assert m.stop_reason == "tool_use" and m.content[-1].type == "tool_use" and m.content[-1].input == {"city": "Paris"}, m

# What an Anthropic upstream cannot carry is refused in the client's API's shape.
try:
    oc.chat.completions.create(model="claude-tools", messages=ask, n=2)
    raise AssertionError("n=2 was served")
except openai.BadRequestError as e:
    assert "n above 1" in str(e), e
metered += 1

# Every ingress to a Responses upstream (the emulator's /v1/responses): chat whole and streamed.
r = oc.chat.completions.create(model="gpt-r", messages=hello, max_tokens=7)
metered += 1
assert r.choices[0].message.content and 0 < r.usage.completion_tokens <= 7 and r.usage.prompt_tokens > 0, r
chunks = list(oc.chat.completions.create(model="gpt-r", messages=hello, max_tokens=7, stream=True,
                                         stream_options={"include_usage": True}))
metered += 1
assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks
assert chunks[-1].choices == [] and 0 < chunks[-1].usage.completion_tokens <= 7, chunks[-1]
# Messages whole and streamed.
m = ac.messages.create(model="gpt-r", max_tokens=6, system="Be terse.", messages=[{"role": "user", "content": "hi"}])
metered += 1
assert m.content[0].type == "text" and m.content[0].text and 0 < m.usage.output_tokens <= 6, m
with ac.messages.stream(model="gpt-r", max_tokens=6, messages=[{"role": "user", "content": "hi"}]) as s:
    streamed = "".join(s.text_stream)
    final = s.get_final_message()
metered += 1
assert streamed and final.usage.output_tokens > 0, final
# Responses whole and streamed.
r = oc.responses.create(model="gpt-r", input="hello", max_output_tokens=5, store=False)
metered += 1
assert r.output_text and 0 < r.usage.output_tokens <= 5, r
# (The SDK's `get_final_response` wants `response.completed`; a length stop ends `incomplete`.)
with oc.responses.stream(model="gpt-r", input="hello", max_output_tokens=5, store=False) as s:
    events = list(s)
metered += 1
streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
final = events[-1].response
assert events[-1].type in ("response.completed", "response.incomplete"), events[-1]
assert streamed and final.output_text == streamed and final.usage.output_tokens > 0, final

# A function-calling round trip with the Responses client through the Responses upstream: the
# emulator calls the tool, the call's output goes back by `previous_response_id` (the gateway's
# stored conversation; nothing is stored upstream), and the answer is text.
tools_r = [{"type": "function", "name": "weather", "description": "Weather now",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
r = oc.responses.create(model="gpt-r", input="Weather in Paris?", tools=tools_r)
metered += 1
call = next(o for o in r.output if o.type == "function_call")
assert call.name == "weather" and json.loads(call.arguments) == {"city": "city"}, r.output
r2 = oc.responses.create(model="gpt-r", previous_response_id=r.id, tools=tools_r, max_output_tokens=8,
                         input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C"}])
metered += 1
assert r2.output_text and not [o for o in r2.output if o.type == "function_call"], r2.output
with oc.responses.stream(model="gpt-r", input="Weather?", tools=tools_r, tool_choice="required") as s:
    args = "".join(e.delta for e in s if e.type == "response.function_call_arguments.delta")
    final = s.get_final_response()
metered += 1
assert json.loads(args) == {"city": "city"} and final.output[0].type == "function_call", final
# The Anthropic client's tool use through the same Responses upstream, whole and streamed.
wtool = [{"name": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
m = ac.messages.create(model="gpt-r", max_tokens=50, messages=[{"role": "user", "content": "Weather?"}], tools=wtool)
metered += 1
assert m.stop_reason == "tool_use" and m.content[-1].input == {"city": "city"}, m
with ac.messages.stream(model="gpt-r", max_tokens=50, messages=[{"role": "user", "content": "Weather?"}],
                        tools=wtool) as s:
    final = s.get_final_message()
metered += 1
assert final.stop_reason == "tool_use" and final.content[-1].input == {"city": "city"}, final
# And through the emulator's Messages API (kind "anthropic"): the Responses client's tool call.
r = oc.responses.create(model="llama3-8b", input="Weather?", tools=tools_r, store=False)
metered += 1
assert json.loads(next(o for o in r.output if o.type == "function_call").arguments) == {"city": "city"}, r.output

# The stub Responses upstream: its call read back as chat, whole and streamed; cached input apart;
# then the tool's result sent back.
ask = [{"role": "user", "content": "Weather in Paris?"}]
r = oc.chat.completions.create(model="gpt-tools", messages=ask, tools=tools, tool_choice="required")
metered += 1
call = r.choices[0].message.tool_calls[0]
assert r.choices[0].finish_reason == "tool_calls" and json.loads(call.function.arguments) == {"city": "Paris"}, r
assert r.usage.prompt_tokens == 21 and r.usage.prompt_tokens_details.cached_tokens == 16, r.usage
chunks = list(oc.chat.completions.create(model="gpt-tools", messages=ask, tools=tools, stream=True,
                                         stream_options={"include_usage": True}))
metered += 1
args = "".join(c.choices[0].delta.tool_calls[0].function.arguments or ""
               for c in chunks if c.choices and c.choices[0].delta.tool_calls)
assert json.loads(args) == {"city": "Paris"}, args
back = ask + [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
              {"role": "tool", "tool_call_id": call.id, "content": "18C, clear"}]
oc.chat.completions.create(model="gpt-tools", messages=back, tools=tools)
metered += 1
# Stop sequences have no place in the Responses API: refused, in the chat API's shape.
try:
    oc.chat.completions.create(model="gpt-r", messages=hello, stop=["END"])
    raise AssertionError("stop was served")
except openai.BadRequestError as e:
    assert "stop sequences" in str(e), e
metered += 1

# A model with backends of both kinds, one down: every request is served by the other.
for i in range(4):
    r = oc.chat.completions.create(model="failover", messages=hello, max_tokens=3, stream=i % 2 == 1)
    if i % 2 == 1:
        assert "".join(c.choices[0].delta.content or "" for c in r if c.choices)
    else:
        assert r.choices[0].message.content
    metered += 1
for i in range(2):
    r = oc.responses.create(model="failover-r", input="hello", max_output_tokens=3, store=False)
    assert r.output_text, r
    metered += 1

print(f"METERED={metered}")
