//! The HDFS file store's one-step removal of an empty directory, on the real
//! NameNode: what a clean run uses to drop `_staging/` without taking another
//! shard's directory.

mod common;

use common::{service_env, unique_suffix};
use ecom_jobs::store::hdfs::HdfsFiles;
use ecom_jobs::store::FileStore;

#[test]
fn remove_empty_dir_removes_only_an_empty_directory() {
    let hdfs_url = service_env("HDFS_URL");
    let files = HdfsFiles::open(&hdfs_url, std::time::Duration::from_secs(30)).expect("hdfs");
    let base = format!("/empty-dir-{}", unique_suffix());
    let kept = format!("{base}/busy/_staging/0-2-run-attempt/part.parquet");
    files
        .write_atomic(&kept, b"staged")
        .expect("write staged file");

    // Holding a directory: refused, and the file is still there.
    let busy = format!("{base}/busy/_staging");
    assert!(!files.remove_empty_dir(&busy).expect("non-empty"));
    assert_eq!(files.read(&kept).expect("read kept"), b"staged");

    // Emptied: removed.
    files
        .remove_all(&format!("{busy}/0-2-run-attempt"))
        .expect("remove attempt");
    assert!(files.exists(&busy).expect("exists"));
    assert!(files.remove_empty_dir(&busy).expect("empty"));
    assert!(!files.exists(&busy).expect("exists after"));

    // Missing: nothing to do.
    assert!(!files.remove_empty_dir(&busy).expect("missing"));
    files.remove_all(&base).expect("clean up");
}
