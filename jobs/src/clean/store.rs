//! Cleaning files held in a [`FileStore`](crate::store::FileStore), and in memory.

use std::io::Write;

use super::{CleanConfig, CleanError, Cleaner, QualityReport};

/// Errors of cleaning files held in a [`FileStore`].
#[derive(Debug, thiserror::Error)]
pub enum CleanStoreError {
    /// Cleaning failed.
    #[error(transparent)]
    Clean(#[from] CleanError),
    /// The file store failed.
    #[error("file store: {0}")]
    Files(#[from] crate::store::FileStoreError),
    /// The report could not be encoded.
    #[error("encoding the quality report: {0}")]
    Report(#[from] serde_json::Error),
}

/// Name of the Parquet file a clean run writes in its output directory.
pub const CLEAN_PART: &str = "part-00000.parquet";
/// Name of the quality report beside it.
pub const REPORT_FILE: &str = "report.json";

/// Cleans every raw file under `raw_dir` into `clean_dir/part-00000.parquet` and
/// `clean_dir/report.json`, each written atomically.
pub fn clean_store(
    files: &dyn crate::store::FileStore,
    raw_dir: &str,
    clean_dir: &str,
    cfg: CleanConfig,
    mut progress: impl FnMut(u64),
) -> Result<QualityReport, CleanStoreError> {
    let out_path = format!("{clean_dir}/{CLEAN_PART}");
    let mut inputs = Vec::new();
    for entry in files.list(raw_dir)? {
        inputs.push((files.describe(&entry.path), files.read(&entry.path)?));
    }
    let (report, parquet) = clean_to_memory(
        cfg,
        inputs.iter().map(|(n, d)| (n.clone(), d.as_slice())),
        &files.describe(&out_path),
        &mut progress,
    )?;
    files.write_atomic(&out_path, &parquet)?;
    files.write_atomic(
        &format!("{clean_dir}/{REPORT_FILE}"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
}

/// An in-memory Parquet destination whose bytes can be taken after `finish`.
#[derive(Clone, Default)]
pub struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuf {
    /// Takes the bytes written so far.
    pub fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("parquet buffer lock poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Cleans `inputs` (name, bytes) into in-memory Parquet; returns the report and the bytes.
pub fn clean_to_memory<'a, I>(
    cfg: CleanConfig,
    inputs: I,
    output: &str,
    mut progress: impl FnMut(u64),
) -> Result<(QualityReport, Vec<u8>), CleanError>
where
    I: IntoIterator<Item = (String, &'a [u8])>,
{
    let buf = SharedBuf::default();
    let mut cleaner = Cleaner::new(cfg, buf.clone(), output)?;
    for (name, data) in inputs {
        cleaner.clean_reader(data, &name, &mut progress)?;
    }
    let report = cleaner.finish()?;
    Ok((report, buf.take()))
}
