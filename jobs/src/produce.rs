//! Produce: raw TSV lines into a message log, keyed by order id.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::record::{trim_terminator, HEADER};
use crate::store::{LogError, Message, MessageLog};

/// Errors of the produce stage.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// Reading the input failed.
    #[error("reading {input}: {source}")]
    Read {
        /// The input.
        input: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The transport refused the messages.
    #[error("sending to the message log: {0}")]
    Log(#[from] LogError),
}

/// What the produce stage did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceSummary {
    /// Messages delivered.
    pub records: u64,
    /// Header lines skipped.
    pub header_lines: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// Payload bytes delivered.
    pub bytes: u64,
}

/// The message key of a raw line: its first field (the order id).
pub fn key_of(line: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'\t', line).unwrap_or(line.len());
    &line[..end]
}

const BATCH: usize = 10_000;

/// Sends every data line of `input` (header and blank lines skipped, bytes kept
/// as they are, invalid UTF-8 included) and flushes the log.
pub fn produce<R: BufRead>(
    mut input: R,
    name: &str,
    log: &mut dyn MessageLog,
    mut progress: impl FnMut(u64),
) -> Result<ProduceSummary, ProduceError> {
    let mut summary = ProduceSummary::default();
    let mut batch = Vec::with_capacity(BATCH);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|source| ProduceError::Read {
                input: name.to_string(),
                source,
            })?;
        if n == 0 {
            break;
        }
        progress(n as u64);
        let value = trim_terminator(&line);
        if value.is_empty() {
            summary.blank_lines += 1;
            continue;
        }
        if value == HEADER.as_bytes() {
            summary.header_lines += 1;
            continue;
        }
        summary.records += 1;
        summary.bytes += value.len() as u64;
        batch.push(Message {
            key: key_of(value).to_vec(),
            value: value.to_vec(),
        });
        if batch.len() >= BATCH {
            log.append(&batch)?;
            batch.clear();
        }
    }
    log.append(&batch)?;
    log.flush()?;
    Ok(summary)
}
