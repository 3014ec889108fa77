// tollgate charts: small SVG line and bar charts in plain JavaScript, no dependencies. Shared by
// the simulator's HTML report and the operator dashboard (embedded in the binary).
"use strict";
(function (global) {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
  const W = 640, H = 290, M = { top: 30, right: 16, bottom: 60, left: 64 };

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  function text(parent, x, y, s, attrs) {
    const t = el("text", Object.assign({ x, y, "font-size": 11, fill: "#374151" }, attrs || {}), parent);
    t.textContent = s;
    return t;
  }

  // Round tick values covering [lo, hi].
  function ticks(lo, hi, n) {
    if (!(hi > lo)) hi = lo + 1;
    const raw = (hi - lo) / n;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  function fmt(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
    if (a >= 1) return +v.toFixed(2) + "";
    return v.toPrecision(2);
  }

  function frame(container, opts) {
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "tg-chart" });
    svg.style.width = "100%";
    svg.style.maxWidth = W + "px";
    if (opts.title) text(svg, M.left, 18, opts.title, { "font-size": 13, "font-weight": 600, fill: "#111827" });
    container.appendChild(svg);
    return svg;
  }

  function axes(svg, y0, y1, yFormat, yLabel, xLabel) {
    const ih = H - M.top - M.bottom;
    const ys = (v) => M.top + ih - ((v - y0) / (y1 - y0 || 1)) * ih;
    for (const t of ticks(y0, y1, 5)) {
      el("line", { x1: M.left, x2: W - M.right, y1: ys(t), y2: ys(t), stroke: "#e5e7eb" }, svg);
      text(svg, M.left - 6, ys(t) + 4, (yFormat || fmt)(t), { "text-anchor": "end" });
    }
    if (yLabel) text(svg, 12, M.top + ih / 2, yLabel, { transform: `rotate(-90 12 ${M.top + ih / 2})`, "text-anchor": "middle" });
    if (xLabel) text(svg, M.left + (W - M.left - M.right) / 2, H - M.bottom + 30, xLabel, { "text-anchor": "middle" });
    return ys;
  }

  function legend(svg, names) {
    let x = M.left;
    names.forEach((n, i) => {
      el("rect", { x, y: H - 14, width: 10, height: 10, fill: PALETTE[i % PALETTE.length] }, svg);
      const t = text(svg, x + 14, H - 5, n);
      x += 24 + 7 * n.length;
      return t;
    });
  }

  // Lines: opts = {title, x: [...], series: [{name, y: [...], x?: [...]}], xLabel, yLabel, yFormat, yMin};
  // a series with its own x uses it, the others share opts.x.
  function line(container, opts) {
    const svg = frame(container, opts);
    const xsOf = (s) => s.x || opts.x;
    const allX = opts.series.flatMap(xsOf);
    const all = opts.series.flatMap((s) => s.y).filter((v) => Number.isFinite(v));
    const y0 = opts.yMin !== undefined ? opts.yMin : Math.min(0, ...all);
    const y1 = all.length ? Math.max(...all, y0 + 1e-12) : 1;
    const ys = axes(svg, y0, y1 * 1.05, opts.yFormat, opts.yLabel, opts.xLabel);
    const xmin = allX.length ? Math.min(...allX) : 0, xmax = allX.length ? Math.max(...allX) : 1;
    const xs = (v) => M.left + ((v - xmin) / (xmax - xmin || 1)) * (W - M.left - M.right);
    for (const t of ticks(xmin, xmax, 6)) text(svg, xs(t), H - M.bottom + 14, fmt(t), { "text-anchor": "middle" });
    opts.series.forEach((s, i) => {
      const sx = xsOf(s);
      const pts = s.y.map((v, k) => (Number.isFinite(v) ? `${xs(sx[k]).toFixed(1)},${ys(v).toFixed(1)}` : null)).filter(Boolean);
      const pl = el("polyline", { points: pts.join(" "), fill: "none", stroke: PALETTE[i % PALETTE.length], "stroke-width": 1.6, "data-series": s.name }, svg);
      el("title", {}, pl).textContent = s.name;
    });
    legend(svg, opts.series.map((s) => s.name));
    return svg;
  }

  // Grouped or stacked bars: opts = {title, categories: [...], series: [{name, values: [...]}], stacked, yLabel, yFormat, yMax}.
  function bars(container, opts) {
    const svg = frame(container, opts);
    const cats = opts.categories, ser = opts.series;
    const totals = cats.map((_, c) => (opts.stacked ? ser.reduce((a, s) => a + (s.values[c] || 0), 0) : Math.max(...ser.map((s) => s.values[c] || 0))));
    const y1 = opts.yMax !== undefined ? opts.yMax : Math.max(1e-12, ...totals) * 1.05;
    const ys = axes(svg, 0, y1, opts.yFormat, opts.yLabel, opts.xLabel);
    const iw = W - M.left - M.right, band = iw / Math.max(1, cats.length);
    cats.forEach((cat, c) => {
      const x0 = M.left + c * band + band * 0.1, bw = band * 0.8;
      text(svg, x0 + bw / 2, H - M.bottom + 14, cat, { "text-anchor": "middle" });
      let acc = 0;
      ser.forEach((s, i) => {
        const v = s.values[c] || 0;
        const w = opts.stacked ? bw : bw / ser.length;
        const x = opts.stacked ? x0 : x0 + i * w;
        const top = opts.stacked ? acc + v : v;
        const r = el("rect", { x: x.toFixed(1), y: ys(top).toFixed(1), width: Math.max(0, w - 1).toFixed(1), height: Math.max(0, ys(opts.stacked ? acc : 0) - ys(top)).toFixed(1), fill: PALETTE[i % PALETTE.length], "data-series": s.name, "data-category": cat, "data-value": v }, svg);
        el("title", {}, r).textContent = `${cat} · ${s.name}: ${(opts.yFormat || fmt)(v)}`;
        if (opts.stacked) acc += v;
      });
    });
    legend(svg, ser.map((s) => s.name));
    return svg;
  }

  global.TollgateCharts = { line, bars, fmt, palette: PALETTE };
})(typeof window !== "undefined" ? window : globalThis);
