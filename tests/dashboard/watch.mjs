// Watches a running gateway's dashboard in Debian's Chromium: logs in with the admin key, waits,
// saves a screenshot and prints what the page shows (used to capture a scenario replay, e.g.
//   TOLLGATE_ADMIN_KEY=... tollgate validate scenarios/azure-conv-code.toml --overload 2 \
//     --duration 120 --listen 127.0.0.1:8181 &
//   node tests/dashboard/watch.mjs http://127.0.0.1:8181 "$TOLLGATE_ADMIN_KEY" shot.png 90).
// node watch.mjs BASE_URL ADMIN_KEY SCREENSHOT_PATH [SECONDS]
import { chromium } from "playwright-core";

const [base, admin, shot, seconds = "60"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1300 } });
  await page.goto(base + "/dashboard");
  await page.fill("#key", admin);
  await Promise.all([page.waitForNavigation(), page.click("#signin")]);
  await page.waitForTimeout(Number(seconds) * 1000);
  await page.screenshot({ path: shot, fullPage: true });
  const table = async (id) => page.$$eval(`#${id} tbody tr`, (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent).join(" | ")));
  const state = await page.evaluate(async () => (await fetch("/dashboard/state")).json());
  console.log(JSON.stringify({ tenants: await table("tenants"), backends: await table("backends"),
    pools: state.pools, decisions: state.decisions }, null, 1));
} finally {
  await browser.close();
}
