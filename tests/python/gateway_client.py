"""Exercises the tollgate gateway with the official `openai` Python client.

Run by tests/gateway_openai.rs as: gateway_client.py BASE KEY NARROW_KEY ADMIN_KEY
The gateway fronts emulated `llama3-8b` and `llama2-70b`; NARROW_KEY's tenant may use only
llama3-8b. Every check is an assert. At the end the ledger must hold exactly one row for each
proxied request that passed authentication.
"""
import json
import sys
import time
import urllib.error
import urllib.request

import openai

base, key, narrow_key, admin = sys.argv[1:5]
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=60)
metered = 0  # proxied requests that passed authentication


def admin_get(path):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {admin}"})
    return json.loads(urllib.request.urlopen(req).read())


# /v1/models lists what the key may use.
assert sorted(m.id for m in client.models.list().data) == ["llama2-70b", "llama3-8b"]
narrow = openai.OpenAI(base_url=f"{base}/v1", api_key=narrow_key, max_retries=0)
assert [m.id for m in narrow.models.list().data] == ["llama3-8b"]

# Non-streaming chat; the response names the model and backend that served it.
raw = client.chat.completions.with_raw_response.create(
    model="llama3-8b", messages=[{"role": "user", "content": "hello"}], max_tokens=7,
    extra_body={"ignore_eos": True}, extra_headers={"x-request-id": "client-chosen-id"})
metered += 1
r = raw.parse()
assert r.usage.completion_tokens == 7 and r.choices[0].finish_reason == "length"
assert raw.headers["x-tollgate-model"] == "llama3-8b"
assert raw.headers["x-tollgate-backend"].startswith("emu-small")
assert raw.headers["x-request-id"] == "client-chosen-id"
# Clients choose their ids freely: a repeated one is echoed again and still metered (the
# ledger's key is the gateway's own id).
again = client.chat.completions.with_raw_response.create(
    model="llama3-8b", messages=[{"role": "user", "content": "hello"}], max_tokens=2,
    extra_body={"ignore_eos": True}, extra_headers={"x-request-id": "client-chosen-id"})
metered += 1
assert again.headers["x-request-id"] == "client-chosen-id"

# Streaming with usage requested: a final usage chunk.
chunks = list(client.chat.completions.create(
    model="llama2-70b", messages=[{"role": "user", "content": "stream"}], max_tokens=9, stream=True,
    stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
metered += 1
assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 9
assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 9

# Streaming without: no usage chunk reaches the client (tollgate still meters it).
chunks = list(client.chat.completions.create(
    model="llama3-8b", messages=[{"role": "user", "content": "stream"}], max_tokens=5, stream=True,
    extra_body={"ignore_eos": True}))
metered += 1
assert all(c.choices for c in chunks), "usage-only chunk leaked"

# Tools and other fields pass through (the emulator ignores them; the request must succeed).
r = client.chat.completions.create(
    model="llama3-8b", messages=[{"role": "user", "content": "weather?"}], max_tokens=3,
    tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}],
    tool_choice="auto", seed=3, stop=["\n"], response_format={"type": "text"}, extra_body={"some_vendor_field": 1})
metered += 1
assert r.choices[0].message.role == "assistant"

# Completions and embeddings.
r = client.completions.create(model="llama3-8b", prompt="Once upon", max_tokens=4, extra_body={"ignore_eos": True})
metered += 1
assert r.usage.completion_tokens == 4
e = client.embeddings.create(model="llama3-8b", input=["a", "b"])
metered += 1
assert len(e.data) == 2 and len(e.data[0].embedding) == 384


def expect(exc, fn, code=None, count=True):
    global metered
    try:
        fn()
    except exc as err:
        if count:
            metered += 1
        if code is not None:
            assert (err.body or {}).get("code") == code, err.body
        return err
    raise AssertionError(f"expected {exc.__name__}")


msg = [{"role": "user", "content": "x"}]
# Authentication failures: no row (they never passed authentication).
try:
    urllib.request.urlopen(urllib.request.Request(f"{base}/v1/chat/completions", data=b'{"model": "llama3-8b"}'))
    raise AssertionError("no key accepted")
except urllib.error.HTTPError as e:
    assert e.code == 401 and json.loads(e.read())["error"]["code"] == "invalid_api_key"
bad = openai.OpenAI(base_url=f"{base}/v1", api_key="tg_000000000000_" + "x" * 43, max_retries=0)
expect(openai.AuthenticationError, lambda: bad.chat.completions.create(model="llama3-8b", messages=msg), "invalid_api_key", count=False)
# Authenticated but refused: one row each.
expect(openai.PermissionDeniedError, lambda: narrow.chat.completions.create(model="llama2-70b", messages=msg), "model_not_allowed")
expect(openai.NotFoundError, lambda: client.chat.completions.create(model="nope", messages=msg), "model_not_found")
expect(openai.BadRequestError, lambda: client.chat.completions.create(model="llama3-8b", messages=[]))
expect(openai.BadRequestError, lambda: client.chat.completions.create(model="llama3-8b", messages=msg, max_tokens=-3))
err = expect(openai.APIStatusError, lambda: client.chat.completions.create(model="llama3-8b", messages=[{"role": "user", "content": "x" * 3_000_000}]))
assert err.status_code == 413, err.status_code

def raw_post(body: bytes, k=key):
    req = urllib.request.Request(f"{base}/v1/chat/completions", data=body,
                                 headers={"Authorization": f"Bearer {k}", "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    raise AssertionError("expected an error")

for body, param in [(b"{oops", None), (b"[1]", None), (b'{"messages": []}', "model"), (b'{"model": 1}', "model"),
                    (b'{"model": "llama3-8b", "messages": "hi"}', "messages"), (b'{"model": "llama3-8b"}', "messages")]:
    status, e = raw_post(body)
    metered += 1
    assert status == 400 and e["error"]["param"] == param, (body, status, e)

# Admin endpoints refuse tenant keys.
try:
    urllib.request.urlopen(urllib.request.Request(f"{base}/v1/tollgate/usage", headers={"Authorization": f"Bearer {key}"}))
    raise AssertionError("tenant key reached the admin API")
except urllib.error.HTTPError as e:
    assert e.code == 401

# A revoked key stops working.
req = urllib.request.Request(f"{base}/v1/tollgate/keys", data=json.dumps({"tenant": "acme"}).encode(),
                             headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
made = json.loads(urllib.request.urlopen(req).read())
temp = openai.OpenAI(base_url=f"{base}/v1", api_key=made["key"], max_retries=0)
temp.chat.completions.create(model="llama3-8b", messages=msg, max_tokens=1)
metered += 1
req = urllib.request.Request(f"{base}/v1/tollgate/keys/{made['id']}", method="DELETE", headers={"Authorization": f"Bearer {admin}"})
assert json.loads(urllib.request.urlopen(req).read())["revoked"] is True
expect(openai.AuthenticationError, lambda: temp.chat.completions.create(model="llama3-8b", messages=msg), count=False)
keys = admin_get("/v1/tollgate/keys?tenant=acme")["data"]
assert all("hash" not in k and "key" not in k for k in keys), keys

# The ledger: exactly one row per metered request, usage aggregated by tenant and model.
deadline = time.time() + 10
while True:
    total = admin_get("/v1/tollgate/ledger?limit=1")["total"]
    if total >= metered or time.time() > deadline:
        break
    time.sleep(0.05)
assert total == metered, (total, metered)
usage = admin_get("/v1/tollgate/usage")["data"]
ok_70b = [u for u in usage if u["tenant"] == "acme" and u["model"] == "llama2-70b"][0]
assert ok_70b["requests"] == 1 and ok_70b["output_tokens"] == 9 and ok_70b["value_usd"] > 0, ok_70b
# No capacity is declared, so value is the price: revenue equals value, 9 output tokens at 2 USD/1M.
assert abs(ok_70b["revenue_usd"] - ok_70b["value_usd"]) < 1e-12 and ok_70b["revenue_usd"] >= 9 * 2e-6, ok_70b
print(f"gateway_client: all checks passed ({metered} metered requests)")
print(f"METERED={metered}")
