// Shared helpers of the dashboard's browser tests: Debian's chromium driven by
// playwright-core (no browser download), console and network watch, DOM reads.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** Launches headless Debian chromium with a fresh profile. */
export async function launch() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "ecom-chromium-"));
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  const args = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
  ];
  const context = await chromium.launchPersistentContext(profile, {
    executablePath, args, headless: true, acceptDownloads: true,
    viewport: { width: 1400, height: 1000 }, timezoneId: "Europe/Berlin", locale: "en-US",
  });
  const close = async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

/**
 * Opens a page that records console errors, page errors, failed requests and
 * every request leaving the dashboard's own origin (those are aborted).
 */
export async function openPage(context, baseUrl) {
  const origin = new URL(baseUrl).origin;
  const problems = { console: [], pageErrors: [], external: [], failed: [] };
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (m) => { if (m.type() === "error") problems.console.push(m.text()); });
  page.on("pageerror", (e) => problems.pageErrors.push(String(e)));
  page.on("requestfailed", (r) => {
    // Leaving the page aborts the event stream; that is not a failure.
    if (!r.url().endsWith("/api/events")) problems.failed.push(`${r.url()}: ${r.failure() && r.failure().errorText}`);
  });
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + "/") || url.startsWith("data:")) return route.continue();
    problems.external.push(url);
    return route.abort();
  });
  return { page, problems };
}

/** Waits until the load started last has finished and no panel is loading. */
export async function settled(page, afterGeneration = 0, timeout = 30000) {
  await page.waitForFunction((after) => {
    const b = document.body.dataset;
    return b.busy === "0" && Number(b.loaded || 0) > after && Number(b.loaded) === Number(b.generation)
      && !document.querySelector('[data-panel][data-state="loading"]');
  }, afterGeneration, { timeout, polling: 100 });
}

/** The generation number of the latest load. */
export async function generation(page) {
  return page.evaluate(() => Number(document.body.dataset.generation || 0));
}

/** Reads every panel's figures from the data attributes of the page. */
export async function readPanels(page) {
  return page.evaluate(() => {
    const num = (v) => (v === undefined || v === null || v === "" ? null : Number(v));
    const all = (sel) => Array.from(document.querySelectorAll(sel));
    const states = {};
    for (const p of all("[data-panel]")) states[p.dataset.panel] = p.dataset.state;
    const kpis = {}, kpiChange = {};
    for (const t of all("[data-testid=kpis] .kpi")) {
      const key = t.dataset.testid.slice(4);
      kpis[key] = num(t.dataset.value);
      const c = t.querySelector(".change");
      kpiChange[key] = c ? num(c.dataset.value) : null;
    }
    const bars = (sel) => all(`${sel} [data-testid=bar]`).map((b) => ({ label: b.dataset.label, value: num(b.dataset.value),
      orders: num(b.dataset.orders), revenue: num(b.dataset.revenue), average: num(b.dataset.average), user_id: num(b.dataset.userId) }));
    const categories = bars("[data-testid=chart-category-total]").map((b) => ({ category: b.label, orders: b.orders, revenue: b.revenue, average: b.average }));
    const categoriesByAverage = bars("[data-testid=chart-category-average]").map((b) => ({ category: b.label, average: b.value }));
    const status = all("[data-testid=chart-status] [data-testid=slice]").map((s) => ({ status: s.dataset.label, orders: num(s.dataset.value), revenue: num(s.dataset.revenue) }));
    const categoryStatus = all("[data-testid=chart-category-status] [data-testid=segment]").map((s) => ({ category: s.dataset.category, status: s.dataset.status, orders: num(s.dataset.value) }));
    const payments = bars("[data-testid=chart-payments]").map((b) => ({ payment_method: b.label, orders: b.orders, revenue: b.revenue }));
    const topUsers = bars("[data-testid=chart-top-users]").map((b) => ({ user_id: b.user_id, orders: b.orders, revenue: b.revenue }));
    const histogram = all("[data-testid=chart-histogram] [data-testid=bin]").map((b) => ({ lo: num(b.dataset.lo), hi: num(b.dataset.hi), orders: num(b.dataset.value) }));
    const tsBucket = document.querySelector("[data-testid=ts-bucket]");
    const tsZone = document.querySelector("[data-testid=ts-timezone]");
    const timeseries = {
      bucket: tsBucket ? tsBucket.dataset.value : null,
      timezone: tsZone ? tsZone.dataset.value : null,
      timezoneText: tsZone ? tsZone.textContent : null,
      rows: all("[data-testid=chart-timeseries] [data-testid=point]").map((p) => ({ start: p.dataset.start, orders: num(p.dataset.orders), revenue: num(p.dataset.revenue) })),
    };
    const hv = (k) => { const e = document.querySelector(`[data-testid=health-${k}]`); return e ? e.dataset.value : null; };
    const health = {
      rows_in: num(hv("rows_in")), rows_out: num(hv("rows_out")), rows_loaded: num(hv("rows_loaded")), files_loaded: num(hv("files_loaded")),
      consumer_lag: num(hv("consumer_lag")), last_update: hv("last_update") || null,
      dropped: Object.fromEntries(all("[data-testid=health-dropped] tr[data-rule]").map((r) => [r.dataset.rule, num(r.dataset.value)])),
      fixed: Object.fromEntries(all("[data-testid=health-fixed] tr[data-fix]").map((r) => [r.dataset.fix, num(r.dataset.value)])),
      stages: all("[data-testid=health] [data-stage]").map((s) => ({ stage: s.dataset.stage, rows: num(s.dataset.value) })),
    };
    const orders = all("[data-testid=orders] tr[data-order-id]").map((tr) => {
      const o = {};
      for (const td of tr.querySelectorAll("td[data-col]")) o[td.dataset.col] = td.dataset.value;
      return { order_id: num(o.order_id), user_id: num(o.user_id), category: o.category, amount: num(o.amount), payment_method: o.payment_method, status: o.status, timestamp: o.timestamp };
    });
    const checked = (f) => all(`[data-testid=opt-${f}]`).filter((i) => i.checked).map((i) => i.dataset.value);
    return {
      url: location.pathname + location.search, states, kpis, kpiChange,
      range: (() => { const c = document.querySelector("[data-testid=chip-range]"); return c ? { from: c.dataset.from || null, to: c.dataset.to || null } : null; })(),
      quantileError: num(document.querySelector("[data-testid=kpis]").dataset.quantileError),
      kpiPrevious: Object.fromEntries(all("[data-testid=kpis] .kpi").map((t) => [t.dataset.testid.slice(4), num(t.dataset.previous)])), categories, categoriesByAverage, status, categoryStatus,
      payments, topUsers, histogram, timeseries, health, orders,
      pageLabel: document.querySelector("[data-testid=page-label]").textContent,
      filters: { category: checked("category"), payment: checked("payment"), status: checked("status") },
      banner: document.querySelector("[data-testid=banner]").hidden ? null : document.querySelector("[data-testid=banner]").textContent,
    };
  });
}

/**
 * Clicks a CSV link and returns the downloaded text. Chromium's limit on several
 * downloads from one page in a row swallows the first click of a second download
 * (seen every run for csv-categories right after csv-orders), so a click with no
 * download is repeated, at most twice.
 */
export async function downloadCsv(page, testid) {
  let download = null;
  for (let attempt = 1; !download; attempt++) {
    try {
      [download] = await Promise.all([page.waitForEvent("download", { timeout: 15000 }), page.click(`[data-testid=${testid}]`)]);
    } catch (e) {
      if (attempt >= 3) throw e;
      console.error(`download of ${testid}: attempt ${attempt} got no download (${e.name}), clicking again`);
    }
  }
  const file = await download.path();
  return { name: download.suggestedFilename(), href: await page.getAttribute(`[data-testid=${testid}]`, "href"), text: fs.readFileSync(file, "utf8") };
}
