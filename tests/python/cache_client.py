"""The response cache through the official `openai` Python client.

Run by tests/gateway_cache.rs as: cache_client.py BASE ACME BETA GAMMA DELTA
acme and beta are on a tier with the default exact cache (deterministic requests only); gamma
and delta on a tier with the exact cache off and the semantic cache on. Prints one JSON line of
counts for the Rust side to check against the ledger and /metrics.
"""
import json
import sys

import openai

base, acme_key, beta_key, gamma_key, delta_key = sys.argv[1:6]
mk = lambda k: openai.OpenAI(base_url=f"{base}/v1", api_key=k, max_retries=0, timeout=60)
acme, beta, gamma, delta = mk(acme_key), mk(beta_key), mk(gamma_key), mk(delta_key)
counts = {"requests": 0, "exact": 0, "semantic": 0, "miss": 0}


def chat(client, content, stream=False, **kw):
    """One chat call; returns (text, finish_reason, usage, cache header)."""
    counts["requests"] += 1
    args = dict(model="llama3-8b", messages=[{"role": "user", "content": content}], max_tokens=6,
                extra_body={"ignore_eos": True})
    args.update(kw)
    if not stream:
        raw = client.chat.completions.with_raw_response.create(**args)
        r = raw.parse()
        return r.choices[0].message.content, r.choices[0].finish_reason, r.usage, raw.headers.get("x-tollgate-cache")
    raw = client.chat.completions.with_raw_response.create(stream=True, stream_options={"include_usage": True}, **args)
    text, finish, usage = "", None, None
    for c in raw.parse():
        if c.usage:
            usage = c.usage
        for ch in c.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    return text, finish, usage, raw.headers.get("x-tollgate-cache")


# A deterministic answer, then the same request streamed: replayed from the exact cache as SSE,
# the same text and finish reason, usage marked as cached.
q = "What is the capital of France?"
text, finish, usage, hdr = chat(acme, q, temperature=0)
assert hdr is None and text, (hdr, text)
counts["miss"] += 1
text2, finish2, usage2, hdr2 = chat(acme, q, stream=True, temperature=0)
assert hdr2 == "exact", hdr2
counts["exact"] += 1
assert (text2, finish2) == (text, finish), (text2, text)
assert usage2.prompt_tokens == usage.prompt_tokens and usage2.completion_tokens == usage.completion_tokens
assert usage2.prompt_tokens_details.cached_tokens == usage.prompt_tokens

# Stored from a stream, replayed whole.
s_text, s_finish, _, hdr = chat(acme, "Name a prime number.", stream=True, seed=11)
assert hdr is None
counts["miss"] += 1
w_text, w_finish, w_usage, hdr = chat(acme, "Name a prime number.", seed=11)
assert hdr == "exact" and (w_text, w_finish) == (s_text, s_finish), (hdr, w_text, s_text)
counts["exact"] += 1
assert w_usage.prompt_tokens_details.cached_tokens == w_usage.prompt_tokens

# Another tenant asking the very same thing never gets acme's answer.
for stream in (False, True):
    _, _, _, hdr = chat(beta, q, stream=stream, temperature=0)
    assert hdr in (None, "exact"), hdr
    counts["exact" if hdr else "miss"] += 1
assert counts["exact"] == 3, "beta's second request hits beta's own entry, never acme's"

# Any parameter that changes the answer changes the key; sampled requests are not cached.
_, _, _, hdr = chat(acme, q, temperature=0, max_tokens=5)
assert hdr is None
counts["miss"] += 1
for _ in range(2):
    _, _, _, hdr = chat(acme, q, temperature=0.7)
    assert hdr is None
    # Not deterministic: no lookup at all (no ledger cache mark).

# The semantic tier: no exact cache, the nearest earlier prompt within the tenant and the same
# parameters. (The emulator's embeddings are not semantic, so only the same text is near.)
p = "Tell me something about llamas."
text, _, _, hdr = chat(gamma, p, temperature=0.9)
assert hdr is None
counts["miss"] += 1
text2, _, _, hdr = chat(gamma, p, stream=True, temperature=0.9)
assert hdr and hdr.startswith("semantic; score="), hdr
assert float(hdr.split("=")[1]) > 0.999 and text2 == text
counts["semantic"] += 1
_, _, _, hdr = chat(delta, p, temperature=0.9)
assert hdr is None, "another tenant's semantic entry must never match"
counts["miss"] += 1
_, _, _, hdr = chat(gamma, p, temperature=0.5)
assert hdr is None, "other parameters: another scope"
counts["miss"] += 1

print(json.dumps(counts))
