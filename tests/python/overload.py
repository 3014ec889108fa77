"""Offers a phased load to the gateway with the official `openai` client, one thread per request.

Usage: overload.py BASE PLAN_JSON
PLAN_JSON: {"keys": {tenant: key}, "model": M, "max_tokens": N, "timeout_s": {tenant: s},
            "stream": {tenant: bool}, "phases": [{"seconds": S, "rates": {tenant: per_second}}],
            "service_tier": {tenant: "flex" | "priority" | ...} (optional)}
Arrivals are evenly spaced within each phase. Prints one JSON line per request:
{"tenant", "t", "status", "decision", "quote", "retry_after", "served_model", "service_tier", "ttft", "e2e",
"error"} (`service_tier`: what the answer echoed, or the header of a refusal).
"""
import json
import sys
import threading
import time

import openai

base, plan = sys.argv[1], json.loads(sys.argv[2])
clients = {t: openai.OpenAI(base_url=f"{base}/v1", api_key=k, max_retries=0, timeout=plan["timeout_s"][t])
           for t, k in plan["keys"].items()}
lock = threading.Lock()
results = []


def one(tenant, t0):
    out = {"tenant": tenant, "t": round(t0, 3), "status": None, "decision": None, "quote": None, "retry_after": None,
           "served_model": None, "service_tier": None, "ttft": None, "e2e": None, "error": None}
    start = time.time()
    try:
        args = dict(model=plan["model"], messages=[{"role": "user", "content": f"{tenant} request at {t0:.3f}"}],
                    max_tokens=plan["max_tokens"], extra_body={"ignore_eos": True})
        if plan.get("service_tier", {}).get(tenant):
            args["service_tier"] = plan["service_tier"][tenant]
        c = clients[tenant].chat.completions
        if plan["stream"].get(tenant):
            raw = c.with_raw_response.create(stream=True, **args)
            for chunk in raw.parse():
                if out["ttft"] is None and chunk.choices and chunk.choices[0].delta.content:
                    out["ttft"] = time.time() - start
        else:
            raw = c.with_raw_response.create(**args)
            out["service_tier"] = raw.parse().service_tier
            out["ttft"] = time.time() - start
        out.update(status=200, decision=raw.headers.get("x-tollgate-decision"), served_model=raw.headers.get("x-tollgate-model"))
    except openai.APIStatusError as e:
        out.update(status=e.status_code, decision=e.response.headers.get("x-tollgate-decision"),
                   quote=e.response.headers.get("x-tollgate-quote-per-1k"),
                   retry_after=e.response.headers.get("retry-after"), error=str(e)[:200])
    except Exception as e:  # timeouts, cut connections
        out.update(status=-1, error=f"{type(e).__name__}: {e}"[:200])
    out["e2e"] = time.time() - start
    with lock:
        results.append(out)


threads = []
origin = time.time()
offset = 0.0
for phase in plan["phases"]:
    arrivals = []
    for tenant, rate in phase["rates"].items():
        n = int(round(rate * phase["seconds"]))
        arrivals += [(offset + (i + 0.5) * phase["seconds"] / n, tenant) for i in range(n)]
    for at, tenant in sorted(arrivals):
        delay = origin + at - time.time()
        if delay > 0:
            time.sleep(delay)
        th = threading.Thread(target=one, args=(tenant, at), daemon=True)
        th.start()
        threads.append(th)
    offset += phase["seconds"]
    delay = origin + offset - time.time()
    if delay > 0:
        time.sleep(delay)
for th in threads:
    th.join()
for r in sorted(results, key=lambda r: r["t"]):
    print(json.dumps(r))
