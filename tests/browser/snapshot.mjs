// Opens the dashboard at BASE_URL (e.g. through `kubectl port-forward`), waits until every
// panel has loaded, reads the panels and saves a full-page screenshot OUT_DIR/NAME.png.
// Prints one JSON document: { panels, problems }.
// Usage: node snapshot.mjs BASE_URL OUT_DIR NAME
import path from "node:path";
import fs from "node:fs";
import { launch, openPage, settled, readPanels } from "./browser.mjs";

const [baseUrl, outDir, name] = process.argv.slice(2);
if (!baseUrl || !outDir || !name) {
  console.error("usage: node snapshot.mjs BASE_URL OUT_DIR NAME");
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });

const { context, close } = await launch();
try {
  const { page, problems } = await openPage(context, baseUrl);
  await page.goto(baseUrl, { waitUntil: "load" });
  await settled(page);
  const panels = await readPanels(page);
  await page.screenshot({ path: path.join(outDir, `${name}.png`), fullPage: true });
  console.log(JSON.stringify({ panels, problems }));
} finally {
  await close();
}
