"""Many open streams, held through each proxy in turn (tollgate, nginx, and Pingora's floor when
built): `examples/open_streams.rs` opens them against an upstream that sends one event every
`GAP_MS` and reports each proxy's memory per open stream, its CPU while they are open, and
every stream's fate. bench/harness.py calls `run`."""
import json
import os
import resource
import subprocess
import sys

# One event a second, 90 of them: every stream stays open about 90 s.
TOKENS, GAP_MS = 90, 1000

# tollgate admits and places every stream (no in-flight cap below the load) and its idle limit
# between chunks is well above the upstream's gap; ledger, metrics and admission stay on.
TOLLGATE_EXTRA = "max_in_flight = {max_in_flight}\nidle_timeout_ms = 10000"


def raise_fd_limit():
    """The open-file limit raised as far as allowed; returns it."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (262144, 262144))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def hold(h, opener, proxy, streams, log_path=None):
    """Holds `streams` streams open through the started `proxy` (a harness Target); its result."""
    pids = ",".join(str(p) for p in h.tree(proxy.proc.pid))
    timeout = streams / 100 + TOKENS * GAP_MS / 1000 * 3 + 120
    out = subprocess.run([opener, proxy.url, proxy.key, str(streams), str(TOKENS), pids],
                         check=True, capture_output=True, text=True, timeout=timeout).stdout
    r = json.loads(out.strip().splitlines()[-1])
    if log_path:
        # What the gateway itself logged as going wrong (it logs at warn and above here).
        with open(log_path, errors="replace") as f:
            bad = [l.strip() for l in f if " WARN " in l or " ERROR " in l]
        r["gateway_warnings"] = len(bad)
        r["gateway_warning_lines"] = bad[:5]
    return r


def run(h, tollgate, opener, work, asked, proxies):
    """Each of `proxies` (name -> starter(upstream, work)) in turn against one slow upstream;
    returns {name: result}, tollgate's with the warnings its log shows."""
    fd_limit = raise_fd_limit()
    # A proxy holds two descriptors per open stream (the client's and the upstream's): a
    # machine whose open-file limit cannot be raised far enough gets fewer streams, and says so.
    streams = min(asked, (fd_limit - 200) // 2)
    work = f"{work}/streams"
    os.makedirs(work, exist_ok=True)
    port = h.free_port()
    up_proc = h.start([tollgate, "emulate", "--port", str(port), "--time-scale", "1000000", "--model-name", "m",
                       "--fault", f"slow={GAP_MS}@1"], open(f"{work}/slow-upstream.log", "w"))
    up = h.Target("slow upstream", f"http://127.0.0.1:{port}", "unused", up_proc)
    results = {}
    try:
        h.wait_http(up.url + "/v1/models")
        for name, starter in proxies.items():
            proxy = starter(up, work)
            try:
                log = f"{work}/tollgate-streams/tollgate.log" if name == "tollgate" else None
                r = hold(h, opener, proxy, streams, log)
            finally:
                h.stop(proxy.proc)
            r.update(gap_ms=GAP_MS, fd_limit=fd_limit, streams_asked=asked)
            results[name] = r
            print(f"[open streams] {name}: {r}", file=sys.stderr, flush=True)
    finally:
        h.stop(up.proc)
    return results
