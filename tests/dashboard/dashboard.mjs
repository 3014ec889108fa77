// Drives the dashboard in Debian's Chromium: the page is 401 without the admin key, a wrong key
// is refused, the admin key logs in; load goes through the gateway; the page's figures must equal
// /metrics and the ledger, its open batch the Batch API's, its extraction watch the admin API's; any console error fails; a
// screenshot is saved.
// node dashboard.mjs BASE_URL ADMIN_KEY TENANT_KEY MODEL SCREENSHOT_PATH
import { chromium } from "playwright-core";

const [base, admin, tenantKey, model, shot] = process.argv.slice(2);
const fail = (m) => { console.error("FAIL: " + m); process.exit(1); };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
});
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));

  const first = await page.goto(base + "/dashboard");
  if (first.status() !== 401) fail("dashboard without the key: " + first.status());
  const state = await page.request.get(base + "/dashboard/state");
  if (state.status() !== 401) fail("state without the key: " + state.status());
  await page.fill("#key", "tga_wrong");
  await Promise.all([page.waitForNavigation(), page.click("#signin")]);
  if (!(await page.textContent("#message")).includes("not the admin key")) fail("a wrong key was not refused");

  // Load through the gateway: whole and streamed requests.
  const sent = 12;
  for (let i = 0; i < sent; i++) {
    const r = await fetch(base + "/v1/chat/completions", { method: "POST",
      headers: { authorization: "Bearer " + tenantKey, "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "hello " + i }], max_tokens: 4, stream: i % 2 === 1 }) });
    await r.text();
    if (r.status !== 200) fail("request " + i + ": " + r.status);
  }
  // Repeated deterministic requests: one miss, then exact-cache hits.
  const repeats = 4;
  for (let i = 0; i < repeats; i++) {
    const r = await fetch(base + "/v1/chat/completions", { method: "POST",
      headers: { authorization: "Bearer " + tenantKey, "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "the same question" }], max_tokens: 4, temperature: 0 }) });
    await r.text();
    if (r.status !== 200) fail("repeat " + i + ": " + r.status);
  }
  const total = sent + repeats;
  // A batch for a model whose backend is down: its lines wait (pending), so it stays open.
  const form = new FormData();
  form.append("purpose", "batch");
  const lines = [0, 1, 2].map((i) => JSON.stringify({ custom_id: "b" + i, method: "POST", url: "/v1/chat/completions",
    body: { model: "down", messages: [{ role: "user", content: "later " + i }], max_tokens: 4 } })).join("\n") + "\n";
  form.append("file", new Blob([lines]), "batch.jsonl");
  const tenantAuth = { authorization: "Bearer " + tenantKey };
  const file = await (await fetch(base + "/v1/files", { method: "POST", headers: tenantAuth, body: form })).json();
  const created = await (await fetch(base + "/v1/batches", { method: "POST", headers: { ...tenantAuth, "content-type": "application/json" },
    body: JSON.stringify({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" }) })).json();
  if (!created.id) fail("batch not created: " + JSON.stringify(created));

  // Before login the only console errors allowed are the refusals asked for (401s); after it, none.
  const unexpected = errors.filter((e) => !e.includes("401"));
  if (unexpected.length) fail("console errors before login: " + unexpected.join(" | "));
  errors.length = 0;
  await page.fill("#key", admin);
  await Promise.all([page.waitForNavigation(), page.click("#signin")]);
  // The tenants table shows every request once the ledger has them.
  await page.waitForFunction((n) => [...document.querySelectorAll("#tenants tbody tr")]
    .some((tr) => Number(tr.children[2].textContent) === n), total, { timeout: 15000 });
  const row = await page.$$eval("#tenants tbody tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  const shown = row.find((r) => Number(r[2]) === total);
  const auth = { headers: { authorization: "Bearer " + admin } };
  const metrics = await (await fetch(base + "/metrics", auth)).text();
  const counted = metrics.split("\n").filter((l) => l.startsWith("tollgate_requests_total{") && l.includes(`tenant="${shown[0]}"`))
    .reduce((a, l) => a + Number(l.split(" ").pop()), 0);
  if (counted !== total) fail(`/metrics counts ${counted} requests, the dashboard ${shown[2]}`);
  const usage = await (await fetch(base + "/v1/tollgate/usage", auth)).json();
  const u = usage.data.find((d) => d.tenant === shown[0] && d.model === shown[1]);
  if (u.requests !== total) fail(`the ledger has ${u.requests} requests`);
  // The cache table equals /metrics' lookups and hits: 4 lookups, 3 exact hits, 75%.
  const cacheRow = (await page.$$eval("#cache tbody tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent))))
    .find((r) => r[0] === shown[0]);
  const series = (result) => metrics.split("\n").filter((l) => l.startsWith("tollgate_cache_lookups_total{")
    && l.includes(`tenant="${shown[0]}"`) && l.includes(`result="${result}"`)).reduce((a, l) => a + Number(l.split(" ").pop()), 0);
  const lookups = series("exact") + series("semantic") + series("miss");
  if (!cacheRow || Number(cacheRow[2]) !== lookups || Number(cacheRow[3]) !== series("exact") || lookups !== repeats
      || series("exact") !== repeats - 1 || cacheRow[5] !== "75.0%")
    fail(`cache row ${cacheRow} vs /metrics lookups ${lookups}, exact ${series("exact")}`);
  if (Math.abs(Number(shown[4]) - u.revenue_usd) > 1e-6) fail(`revenue: page ${shown[4]}, ledger ${u.revenue_usd}`);
  // The open batch is listed with its lines' states, as the Batch API reports it.
  await page.waitForFunction((id) => [...document.querySelectorAll("#batches tbody tr")]
    .some((tr) => tr.children[0].textContent === id), created.id, { timeout: 15000 });
  const batchRow = (await page.$$eval("#batches tbody tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent))))
    .find((r) => r[0] === created.id);
  const api = await (await fetch(base + "/v1/batches/" + created.id, { headers: tenantAuth })).json();
  if (batchRow[1] !== shown[0] || batchRow[3] !== api.status || batchRow[4] !== `${api.request_counts.completed + api.request_counts.failed} / ${api.request_counts.total}`
      || api.request_counts.total !== 3 || !batchRow[7].endsWith("%") || batchRow[8] !== "0.000000" || batchRow[9] !== "-")
    fail(`batch row ${batchRow} vs the Batch API's ${JSON.stringify(api)}`);
  // The extraction watch lists the tenant with at least the requests it sent, as the admin API
  // scores it.
  await page.waitForFunction((t) => [...document.querySelectorAll("#extraction tbody tr")]
    .some((tr) => tr.children[0].textContent === t), shown[0], { timeout: 15000 });
  const watchRow = (await page.$$eval("#extraction tbody tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent))))
    .find((r) => r[0] === shown[0]);
  const watched = (await (await fetch(base + "/v1/tollgate/extraction", { headers: { authorization: "Bearer " + admin } })).json())
    .tenants.find((t) => t.tenant === shown[0]);
  if (!watched || Number(watchRow[2]) < total || watched.signals.requests < total || !(Number(watchRow[1]) >= 0 && Number(watchRow[1]) <= 1))
    fail(`extraction row ${watchRow} vs the admin API's ${JSON.stringify(watched)}`);
  // Read at the same count of requests, the page shows the admin API's score and reasons.
  if (Number(watchRow[2]) === watched.signals.requests
      && (watchRow[1] !== watched.score.toFixed(2) || watchRow[3] !== (watched.reasons.join(", ") || "-")))
    fail(`extraction row ${watchRow} vs the admin API's ${JSON.stringify(watched)}`);
  // Charts drew: price and room-in-use lines, decision bars.
  for (const id of ["prices", "util", "decisions", "margin"]) {
    if (!(await page.$(`#${id} svg`))) fail("no chart in #" + id);
  }
  const admits = await page.$$eval('#decisions rect[data-series="admit"]', (rs) => rs.reduce((a, r) => a + Number(r.dataset.value), 0));
  if (admits !== sent + 1) fail(`the decisions chart shows ${admits} admitted, ${sent + 1} went upstream`);
  const cached = await page.$$eval('#decisions rect[data-series="cache"]', (rs) => rs.reduce((a, r) => a + Number(r.dataset.value), 0));
  if (cached !== repeats - 1) fail(`the decisions chart shows ${cached} cache answers`);
  await page.waitForTimeout(1500);
  await page.screenshot({ path: shot, fullPage: true });
  if (errors.length) fail("console errors: " + errors.join(" | "));
  console.log(`dashboard: ${total} requests and ${repeats - 1} cache hits shown, equal to /metrics and the ledger; screenshot ${shot}`);
} finally {
  await browser.close();
}
