//! Browser test of the dashboard page: `ecom demo` on a dirty 200,000-row data
//! set, Debian's headless chromium driven by playwright-core
//! (tests/browser/dashboard.mjs), and every figure the page shows compared with
//! a recomputation from the clean Parquet the demo wrote (never from the API
//! under test). Screenshots land in `test-output/browser/` at the repository root.

mod common;
mod dashboard_support;

use std::collections::{BTreeMap, BTreeSet};

use dashboard_support::*;
use serde_json::Value;

const ROWS: &str = "200000";
/// Columns of the table's CSV (the JSON fields of a drill-down row).
const ORDER_FIELDS: [&str; 7] = [
    "order_id",
    "user_id",
    "category",
    "amount",
    "payment_method",
    "status",
    "timestamp",
];

// One browser session on purpose: starting Chromium and the demo costs more than all the
// checks made in it, and each click starts from the page the last one left.
#[test]
fn page_shows_the_clean_data_and_filters_by_click() {
    let repo = repo_root();
    browser_setup(&repo);
    let data = tempfile::tempdir().expect("tempdir");
    let demo = Demo::start(&[
        "--rows",
        ROWS,
        "--dirty-rate",
        "0.05",
        "--seed",
        "7",
        "--data-dir",
        data.path().to_str().expect("utf8 path"),
    ]);
    let clean = CleanData::read(&data.path().join("files").join("clean"));
    assert!(
        clean.rows.len() > 180_000,
        "clean rows: {}",
        clean.rows.len()
    );

    // Click the category with the second largest revenue (a real filter, not the top bar).
    let cats = clean.categories(&Filter::default());
    let clicked = cats[1].0.clone();
    let out_dir = repo.join("test-output").join("browser");
    // Then the slice of the status with the most orders in that category.
    let in_cat = Filter {
        category: Some(clicked.clone()),
        ..Filter::default()
    };
    let slice = clean
        .group(&in_cat, |r| r.status.clone())
        .into_iter()
        .max_by_key(|(_, t)| t.orders)
        .map(|(s, _)| s)
        .expect("statuses");
    let result = run_node(
        &repo,
        "dashboard.mjs",
        &[&demo.url, out_dir.to_str().expect("utf8"), &clicked, &slice],
    );

    // No console errors, no page errors, nothing fetched from outside the dashboard.
    let problems = &result["problems"];
    for kind in ["console", "pageErrors", "external", "failed"] {
        assert_eq!(
            problems[kind].as_array().map(Vec::len),
            Some(0),
            "{kind}: {}",
            problems[kind]
        );
    }

    let all = Filter::default();
    check_panels(&result["initial"], &clean, &all, "unfiltered page");

    // Next page of the drill-down table: the next 50 orders, the rest unchanged.
    let page2 = &result["page2"];
    assert_eq!(page2["url"], "/?page=2");
    let want2 = clean.orders_page(&all, 2, 50);
    let got2: Vec<u64> = page2["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| o["order_id"].as_u64().unwrap_or_default())
        .collect();
    assert_eq!(
        got2,
        want2.iter().map(|r| r.order_id).collect::<Vec<_>>(),
        "page 2"
    );
    assert_eq!(page2["kpis"], result["initial"]["kpis"]);

    // The click filtered every panel and the URL.
    let filtered = &result["filtered"];
    let by_click = Filter {
        category: Some(clicked.clone()),
        ..Filter::default()
    };
    let url = filtered["url"].as_str().expect("url");
    assert!(
        url.contains(&format!("category={}", url_encode(&clicked))),
        "URL after the click: {url}"
    );
    assert_eq!(
        filtered["filters"]["category"],
        serde_json::json!([clicked])
    );
    check_panels(filtered, &clean, &by_click, "after clicking a category bar");
    for panel in [
        "kpis",
        "categories",
        "status",
        "categoryStatus",
        "payments",
        "topUsers",
        "histogram",
        "timeseries",
        "orders",
    ] {
        assert_ne!(
            result["initial"][panel], filtered[panel],
            "panel {panel} did not change with the filter"
        );
    }
    // A click on a status slice adds that filter to every panel.
    let both = Filter {
        category: Some(clicked.clone()),
        status: Some(slice.clone()),
        ..Filter::default()
    };
    let url2 = result["filtered2"]["url"].as_str().expect("url");
    assert!(
        url2.contains(&format!("status={}", url_encode(&slice)))
            && url2.contains(&format!("category={}", url_encode(&clicked))),
        "URL after clicking a slice: {url2}"
    );
    check_panels(
        &result["filtered2"],
        &clean,
        &both,
        "after clicking a slice too",
    );

    // The URL alone restores the filtered view.
    check_panels(&result["reopened"], &clean, &by_click, "reopened URL");

    // A time-range preset: the last 7 days of data against the 7 days before.
    let ranged = &result["ranged"];
    let end = clean.last_hour_end();
    let from = end - 7 * 86_400;
    assert_eq!(
        ranged["range"]["from"].as_str(),
        Some(iso(from).as_str()),
        "{}",
        ranged["range"]
    );
    assert_eq!(ranged["range"]["to"].as_str(), Some(iso(end).as_str()));
    assert!(ranged["url"]
        .as_str()
        .unwrap_or_default()
        .contains("range=7d"));
    let week = Filter {
        from: Some(from),
        to: Some(end),
        ..Filter::default()
    };
    check_panels(ranged, &clean, &week, "last 7 days");
    assert_eq!(ranged["timeseries"]["bucket"], "hour");
    let prev = Filter {
        from: Some(from - 7 * 86_400),
        to: Some(from),
        ..Filter::default()
    };
    let now = clean.stats(&week);
    let before = clean.stats(&prev);
    check_kpis(
        &ranged["kpiPrevious"],
        &before,
        ranged,
        &clean,
        "previous period",
    );
    for (key, a, b) in [
        ("orders", now.orders as f64, before.orders as f64),
        ("revenue", now.revenue(), before.revenue()),
        ("mean", now.mean(), before.mean()),
    ] {
        let want = 100.0 * (a - b) / b;
        let got = ranged["kpiChange"][key].as_f64().expect("change");
        assert!(
            (got - want).abs() < 0.01,
            "change of {key}: {got} vs {want}"
        );
    }

    // 7 bins and daily buckets over the same 7 days.
    let day = &result["rangedDay"];
    assert!(day["url"]
        .as_str()
        .unwrap_or_default()
        .contains("bins=7&bucket=day"));
    check_view(
        day,
        &clean,
        &week,
        7,
        Some("day"),
        "last 7 days, 7 bins, by day",
    );
    assert_eq!(day["timeseries"]["rows"].as_array().map(Vec::len), Some(7));

    // Auto refresh every 5 s reloads the panels by itself.
    let auto = &result["autoRefresh"];
    let secs = auto["seconds"].as_f64().expect("seconds");
    assert!(secs <= 7.5, "auto refresh after {secs} s");
    assert!(auto["url"]
        .as_str()
        .unwrap_or_default()
        .contains("refresh=5"));

    // CSV downloads equal the recomputation too.
    check_csv(&result["csv"], &clean, &all, "unfiltered");
    check_csv(&result["filteredCsv"], &clean, &by_click, "filtered");

    // Theme, responsive layout, empty and error states.
    assert_eq!(result["theme"], "dark");
    assert_eq!(result["narrowColumns"], 1, "one column on a narrow screen");
    for (panel, state) in result["emptyStates"].as_object().expect("states") {
        let want = if panel == "health" { "ready" } else { "empty" };
        assert_eq!(state, want, "panel {panel} for a category nobody has");
    }
    let err = &result["errorStates"];
    for (panel, state) in err["states"].as_object().expect("states") {
        let want = if panel == "health" { "ready" } else { "error" };
        assert_eq!(state, want, "panel {panel} for a range not on whole hours");
    }
    let banner = err["banner"].as_str().expect("error banner");
    assert!(
        banner.contains("from"),
        "banner names the parameter: {banner}"
    );

    for shot in [
        "dashboard.png",
        "dashboard-filtered.png",
        "dashboard-dark-narrow.png",
    ] {
        let len = std::fs::metadata(out_dir.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 10_000, "screenshot {shot}: {len} bytes");
    }
    println!("screenshots in {}", out_dir.display());
}

/// Compares every panel the page read with the recomputation for `f`
/// (20 histogram bins, automatic time bucket).
fn check_panels(page: &Value, clean: &CleanData, f: &Filter, what: &str) {
    check_view(page, clean, f, 20, None, what);
}

/// Like [`check_panels`] with `bins` histogram bins and an explicit time bucket.
fn check_view(
    page: &Value,
    clean: &CleanData,
    f: &Filter,
    n_bins: usize,
    explicit_bucket: Option<&str>,
    what: &str,
) {
    for (panel, state) in page["states"].as_object().expect("states") {
        assert_eq!(state, "ready", "{what}: panel {panel} is {state}");
    }
    assert_eq!(page["banner"], Value::Null, "{what}: error banner");
    let stats = clean.stats(f);
    check_kpis(&page["kpis"], &stats, page, clean, what);
    assert_eq!(
        page["kpis"]["dropped_rows"].as_u64(),
        Some(clean.rows_in - clean.rows_out),
        "{what}: dropped rows"
    );

    // Categories: total, average, sorted by revenue.
    let want = clean.categories(f);
    let got = page["categories"].as_array().expect("categories");
    assert_eq!(got.len(), want.len(), "{what}: categories {got:?}");
    for (g, (name, t)) in got.iter().zip(&want) {
        assert_eq!(g["category"].as_str(), Some(name.as_str()), "{what}: order");
        assert_eq!(
            g["orders"].as_u64(),
            Some(t.orders),
            "{what}: {name} orders"
        );
        money_eq(&g["revenue"], t.cents, &format!("{what}: {name} revenue"));
        close(
            &g["average"],
            t.cents as f64 / 100.0 / t.orders as f64,
            0.006,
            &format!("{what}: {name} average"),
        );
    }
    let by_avg = page["categoriesByAverage"].as_array().expect("averages");
    assert_eq!(by_avg.len(), want.len(), "{what}: average chart");

    group_eq(
        &page["status"],
        "status",
        &clean.group(f, |r| r.status.clone()),
        what,
    );
    group_eq(
        &page["payments"],
        "payment_method",
        &clean.group(f, |r| r.payment.clone()),
        what,
    );
    let want_cs: BTreeMap<(String, String), u64> = clean
        .group(f, |r| format!("{}\u{0}{}", r.category, r.status))
        .into_iter()
        .map(|(k, t)| {
            let (c, s) = k.split_once('\u{0}').expect("pair");
            ((c.to_string(), s.to_string()), t.orders)
        })
        .collect();
    let got_cs: BTreeMap<(String, String), u64> = page["categoryStatus"]
        .as_array()
        .expect("category-status")
        .iter()
        .map(|v| {
            (
                (
                    v["category"].as_str().unwrap_or_default().to_string(),
                    v["status"].as_str().unwrap_or_default().to_string(),
                ),
                v["orders"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(got_cs, want_cs, "{what}: status per category");

    // Top 10 users by revenue, ties by user id.
    let top = clean.top_users(f, 10);
    let got_top: Vec<(u64, u64, i64)> = page["topUsers"]
        .as_array()
        .expect("top users")
        .iter()
        .map(|v| {
            (
                v["user_id"].as_u64().unwrap_or_default(),
                v["orders"].as_u64().unwrap_or_default(),
                cents_of(&v["revenue"]),
            )
        })
        .collect();
    assert_eq!(got_top, top, "{what}: top users");

    // Histogram: 20 equal-width bins over [min, max], exact counts.
    let bins = page["histogram"].as_array().expect("histogram");
    assert_eq!(bins.len(), n_bins, "{what}: bins");
    money_eq(
        &bins[0]["lo"],
        stats.min,
        &format!("{what}: first bin edge"),
    );
    money_eq(
        &bins[n_bins - 1]["hi"],
        stats.max,
        &format!("{what}: last bin edge"),
    );
    // Equal widths (edges rounded to cents), contiguous bins, counts recomputed with those edges.
    let edges: Vec<i64> = bins
        .iter()
        .map(|b| cents_of(&b["lo"]))
        .chain(std::iter::once(stats.max))
        .collect();
    for (i, b) in bins.iter().enumerate() {
        assert_eq!(
            cents_of(&b["hi"]),
            edges[i + 1],
            "{what}: bin {i} is not contiguous"
        );
        let width = (edges[i + 1] - edges[i]) as f64;
        let exact = (stats.max - stats.min) as f64 / n_bins as f64;
        assert!(
            (width - exact).abs() <= 1.0,
            "{what}: bin {i} width {width} vs {exact} cents"
        );
    }
    let counts: Vec<u64> = bins
        .iter()
        .map(|b| b["orders"].as_u64().unwrap_or_default())
        .collect();
    assert_eq!(
        counts,
        clean.histogram(f, &edges),
        "{what}: histogram counts"
    );

    // Time series: the bucket auto picks, its counts, the UTC label.
    let ts = &page["timeseries"];
    assert_eq!(ts["timezone"], "UTC", "{what}: timezone");
    assert!(
        ts["timezoneText"]
            .as_str()
            .unwrap_or_default()
            .contains("UTC"),
        "{what}: timezone shown"
    );
    let bucket = ts["bucket"].as_str().expect("bucket");
    let want_bucket = explicit_bucket.unwrap_or_else(|| clean.auto_bucket(f));
    assert_eq!(bucket, want_bucket, "{what}: bucket");
    let want_ts = clean.timeseries(f, bucket);
    let got_ts: BTreeMap<String, (u64, i64)> = ts["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["orders"].as_u64() != Some(0))
        .map(|r| {
            (
                r["start"].as_str().unwrap_or_default().to_string(),
                (
                    r["orders"].as_u64().unwrap_or_default(),
                    cents_of(&r["revenue"]),
                ),
            )
        })
        .collect();
    assert_eq!(got_ts, want_ts, "{what}: time series by {bucket}");

    // Health: the cleaning report and what was loaded.
    let h = &page["health"];
    assert_eq!(
        h["rows_in"].as_u64(),
        Some(clean.rows_in),
        "{what}: rows in"
    );
    assert_eq!(
        h["rows_out"].as_u64(),
        Some(clean.rows_out),
        "{what}: rows out"
    );
    assert_eq!(
        h["rows_loaded"].as_u64(),
        Some(clean.rows.len() as u64),
        "{what}: rows loaded"
    );
    assert_eq!(h["dropped"], clean.dropped, "{what}: dropped per rule");
    assert_eq!(h["fixed"], clean.fixed, "{what}: fixed per fix");
    assert!(h["last_update"].is_string(), "{what}: last update {h}");

    // Drill-down table: first page, ordered by order id.
    let want_orders = clean.orders_page(f, 1, 50);
    let got_orders = page["orders"].as_array().expect("orders");
    assert_eq!(got_orders.len(), want_orders.len(), "{what}: orders page");
    for (g, w) in got_orders.iter().zip(&want_orders) {
        assert_eq!(g["order_id"].as_u64(), Some(w.order_id), "{what}: order id");
        assert_eq!(g["user_id"].as_u64(), Some(w.user_id), "{what}: user id");
        assert_eq!(g["category"].as_str(), Some(w.category.as_str()));
        assert_eq!(g["payment_method"].as_str(), Some(w.payment.as_str()));
        assert_eq!(g["status"].as_str(), Some(w.status.as_str()));
        assert_eq!(cents_of(&g["amount"]), w.cents, "{what}: amount");
        assert!(
            same_instant(g["timestamp"].as_str().unwrap_or_default(), &w.timestamp),
            "{what}: timestamp {} vs {}",
            g["timestamp"],
            w.timestamp
        );
    }
}

/// Compares KPI figures (`kpis` is a key -> number object) with `s`.
fn check_kpis(kpis: &Value, s: &Stats, page: &Value, _clean: &CleanData, what: &str) {
    assert_eq!(kpis["orders"].as_u64(), Some(s.orders), "{what}: orders");
    money_eq(&kpis["revenue"], s.cents, &format!("{what}: revenue"));
    close(&kpis["mean"], s.mean(), 0.006, &format!("{what}: mean"));
    money_eq(&kpis["min"], s.min, &format!("{what}: min"));
    money_eq(&kpis["max"], s.max, &format!("{what}: max"));
    let (pop, sample) = s.std();
    let got_std = kpis["std"].as_f64().expect("std");
    assert!(
        (got_std - pop).abs() < 0.006 || (got_std - sample).abs() < 0.006,
        "{what}: std {got_std} vs {pop} / {sample}"
    );
    let bound = page["quantileError"]
        .as_f64()
        .expect("quantile error bound");
    assert!(bound < 5.0, "{what}: quantile bound {bound} is too loose");
    for (key, p) in [("median", 0.5), ("p25", 0.25), ("p75", 0.75), ("p95", 0.95)] {
        let (lo, hi) = s.quantile_interval(p);
        let got = kpis[key].as_f64().expect("quantile");
        assert!(
            got >= lo - bound - 0.005 && got <= hi + bound + 0.005,
            "{what}: {key} {got} not within {bound} of [{lo}, {hi}]"
        );
    }
}

fn group_eq(page: &Value, key: &str, want: &BTreeMap<String, Tally>, what: &str) {
    let got: BTreeMap<String, (u64, i64)> = page
        .as_array()
        .expect("rows")
        .iter()
        .map(|v| {
            (
                v[key].as_str().unwrap_or_default().to_string(),
                (
                    v["orders"].as_u64().unwrap_or_default(),
                    cents_of(&v["revenue"]),
                ),
            )
        })
        .collect();
    let want: BTreeMap<String, (u64, i64)> = want
        .iter()
        .map(|(k, t)| (k.clone(), (t.orders, t.cents)))
        .collect();
    assert_eq!(got, want, "{what}: {key}");
}

/// Every downloaded CSV equals the recomputation.
fn check_csv(csv: &Value, clean: &CleanData, f: &Filter, what: &str) {
    for (id, file) in csv.as_object().expect("csv") {
        let text = file["text"].as_str().expect("csv text");
        let href = file["href"].as_str().unwrap_or_default();
        assert!(href.contains("format=csv"), "{what}: {id} link {href}");
        let table = parse_csv(text);
        assert!(!table.is_empty(), "{what}: {id} is empty");
        let what = format!("{what} CSV {id}");
        match id.as_str() {
            "csv-categories" => {
                let want = clean.categories(f);
                let rows = records(&table, &["category", "orders", "revenue"]);
                assert_eq!(rows.len(), want.len(), "{what}");
                for (r, (name, t)) in rows.iter().zip(&want) {
                    assert_eq!(&r[0], name, "{what}");
                    assert_eq!(r[1].parse::<u64>().ok(), Some(t.orders), "{what}");
                    assert_eq!(parse_cents(&r[2]), t.cents, "{what}");
                }
            }
            "csv-status" | "csv-payments" => {
                let key = if id == "csv-status" {
                    "status"
                } else {
                    "payment_method"
                };
                let want = if id == "csv-status" {
                    clean.group(f, |r| r.status.clone())
                } else {
                    clean.group(f, |r| r.payment.clone())
                };
                let got: BTreeMap<String, (u64, i64)> =
                    records(&table, &[key, "orders", "revenue"])
                        .into_iter()
                        .map(|r| {
                            (
                                r[0].clone(),
                                (r[1].parse().unwrap_or_default(), parse_cents(&r[2])),
                            )
                        })
                        .collect();
                let want: BTreeMap<String, (u64, i64)> = want
                    .into_iter()
                    .map(|(k, t)| (k, (t.orders, t.cents)))
                    .collect();
                assert_eq!(got, want, "{what}");
            }
            "csv-category-status" => {
                let got: BTreeSet<(String, String, u64)> =
                    records(&table, &["category", "status", "orders"])
                        .into_iter()
                        .map(|r| (r[0].clone(), r[1].clone(), r[2].parse().unwrap_or_default()))
                        .collect();
                let want: BTreeSet<(String, String, u64)> = clean
                    .group(f, |r| format!("{}\u{0}{}", r.category, r.status))
                    .into_iter()
                    .map(|(k, t)| {
                        let (c, s) = k.split_once('\u{0}').expect("pair");
                        (c.to_string(), s.to_string(), t.orders)
                    })
                    .collect();
                assert_eq!(got, want, "{what}");
            }
            "csv-top-users" => {
                let got: Vec<(u64, u64, i64)> = records(&table, &["user_id", "orders", "revenue"])
                    .into_iter()
                    .map(|r| {
                        (
                            r[0].parse().unwrap_or_default(),
                            r[1].parse().unwrap_or_default(),
                            parse_cents(&r[2]),
                        )
                    })
                    .collect();
                assert_eq!(got, clean.top_users(f, 10), "{what}");
            }
            "csv-histogram" => {
                let rows = records(&table, &["lo", "hi", "orders"]);
                let mut edges: Vec<i64> = rows.iter().map(|r| parse_cents(&r[0])).collect();
                edges.push(parse_cents(&rows.last().expect("bins")[1]));
                let got: Vec<u64> = rows
                    .iter()
                    .map(|r| r[2].parse().unwrap_or_default())
                    .collect();
                assert_eq!(got.len(), 20, "{what}");
                assert_eq!(got, clean.histogram(f, &edges), "{what}");
            }
            "csv-timeseries" => {
                let bucket = clean.auto_bucket(f);
                let got: BTreeMap<String, (u64, i64)> =
                    records(&table, &["start", "orders", "revenue"])
                        .into_iter()
                        .filter(|r| r[1] != "0")
                        .map(|r| {
                            (
                                r[0].clone(),
                                (r[1].parse().unwrap_or_default(), parse_cents(&r[2])),
                            )
                        })
                        .collect();
                assert_eq!(got, clean.timeseries(f, bucket), "{what}");
            }
            "csv-orders" => {
                // The table's CSV is the whole filtered result, not the page.
                assert!(href.contains("all=true"), "{what}: link {href}");
                assert_eq!(table[0], ORDER_FIELDS, "{what}: header");
                let want = clean.orders_page(f, 1, usize::MAX);
                assert!(want.len() > 50, "{what}: {} rows only", want.len());
                let got = records(&table, &ORDER_FIELDS);
                assert_eq!(got.len(), want.len(), "{what}: rows");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g[0].parse::<u64>().ok(), Some(w.order_id), "{what}");
                    assert_eq!(g[1].parse::<u64>().ok(), Some(w.user_id), "{what}");
                    assert_eq!(g[2], w.category, "{what}");
                    assert_eq!(parse_cents(&g[3]), w.cents, "{what}");
                    assert_eq!(g[4], w.payment, "{what}");
                    assert_eq!(g[5], w.status, "{what}");
                    assert_eq!(g[6], w.timestamp, "{what}");
                }
            }
            "csv-kpis" => {
                let s = clean.stats(f);
                let flat = table.concat();
                assert!(
                    flat.iter().any(|c| c == &s.orders.to_string()),
                    "{what}: no cell holds the order count {}: {text}",
                    s.orders
                );
            }
            other => panic!("{what}: unexpected download {other}"),
        }
    }
}
