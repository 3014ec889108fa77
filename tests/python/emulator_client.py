"""Exercises `tollgate emulate` with the official `openai` Python client.

Run by tests/emulator_openai.rs as: emulator_client.py BASE_URL MODEL MAX_CONTEXT
Every check is an assert; the process exits non-zero on the first failure.
"""
import json
import sys
import urllib.error
import urllib.request

import openai

base, model, max_context = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=60)

# /v1/models lists the served model.
ids = [m.id for m in client.models.list().data]
assert ids == [model], ids

# Non-streaming chat with an exact output length.
r = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Say hello to the gateway."}],
    max_tokens=12, extra_body={"ignore_eos": True},
)
assert r.object == "chat.completion"
assert r.choices[0].message.role == "assistant"
assert r.choices[0].finish_reason == "length"
assert r.usage.completion_tokens == 12, r.usage
assert r.usage.prompt_tokens > 5, r.usage
assert r.usage.total_tokens == r.usage.prompt_tokens + 12
assert len(r.choices[0].message.content.split()) == 12

# Streaming chat with usage: role first, 20 content tokens, a finish chunk, then usage only.
stream = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Stream to me."}], max_tokens=20,
    stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True},
)
chunks = list(stream)
assert chunks[0].choices[0].delta.role == "assistant"
content = [c for c in chunks if c.choices and c.choices[0].delta.content]
assert len(content) == 20, len(content)
finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
assert finishes == ["length"], finishes
assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20, chunks[-1]
assert all(c.usage is None for c in chunks[:-1])

# Without include_usage no usage chunk is sent.
chunks = list(client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True,
))
assert all(c.usage is None for c in chunks) and chunks[-1].choices

# A natural (sampled) length stays within max_tokens; min_tokens is honoured.
r = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "free length"}], max_tokens=40,
    extra_body={"min_tokens": 30},
)
assert 30 <= r.usage.completion_tokens <= 40, r.usage

# The same seed and prompt give the same output.
a, b = (client.chat.completions.create(model=model, messages=[{"role": "user", "content": "seeded"}], seed=7,
                                       max_tokens=50).choices[0].message.content for _ in range(2))
assert a == b

# Text completions, plain and streamed.
r = client.completions.create(model=model, prompt="Once upon a time", max_tokens=5, extra_body={"ignore_eos": True})
assert r.object == "text_completion" and r.usage.completion_tokens == 5 and r.usage.prompt_tokens == 4, r.usage
text = "".join(c.choices[0].text for c in client.completions.create(
    model=model, prompt="Once", max_tokens=6, stream=True, extra_body={"ignore_eos": True}) if c.choices)
assert len(text.split()) == 6, text

# Prefix caching: a long shared system prompt is served from the cache the second time.
system = "You are a careful assistant. " * 300
for i, expect_cached in enumerate([False, True]):
    r = client.chat.completions.create(
        model=model, messages=[{"role": "system", "content": system}, {"role": "user", "content": f"q{i}"}],
        max_tokens=2,
    )
    cached = r.usage.prompt_tokens_details.cached_tokens
    assert (cached >= 1024) == expect_cached, (i, cached, r.usage)

# Embeddings: the client asks for base64 by default; float works too; equal inputs, equal vectors.
e = client.embeddings.create(model=model, input=["alpha", "beta", "alpha"])
vecs = [d.embedding for d in e.data]
assert len(vecs) == 3 and len(vecs[0]) == 384 and vecs[0] == vecs[2] and vecs[0] != vecs[1]
assert abs(sum(x * x for x in vecs[0]) - 1.0) < 1e-3
e = client.embeddings.create(model=model, input="alpha", encoding_format="float", dimensions=16)
assert len(e.data[0].embedding) == 16 and e.usage.prompt_tokens == 1

# Errors come back in OpenAI's shape with the right status.
def expect(exc, fn, param=None, code=None):
    try:
        fn()
    except exc as err:
        body = err.body or {}
        if param is not None:
            assert body.get("param") == param, body
        if code is not None:
            assert body.get("code") == code, body
        return
    raise AssertionError(f"expected {exc.__name__}")

chat = client.chat.completions.create
expect(openai.NotFoundError, lambda: chat(model="nope", messages=[{"role": "user", "content": "x"}]), "model", "model_not_found")
expect(openai.BadRequestError, lambda: chat(model=model, messages=[{"role": "user", "content": "x"}], max_tokens=10**9), "messages", "context_length_exceeded")
expect(openai.BadRequestError, lambda: chat(model=model, messages=[{"role": "user", "content": "x"}], max_tokens=-1), "max_tokens")
expect(openai.BadRequestError, lambda: chat(model=model, messages=[]), "messages")
expect(openai.BadRequestError, lambda: chat(model=model, messages=[{"role": "user", "content": "x"}], n=3), "n")
expect(openai.BadRequestError, lambda: chat(model=model, messages=[{"role": "user", "content": "word " * (max_context + 10)}]), "messages", "context_length_exceeded")
expect(openai.BadRequestError, lambda: client.embeddings.create(model=model, input="x", dimensions=0), "dimensions")
expect(openai.BadRequestError, lambda: client.completions.create(model=model, prompt=["a", "b"]), "prompt")
try:
    chat(model=model, messages=[{"role": "user", "content": "x" * (3 * 1024 * 1024)}])
    raise AssertionError("expected 413")
except openai.APIStatusError as err:
    assert err.status_code == 413 and err.body["type"] == "invalid_request_error", (err.status_code, err.body)

def raw(body: bytes, path="/v1/chat/completions"):
    req = urllib.request.Request(base + path, data=body, headers={"content-type": "application/json"})
    try:
        urllib.request.urlopen(req)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
    raise AssertionError("expected an HTTP error")

for body, param in [(b"{not json", None), (b'{"messages": []}', "model"), (b'{"model": 5, "messages": []}', "model"),
                    (b'{"model": "m", "messages": "hi"}', "messages"), (b"", None), (b"[]", None),
                    (b'{"model": "m", "messages": [{"content": "x"}]}', "messages[0].role"),
                    (b'{"model": "m", "messages": [], "max_tokens": "lots"}', "max_tokens")]:
    status, err = raw(body)
    assert status == 400, (body, status, err)
    assert set(err["error"]) == {"message", "type", "param", "code"}, err
    assert err["error"]["type"] == "invalid_request_error" and err["error"]["param"] == param, (body, err)

# Metrics use vLLM's names.
metrics = urllib.request.urlopen(base + "/metrics").read().decode()
for name in ["vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:gpu_cache_usage_perc",
             "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
             "vllm:time_to_first_token_seconds_bucket", "vllm:e2e_request_latency_seconds_bucket",
             "vllm:prefix_cache_hits_total"]:
    assert name in metrics, name
gen = [l for l in metrics.splitlines() if l.startswith("vllm:generation_tokens_total")]
assert gen and float(gen[0].split()[-1]) >= 12 + 20 + 3 + 30 + 5 + 6, gen

print("emulator_client: all checks passed")
