// ecom-pipeline dashboard: state kept in the URL, one fetch per panel from the
// JSON API, charts drawn as plain SVG (no third-party code), live updates by
// server-sent events. Every rendered figure carries its raw value in a data
// attribute so tests can read numbers without parsing formatted text.
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const HOUR = 3600 * 1000;
  const DAY = 24 * HOUR;
  const PRESETS = { "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY };
  const PALETTE = ["#2f6fde", "#e8833a", "#3aa675", "#c94f6d", "#8a63d2", "#c9a227", "#3fb0c9", "#7d8799"];
  const FILTERS = ["category", "payment", "status"];
  const intFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const moneyFmt = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const pctFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1, signDisplay: "exceptZero" });

  // ---------------------------------------------------------------- state and URL

  /** The view: everything here lives in the query string (shareable). */
  const state = {
    range: "all", from: null, to: null,
    category: [], payment: [], status: [],
    bins: 20, bucket: "auto", page: 1, pageSize: 50, refresh: "off",
  };
  /** Known values of each filter (from unfiltered answers), for the checkboxes. */
  const known = { category: [], payment: [], status: [] };
  /** Stable colour per status, shared by the donut and the stacked bars. */
  const statusColor = new Map();

  function clampInt(text, lo, hi, dflt) {
    const n = Number.parseInt(text, 10);
    return Number.isFinite(n) && n >= lo && n <= hi ? n : dflt;
  }

  function readUrl() {
    const q = new URLSearchParams(location.search);
    const list = (k) => (q.get(k) || "").split(",").map((s) => s.trim()).filter(Boolean);
    state.category = list("category");
    state.payment = list("payment");
    state.status = list("status");
    state.from = q.get("from");
    state.to = q.get("to");
    const range = q.get("range");
    if (state.from || state.to) state.range = "custom";
    else state.range = range && (range in PRESETS) ? range : "all";
    state.bins = clampInt(q.get("bins"), 1, 200, 20);
    state.bucket = ["auto", "hour", "day", "week", "month"].includes(q.get("bucket")) ? q.get("bucket") : "auto";
    state.page = clampInt(q.get("page"), 1, 1e9, 1);
    state.pageSize = clampInt(q.get("page_size"), 1, 500, 50);
    state.refresh = ["off", "5", "30", "60"].includes(q.get("refresh")) ? q.get("refresh") : "off";
  }

  function writeUrl(push) {
    const q = new URLSearchParams();
    if (state.range === "custom") {
      if (state.from) q.set("from", state.from);
      if (state.to) q.set("to", state.to);
    } else if (state.range !== "all") {
      q.set("range", state.range);
    }
    for (const f of FILTERS) if (state[f].length) q.set(f, state[f].join(","));
    if (state.bins !== 20) q.set("bins", String(state.bins));
    if (state.bucket !== "auto") q.set("bucket", state.bucket);
    if (state.page !== 1) q.set("page", String(state.page));
    if (state.pageSize !== 50) q.set("page_size", String(state.pageSize));
    if (state.refresh !== "off") q.set("refresh", state.refresh);
    const s = q.toString();
    const url = location.pathname + (s ? "?" + s : "");
    if (url !== location.pathname + location.search) {
      if (push) history.pushState(null, "", url);
      else history.replaceState(null, "", url);
    }
  }

  // ---------------------------------------------------------------- API access

  class ApiError extends Error {}

  async function getJson(path, params) {
    const qs = params && params.toString();
    const res = await fetch(path + (qs ? "?" + qs : ""), { headers: { accept: "application/json" } });
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (!res.ok) {
      const msg = body && body.error ? body.error : (text || res.statusText);
      throw new ApiError(`${path}: ${res.status} ${msg}`);
    }
    if (body === null) throw new ApiError(`${path}: the answer is not JSON`);
    return body;
  }

  /** Data end (exclusive, whole hour), found by zooming into the last time bucket. */
  let dataEndCache = null;
  async function dataEnd() {
    if (dataEndCache) return dataEndCache;
    let params = new URLSearchParams({ bucket: "auto" });
    for (let i = 0; i < 6; i++) {
      const ts = await getJson("/api/timeseries", params);
      const rows = ts.rows || [];
      if (!rows.length) return null;
      const last = rows[rows.length - 1];
      const start = Date.parse(last.start);
      const end = bucketEnd(start, ts.bucket);
      if (ts.bucket === "hour") { dataEndCache = end; return end; }
      params = new URLSearchParams({ bucket: "auto", from: iso(start), to: iso(end) });
    }
    return null;
  }

  function bucketEnd(start, bucket) {
    if (bucket === "hour") return start + HOUR;
    if (bucket === "day") return start + DAY;
    if (bucket === "week") return start + 7 * DAY;
    const d = new Date(start);
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  }

  function iso(ms) { return new Date(ms).toISOString().slice(0, 19) + "Z"; }

  /** The filter parameters every panel endpoint takes. */
  async function filterParams() {
    const p = new URLSearchParams();
    if (state.range === "custom") {
      if (state.from) p.set("from", state.from);
      if (state.to) p.set("to", state.to);
    } else if (state.range in PRESETS) {
      const end = await dataEnd();
      if (end !== null) {
        p.set("from", iso(end - PRESETS[state.range]));
        p.set("to", iso(end));
      }
    }
    for (const f of FILTERS) if (state[f].length) p.set(f, state[f].join(","));
    return p;
  }

  function withParams(base, extra) {
    const p = new URLSearchParams(base);
    for (const [k, v] of Object.entries(extra)) p.set(k, String(v));
    return p;
  }

  // ---------------------------------------------------------------- DOM helpers

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function s(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    setAttrs(e, attrs);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Through the CSSOM: the Content-Security-Policy refuses style attributes.
  function setStyle(e, text) {
    for (const decl of String(text).split(";")) {
      const i = decl.indexOf(":");
      if (i > 0) e.style.setProperty(decl.slice(0, i).trim(), decl.slice(i + 1).trim());
    }
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.setAttribute("class", v);
      else if (k === "style") setStyle(e, v);
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
  }

  function panel(name) { return $(`[data-panel="${name}"]`); }

  function setPanelState(name, st, message) {
    const p = panel(name);
    p.dataset.state = st;
    const body = $(".body", p);
    if (st === "empty") body.replaceChildren(h("p", { class: "state-msg", "data-testid": "empty" }, "No orders match these filters."));
    if (st === "error") {
      body.replaceChildren(h("p", { class: "state-msg error", "data-testid": "error" }, message || "error"),
        h("p", { class: "state-msg" }, h("button", { type: "button", onclick: () => loadAll() }, "retry")));
    }
  }

  const fmtInt = (v) => (v === null || v === undefined ? "–" : intFmt.format(v));
  const fmtMoney = (v) => (v === null || v === undefined ? "–" : moneyFmt.format(v));
  const fmtTime = (isoText) => (isoText ? isoText.replace("T", " ").replace(/:00Z$/, "").replace(/Z$/, "") : "–");

  function colorFor(i) { return PALETTE[i % PALETTE.length]; }

  function statusColorOf(name) {
    if (!statusColor.has(name)) statusColor.set(name, colorFor(statusColor.size + 2));
    return statusColor.get(name);
  }

  // ---------------------------------------------------------------- charts (SVG)

  /** Horizontal bars: one row per item, value label at the end of the bar. */
  function hbars(rows, opt) {
    const W = opt.width || 560, rowH = 26, left = opt.left || 130, right = opt.right || 96;
    const H = rows.length * rowH + 8;
    const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opt.title });
    const max = Math.max(...rows.map(opt.value), 0) || 1;
    rows.forEach((r, i) => {
      const v = opt.value(r), y = 4 + i * rowH, bw = Math.max(1, (W - left - right) * v / max);
      const g = s("g", Object.assign({ class: "mark" + (opt.selected && opt.selected(r) ? " selected" : ""), "data-testid": "bar",
        "data-label": opt.label(r), "data-value": v, tabindex: opt.onClick ? 0 : null, role: opt.onClick ? "button" : null }, opt.attrs ? opt.attrs(r) : {}));
      g.append(s("text", { x: left - 6, y: y + rowH * 0.62, "text-anchor": "end" }, opt.label(r)));
      const rect = s("rect", { x: left, y: y + 3, width: bw, height: rowH - 6, rx: 3, fill: opt.color ? opt.color(r, i) : colorFor(i) });
      rect.append(s("title", {}, `${opt.label(r)}: ${opt.fmt(v)}`));
      g.append(rect);
      g.append(s("text", { x: left + bw + 5, y: y + rowH * 0.62, class: "muted" }, opt.fmt(v)));
      if (opt.onClick) {
        g.addEventListener("click", () => opt.onClick(r));
        g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") opt.onClick(r); });
      }
      svg.append(g);
    });
    return svg;
  }

  /** Donut of order counts with a clickable legend. */
  function donut(rows, opt) {
    const W = 560, H = 230, cx = 115, cy = 115, R = 105, r0 = 60;
    const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opt.title });
    const total = rows.reduce((a, r) => a + r.orders, 0) || 1;
    let a = -Math.PI / 2;
    const pt = (ang, rad) => `${(cx + rad * Math.cos(ang)).toFixed(2)} ${(cy + rad * Math.sin(ang)).toFixed(2)}`;
    rows.forEach((r, i) => {
      const share = r.orders / total;
      const da = Math.min(2 * Math.PI * share, 2 * Math.PI - 1e-4), a2 = a + da, large = da > Math.PI ? 1 : 0;
      const d = `M ${pt(a, R)} A ${R} ${R} 0 ${large} 1 ${pt(a2, R)} L ${pt(a2, r0)} A ${r0} ${r0} 0 ${large} 0 ${pt(a, r0)} Z`;
      const mid = a + da / 2, rm = (R + r0) / 2;
      const g = s("g", { class: "mark" + (opt.selected(r) ? " selected" : ""), "data-testid": "slice", "data-label": r.status,
        "data-value": r.orders, "data-revenue": r.revenue, role: "button", tabindex: 0,
        "data-mid-x": (cx + rm * Math.cos(mid)).toFixed(1), "data-mid-y": (cy + rm * Math.sin(mid)).toFixed(1) });
      const path = s("path", { d, fill: statusColorOf(r.status) });
      path.append(s("title", {}, `${r.status}: ${fmtInt(r.orders)} orders (${(100 * share).toFixed(1)}%)`));
      g.append(path);
      g.addEventListener("click", () => opt.onClick(r));
      svg.append(g);
      const ly = 24 + i * 24;
      const lg = s("g", { class: "mark", "data-testid": "legend-item", "data-label": r.status });
      lg.append(s("rect", { x: 250, y: ly - 10, width: 12, height: 12, rx: 2, fill: statusColorOf(r.status) }));
      lg.append(s("text", { x: 268, y: ly }, `${r.status}  ${fmtInt(r.orders)}  (${(100 * share).toFixed(1)}%)`));
      lg.addEventListener("click", () => opt.onClick(r));
      svg.append(lg);
      a = a2;
    });
    svg.append(s("text", { x: cx, y: cy + 4, "text-anchor": "middle", "font-weight": 700 }, fmtInt(total === 1 && !rows.length ? 0 : total)));
    return svg;
  }

  /** Vertical bars on a numeric axis (histogram) or a time axis. */
  function vbars(items, opt) {
    const W = opt.width || 560, H = opt.height || 220, left = 54, right = opt.right || 12, top = 10, bottom = 34;
    const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opt.title });
    const max = Math.max(...items.map(opt.value), 0) || 1;
    const pw = W - left - right, ph = H - top - bottom, bw = pw / Math.max(items.length, 1);
    for (let k = 0; k <= 4; k++) {
      const y = top + ph - (ph * k) / 4;
      svg.append(s("line", { x1: left, x2: W - right, y1: y, y2: y, class: "gridline" }));
      svg.append(s("text", { x: left - 4, y: y + 4, "text-anchor": "end", class: "muted" }, compact((max * k) / 4)));
    }
    items.forEach((it, i) => {
      const v = opt.value(it), bh = (ph * v) / max;
      const g = s("g", Object.assign({ class: "mark", "data-testid": opt.markId || "bar", "data-value": v }, opt.attrs(it)));
      const rect = s("rect", { x: left + i * bw + (bw > 4 ? 1 : 0), y: top + ph - bh, width: Math.max(bw - (bw > 4 ? 2 : 0), 0.5), height: Math.max(bh, v > 0 ? 1 : 0), fill: opt.color || PALETTE[0] });
      rect.append(s("title", {}, opt.tip(it)));
      g.append(rect);
      if (opt.onClick) g.addEventListener("click", () => opt.onClick(it));
      svg.append(g);
    });
    svg.append(s("line", { x1: left, x2: W - right, y1: top + ph, y2: top + ph, class: "axis" }));
    const ticks = Math.min(items.length, 6);
    for (let k = 0; k < ticks; k++) {
      const i = Math.round((k * (items.length - 1)) / Math.max(ticks - 1, 1));
      svg.append(s("text", { x: left + i * bw + bw / 2, y: H - bottom + 16, "text-anchor": "middle", class: "muted" }, opt.tick(items[i])));
    }
    if (opt.overlay) opt.overlay(svg, { left, top, pw, ph, bw });
    return svg;
  }

  function compact(v) {
    if (v >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
    return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }

  function dataTable(columns, rows, rowAttrs) {
    const thead = h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", { class: c.num ? "n" : null }, c.title))));
    const tbody = h("tbody", {});
    for (const r of rows) {
      const tr = h("tr", rowAttrs ? rowAttrs(r) : {});
      for (const c of columns) {
        const v = r[c.key];
        tr.append(h("td", { class: c.num ? "n" : null, "data-col": c.key, "data-value": v === null || v === undefined ? "" : v }, c.fmt ? c.fmt(v) : String(v ?? "–")));
      }
      tbody.append(tr);
    }
    return h("div", { class: "table-wrap" }, h("table", { class: "data" }, thead, tbody));
  }

  // ---------------------------------------------------------------- filters by click

  function toggleOnly(field, value) {
    const cur = state[field];
    state[field] = cur.length === 1 && cur[0] === value ? [] : [value];
    state.page = 1;
    commit(true);
  }

  function isOnly(field, value) { return state[field].length === 1 && state[field][0] === value; }

  // ---------------------------------------------------------------- panels

  const KPI_TILES = [
    ["orders", "Orders", fmtInt], ["revenue", "Revenue", fmtMoney], ["mean", "Mean amount", fmtMoney],
    ["median", "Median amount", fmtMoney], ["min", "Min amount", fmtMoney], ["max", "Max amount", fmtMoney],
    ["std", "Std deviation", fmtMoney], ["p25", "25th percentile", fmtMoney], ["p75", "75th percentile", fmtMoney],
    ["p95", "95th percentile", fmtMoney], ["dropped_rows", "Rows dropped by cleaning", fmtInt],
  ];
  const QUANTILES = new Set(["median", "p25", "p75", "p95"]);

  function renderKpis(k) {
    const tiles = KPI_TILES.map(([key, label, fmt]) => {
      const v = k[key];
      const prev = k.previous ? k.previous[key] : null;
      let change = k.change_pct && k.change_pct[key] !== undefined ? k.change_pct[key] : null;
      if (change === null && prev !== null && prev !== undefined && v !== null && v !== undefined && prev !== 0 && k.previous) {
        change = (100 * (v - prev)) / Math.abs(prev);
      }
      const changeEl = h("div", { class: "change" + (change > 0 ? " up" : change < 0 ? " down" : ""), "data-testid": `kpi-${key}-change`,
        "data-value": change === null || change === undefined ? "" : change },
        k.previous ? (change === null || change === undefined ? "no previous value" : `${pctFmt.format(change)}% vs previous period`) : "");
      return h("div", { class: "kpi", "data-testid": `kpi-${key}`, "data-value": v === null || v === undefined ? "" : v,
        "data-previous": prev === null || prev === undefined ? "" : prev },
        h("div", { class: "label" }, label + (QUANTILES.has(key) && k.quantile_error > 0 ? ` (±${moneyFmt.format(k.quantile_error)})` : "")),
        h("div", { class: "value", "data-testid": `kpi-${key}-value` }, fmt(v)), changeEl);
    });
    const box = $("[data-testid=kpis]");
    box.replaceChildren(...tiles);
    box.dataset.quantileError = k.quantile_error === null || k.quantile_error === undefined ? "" : String(k.quantile_error);
    box.dataset.hasPrevious = k.previous ? "1" : "0";
    $("[data-testid=kpi-note]").textContent =
      (k.quantile_error === 0 ? "All figures are exact (median and percentiles by nearest rank). "
        : k.quantile_error !== undefined && k.quantile_error !== null
          ? `Median and percentiles are within ±${moneyFmt.format(k.quantile_error)} of the exact value; the other figures are exact. `
          : "") + (k.previous ? "Change is against the period of equal length just before the selected range." : "Pick a time range to compare with the previous period.");
    return k.orders > 0 ? "ready" : "empty";
  }

  function renderCategories(data) {
    const rows = data.rows || [];
    if (!rows.length) return "empty";
    const attrs = (r) => ({ "data-orders": r.orders, "data-revenue": r.revenue, "data-average": r.average });
    const common = { label: (r) => r.category, attrs, onClick: (r) => toggleOnly("category", r.category), selected: (r) => isOnly("category", r.category) };
    $("[data-testid=chart-category-total]").replaceChildren(hbars(rows, Object.assign({ title: "total amount per category", value: (r) => r.revenue, fmt: fmtMoney }, common)));
    const byAvg = rows.slice().sort((a, b) => b.average - a.average || a.category.localeCompare(b.category));
    $("[data-testid=chart-category-average]").replaceChildren(hbars(byAvg, Object.assign({ title: "average amount per category", value: (r) => r.average, fmt: fmtMoney }, common)));
    return "ready";
  }

  function renderStatus(data) {
    const rows = data.rows || [];
    if (!rows.length) return "empty";
    $("[data-testid=chart-status]").replaceChildren(donut(rows, {
      title: "order status distribution", onClick: (r) => toggleOnly("status", r.status), selected: (r) => isOnly("status", r.status),
    }));
    return "ready";
  }

  function renderCategoryStatus(data) {
    const rows = data.rows || [];
    if (!rows.length) return "empty";
    const cats = [], statuses = [];
    const by = new Map();
    for (const r of rows) {
      if (!cats.includes(r.category)) cats.push(r.category);
      if (!statuses.includes(r.status)) statuses.push(r.status);
      by.set(r.category + "\u0000" + r.status, r.orders);
    }
    statuses.sort();
    const totals = new Map(cats.map((c) => [c, statuses.reduce((a, st) => a + (by.get(c + "\u0000" + st) || 0), 0)]));
    cats.sort((a, b) => totals.get(b) - totals.get(a) || a.localeCompare(b));
    const W = 560, rowH = 26, left = 130, right = 70, H = cats.length * rowH + 8;
    const max = Math.max(...totals.values(), 1);
    const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "status count per category" });
    cats.forEach((c, i) => {
      const y = 4 + i * rowH;
      svg.append(s("text", { x: left - 6, y: y + rowH * 0.62, "text-anchor": "end" }, c));
      let x = left;
      for (const st of statuses) {
        const n = by.get(c + "\u0000" + st) || 0;
        if (!n) continue;
        const w = ((W - left - right) * n) / max;
        const g = s("g", { class: "mark", "data-testid": "segment", "data-category": c, "data-status": st, "data-value": n });
        const rect = s("rect", { x, y: y + 3, width: Math.max(w, 0.5), height: rowH - 6, fill: statusColorOf(st) });
        rect.append(s("title", {}, `${c} / ${st}: ${fmtInt(n)} orders`));
        g.append(rect);
        g.addEventListener("click", () => {
          const same = isOnly("category", c) && isOnly("status", st);
          state.category = same ? [] : [c];
          state.status = same ? [] : [st];
          state.page = 1;
          commit(true);
        });
        svg.append(g);
        x += w;
      }
      svg.append(s("text", { x: x + 5, y: y + rowH * 0.62, class: "muted" }, fmtInt(totals.get(c))));
    });
    const legend = h("div", { class: "legend" }, ...statuses.map((st) =>
      h("button", { type: "button", onclick: () => toggleOnly("status", st) }, h("span", { class: "sw", style: `background:${statusColorOf(st)}` }), st)));
    $("[data-testid=chart-category-status]").replaceChildren(svg, legend);
    return "ready";
  }

  function renderPayments(data) {
    const rows = data.rows || [];
    if (!rows.length) return "empty";
    $("[data-testid=chart-payments]").replaceChildren(hbars(rows, {
      title: "total amount per payment method", label: (r) => r.payment_method, value: (r) => r.revenue, fmt: fmtMoney,
      attrs: (r) => ({ "data-orders": r.orders, "data-revenue": r.revenue }),
      onClick: (r) => toggleOnly("payment", r.payment_method), selected: (r) => isOnly("payment", r.payment_method),
    }));
    return "ready";
  }

  function renderTopUsers(data) {
    const rows = data.rows || [];
    if (!rows.length) return "empty";
    $("[data-testid=chart-top-users]").replaceChildren(hbars(rows, {
      title: "top buying users", label: (r) => `user ${r.user_id}`, value: (r) => r.revenue, fmt: fmtMoney, left: 110,
      attrs: (r) => ({ "data-user-id": r.user_id, "data-orders": r.orders, "data-revenue": r.revenue }),
    }));
    return "ready";
  }

  function renderHistogram(data) {
    const rows = data.rows || [];
    if (!rows.length || rows.every((r) => r.orders === 0)) return "empty";
    $("[data-testid=chart-histogram]").replaceChildren(vbars(rows, {
      title: "histogram of amounts", value: (r) => r.orders, markId: "bin",
      attrs: (r) => ({ "data-lo": r.lo, "data-hi": r.hi }),
      tip: (r) => `${moneyFmt.format(r.lo)} – ${moneyFmt.format(r.hi)}: ${fmtInt(r.orders)} orders`,
      tick: (r) => compact(r.lo),
    }));
    return "ready";
  }

  function renderTimeseries(data) {
    const rows = data.rows || [];
    $("[data-testid=ts-meta]").replaceChildren(
      h("span", { "data-testid": "ts-bucket", "data-value": data.bucket || "" }, `bucket: ${data.bucket || "–"}`), " · ",
      h("span", { "data-testid": "ts-timezone", "data-value": data.timezone || "" }, `times in ${data.timezone || "UTC"}`));
    if (!rows.length) return "empty";
    const maxRev = Math.max(...rows.map((r) => r.revenue), 0) || 1;
    const tick = (r) => (data.bucket === "hour" ? fmtTime(r.start).slice(5) : r.start.slice(0, data.bucket === "month" ? 7 : 10));
    const svg = vbars(rows, {
      width: 1100, height: 260, right: 64, title: "orders and revenue over time", value: (r) => r.orders, markId: "point",
      attrs: (r) => ({ "data-start": r.start, "data-orders": r.orders, "data-revenue": r.revenue }),
      tip: (r) => `${fmtTime(r.start)} ${data.timezone || "UTC"}: ${fmtInt(r.orders)} orders, revenue ${fmtMoney(r.revenue)}`,
      tick,
      onClick: (r) => {
        const start = Date.parse(r.start);
        state.range = "custom";
        state.from = iso(start);
        state.to = iso(bucketEnd(start, data.bucket));
        state.page = 1;
        commit(true);
      },
      overlay: (svg2, g) => {
        const pts = rows.map((r, i) => `${(g.left + i * g.bw + g.bw / 2).toFixed(1)},${(g.top + g.ph - (g.ph * r.revenue) / maxRev).toFixed(1)}`);
        svg2.append(s("polyline", { points: pts.join(" "), class: "line", stroke: PALETTE[1], "data-testid": "revenue-line" }));
        for (let k = 0; k <= 4; k++) {
          const y = g.top + g.ph - (g.ph * k) / 4;
          svg2.append(s("text", { x: g.left + g.pw + 4, y: y + 4, class: "muted" }, compact((maxRev * k) / 4)));
        }
      },
    });
    const legend = h("div", { class: "legend" },
      h("span", {}, h("span", { class: "sw", style: `background:${PALETTE[0]}` }), " orders (left axis, bars)"),
      h("span", {}, h("span", { class: "sw", style: `background:${PALETTE[1]}` }), " revenue (right axis, line)"),
      h("span", {}, "click a bar to zoom into its period"));
    $("[data-testid=chart-timeseries]").replaceChildren(svg, legend);
    return "ready";
  }

  function kv(testid, label, value, raw) {
    return h("tr", { "data-testid": testid, "data-value": raw === null || raw === undefined ? "" : raw },
      h("td", {}, label), h("td", { class: "n" }, value));
  }

  function renderHealth(d) {
    const summary = h("div", {}, h("h3", {}, "Rows"), h("table", { class: "data" }, h("tbody", {},
      kv("health-rows_in", "read by cleaning", fmtInt(d.rows_in), d.rows_in),
      kv("health-rows_out", "kept by cleaning", fmtInt(d.rows_out), d.rows_out),
      kv("health-rows_loaded", "loaded into the serving table", fmtInt(d.rows_loaded), d.rows_loaded),
      kv("health-files_loaded", "clean files loaded", fmtInt(d.files_loaded), d.files_loaded),
      kv("health-consumer_lag", "consumer lag (messages)", d.consumer_lag === null || d.consumer_lag === undefined ? "not streaming" : fmtInt(d.consumer_lag), d.consumer_lag),
      kv("health-last_update", "last update", d.last_update ? d.last_update.replace("T", " ") : "–", d.last_update))));
    const stages = (d.stages || []).map((st) => ({ stage: st.stage, rows: st.rows }));
    const stagesEl = h("div", {}, h("h3", {}, "Rows per stage"), stages.length
      ? hbars(stages, { title: "rows per stage", label: (r) => r.stage, value: (r) => r.rows, fmt: fmtInt, left: 90, width: 330, right: 70, attrs: (r) => ({ "data-stage": r.stage }) })
      : h("p", { class: "state-msg" }, "no stage figures"));
    const rules = Object.entries(d.dropped || {}).map(([rule, n]) => ({ rule, n }));
    const dropped = h("div", { "data-testid": "health-dropped" }, h("h3", {}, "Rows dropped, per cleaning rule"),
      rules.length ? dataTable([{ key: "rule", title: "rule" }, { key: "n", title: "rows", num: true, fmt: fmtInt }], rules, (r) => ({ "data-rule": r.rule, "data-value": r.n }))
        : h("p", { class: "state-msg" }, "nothing dropped"));
    const fixes = Object.entries(d.fixed || {}).map(([fix, n]) => ({ fix, n }));
    const fixed = h("div", { "data-testid": "health-fixed" }, h("h3", {}, "Rows fixed, per fix"),
      fixes.length ? dataTable([{ key: "fix", title: "fix" }, { key: "n", title: "rows", num: true, fmt: fmtInt }], fixes, (r) => ({ "data-fix": r.fix, "data-value": r.n }))
        : h("p", { class: "state-msg" }, "nothing fixed"));
    $("[data-testid=health]").replaceChildren(summary, stagesEl, dropped, fixed);
    return "ready";
  }

  function renderOrders(data) {
    const rows = data.rows || [];
    $("#page-label").textContent = `page ${data.page}` + (rows.length ? ` (${fmtInt(rows.length)} rows)` : "");
    $("#page-label").dataset.page = data.page;
    $("#prev").disabled = data.page <= 1;
    $("#next").disabled = !data.has_more;
    if (!rows.length) return "empty";
    $("[data-testid=orders]").replaceChildren(dataTable([
      { key: "order_id", title: "order id" }, { key: "user_id", title: "user id" }, { key: "category", title: "category" },
      { key: "amount", title: "amount", num: true, fmt: fmtMoney }, { key: "payment_method", title: "payment method" },
      { key: "status", title: "status" }, { key: "timestamp", title: "time (UTC)" },
    ], rows, (r) => ({ "data-order-id": r.order_id })));
    return "ready";
  }

  /** Panel name -> how to fetch and render it. */
  function panels(base) {
    return [
      { name: "kpis", path: "/api/kpis", params: base, render: renderKpis },
      { name: "categories", also: ["categories-avg"], path: "/api/categories", params: base, render: renderCategories },
      { name: "status", path: "/api/status", params: base, render: renderStatus },
      { name: "category-status", path: "/api/category-status", params: base, render: renderCategoryStatus },
      { name: "payments", path: "/api/payments", params: base, render: renderPayments },
      { name: "top-users", path: "/api/top-users", params: withParams(base, { limit: 10 }), render: renderTopUsers },
      { name: "histogram", path: "/api/histogram", params: withParams(base, { bins: state.bins }), render: renderHistogram },
      { name: "timeseries", path: "/api/timeseries", params: withParams(base, { bucket: state.bucket }), render: renderTimeseries },
      { name: "health", path: "/api/health", params: new URLSearchParams(), render: renderHealth },
      { name: "orders", path: "/api/orders", params: withParams(base, { page: state.page, page_size: state.pageSize }), render: renderOrders },
    ];
  }

  // ---------------------------------------------------------------- loading

  let generation = 0;

  function setBusy(n) { document.body.dataset.busy = String(n); }

  /** Fetches and renders every panel; answers of a superseded load are dropped. */
  async function loadAll() {
    const gen = ++generation;
    document.body.dataset.generation = String(gen);
    setBusy(1);
    $("#banner").hidden = true;
    let base;
    try {
      base = await filterParams();
    } catch (e) {
      if (gen !== generation) return;
      for (const p of $$("[data-panel]")) setPanelState(p.dataset.panel, "error", e.message);
      showBanner(e.message);
      finish(gen);
      return;
    }
    if (gen !== generation) return;
    updateCsvLinks(base);
    renderActive(base);
    if (state.range in PRESETS) {
      // Show what the preset resolved to; "absolute…" starts from it.
      $("#from").value = base.get("from") ? base.get("from").slice(0, 16) : "";
      $("#to").value = base.get("to") ? base.get("to").slice(0, 16) : "";
    }
    const list = panels(base);
    for (const p of list) for (const n of [p.name].concat(p.also || [])) panel(n).dataset.state = "loading";
    const errors = [];
    await Promise.all(list.map(async (p) => {
      try {
        const data = await getJson(p.path, p.params);
        if (gen !== generation) return;
        const st = p.render(data);
        for (const n of [p.name].concat(p.also || [])) setPanelState(n, st);
      } catch (e) {
        if (gen !== generation) return;
        errors.push(e.message);
        for (const n of [p.name].concat(p.also || [])) setPanelState(n, "error", e.message);
      }
    }));
    if (gen !== generation) return;
    if (errors.length) showBanner(errors[0]);
    finish(gen);
  }

  function finish(gen) {
    document.body.dataset.loaded = String(gen);
    document.body.dataset.loadedAt = String(Date.now());
    setBusy(0);
  }

  function showBanner(msg) {
    const b = $("#banner");
    b.textContent = `Could not load data: ${msg}`;
    b.hidden = false;
  }

  function updateCsvLinks(base) {
    const extra = {
      "top-users": { limit: 10 }, histogram: { bins: state.bins }, timeseries: { bucket: state.bucket },
      // The table's CSV is the whole filtered result, streamed by the server.
      orders: { all: "true" },
    };
    for (const a of $$("a[data-csv]")) {
      const name = a.dataset.csv;
      const p = name === "health" ? new URLSearchParams() : withParams(base, extra[name] || {});
      p.set("format", "csv");
      a.href = `/api/${name}?${p.toString()}`;
    }
  }

  // ---------------------------------------------------------------- controls

  function renderActive(base) {
    const box = $("[data-testid=active-filters]");
    const chips = [];
    if (state.range !== "all") {
      const text = state.range === "custom" ? `${fmtTime(state.from)} → ${fmtTime(state.to)} UTC`
        : `${$("#preset").selectedOptions[0].textContent}: ${fmtTime(base.get("from"))} → ${fmtTime(base.get("to"))} UTC`;
      chips.push(h("button", { type: "button", class: "chip", "data-testid": "chip-range", title: "clear the time range",
        "data-from": base.get("from"), "data-to": base.get("to"),
        onclick: () => { state.range = "all"; state.from = state.to = null; state.page = 1; commit(true); } }, text + " ✕"));
    }
    for (const f of FILTERS) {
      for (const v of state[f]) {
        chips.push(h("button", { type: "button", class: "chip", "data-testid": `chip-${f}`, "data-value": v, title: "remove this filter",
          onclick: () => { state[f] = state[f].filter((x) => x !== v); state.page = 1; commit(true); } }, `${f}: ${v} ✕`));
      }
    }
    box.replaceChildren(...chips);
  }

  function renderFilterOptions() {
    for (const f of FILTERS) {
      const values = known[f].slice();
      for (const v of state[f]) if (!values.includes(v)) values.push(v);
      const box = $(`[data-param="${f}"] .opts`);
      box.replaceChildren(...values.map((v) => h("label", {},
        h("input", { type: "checkbox", value: v, "data-testid": `opt-${f}`, "data-value": v, checked: state[f].includes(v),
          onchange: (ev) => {
            state[f] = ev.target.checked ? state[f].concat([v]) : state[f].filter((x) => x !== v);
            state.page = 1;
            commit(true);
          } }), " " + v)));
    }
  }

  async function loadOptions() {
    try {
      const [cs, pay] = await Promise.all([getJson("/api/category-status"), getJson("/api/payments")]);
      const cats = new Map(), sts = new Map();
      for (const r of cs.rows || []) {
        cats.set(r.category, (cats.get(r.category) || 0) + r.orders);
        sts.set(r.status, (sts.get(r.status) || 0) + r.orders);
      }
      const byCount = (m) => Array.from(m.keys()).sort((a, b) => m.get(b) - m.get(a) || a.localeCompare(b));
      known.category = byCount(cats);
      known.status = Array.from(sts.keys()).sort();
      known.status.forEach(statusColorOf);
      known.payment = (pay.rows || []).map((r) => r.payment_method);
    } catch (e) {
      // The panels report the same failure; the options keep what the URL holds.
    }
    renderFilterOptions();
  }

  function syncControls() {
    $("#preset").value = state.range;
    const showAbs = state.range === "custom";
    $("#from").value = state.from ? state.from.slice(0, 16) : "";
    $("#to").value = state.to ? state.to.slice(0, 16) : "";
    $("#from").disabled = $("#to").disabled = !showAbs;
    $("#apply-range").disabled = !showAbs;
    $("#bins").value = String(state.bins);
    $("#bucket").value = state.bucket;
    $("#page-size").value = String(state.pageSize);
    $("#refresh").value = state.refresh;
    renderFilterOptions();
  }

  /** Records the state in the URL, syncs the controls and reloads every panel. */
  function commit(push) {
    writeUrl(push);
    syncControls();
    scheduleRefresh();
    loadAll();
  }

  /** `datetime-local` value (read as UTC) -> whole-hour instant, or null. */
  function fromInput(v) {
    if (!v) return null;
    const ms = Date.parse(v.slice(0, 13) + ":00:00Z");
    return Number.isFinite(ms) ? iso(ms) : null;
  }

  function wireControls() {
    $("#preset").addEventListener("change", (ev) => {
      const v = ev.target.value;
      if (v === "custom") {
        // Start the absolute range from what the preset showed, if anything.
        $("#from").disabled = $("#to").disabled = $("#apply-range").disabled = false;
        $("#from").focus();
        return;
      }
      state.range = v;
      state.from = state.to = null;
      state.page = 1;
      commit(true);
    });
    $("#controls").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const from = fromInput($("#from").value), to = fromInput($("#to").value);
      if (from && to && from >= to) { showBanner("the time range must end after it starts"); return; }
      state.range = from || to ? "custom" : "all";
      state.from = from;
      state.to = to;
      state.page = 1;
      commit(true);
    });
    $("#bins").addEventListener("change", (ev) => {
      state.bins = clampInt(ev.target.value, 1, 200, state.bins);
      commit(false);
    });
    $("#bucket").addEventListener("change", (ev) => { state.bucket = ev.target.value; commit(false); });
    $("#page-size").addEventListener("change", (ev) => { state.pageSize = clampInt(ev.target.value, 1, 500, 50); state.page = 1; commit(false); });
    $("#prev").addEventListener("click", () => { if (state.page > 1) { state.page -= 1; commit(false); } });
    $("#next").addEventListener("click", () => { state.page += 1; commit(false); });
    $("#refresh").addEventListener("change", (ev) => { state.refresh = ev.target.value; commit(false); });
    $("#theme").addEventListener("click", () => {
      const t = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
      document.documentElement.dataset.theme = t;
      try { localStorage.setItem("ecom-theme", t); } catch (e) { /* private mode: the theme lasts for this page */ }
    });
    window.addEventListener("popstate", () => { readUrl(); syncControls(); scheduleRefresh(); loadAll(); });
  }

  // ---------------------------------------------------------------- refresh and live updates

  let refreshTimer = null;
  function scheduleRefresh() {
    if (refreshTimer) clearInterval(refreshTimer);
    refreshTimer = null;
    const secs = Number(state.refresh);
    if (secs > 0) refreshTimer = setInterval(() => { if (document.body.dataset.busy !== "1") loadAll(); }, secs * 1000);
  }

  /** Every panel's header says how late its data is and when it last changed. */
  function showFreshness(msg) {
    const f = msg.freshness || null;
    const changed = f ? f.committed_at : msg.last_update;
    for (const card of document.querySelectorAll("section.card[data-panel]")) {
      const header = card.querySelector("header");
      if (!header) continue;
      let el = header.querySelector(".fresh");
      if (!el) {
        el = document.createElement("span");
        el.className = "fresh";
        el.dataset.testid = `fresh-${card.dataset.panel}`;
        header.insertBefore(el, header.querySelector("a.csv"));
      }
      const parts = [];
      if (f && f.lag_ms !== null && f.lag_ms !== undefined) parts.push(`lag ${(f.lag_ms / 1000).toFixed(1)} s`);
      if (changed) parts.push(`changed ${changed.replace("T", " ").replace(/\.\d+Z$|Z$/, "")}`);
      el.textContent = parts.join(" · ");
      el.dataset.lagMs = f && f.lag_ms !== null && f.lag_ms !== undefined ? String(f.lag_ms) : "";
      el.dataset.changed = changed || "";
      el.title = f ? "end-to-end lag of the last micro-batch (Kafka to this page), and when data last changed" : "when data last changed";
    }
  }

  let liveVersion = null;
  function connectLive() {
    const live = $("#live");
    if (!("EventSource" in window)) { live.textContent = "live: unsupported"; return; }
    const es = new EventSource("/api/events");
    es.addEventListener("open", () => { live.dataset.state = "open"; live.textContent = "live: on"; });
    es.addEventListener("error", () => { live.dataset.state = "error"; live.textContent = "live: reconnecting"; });
    es.addEventListener("update", (ev) => {
      let msg = null;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      live.dataset.state = "open";
      live.dataset.version = String(msg.version);
      live.textContent = msg.last_update ? `live: updated ${msg.last_update.replace("T", " ")}` : "live: on";
      showFreshness(msg);
      if (liveVersion !== null && msg.version !== liveVersion) {
        dataEndCache = null;
        document.body.dataset.liveUpdates = String(Number(document.body.dataset.liveUpdates || 0) + 1);
        loadOptions();
        loadAll();
      }
      liveVersion = msg.version;
    });
  }

  // ---------------------------------------------------------------- start

  function start() {
    document.body.dataset.liveUpdates = "0";
    readUrl();
    wireControls();
    writeUrl(false);
    syncControls();
    scheduleRefresh();
    loadOptions();
    loadAll();
    connectLive();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
