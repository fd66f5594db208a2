//! Cleaning in memory: Parquet bytes and the report, for tests and benchmarks.

use std::io::Write;

use super::{CleanConfig, CleanError, Cleaner, QualityReport};

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
