#!/usr/bin/env python3
"""The cost of sharing state: the same gateway (admission on a managed pool, a tenant with a
budget and token and request limits, so every request runs the admission, reservation, release
and settlement paths) with its state in process and SQLite (A), through Redis with SQLite (B),
and through Redis with the ledger in PostgreSQL and durable acknowledgements (C), in front of
the zero-delay emulator, measured side by side with oha in rotated rounds (bench/harness.py's
helpers). Prints a Markdown table; `bench/state.sh` starts it."""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def start_redis(work):
    port = harness.free_port()
    p = harness.start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no"], open(f"{work}/redis.log", "w"))
    deadline = time.time() + 30
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode != 0:
        if time.time() > deadline:
            raise SystemExit("redis-server did not start")
        time.sleep(0.1)
    return p, f"redis://127.0.0.1:{port}"


def as_postgres(args):
    return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + args


def start_postgres(work):
    bins = sorted(d for d in os.listdir("/usr/lib/postgresql") if os.path.exists(f"/usr/lib/postgresql/{d}/bin/initdb"))
    b = f"/usr/lib/postgresql/{bins[-1]}/bin"
    port = harness.free_port()
    pg = f"{work}/pg"
    os.makedirs(pg)
    if os.geteuid() == 0:
        shutil.chown(pg, "postgres", "postgres")
    subprocess.run(as_postgres([f"{b}/initdb", "-D", f"{pg}/data", "-A", "trust", "-U", "postgres", "--no-sync"]),
                   check=True, capture_output=True)
    subprocess.run(as_postgres([f"{b}/pg_ctl", "-D", f"{pg}/data", "-l", f"{pg}/log", "-w", "-o",
                                f"-p {port} -k {pg} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    return (lambda: subprocess.run(as_postgres([f"{b}/pg_ctl", "-D", f"{pg}/data", "-m", "fast", "stop"]),
                                   capture_output=True)), f"postgres://postgres@127.0.0.1:{port}/postgres"


def start_gateway(tollgate, name, upstream, work, head):
    port = harness.free_port()
    path = f"{work}/{name}.toml"
    with open(path, "w") as f:
        f.write(f"""listen = "127.0.0.1:{port}"
data_dir = "{work}/{name}-data"
{head}
[[backends]]
name = "emu"
url = "{upstream.url}"
[[models]]
name = "m"
backends = ["emu"]
capacity = {{ profile = "llama3-8b-h100-tp1", replicas = 4096 }}
[[tiers]]
name = "standard"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
[[tenants]]
name = "bench"
tier = "standard"
monthly_budget_usd = 1000000.0
tokens_per_minute = 1000000000
requests_per_minute = 100000000
""")
    key = subprocess.run([tollgate, "keys", "create", "--tenant", "bench", "--config", path],
                         check=True, capture_output=True, text=True).stdout.strip()
    env = dict(os.environ, TOLLGATE_LOG="warn")
    p = harness.start([tollgate, "serve", "--config", path], open(f"{work}/{name}.log", "w"), env=env)
    url = f"http://127.0.0.1:{port}"
    harness.wait_http(url + "/health")
    return harness.Target(name, url, key, p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tollgate", required=True)
    ap.add_argument("--oha", required=True)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tollgate-state-bench-")
    os.chmod(work, 0o755)  # PostgreSQL runs as its own user under it
    procs, stop_pg = [], None
    try:
        upstream = harness.start_upstream(a.tollgate, work)
        procs.append(upstream.proc)
        redis_proc, redis_url = start_redis(work)
        procs.append(redis_proc)
        stop_pg, pg_url = start_postgres(work)
        targets = [
            start_gateway(a.tollgate, "memory+sqlite", upstream, work, ""),
            start_gateway(a.tollgate, "redis+sqlite", upstream, work, f'state = "{redis_url}"'),
            start_gateway(a.tollgate, "redis+postgres", upstream, work, f'state = "{redis_url}"\nledger = "{pg_url}"'),
        ]
        procs += [t.proc for t in targets]
        for t in targets:  # warm-up
            harness.oha(a.oha, t, False, 1, 8, None)
        results = {(t.name, c): [] for t in targets for c in (1, 32)}
        for rnd in range(a.rounds):
            order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
            for conc in (1, 32):
                for t in order:
                    results[(t.name, conc)].append(harness.oha(a.oha, t, False, a.seconds, conc, None))
        print(f"State paths side by side ({a.rounds} rounds x {a.seconds:g} s per load, targets rotated; "
              "zero-delay emulator; medians over rounds)\n")
        print("| state + ledger | c=1 p50 us | c=1 p99 us | added p50 vs in-process us | c=32 req/s | c=32 p99 us | errors |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        base = statistics.median(r["p50_us"] for r in results[("memory+sqlite", 1)])
        for t in targets:
            one, many = results[(t.name, 1)], results[(t.name, 32)]
            p50 = statistics.median(r["p50_us"] for r in one)
            print(f"| {t.name} | {p50:.0f} | {statistics.median(r['p99_us'] for r in one):.0f} | "
                  f"{p50 - base:+.0f} | {statistics.median(r['rps'] for r in many):.0f} | "
                  f"{statistics.median(r['p99_us'] for r in many):.0f} | "
                  f"{sum(r['errors'] for r in one + many)} |")
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, 15)
            except ProcessLookupError:
                pass
        if stop_pg:
            stop_pg()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
