// Draws a simulation report from the JSON embedded in the page (see src/sim/html.rs).
"use strict";
(function () {
  const R = JSON.parse(document.getElementById("data").textContent);
  const C = window.TollgateCharts;
  const $ = (tag, attrs, parent, html) => {
    const e = document.createElement(tag);
    Object.assign(e, attrs || {});
    if (html !== undefined) e.textContent = html;
    if (parent) parent.appendChild(e);
    return e;
  };
  const pct = (v) => (v === null || v === undefined ? "n/a" : (100 * v).toFixed(1) + "%");
  const usd = (v) => v.toFixed(4);

  const sum = document.getElementById("summary");
  $("p", { className: "note" }, sum, `${R.description} ${R.requests} requests over ${R.duration_s.toFixed(0)} s, demand ${R.overload}x the fleet's SLA-safe capacity. Value counts responses within their tier's objectives.`);
  if (R.hindsight) {
    $("p", { className: "note" }, sum, `Hindsight bound ${usd(R.hindsight.bound_usd)} USD on SLA-safe capacity (a feasible schedule reaches ${usd(R.hindsight.feasible_usd)}, so the optimum lies between); on every engine's whole time the bound is ${usd(R.hindsight.full_engines_bound_usd)} USD.`);
  }
  const t = $("table", {}, sum);
  const head = $("tr", {}, t);
  ["policy", "value USD", "of hindsight", "SLA met"].concat(R.policies[0].classes.map((c) => c.class + " served / refused")).forEach((h) => $("th", {}, head, h));
  for (const p of R.policies) {
    const tr = $("tr", {}, t);
    [p.policy, usd(p.value_usd), pct(p.share_of_hindsight), pct(p.sla_attainment)]
      .concat(p.classes.map((c) => `${c.admitted + c.downgraded + c.deferred} / ${c.refused + c.dropped}`))
      .forEach((v) => $("td", {}, tr, v));
  }

  const charts = document.getElementById("charts");
  const section = (title) => {
    $("h2", {}, charts, title);
    return $("div", { className: "grid" }, charts);
  };
  const names = R.policies.map((p) => p.policy);

  let g = section("Value captured");
  const valueSeries = [{ name: "value captured", values: R.policies.map((p) => p.value_usd) }];
  if (R.hindsight) valueSeries.push({ name: "hindsight bound", values: R.policies.map(() => R.hindsight.bound_usd) });
  C.bars($("div", {}, g), { title: "Value captured per policy (USD)", categories: names, series: valueSeries, yLabel: "USD" });
  C.line($("div", {}, g), {
    title: "Value captured over time (USD per bucket, by arrival)",
    x: R.policies[0].timeline.map((b) => b.start_s),
    series: R.policies.map((p) => ({ name: p.policy, y: p.timeline.map((b) => b.value_usd) })),
    xLabel: "seconds",
    yLabel: "USD",
  });

  g = section("Prices and room use over time");
  for (const p of R.policies.filter((p) => p.policy === "bid-price")) {
    C.line($("div", {}, g), {
      title: "bid-price: price per pool (USD per engine-second)",
      x: p.pools[0].t_s,
      series: p.pools.map((s) => ({ name: s.pool, y: s.price })),
      xLabel: "seconds",
      yLabel: "USD / engine-s",
    });
  }
  for (const p of R.policies.filter((p) => p.policy === "bid-price")) {
    C.line($("div", {}, g), {
      title: "bid-price: share of each pool's reservation room in use",
      x: p.pools[0].t_s,
      series: p.pools.map((s) => ({ name: s.pool, y: s.room_use })),
      xLabel: "seconds",
      yMin: 0,
    });
  }
  for (const [k, pool] of R.policies[0].pools.entries()) {
    for (const [what, key] of [["share of KV cache held", "kv_use"], ["requests waiting in the engines", "waiting"]]) {
      C.line($("div", {}, g), {
        title: `${pool.pool}: ${what}, per policy`,
        x: pool.t_s,
        series: R.policies.map((p) => ({ name: p.policy, x: p.pools[k].t_s, y: p.pools[k][key] })),
        xLabel: "seconds",
        yMin: 0,
      });
    }
  }

  g = section("Decisions per class");
  const kinds = ["admitted", "downgraded", "deferred", "refused", "dropped"];
  for (const [k, cls] of R.policies[0].classes.entries()) {
    C.bars($("div", {}, g), {
      title: `${cls.class} (${cls.tier}): requests by decision`,
      categories: names,
      stacked: true,
      series: kinds.map((kind) => ({ name: kind, values: R.policies.map((p) => p.classes[k][kind]) })),
    });
  }
  for (const p of R.policies.filter((p) => p.policy === "bid-price")) {
    C.line($("div", {}, g), {
      title: "bid-price: refused or dropped per class over time",
      x: p.timeline.map((b) => b.start_s),
      series: p.classes.map((c, k) => ({ name: c.class, y: p.timeline.map((b) => b.decisions[k][3]) })),
      xLabel: "seconds",
    });
  }

  g = section("SLA attainment per tier");
  const tiers = R.policies[0].tiers.map((x) => x.tier);
  for (const [label, key] of [["time to first token", "ttft_attainment"], ["end to end (or batch deadline)", "e2e_attainment"]]) {
    C.bars($("div", {}, g), {
      title: `Served requests within the ${label} objective`,
      categories: tiers,
      series: R.policies.map((p) => ({ name: p.policy, values: p.tiers.map((x) => x[key]) })),
      yMax: 1,
      yFormat: (v) => Math.round(v * 100) + "%",
    });
  }
  const lt = $("table", {}, charts);
  const lh = $("tr", {}, lt);
  ["policy", "tier", "served", "TTFT p50 s", "TTFT p95 s", "e2e p50 s", "e2e p95 s", "TTFT met", "e2e met"].forEach((h) => $("th", {}, lh, h));
  for (const p of R.policies) {
    for (const x of p.tiers) {
      const tr = $("tr", {}, lt);
      [p.policy, x.tier, x.served, x.ttft_p50_s.toFixed(2), x.ttft_p95_s.toFixed(2), x.e2e_p50_s.toFixed(1), x.e2e_p95_s.toFixed(1), pct(x.ttft_attainment), pct(x.e2e_attainment)].forEach((v) => $("td", {}, tr, v));
    }
  }
})();
