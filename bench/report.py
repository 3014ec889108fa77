#!/usr/bin/env python3
"""Writes docs/benchmarks.md from the harness's JSON and criterion's estimates."""
import argparse
import json
import os
import platform
import statistics
import subprocess
from collections import defaultdict

TARGETS = ["direct", "nginx", "pingora", "axum+reqwest", "tollgate", "litellm"]
LOADS = ["c1", "c8", "c64", "50 rps", "1000 rps"]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def us(x):
    return "n/a" if x != x else f"{x:,.0f}"


# A run in which more than this share of requests failed measures refusals, not the target:
# its latency and throughput are left out of the figures (its errors are still counted) and the
# report lists it.
FAILED_RUN = 0.001


def failed(r):
    return r["errors"] > FAILED_RUN * (r["ok"] + r["errors"])


def aggregate(runs):
    """Per (stream, load, target): medians over rounds, and added latency against direct in the
    same round (then the median of those differences); runs that mostly measured failures left
    out of both."""
    by = defaultdict(list)
    errors = defaultdict(list)
    for r in runs:
        errors[(r["stream"], r["load"], r["target"])].append(r)
        if not failed(r):
            by[(r["stream"], r["load"], r["target"])].append(r)
    out = {}
    # Every (stream, load, target) measured; where every round failed, its figures are unknown
    # (medians of nothing are NaN, shown as n/a).
    for (stream, load, target) in errors:
        rs = by.get((stream, load, target), [])
        direct = {r["round"]: r for r in by.get((stream, load, "direct"), [])}
        added = {q: [r[q] - direct[r["round"]][q] for r in rs if r["round"] in direct]
                 for q in ("p50_us", "p99_us", "p999_us")}
        out[(stream, load, target)] = {
            "rps": med([r["rps"] for r in rs]),
            "p50_us": med([r["p50_us"] for r in rs]),
            "p99_us": med([r["p99_us"] for r in rs]),
            "p999_us": med([r["p999_us"] for r in rs]),
            "added": {q: med(v) for q, v in added.items()},
            "errors": sum(r["errors"] for r in errors[(stream, load, target)]),
            "error_kinds": sorted({k for r in errors[(stream, load, target)] for k in r["error_kinds"]}),
            "ok": sum(r["ok"] for r in rs),
            "cpu_s": sum(r["cpu_s"] for r in rs),
        }
    return out


def latency_table(agg, stream, targets):
    lines = ["| load | target | req/s | p50 us | p99 us | p99.9 us | added p50 | added p99 | added p99.9 | errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for load in LOADS:
        for t in targets:
            a = agg.get((stream, load, t))
            if not a:
                continue
            add = a["added"] if t != "direct" else {"p50_us": float("nan"), "p99_us": float("nan"), "p999_us": float("nan")}
            lines.append(f"| {load} | {t} | {us(a['rps'])} | {us(a['p50_us'])} | {us(a['p99_us'])} | {us(a['p999_us'])} | "
                         f"{us(add['p50_us'])} | {us(add['p99_us'])} | {us(add['p999_us'])} | {a['errors']} |")
    return "\n".join(lines)


def summary_table(agg, peaks, targets):
    lines = ["| target | saturation req/s (whole) | saturation req/s (stream) | CPU s per 1,000 req (c64, whole) | "
             "CPU s per 1,000 req (c64, stream) | peak RSS MiB |",
             "|---|---:|---:|---:|---:|---:|"]
    for t in targets:
        sat = [max((agg[(s, l, t)]["rps"] for l in ("c1", "c8", "c64") if (s, l, t) in agg), default=0) for s in (False, True)]
        cpu = []
        for s in (False, True):
            a = agg.get((s, "c64", t))
            cpu.append(f"{1000 * a['cpu_s'] / a['ok']:.3f}" if a and a["ok"] else "n/a")
        lines.append(f"| {t} | {sat[0]:,.0f} | {sat[1]:,.0f} | {cpu[0]} | {cpu[1]} | {peaks.get(t, 0):.0f} |")
    return "\n".join(lines), sat


def criterion_table(root):
    rows = []
    if not os.path.isdir(root):
        return "(criterion results not found)"
    for dirpath, _, files in sorted(os.walk(root)):
        if dirpath.endswith(os.path.join("new")) and "estimates.json" in files and "benchmark.json" in files:
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                name = json.load(f)["full_id"]
            with open(os.path.join(dirpath, "estimates.json")) as f:
                e = json.load(f)
            rows.append((name, e["median"]["point_estimate"], e["median"]["confidence_interval"]))
    if not rows:
        return "(criterion results not found)"

    def fmt(ns):
        return f"{ns / 1e6:.2f} ms" if ns >= 1e6 else f"{ns / 1e3:.2f} us" if ns >= 1e3 else f"{ns:.0f} ns"

    lines = ["| benchmark | median | 95% interval |", "|---|---:|---:|"]
    for name, m, ci in rows:
        lines.append(f"| {name} | {fmt(m)} | {fmt(ci['lower_bound'])} to {fmt(ci['upper_bound'])} |")
    return "\n".join(lines)


def checks(agg, targets):
    out = []
    g = agg.get((False, "c1", "tollgate"))
    if g:
        p99 = g["added"]["p99_us"]
        out.append(f"- p99 added latency at concurrency 1 (non-streaming): {us(p99)} us; target at most 100 us: "
                   f"**{'met' if p99 <= 100 else 'missed'}**.")
    sat = {t: max((agg[(False, l, t)]["rps"] for l in ("c1", "c8", "c64") if (False, l, t) in agg), default=0)
           for t in targets}
    if sat.get("direct"):
        share = sat["tollgate"] / sat["direct"]
        out.append(f"- throughput through tollgate: {share:.0%} of direct; target at least 50%: "
                   f"**{'met' if share >= 0.5 else 'missed'}**.")
    if sat.get("litellm"):
        x = sat["tollgate"] / sat["litellm"]
        out.append(f"- throughput through tollgate: {x:,.1f} times LiteLLM's proxy; target at least 100 times: "
                   f"**{'met' if x >= 100 else 'missed'}**.")
    below = [l for l in LOADS if l != "c64"]
    for q, label in (("p50_us", "p50"), ("p99_us", "p99")):
        parts, ratios = [], []
        for load in below:
            g, n = agg.get((False, load, "tollgate")), agg.get((False, load, "nginx"))
            if not (g and n):
                continue
            gv, nv = g["added"][q], n["added"][q]
            if nv > 0:
                ratios.append((gv / nv, load))
                parts.append(f"{load}: {gv:,.0f} vs {nv:,.0f} us ({gv / nv:.1f}x)")
            else:
                parts.append(f"{load}: {gv:,.0f} vs {nv:,.0f} us (nginx's within noise; no ratio)")
        if ratios:
            r, load = max(ratios)
            out.append(f"- added {label} latency, tollgate vs nginx, non-streaming, below saturation ("
                       + "; ".join(parts) + f"): worst {r:.1f}x at {load}; target within 1.5 times: "
                       f"**{'met' if r <= 1.5 else 'missed'}**.")
    errs = [(s, l) for (s, l, t), a in agg.items() if t == "tollgate" and a["errors"]]
    out.append("- request errors through tollgate: " + ("none at any load." if not errs else
               "at " + ", ".join(f"{l} ({'stream' if s else 'whole'})" for s, l in errs) + "."))
    return "\n".join(out)


def against_nginx(agg):
    """The data plane's targets (issue 22), each a ratio of two figures from the same run."""
    def sat(t, stream):
        return max((agg[(stream, l, t)]["rps"] for l in ("c1", "c8", "c64") if (stream, l, t) in agg), default=0)

    def cpu(t, stream):
        a = agg.get((stream, "c64", t))
        return 1000 * a["cpu_s"] / a["ok"] if a and a["ok"] else float("nan")

    def added(load, q="p99_us"):
        g, n = agg.get((False, load, "tollgate")), agg.get((False, load, "nginx"))
        return (g["added"][q], n["added"][q]) if g and n else (float("nan"), float("nan"))

    out = []
    if not (sat("nginx", True) and sat("tollgate", True)):
        return "- (nginx or tollgate was not measured)"
    for stream, label, want in ((True, "streamed", 0.7), (False, "whole", 0.8)):
        r = sat("tollgate", stream) / sat("nginx", stream)
        out.append(f"- {label} saturation: {sat('tollgate', stream):,.0f} vs nginx's {sat('nginx', stream):,.0f} req/s, "
                   f"{r:.0%}; target at least {want:.0%}: **{'met' if r >= want else 'missed'}**.")
    c, n = cpu("tollgate", True), cpu("nginx", True)
    out.append(f"- CPU per 1,000 streamed requests (c64): {c:.3f} vs nginx's {n:.3f} s, {c / n:.1f}x; target at most "
               f"2x: **{'met' if c <= 2 * n else 'missed'}**.")
    g, n = added("c1")
    ok = g <= 1.5 * n or g <= 150
    out.append(f"- added p99 at concurrency 1 (whole): {us(g)} vs nginx's {us(n)} us; target at most 1.5x nginx's or "
               f"150 us: **{'met' if ok else 'missed'}**.")
    g, n = added("1000 rps")
    if n > 0:
        verdict = f"**{'met' if g <= 2 * n else 'missed'}**"
    else:
        verdict = "no verdict: nginx's added p99 is within the noise of direct's in this run, so no ratio"
    out.append(f"- added p99 at 1,000 requests/s (whole): {us(g)} vs nginx's {us(n)} us; target at most 2x: "
               f"{verdict}.")
    return "\n".join(out)


def deaths(ds, runs):
    bad = [r for r in runs if failed(r)]
    out = []
    if not ds:
        out.append("None: every target answered every run.")
    else:
        out.append("These runs are left out of every figure (the target was started again after each):\n\n" +
                   "\n".join(f"- {d['target']} exited with {d['exit']} during {'stream' if d['stream'] else 'whole'} "
                              f"{d['load']}, round {d['round']}" for d in ds))
    if bad:
        out.append(f"Runs in which more than {FAILED_RUN:.1%} of requests failed measure the failures, not the "
                   "target: they are left out of the latency, throughput and CPU figures (their errors are still "
                   "counted):\n\n" +
                   "\n".join(f"- {r['target']}, {'stream' if r['stream'] else 'whole'} {r['load']}, round {r['round']}: "
                              f"{r['errors']:,} failed of {r['ok'] + r['errors']:,} "
                              f"({', '.join(f'{k}: {v:,}' for k, v in r['error_kinds'].items())})" for r in bad))
    return "\n\n".join(out)


def semantic_cache(r):
    if not r:
        return "Not run (`bench/harness.py --semantic-model-dir`)."
    return (f"Two tollgate gateways in front of the same upstream, one with `semantic_cache = true` (the "
            f"in-process all-MiniLM-L6-v2), {r['requests']} distinct prompts sent one at a time to each in turn "
            f"(`bench/semantic.py`); every lookup misses, so the semantic gateway embeds, searches and stores "
            f"each prompt, then forwards it ({r['semantic_hits']} lookups hit and are left out).\n\n"
            f"| | p50 us | p99 us |\n|---|---:|---:|\n"
            f"| without the semantic cache | {us(r['plain']['p50_us'])} | {us(r['plain']['p99_us'])} |\n"
            f"| with it (a lookup that misses) | {us(r['semantic']['p50_us'])} | {us(r['semantic']['p99_us'])} |\n"
            f"| added | {us(r['added_p50_us'])} | {us(r['added_p99_us'])} |")


def open_streams(held):
    if not held:
        return "Not run (`bench/harness.py --open-streams`)."
    r = held["tollgate"]
    kinds = ", ".join(f"{k}: {v}" for k, v in r["error_kinds"].items()) or "none"
    rows = "".join(
        f"| {name} | {x['streams']:,} | {x['open_at_once']:,} | {x['seconds_to_open']:.1f} | {x['whole']:,} | "
        f"{x['errors']:,} | {x['rss_before_kib'] / 1024:.0f} | {x['rss_open_kib'] / 1024:.0f} | "
        f"{x['kib_per_open_stream']:.1f} | {x['cpu_cores_while_open']:.2f} |\n"
        for name, x in held.items())
    return (f"{r['streams']:,} streaming chat completions held open at once through each proxy in turn (tollgate "
            f"with ledger, metrics and admission on; one connection each, `examples/open_streams.rs`, "
            f"`bench/streams.py`) against an upstream that sends one "
            f"event every {r['gap_ms']:,} ms ({r['tokens']} tokens each, so every stream stays open about "
            f"{r['tokens'] * r['gap_ms'] / 1000:.0f} s), opened at 500 a second. Memory and CPU are the proxy's "
            f"processes' (nginx's master and workers summed)."
            + (f" The machine's open-file limit ({r['fd_limit']:,}, which could not be raised) allows a proxy "
               f"{(r['fd_limit'] - 200) // 2:,} open streams at two descriptors each, so {r['streams']:,} were "
               f"opened, not the {r['streams_asked']:,} asked for." if r.get('streams_asked', r['streams']) > r['streams'] else "")
            + "\n\n"
            f"| proxy | streams | open at once | seconds to open all | ended whole | errors | RSS before MiB | "
            f"RSS while open MiB | KiB per open stream | CPU while open (cores) |\n"
            f"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n{rows}"
            f"\nErrors through tollgate by kind: {kinds}. Warnings and errors in the gateway's "
            f"log: {r.get('gateway_warnings', 'n/a')}. Target: no error, at most 20 KiB per open "
            f"stream: **{'met' if r['errors'] == 0 and r['kib_per_open_stream'] <= 20 else 'missed'}**.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--criterion", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--versions", default="")
    a = ap.parse_args()
    with open(a.results) as f:
        res = json.load(f)
    agg = aggregate(res["runs"])
    targets = [t for t in TARGETS if any(k[2] == t for k in agg)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    summ, _ = summary_table(agg, res["peak_rss_mib"], targets)
    doc = f"""# Benchmarks

Generated by `bench/run.sh` (do not edit by hand). Commit `{commit}`, {res.get('date', '')}, on
{os.cpu_count()} cores ({cpu}), Linux {platform.release()}. {a.versions}

## Method

- **Upstream**: tollgate's own emulator with `--time-scale 1000000`, so the modelled engine time is
  negligible and what remains is HTTP, JSON and its scheduler: a fast OpenAI-compatible server.
  Every request is a chat completion of a short prompt with `max_tokens` 16 (`ignore_eos`), whole or
  streamed (16 content chunks, a usage chunk, `[DONE]`).
- **Targets**, all on loopback, measured in one run: *direct* to the upstream; *nginx* as a plain
  reverse proxy (keep-alive to the upstream, buffering off, `worker_processes auto`, no access
  log); *tollgate* with authentication (a hashed API key), admission (the model is a managed pool:
  every request is priced, reserved and released) and metering (one SQLite ledger row per
  request) all on; *LiteLLM*'s proxy (one worker, a master key, `LITELLM_LOCAL_MODEL_COST_MAP=True`);
  and *axum+reqwest* (`examples/bare_proxy.rs`): the same HTTP server stack as tollgate relaying
  bodies through reqwest with nothing else, the floor of a Rust proxy built this way, so that
  tollgate's own work (auth, JSON, admission, metering) can be told from its HTTP stack's; and
  *pingora* (`bench/pingora-floor`, built apart from tollgate): a plain reverse proxy on
  Cloudflare's Pingora with two threads, the floor of a data plane built on it, to choose the HTTP
  layer on measurements.
- **Load**: [oha](https://github.com/hatoo/oha) at fixed concurrency 1, 8 and 64 (closed loop) and
  at fixed rates of 50 and 1,000 requests/s (open loop, `--latency-correction` so a slow target is
  charged for the requests it delayed). Each (load, target) runs {res['seconds']} s, in
  {res['rounds']} rounds; in each round the targets take turns in a rotated order, so all see the
  same machine conditions. Latency is the client's, request sent to response read in full.
- **Figures**: the median over rounds of each round's percentile. *Added* latency is the target's
  percentile minus direct's in the same round (the median of those differences). CPU is the
  target process's own (user + system, its children included; not the upstream's, not oha's)
  over the concurrency-64 runs, per 1,000 successful requests. Peak RSS is the process's VmHWM.
- While one target is measured, the other proxies are stopped (SIGSTOP), and after its run it is
  let settle (a slow proxy goes on working on requests its client gave up on).
- The load generator, the upstream and the target share the machine's {os.cpu_count()} cores, so
  saturation throughput is what the whole chain reaches, and a target's own CPU cost shows up as
  throughput lost relative to direct.

## Against nginx (the data plane's targets)

{against_nginx(agg)}

## Earlier targets

{checks(agg, targets)}

## Targets that died and runs left out

{deaths(res.get("deaths", []), res["runs"])}

## Many open streams

{open_streams(res.get("open_streams"))}

## Semantic cache: added latency

{semantic_cache(res.get("semantic_cache"))}

## Throughput, CPU and memory

{summ}

## Latency, non-streaming (microseconds)

{latency_table(agg, False, targets)}

## Latency, streaming (microseconds, to the last byte)

{latency_table(agg, True, targets)}

## Where tollgate's time goes

`bench/profile.sh` runs the gateway under oha at concurrency 64 with `perf record` (software
cpu-clock, DWARF call graphs) and writes flat and inclusive reports to `target/profile/`. Compare
tollgate's CPU per request above with *axum+reqwest*'s: the difference is tollgate's own work
(authentication, JSON parsing and validation, token counting, admission, metering and the SQLite
ledger); the rest is the HTTP stack and the kernel's loopback TCP, which nginx does with less.
Fixes the profile led to are listed in the commit log (search for "Hot path").

## Micro-benchmarks (criterion, `cargo bench --bench micro`)

{criterion_table(a.criterion)}
"""
    with open(a.out, "w") as f:
        f.write(doc)


if __name__ == "__main__":
    main()
