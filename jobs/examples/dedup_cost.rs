//! The cost of the cross-batch duplicate check against the number of batches before it
//! (`make bench-dedup`, scripts/bench-dedup.sh).
//!
//! Drives the streaming stage's check ([`StreamIds`]: ids of recent runs in memory, older
//! runs by their id ranges, the fact table on the harness's HBase for ids inside an older
//! range) through `--batches` micro-batches, beside its peer, the batch cleaner's check
//! ([`CommittedRuns`]: the order ids of every committed run whose id range overlaps, read from
//! its Parquet file). Each batch re-sends a share of ids kept by random earlier batches (the
//! duplicates a producer retry makes). Two id orders: ids that grow over time (generated
//! ones, most shops') and ids in no order. Prints the mean time of the first and last ten
//! batches of each, and their ratio.
//!
//! `dedup_cost THRIFT_HOST:PORT [--batches N] [--batch-rows N] [--memory-ids N] [--resend F]`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecom_jobs::incremental::{CommittedRuns, IdRange, KnownIds, RunManifest, Shard};
use ecom_jobs::load::FAMILIES;
use ecom_jobs::store::files::LocalFiles;
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::{FileStore, TableStore};
use ecom_jobs::stream::StreamIds;
use polars::prelude::*;

struct Args {
    thrift: String,
    batches: usize,
    batch_rows: usize,
    memory_ids: usize,
    resend: f64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        thrift: String::new(),
        batches: 520,
        batch_rows: 5_000,
        memory_ids: 2_000_000,
        resend: 0.005,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--batches" => {
                a.batches = value("--batches")?
                    .parse()
                    .map_err(|e| format!("--batches: {e}"))?
            }
            "--batch-rows" => {
                a.batch_rows = value("--batch-rows")?
                    .parse()
                    .map_err(|e| format!("--batch-rows: {e}"))?
            }
            "--memory-ids" => {
                a.memory_ids = value("--memory-ids")?
                    .parse()
                    .map_err(|e| format!("--memory-ids: {e}"))?
            }
            "--resend" => {
                a.resend = value("--resend")?
                    .parse()
                    .map_err(|e| format!("--resend: {e}"))?
            }
            other if a.thrift.is_empty() && !other.starts_with("--") => {
                a.thrift = other.to_string()
            }
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    if a.thrift.is_empty() || a.batches < 20 || a.batch_rows == 0 {
        return Err("usage: dedup_cost THRIFT_HOST:PORT [--batches N>=20] [--batch-rows N>0] [--memory-ids N] [--resend F]".into());
    }
    Ok(a)
}

/// A small deterministic generator (xorshift), so both checks see the same batches.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The ids of every batch: new ones (growing, or in no order) and re-sent ones.
fn batches(a: &Args, growing: bool) -> Vec<Vec<String>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out: Vec<Vec<String>> = Vec::with_capacity(a.batches);
    let resent = (a.batch_rows as f64 * a.resend).round() as usize;
    for b in 0..a.batches {
        let mut ids: Vec<String> = (0..a.batch_rows - resent.min(a.batch_rows))
            .map(|i| {
                if growing {
                    (100_000_000 + b * a.batch_rows + i).to_string()
                } else {
                    (100_000_000 + rng.next() % 800_000_000).to_string()
                }
            })
            .collect();
        if b > 0 {
            for _ in 0..resent {
                let earlier = &out[(rng.next() % b as u64) as usize];
                ids.push(earlier[(rng.next() % earlier.len() as u64) as usize].clone());
            }
        }
        out.push(ids);
    }
    out
}

/// Runs `check` over the batches; each batch's ids, once checked, are committed. Returns the
/// time of each check.
fn run(
    batches: &[Vec<String>],
    known: &mut dyn KnownIds,
    mut commit: impl FnMut(usize, &StringChunked, Option<&IdRange>),
) -> Result<Vec<Duration>, String> {
    let mut times = Vec::with_capacity(batches.len());
    for (i, ids) in batches.iter().enumerate() {
        let chunk =
            StringChunked::from_iter_values("order_id".into(), ids.iter().map(String::as_str));
        let range = IdRange::of(chunk.iter()).ok_or("an empty batch")?;
        let started = Instant::now();
        let seen = known.kept(&chunk, &range).map_err(|e| e.to_string())?;
        times.push(started.elapsed());
        let keep: BooleanChunked = chunk
            .iter()
            .map(|id| Some(!id.is_some_and(|id| seen.contains(id))))
            .collect();
        let kept = chunk.filter(&keep).map_err(|e| e.to_string())?;
        let kept_range = IdRange::of(kept.iter());
        known.committed(&kept, kept_range.as_ref());
        commit(i, &kept, kept_range.as_ref());
    }
    Ok(times)
}

fn mean_ms(times: &[Duration]) -> f64 {
    times.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / times.len() as f64
}

fn main() -> Result<(), String> {
    let a = args()?;
    let tables = HbaseTables::new(HbaseConfig::new(a.thrift.clone()));
    let name = format!("bench_dedup_{}", std::process::id());
    tables
        .ensure_table(&name, &FAMILIES)
        .map_err(|e| e.to_string())?;
    let table = tables.table(&name).map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(&name);
    println!(
        "{} batches of {} ids, {:.1} % re-sent from earlier batches, {} ids in memory at most",
        a.batches,
        a.batch_rows,
        a.resend * 100.0,
        a.memory_ids
    );
    let middle = a.batches / 2;
    println!(
        "| ids | check | batches 1-10 ms | batches {}-{} ms | batches {}-{} ms | last / first |",
        middle + 1,
        middle + 10,
        a.batches - 9,
        a.batches
    );
    println!("|---|---|---:|---:|---:|---:|");
    for growing in [true, false] {
        let order = if growing { "growing" } else { "in no order" };
        let batches = batches(&a, growing);
        // The streaming stage's check (the fact table stays empty: a lookup costs the same
        // whether the row is there or not).
        let mut stream = StreamIds::new(Arc::clone(&table), 16, &[], a.memory_ids);
        let times = run(&batches, &mut stream, |_, _, _| {})?;
        report(order, "stream (memory + ranges + HBase)", &times);
        // The batch cleaner's check: one Parquet file of kept ids per run.
        let files = LocalFiles::new(dir.join(order.replace(' ', "-")));
        let mut runs: Vec<RunManifest> = Vec::new();
        let mut times = Vec::with_capacity(batches.len());
        for (i, ids) in batches.iter().enumerate() {
            let mut known = CommittedRuns {
                files: &files,
                runs: &runs,
            };
            let mut committed = None;
            let one = run(std::slice::from_ref(ids), &mut known, |_, kept, range| {
                let path = format!("run-{i}.parquet");
                let mut bytes = Vec::new();
                let written = DataFrame::new(kept.len(), vec![kept.clone().into_series().into()])
                    .and_then(|mut df| ParquetWriter::new(&mut bytes).finish(&mut df))
                    .map_err(|e| e.to_string())
                    .and_then(|_| {
                        files
                            .write_files(&[], &mut std::iter::once((path.clone(), bytes.clone())))
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = written {
                    eprintln!("dedup_cost: writing {path}: {e}");
                    std::process::exit(1);
                }
                committed = Some(RunManifest {
                    run: format!("r{i}"),
                    shard: Shard::default(),
                    raw_files: Vec::new(),
                    parquet_files: vec![path],
                    partitions: BTreeMap::new(),
                    report: String::new(),
                    rows_out: kept.len() as u64,
                    order_ids: range.cloned(),
                });
            })?;
            times.extend(one);
            runs.extend(committed);
        }
        report(order, "batch clean (Parquet of overlapping runs)", &times);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One row of the table: the mean check time of the first, middle and last ten batches.
fn report(order: &str, check: &str, times: &[Duration]) {
    let n = times.len();
    let (first, middle, last) = (
        mean_ms(&times[..10]),
        mean_ms(&times[n / 2..n / 2 + 10]),
        mean_ms(&times[n - 10..]),
    );
    println!(
        "| {order} | {check} | {first:.3} | {middle:.3} | {last:.3} | {:.2}x |",
        last / first.max(1e-9)
    );
}
