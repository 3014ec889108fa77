#!/usr/bin/env python3
"""Side-by-side HTTP benchmark: direct to a zero-delay upstream, through nginx, through tollgate
and through LiteLLM's proxy, measured from the client with oha, interleaved in rounds.

Started by bench/run.sh (which builds and installs what this needs); writes a JSON of every run.
Every process is on loopback; every load is bounded in time.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import semantic
import streams

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=60, headers=None):
    """Waits until `url` answers (any status below 500; 405 for a POST-only route counts)."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status < 500:
                    return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
            time.sleep(0.2)
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


def tree(pid):
    """The pid and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid):
    """User + system CPU seconds of a process tree."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICK


def peak_rss_mib(pid):
    """Peak resident set (VmHWM) summed over a process tree, MiB."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Target:
    """A URL under load. `path` and `body` say what is sent (chat by default); targets that
    share a process (`proc`) are one gateway reached through different APIs."""

    def __init__(self, name, url, key, proc, path="/v1/chat/completions", body=None):
        self.name, self.url, self.key, self.proc = name, url, key, proc
        self.path, self.body = path, body or chat_body


def stop(proc):
    """Stops a started process group (stopped ones woken first): asked, then killed after 10 s
    (Pingora's SIGTERM is a graceful shutdown that waits for its grace period)."""
    try:
        os.killpg(proc.pid, signal.SIGCONT)
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def start(cmd, log, env=None, **kw):
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, **kw)


def start_upstream(tollgate, work):
    port = free_port()
    log = open(f"{work}/upstream.log", "w")
    # Time scale 1e6: the modelled engine time is negligible; what is left is HTTP, JSON and the
    # engine's scheduling, the floor any target pays.
    p = start([tollgate, "emulate", "--port", str(port), "--time-scale", "1000000", "--model-name", "m"], log)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/v1/models")
    return Target("direct", url, "unused", p)


def start_nginx(upstream, work):
    port = free_port()
    os.makedirs(f"{work}/nginx", exist_ok=True)
    up = upstream.url.removeprefix("http://")
    conf = f"""
worker_processes auto;
pid {work}/nginx/nginx.pid;
error_log {work}/nginx/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 32768; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx/body;
  proxy_temp_path {work}/nginx/proxy;
  fastcgi_temp_path {work}/nginx/fastcgi;
  uwsgi_temp_path {work}/nginx/uwsgi;
  scgi_temp_path {work}/nginx/scgi;
  upstream emu {{ server {up}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://emu;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""
    with open(f"{work}/nginx/nginx.conf", "w") as f:
        f.write(conf)
    log = open(f"{work}/nginx.log", "w")
    p = start(["nginx", "-p", f"{work}/nginx", "-c", f"{work}/nginx/nginx.conf", "-g", "daemon off;"], log)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/v1/models")
    return Target("nginx", url, "unused", p)


def start_tollgate(tollgate, upstream, work, name="tollgate", backend_extra="", tier_extra="", tail=""):
    port = free_port()
    work = f"{work}/{name}"
    os.makedirs(work, exist_ok=True)
    cfg = f"""
listen = "127.0.0.1:{port}"
data_dir = "{work}/tollgate-data"
[[backends]]
name = "emu"
url = "{upstream.url}"
{backend_extra}
[[models]]
name = "m"
backends = ["emu"]
# A managed pool: every request is priced and reserved against it (admission on); sized so
# that the modelled capacity is never what limits a zero-delay upstream (no priced refusals).
capacity = {{ profile = "llama3-8b-h100-tp1", replicas = 4096 }}
[[tiers]]
name = "standard"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
{tier_extra}
[[tenants]]
name = "bench"
tier = "standard"
{tail}
"""
    path = f"{work}/tollgate.toml"
    with open(path, "w") as f:
        f.write(cfg)
    key = subprocess.run(
        [tollgate, "keys", "create", "--tenant", "bench", "--config", path],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    env = dict(os.environ, TOLLGATE_LOG="warn")
    p = start([tollgate, "serve", "--config", path], open(f"{work}/tollgate.log", "w"), env=env)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health")
    return Target(name, url, key, p)


def start_pingora(pingora, upstream, work):
    """A plain reverse proxy on Cloudflare's Pingora (bench/pingora-floor), two threads like
    nginx's two workers: the floor of a data plane built on Pingora."""
    port = free_port()
    p = start([pingora, f"127.0.0.1:{port}", upstream.url, "2"], open(f"{work}/pingora.log", "w"))
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/v1/models")
    return Target("pingora", url, "unused", p)


def start_bare(bare, upstream, work):
    port = free_port()
    p = start([bare, f"127.0.0.1:{port}", upstream.url], open(f"{work}/bare.log", "w"))
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/v1/models")
    return Target("axum+reqwest", url, "unused", p)


def start_litellm(litellm, upstream, work):
    port = free_port()
    cfg = f"""
model_list:
  - model_name: m
    litellm_params:
      model: openai/m
      api_base: {upstream.url}/v1
      api_key: unused
general_settings:
  master_key: sk-bench-master
litellm_settings:
  telemetry: false
"""
    path = f"{work}/litellm.yaml"
    with open(path, "w") as f:
        f.write(cfg)
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR", LITELLM_TELEMETRY="False")
    p = start([litellm, "--config", path, "--port", str(port), "--host", "127.0.0.1", "--num_workers", "1"],
              open(f"{work}/litellm.log", "w"), env=env)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health/liveliness", timeout=180)
    return Target("litellm", url, "sk-bench-master", p)


PROMPT = "Say hello to the benchmark."


def chat_body(stream):
    b = {"model": "m", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 16, "ignore_eos": True}
    if stream:
        b["stream"] = True
    return json.dumps(b)


def messages_body(stream):
    """The same request in Anthropic's Messages form (`ignore_eos` passes through to the engine)."""
    b = {"model": "m", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 16, "ignore_eos": True}
    if stream:
        b["stream"] = True
    return json.dumps(b)


def responses_body(stream):
    """The same request in OpenAI's Responses form (not stored)."""
    b = {"model": "m", "input": PROMPT, "max_output_tokens": 16, "ignore_eos": True, "store": False}
    if stream:
        b["stream"] = True
    return json.dumps(b)


def translation_targets(tollgate, up, work, gw):
    """The gateway `gw` reached through Messages and Responses (same process, so the same CPU
    counter), and two more gateways whose backend is the upstream's `/v1/messages` and
    `/v1/responses` (kinds anthropic and responses), reached with chat."""
    out = [Target("tollgate messages-in", gw.url, gw.key, gw.proc, "/v1/messages", messages_body),
           Target("tollgate responses-in", gw.url, gw.key, gw.proc, "/v1/responses", responses_body)]
    for t in out:
        t.restart = None
    for kind in ["anthropic", "responses"]:
        def starter(kind=kind):
            return start_tollgate(tollgate, up, work, f"tollgate-to-{kind}", f'kind = "{kind}"')
        t = starter()
        t.restart = starter
        out.append(t)
    return out


def signal_tree(t, sig):
    for p in tree(t.proc.pid):
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def settle(t, limit=30.0):
    """Waits until a target has finished what a run left it (a slow proxy keeps working on
    requests its clients gave up on), so the next run does not share the machine with it."""
    end = time.time() + limit
    while time.time() < end:
        c0 = cpu_seconds(t.proc.pid)
        time.sleep(0.5)
        if cpu_seconds(t.proc.pid) - c0 < 0.02:
            return


def measure(oha_bin, targets, t, stream, seconds, conc, rate):
    """One run against `t` with every other proxy stopped (SIGSTOP), so that only the load
    generator, the upstream and `t` share the machine; then `t` is let settle."""
    others = [o for o in targets if o.proc is not t.proc and o.name != "direct"]
    others = list({o.proc.pid: o for o in others}.values())
    for o in others:
        signal_tree(o, signal.SIGSTOP)
    try:
        r = oha(oha_bin, t, stream, seconds, conc, rate)
        settle(t)
    finally:
        for o in others:
            signal_tree(o, signal.SIGCONT)
    return r


def oha(oha_bin, target, stream, seconds, conc, rate):
    cmd = [oha_bin, "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-c", str(conc),
           "-m", "POST", "-H", "content-type: application/json",
           "-H", f"authorization: Bearer {target.key}", "-d", target.body(stream)]
    if rate:
        cmd += ["-q", str(rate), "--latency-correction"]
    cmd.append(target.url + target.path)
    cpu0 = cpu_seconds(target.proc.pid)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=seconds + 120).stdout
    cpu1 = cpu_seconds(target.proc.pid)
    r = json.loads(out)
    codes = r.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    bad_status = sum(v for k, v in codes.items() if not k.startswith("2"))
    # Requests cut by the run's deadline are not errors of the target.
    errors = {k: v for k, v in r.get("errorDistribution", {}).items() if "deadline" not in k}
    pct = r.get("latencyPercentiles", {})
    return {
        "ok": ok,
        "errors": bad_status + sum(errors.values()),
        "error_kinds": dict(errors, **{f"status {k}": v for k, v in codes.items() if not k.startswith("2")}),
        "rps": ok / seconds,
        "p50_us": (pct.get("p50") or 0) * 1e6,
        "p99_us": (pct.get("p99") or 0) * 1e6,
        "p999_us": (pct.get("p99.9") or 0) * 1e6,
        "cpu_s": cpu1 - cpu0,
    }


def main():
    # A SIGTERM (or Ctrl-C) still runs the clean-up below, which stops every process started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--tollgate", required=True)
    ap.add_argument("--oha", required=True)
    ap.add_argument("--litellm", help="path to the litellm CLI (omit to leave LiteLLM out)")
    ap.add_argument("--bare", help="path to the bare_proxy example (the HTTP stack's floor; omit to leave out)")
    ap.add_argument("--pingora", help="path to bench/pingora-floor's binary (a plain proxy on Pingora; omit to "
                    "leave out)")
    ap.add_argument("--tollgate-before", help="another tollgate binary (e.g. built from an earlier commit), run "
                    "side by side as the target 'tollgate-before'")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", required=True)
    ap.add_argument("--loads", help="comma-separated subset of c1,c8,c64,50rps,1000rps")
    ap.add_argument("--modes", default="whole,stream", help="whole, stream or both")
    ap.add_argument("--open-streams", help="path to the open_streams example: also hold many streams open")
    ap.add_argument("--streams", type=int, default=10000, help="streams held open at once (with --open-streams)")
    ap.add_argument("--semantic-model-dir", help="an embeddings model folder (scripts/install-embeddings.sh): also "
                    "measure the added latency of a semantic-cache lookup that misses, at concurrency 1")
    ap.add_argument("--translations", action="store_true",
                    help="also tollgate reached through Messages and Responses, and in front of Messages and "
                         "Responses upstreams (the emulator's): the cost of translation")
    a = ap.parse_args()
    seconds = int(a.seconds) if a.seconds >= 1 else 1
    work = tempfile.mkdtemp(prefix="tollgate-bench-")
    targets = []
    runs = []
    try:
        up = start_upstream(a.tollgate, work)
        starters = [lambda: start_nginx(up, work), lambda: start_tollgate(a.tollgate, up, work)]
        if a.tollgate_before:
            starters.append(lambda: start_tollgate(a.tollgate_before, up, work, "tollgate-before"))
        if a.bare:
            starters.append(lambda: start_bare(a.bare, up, work))
        if a.pingora:
            starters.append(lambda: start_pingora(a.pingora, up, work))
        if a.litellm:
            starters.append(lambda: start_litellm(a.litellm, up, work))
        targets = [up]
        for starter in starters:
            t = starter()
            t.restart = starter
            targets.append(t)
        if a.translations:
            gw = next(t for t in targets if t.name == "tollgate")
            targets.extend(translation_targets(a.tollgate, up, work, gw))
        deaths = []
        loads = [("c1", 1, None), ("c8", 8, None), ("c64", 64, None), ("50 rps", 64, 50), ("1000 rps", 64, 1000)]
        if a.loads:
            keep = a.loads.split(",")
            loads = [l for l in loads if l[0].replace(" ", "") in keep]
        modes = [m == "stream" for m in a.modes.split(",")]
        for t in targets:  # warm-up: connections, pools, caches
            measure(a.oha, targets, t, False, 2, 8, None)
            measure(a.oha, targets, t, True, 1, 8, None)
        total = len(modes) * len(loads) * a.rounds * len(targets)
        done = 0
        for stream in modes:
            for load, conc, rate in loads:
                for rnd in range(a.rounds):
                    order = targets[rnd % len(targets):] + targets[: rnd % len(targets)]
                    for t in order:
                        r = measure(a.oha, targets, t, stream, seconds, conc, rate)
                        if t.proc.poll() is not None:
                            if t is up:
                                raise SystemExit(f"the upstream died (exit {t.proc.returncode}); see {work}/upstream.log")
                            # A target that died: its run is left out, and it is started again.
                            deaths.append({"target": t.name, "load": load, "stream": stream, "round": rnd,
                                           "exit": t.proc.returncode})
                            print(f"[{t.name} died (exit {t.proc.returncode}) during {load} round {rnd}; "
                                  "run left out, restarting it]", file=sys.stderr, flush=True)
                            if t.restart is None:
                                raise SystemExit(f"{t.name} died (exit {t.proc.returncode})")
                            fresh = t.restart()
                            fresh.restart = t.restart
                            targets[targets.index(t)] = fresh
                            done += 1
                            continue
                        r.update(target=t.name, stream=stream, load=load, conc=conc, rate=rate, round=rnd)
                        runs.append(r)
                        done += 1
                        print(f"[{done}/{total}] {'stream' if stream else 'whole'} {load:>9} round {rnd} "
                              f"{t.name:>8}: {r['rps']:8.1f} req/s p50 {r['p50_us']:9.0f} us "
                              f"p99 {r['p99_us']:9.0f} us errors {r['errors']} {r['error_kinds'] or ''}", file=sys.stderr, flush=True)
        peaks = {t.name: peak_rss_mib(t.proc.pid) for t in targets}
        held = None
        if a.open_streams:
            for t in targets:
                signal_tree(t, signal.SIGSTOP)
            try:
                extra = streams.TOLLGATE_EXTRA.format(max_in_flight=2 * a.streams)
                proxies = {"tollgate": lambda u, w: start_tollgate(a.tollgate, u, w, "tollgate-streams", extra),
                           "nginx": start_nginx}
                if a.pingora:
                    proxies["pingora"] = lambda u, w: start_pingora(a.pingora, u, w)
                held = streams.run(sys.modules[__name__], a.tollgate, a.open_streams, work, a.streams, proxies)
            finally:
                for t in targets:
                    signal_tree(t, signal.SIGCONT)
        sem = a.semantic_model_dir and semantic.run(start_tollgate, a.tollgate, up, work, a.semantic_model_dir, targets)
        # The proxies' RSS excludes the upstream; direct's is the upstream's own.
        with open(a.out, "w") as f:
            json.dump({"seconds": seconds, "rounds": a.rounds, "runs": runs, "peak_rss_mib": peaks, "open_streams": held, "semantic_cache": sem,
                       "deaths": deaths,
                       "date": time.strftime("%Y-%m-%d", time.gmtime())}, f, indent=1)
    finally:
        for t in targets:
            stop(t.proc)
        if any(r["errors"] for r in runs) or os.environ.get("KEEP_WORK"):
            # The targets' logs and ledgers say what the errors were.
            print(f"[errors seen: logs and ledgers kept in {work}]", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
