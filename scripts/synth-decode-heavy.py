#!/usr/bin/env python3
"""Writes data/traces/synthetic/decode-heavy.csv: a decode-heavy (reasoning) workload, since no
shipped trace has reasoning models' output lengths. Stated distribution, fixed seed:
- arrivals: Poisson, 12,000 requests over one hour (the simulator rescales time to the load);
- prompt tokens: lognormal, median 600, sigma 0.8, clipped to [16, 16,000];
- output tokens: lognormal, median 3,000, sigma 0.7, clipped to [64, 32,000] (long chains of
  thought; mean about 3,800).
Same columns as the Azure trace (TIMESTAMP,ContextTokens,GeneratedTokens)."""
import datetime
import math
import os
import random

rng = random.Random(21)
n, span = 12_000, 3600.0
start = datetime.datetime(2025, 1, 1)
out = os.path.join(os.path.dirname(__file__), "..", "data", "traces", "synthetic", "decode-heavy.csv")
t = 0.0
with open(out, "w") as f:
    f.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
    for _ in range(n):
        t += rng.expovariate(n / span)
        prompt = int(min(16_000, max(16, rng.lognormvariate(math.log(600), 0.8))))
        output = int(min(32_000, max(64, rng.lognormvariate(math.log(3000), 0.7))))
        stamp = (start + datetime.timedelta(seconds=t)).strftime("%Y-%m-%d %H:%M:%S.%f")
        f.write(f"{stamp},{prompt},{output}\n")
