//! The HBase client over a Thrift server started with `-f -c` (framed
//! transport, compact protocol), the harness's second server on the same HBase
//! (`HBASE_THRIFT_FRAMED`):
//! - `ecom load` through it writes every clean row, read back field by field
//!   through the default (buffered, binary) server; its batches are larger
//!   than the server's 2 MB frame limit, so this also proves they are split;
//! - a client whose transport or protocol does not match the server's fails
//!   naming the address and what to check: at once when the server hangs up on
//!   every new connection, within its deadline when it waits instead.
//!
//! Needs the services (`make services-up`, `eval "$(scripts/services.sh env)"`)
//! and `ECOM_BIN`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables, ThriftProtocol, ThriftTransport};
use ecom_jobs::store::TableStore;

/// `ecom generate` of `rows` rows, all at one instant, into a local raw directory, cleaned by
/// `ecom clean` into the run's clean directory on HDFS (one committed run):
/// the clean directory's URL and its rows_out.
fn clean_dir(run: &Run, rows: u64) -> (String, u64) {
    let n = rows.to_string();
    // One instant: one date partition, so a load batch can hold every row.
    let (input, _) = run.generate(&[
        "--rows",
        &n,
        "--seed",
        "11",
        "--dirty-rate",
        "0.05",
        "--timestamps",
        "constant",
    ]);
    let path = |name: &str| {
        run.tmp
            .path()
            .join(name)
            .to_str()
            .expect("utf8")
            .to_string()
    };
    std::fs::create_dir(path("raw")).expect("raw dir");
    std::fs::rename(&input, path("raw/part-0.tsv")).expect("move into raw");
    let clean = run.clean_url();
    let v = ecom_json(&["clean", "--input", &path("raw"), "--output", &clean]);
    let rows_out = v["report"]["rows_out"].as_u64().expect("rows_out");
    assert!(rows_out > rows * 9 / 10, "{v}");
    (clean, rows_out)
}

/// `ecom load` of `clean` into `table` through the Thrift server at `address`,
/// then `extra`.
fn load_args<'a>(
    clean: &'a str,
    table: &'a str,
    address: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let head = [
        "load",
        "--input",
        clean,
        "--table",
        table,
        "--hbase-thrift",
        address,
    ];
    [&head[..], extra].concat()
}

fn framed_compact(address: String) -> HbaseTables {
    HbaseTables::new(
        HbaseConfig::new(address).with_wire(ThriftTransport::Framed, ThriftProtocol::Compact),
    )
}

#[test]
fn load_through_a_framed_compact_server_writes_every_row() {
    let run = Run::new("framed");
    let (clean, rows_out) = clean_dir(&run, 30_000);
    let framed = service_env("HBASE_THRIFT_FRAMED");
    // 20,000 rows a batch: about 4.8 MB of compact Thrift, above the server's
    // 2 MB frame limit, so only split calls get through.
    let v = ecom_json(&load_args(
        &clean,
        &run.table,
        &framed,
        &[
            "--hbase-transport",
            "framed",
            "--hbase-protocol",
            "compact",
            "--batch-rows",
            "20000",
        ],
    ));
    assert_eq!(v["rows"], rows_out, "{v}");

    // Read back through the default server: the same rows, and every cell the
    // framed client reads equals the buffered client's.
    assert_eq!(run.fact_row_count(), rows_out);
    let buffered = run.hbase().table(&run.table).expect("table (buffered)");
    let compact = framed_compact(framed)
        .table(&run.table)
        .expect("table (framed)");
    let keys: Vec<Vec<u8>> = buffered
        .scan(b"", b"", 2500)
        .expect("scan")
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(keys.len(), 2500);
    let a = buffered.get_many(&keys).expect("get_many (buffered)");
    let b = compact.get_many(&keys).expect("get_many (framed)");
    for (key, (a, b)) in keys.iter().zip(a.iter().zip(&b)) {
        let (a, b) = (a.as_ref().expect("row"), b.as_ref().expect("row"));
        assert_eq!(a.cells.len(), 6, "{}", String::from_utf8_lossy(key));
        assert_eq!(a, b, "{}", String::from_utf8_lossy(key));
    }
}

#[test]
fn a_client_of_another_wire_fails_naming_the_address_and_the_settings() {
    let run = Run::new("wire");
    let (clean, _) = clean_dir(&run, 2_000);
    let framed = service_env("HBASE_THRIFT_FRAMED");
    let buffered = service_env("HBASE_THRIFT");
    // (server, client wire flags, what the error names, whether the server hangs up).
    let cases: [(&str, &[&str], &str, bool); 3] = [
        // The server's defaults against the framed server: it hangs up on every new
        // connection, so the load stops at once, with no retry of the stage.
        (
            &framed,
            &[],
            "buffered transport and the binary protocol",
            true,
        ),
        // The compact protocol against the default server: it hangs up too.
        (
            &buffered,
            &["--hbase-protocol", "compact"],
            "buffered transport and the compact protocol",
            true,
        ),
        // Framed and compact against the default server: it waits for the rest of a
        // message it misreads, so each call times out and the load ends at its deadline.
        (
            &buffered,
            &["--hbase-transport", "framed", "--hbase-protocol", "compact"],
            "framed transport and the compact protocol",
            false,
        ),
    ];
    for (address, wire, expect, hangs_up) in cases {
        // The hang-up cases keep the defaults: a 30-minute deadline and 3 attempts.
        let limits: &[&str] = if hangs_up {
            &[]
        } else {
            &[
                "--deadline",
                "12s",
                "--call-timeout",
                "3s",
                "--attempts",
                "1",
            ]
        };
        let args = load_args(&clean, &run.table, address, &[limits, wire].concat());
        let started = Instant::now();
        let out = ecom_cmd(&args).output().expect("run ecom");
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{address} {wire:?}: load succeeded");
        assert!(
            took < Duration::from_secs(40),
            "{address} {wire:?}: took {took:?}"
        );
        assert!(
            stderr.contains(address) && stderr.contains(expect),
            "{address} {wire:?}: the error names neither the address nor the settings:\n{stderr}"
        );
        assert_eq!(
            stderr.contains("new connections in a row"),
            hangs_up,
            "{address} {wire:?}:\n{stderr}"
        );
        if hangs_up {
            // Permanent: one attempt of the stage, not three.
            assert!(
                stderr.contains("(permanent error, not retried)"),
                "{address} {wire:?}: retried:\n{stderr}"
            );
        }
    }
}
