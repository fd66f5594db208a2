//! `ecom purge` on the real HDFS and HBase: what the operator's cleanup Job runs.

mod common;

use common::{ecom_cmd, ecom_json, seed_tables, service_env, unique_suffix};
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::hdfs::HdfsFiles;
use ecom_jobs::store::{FileStore, TableStore};

#[test]
fn purge_deletes_paths_and_tables_and_is_idempotent() {
    let hdfs_url = service_env("HDFS_URL");
    let thrift = service_env("HBASE_THRIFT");
    let suffix = unique_suffix();
    let base = format!("/purge-{suffix}");
    let files = HdfsFiles::open(&hdfs_url, std::time::Duration::from_secs(30)).expect("hdfs");
    files
        .write_atomic(&format!("{base}/raw/a.tsv"), b"1\n")
        .expect("write raw");
    files
        .write_atomic(&format!("{base}/clean/part.parquet"), b"x")
        .expect("write clean");
    let keep = format!("/purge-keep-{suffix}/k.tsv");
    files.write_atomic(&keep, b"keep").expect("write kept");

    let table = format!("purge_{suffix}");
    let tables = HbaseTables::new(HbaseConfig::new(thrift.clone()));
    seed_tables(&tables, &table);

    let raw = format!("{hdfs_url}{base}/raw");
    let clean = format!("{hdfs_url}{base}/clean");
    let args = [
        "purge",
        "--path",
        &raw,
        "--path",
        &clean,
        "--table",
        &table,
        "--hbase-thrift",
        &thrift,
    ];
    let summary = ecom_json(&args);
    assert_eq!(
        summary["tables"].as_array().map(Vec::len),
        Some(2),
        "{summary}"
    );
    assert!(!files.exists(&format!("{base}/raw/a.tsv")).expect("exists"));
    assert!(!files
        .exists(&format!("{base}/clean/part.parquet"))
        .expect("exists"));
    assert!(
        files.exists(&keep).expect("exists"),
        "other paths are left alone"
    );
    for name in [table.clone(), format!("{table}_agg")] {
        assert!(tables.table(&name).is_err(), "{name} was dropped");
    }
    // A retried cleanup Job finds nothing left and still succeeds.
    ecom_json(&args);

    // The filesystem root is refused before anything is touched.
    let root = format!("{hdfs_url}/");
    let out = ecom_cmd(&["purge", "--path", &root])
        .output()
        .expect("run ecom");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("root"));
    assert!(files.exists(&keep).expect("exists"));
}
