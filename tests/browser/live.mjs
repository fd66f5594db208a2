// Live-update test driver: opens the dashboard, prints `READY <orders>` once the
// page shows its first figures, then for every `EXPECT <orders>` line read on
// standard input waits until the page shows that order count (pushed by the
// server-sent events, the page is never reloaded) and prints
// `SEEN <orders> <epoch ms> <live updates>`. `FRESH` prints a JSON line with the
// order count and every panel's freshness line (its text, lag and last change).
// `DONE` ends it with a JSON line of the problems seen (console errors, reloads,
// external requests).
// Usage: node live.mjs BASE_URL OUT_DIR
import readline from "node:readline";
import path from "node:path";
import fs from "node:fs";
import { launch, openPage, settled } from "./browser.mjs";

const [baseUrl, outDir] = process.argv.slice(2);
if (!baseUrl || !outDir) {
  console.error("usage: node live.mjs BASE_URL OUT_DIR");
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const { context, close } = await launch();
let navigations = 0;
try {
  const { page, problems } = await openPage(context, baseUrl);
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations += 1; });
  await page.goto(baseUrl, { waitUntil: "load" });
  await settled(page);
  // Wait for the event stream to be open, so no update can slip by.
  await page.waitForFunction(() => document.querySelector("[data-testid=live-status]").dataset.version !== undefined, null, { timeout: 15000 });
  const orders = () => page.evaluate(() => Number(document.querySelector("[data-testid=kpi-orders]").dataset.value));
  process.stdout.write(`READY ${await orders()}\n`);
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (cmd === "EXPECT") {
      const want = Number(arg);
      await page.waitForFunction((n) => Number(document.querySelector("[data-testid=kpi-orders]").dataset.value) === n
        && document.body.dataset.busy === "0", want, { timeout: 60000, polling: 50 });
      const at = Date.now();
      const updates = await page.evaluate(() => Number(document.body.dataset.liveUpdates || 0));
      process.stdout.write(`SEEN ${want} ${at} ${updates}\n`);
    } else if (cmd === "FRESH") {
      const fresh = await page.evaluate(() => ({
        orders: Number(document.querySelector("[data-testid=kpi-orders]").dataset.value),
        panels: [...document.querySelectorAll("section.card[data-panel]")].map((card) => {
          const el = card.querySelector(".fresh");
          return {
            panel: card.dataset.panel,
            text: el ? el.textContent : null,
            lagMs: el && el.dataset.lagMs !== "" ? Number(el.dataset.lagMs) : null,
            changed: el ? el.dataset.changed : null,
          };
        }),
      }));
      process.stdout.write(JSON.stringify(fresh) + "\n");
    } else if (cmd === "DONE") {
      await page.screenshot({ path: path.join(outDir, "dashboard-live.png"), fullPage: true });
      const lag = await page.evaluate(() => {
        const e = document.querySelector("[data-testid=health-consumer_lag]");
        return e && e.dataset.value !== "" ? Number(e.dataset.value) : null;
      });
      process.stdout.write(JSON.stringify({ problems, navigations, lag }) + "\n");
      break;
    }
  }
} finally {
  await close();
}
