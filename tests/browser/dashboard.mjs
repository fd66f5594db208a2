// Browser test of the dashboard: loads the page, reads every panel, downloads
// CSV, clicks a category bar and reads again, takes screenshots. Prints one
// JSON document on standard output; the Rust test (itests/tests/dashboard_browser.rs)
// compares it with a recomputation from the clean data.
// Usage: node dashboard.mjs BASE_URL OUT_DIR CATEGORY_TO_CLICK STATUS_TO_CLICK
import path from "node:path";
import fs from "node:fs";
import { launch, openPage, settled, generation, readPanels, downloadCsv } from "./browser.mjs";

const [baseUrl, outDir, clickCategory, clickStatus] = process.argv.slice(2);
if (!baseUrl || !outDir || !clickCategory || !clickStatus) {
  console.error("usage: node dashboard.mjs BASE_URL OUT_DIR CATEGORY_TO_CLICK STATUS_TO_CLICK");
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });

const { context, close } = await launch();
const result = {};
try {
  const { page, problems } = await openPage(context, baseUrl);
  await page.goto(baseUrl, { waitUntil: "load" });
  await settled(page);
  result.initial = await readPanels(page);
  await page.screenshot({ path: path.join(outDir, "dashboard.png"), fullPage: true });

  result.csv = {};
  for (const id of ["csv-kpis", "csv-categories", "csv-status", "csv-category-status", "csv-payments", "csv-top-users", "csv-histogram", "csv-timeseries", "csv-orders"]) {
    result.csv[id] = await downloadCsv(page, id);
  }

  // Drill-down table: the next page.
  let gen = await generation(page);
  await page.click("[data-testid=page-next]");
  await settled(page, gen);
  result.page2 = await readPanels(page);

  // Click the category's bar in the "total amount per category" chart.
  const before = await generation(page);
  await page.locator(`[data-testid=chart-category-total] [data-testid=bar][data-label="${clickCategory}"]`).click();
  await settled(page, before);
  result.filtered = await readPanels(page);
  result.filteredCsv = { "csv-orders": await downloadCsv(page, "csv-orders"), "csv-categories": await downloadCsv(page, "csv-categories") };
  await page.screenshot({ path: path.join(outDir, "dashboard-filtered.png"), fullPage: true });

  // Then a slice of the status donut: both filters apply; removing its chip goes back.
  gen = await generation(page);
  // A real click in the middle of the slice's ring segment.
  const slice = page.locator(`[data-testid=chart-status] [data-testid=slice][data-label="${clickStatus}"]`);
  await slice.scrollIntoViewIfNeeded();
  const at = await slice.evaluate((g) => {
    const p = g.ownerSVGElement.createSVGPoint();
    p.x = Number(g.dataset.midX);
    p.y = Number(g.dataset.midY);
    const q = p.matrixTransform(g.ownerSVGElement.getScreenCTM());
    return { x: q.x, y: q.y };
  });
  await page.mouse.click(at.x, at.y);
  await settled(page, gen);
  result.filtered2 = await readPanels(page);
  gen = await generation(page);
  await page.locator("[data-testid=chip-status]").click();
  await settled(page, gen);

  // The URL alone restores the view (shareable): a fresh load of it shows the same figures.
  const shared = new URL(result.filtered.url, baseUrl).toString();
  await page.goto(shared, { waitUntil: "load" });
  await settled(page);
  result.reopened = await readPanels(page);

  // A time-range preset: the figures of the last 7 days of data, compared with the 7 days before.
  await page.goto(baseUrl, { waitUntil: "load" });
  await settled(page);
  const beforeRange = await generation(page);
  await page.selectOption("[data-testid=range-preset]", "7d");
  await settled(page, beforeRange);
  result.ranged = await readPanels(page);
  result.rangedChip = await page.textContent("[data-testid=chip-range]");
  // Other bins and an explicit bucket for the same range.
  gen = await generation(page);
  await page.fill("[data-testid=bins]", "7");
  await page.dispatchEvent("[data-testid=bins]", "change");
  await settled(page, gen);
  gen = await generation(page);
  await page.selectOption("[data-testid=bucket]", "day");
  await settled(page, gen);
  result.rangedDay = await readPanels(page);
  // Auto refresh every 5 s: a new load starts by itself, without a navigation.
  gen = await generation(page);
  await page.selectOption("[data-testid=refresh]", "5");
  await settled(page, gen);
  const t0 = Date.now();
  const afterSelect = await generation(page);
  await settled(page, afterSelect, 12000);
  result.autoRefresh = { seconds: (Date.now() - t0) / 1000, url: await page.evaluate(() => location.search) };
  await page.selectOption("[data-testid=refresh]", "off");

  // Dark theme on a narrow screen: the layout stacks to one column.
  await page.click("[data-testid=theme-toggle]");
  await page.setViewportSize({ width: 420, height: 900 });
  await page.waitForTimeout(200);
  result.theme = await page.evaluate(() => document.documentElement.dataset.theme);
  result.narrowColumns = await page.evaluate(() => getComputedStyle(document.querySelector("main.grid")).gridTemplateColumns.split(" ").length);
  await page.screenshot({ path: path.join(outDir, "dashboard-dark-narrow.png"), fullPage: false });

  // Loading, empty and error states: a filter value nobody has, then a bad absolute range in the URL.
  await page.setViewportSize({ width: 1400, height: 1000 });
  const nobody = new URL(baseUrl);
  nobody.searchParams.set("category", "NoSuchCategory");
  await page.goto(nobody.toString(), { waitUntil: "load" });
  await settled(page);
  result.emptyStates = await page.evaluate(() => Object.fromEntries(Array.from(document.querySelectorAll("[data-panel]")).map((p) => [p.dataset.panel, p.dataset.state])));

  result.problems = JSON.parse(JSON.stringify(problems));
  const bad = new URL(baseUrl);
  bad.searchParams.set("from", "2024-01-01T00:30:00Z");
  bad.searchParams.set("to", "2024-01-02T00:00:00Z");
  const consoleBefore = problems.console.length;
  await page.goto(bad.toString(), { waitUntil: "load" });
  await settled(page);
  result.errorStates = await page.evaluate(() => ({
    states: Object.fromEntries(Array.from(document.querySelectorAll("[data-panel]")).map((p) => [p.dataset.panel, p.dataset.state])),
    banner: document.querySelector("[data-testid=banner]").hidden ? null : document.querySelector("[data-testid=banner]").textContent,
  }));
  // The browser logs each 400 answer of the bad range itself; those are expected here.
  result.errorStateConsole = problems.console.slice(consoleBefore);
} finally {
  await close();
}
fs.writeFileSync(path.join(outDir, "dashboard-result.json"), JSON.stringify(result, null, 1));
process.stdout.write(JSON.stringify(result) + "\n");
