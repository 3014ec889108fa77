"""The gateway's added latency with the semantic cache on (bench/harness.py --semantic-model-dir).

Two tollgate gateways in front of the same zero-delay upstream, identical but for the tier's
`semantic_cache = true` (with the in-process MiniLM) on one. Distinct prompts, each a random
draw of words, are sent one at a time (concurrency 1, keep-alive), alternating between the two,
so every request to the semantic gateway is a lookup that misses (embed, search, store) and
then goes upstream. A lookup that hits is counted and left out of the latencies.
"""
import http.client
import json
import random
import sys
import time

WORDS = ("river market engine garden winter theory signal planet copper violin harbor castle "
         "lantern orbit meadow canyon ledger tensor cobalt falcon prairie quartz beacon summit "
         "glacier saddle thunder marble pepper velvet compass mirror anchor cactus island "
         "forest bridge candle rocket shadow silver timber valley wander yellow zephyr").split()


def prompts(n, seed=7):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) + "?" for _ in range(n)]


def one(conn, key, text):
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 8})
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body,
                 {"authorization": "Bearer " + key, "content-type": "application/json"})
    r = conn.getresponse()
    r.read()
    took = (time.perf_counter() - start) * 1e6
    if r.status != 200:
        raise SystemExit(f"semantic-cache latency run: status {r.status}")
    return took, (r.getheader("x-tollgate-cache") or "").startswith("semantic")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def measure(plain, semantic, n=400):
    """Latencies (microseconds) through `plain` and `semantic` (harness Targets), one at a time."""
    conns = {t.name: http.client.HTTPConnection(t.url.removeprefix("http://"), timeout=30) for t in (plain, semantic)}
    lat = {plain.name: [], semantic.name: []}
    hits = 0
    texts = prompts(n + 20)
    for i, text in enumerate(texts):
        for t in ((plain, semantic) if i % 2 else (semantic, plain)):
            took, hit = one(conns[t.name], t.key, text)
            if i < 20:
                continue  # warm-up: connections, the model's first batches
            if hit:
                hits += 1
            else:
                lat[t.name].append(took)
    out = {"requests": n, "semantic_hits": hits}
    for name, key in ((plain.name, "plain"), (semantic.name, "semantic")):
        out[key] = {"p50_us": pct(lat[name], 50), "p99_us": pct(lat[name], 99), "n": len(lat[name])}
    out["added_p50_us"] = out["semantic"]["p50_us"] - out["plain"]["p50_us"]
    out["added_p99_us"] = out["semantic"]["p99_us"] - out["plain"]["p99_us"]
    return out


def run(start_tollgate, tollgate, up, work, model_dir, targets):
    """Starts the two gateways (added to `targets`, which the harness stops) and measures."""
    plain = start_tollgate(tollgate, up, work, "tollgate-plain")
    cached = start_tollgate(tollgate, up, work, "tollgate-semantic", tier_extra="semantic_cache = true\n",
                            tail=f'[cache.semantic]\nmodel_dir = "{model_dir}"\n')
    targets.extend([plain, cached])
    out = measure(plain, cached)
    print(f"[semantic cache] {out}", file=sys.stderr, flush=True)
    return out
