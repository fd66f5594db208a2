//! Produce: raw TSV lines into a message log, keyed by order id.
//!
//! A line whose record (key and value) is larger than the log accepts
//! ([`MessageLog::max_record_bytes`], Kafka's `message.max.bytes`) is skipped, logged with
//! its line number and counted, instead of failing the run: the other records are sent
//! once. Only the first bytes of such a line are held in memory.

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
    /// The transport refused the messages (not a `source`: the text already
    /// carries it, and a chain would print it twice).
    #[error("sending to the message log: {0}")]
    Log(LogError),
}

impl From<LogError> for ProduceError {
    fn from(e: LogError) -> Self {
        ProduceError::Log(e)
    }
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
    /// Records skipped because they are larger than the log accepts.
    #[serde(default)]
    pub oversize_records: u64,
    /// Bytes of those records (their whole lines).
    #[serde(default)]
    pub oversize_bytes: u64,
}

/// Oversize lines logged one by one at most; the rest are only counted.
const OVERSIZE_LOGGED: u64 = 10;

/// Reads one line (through its `\n`) into `buf`, keeping at most `cap` bytes of it and
/// consuming the rest; returns the bytes consumed (0 at the end) and whether it was cut.
fn read_line_capped<R: BufRead>(
    input: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<(usize, bool)> {
    let (mut consumed, mut cut) = (0usize, false);
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok((consumed, cut));
        }
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = cap.saturating_sub(buf.len()).min(take);
        buf.extend_from_slice(&chunk[..room]);
        cut |= room < take;
        input.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, cut));
        }
    }
}

/// The message key of a raw line: its first field (the order id).
pub fn key_of(line: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'\t', line).unwrap_or(line.len());
    &line[..end]
}

const BATCH: usize = 10_000;

/// How fast records are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pacing {
    /// At most this many records per second.
    pub rate: Option<f64>,
    /// Replay the records' own timestamps, this many times faster than real time.
    pub replay: Option<f64>,
}

/// Seconds since 1970 of a valid `YYYY-MM-DD HH:MM:SS` text.
pub fn epoch_seconds(ts: &[u8]) -> Option<i64> {
    crate::calendar::seconds_of(ts)
}

/// Sends every data line of `input` (header and blank lines skipped, bytes kept
/// as they are, invalid UTF-8 included) and flushes the log.
pub fn produce<R: BufRead>(
    input: R,
    name: &str,
    log: &mut dyn MessageLog,
    progress: impl FnMut(u64),
) -> Result<ProduceSummary, ProduceError> {
    produce_paced(input, name, log, Pacing::default(), progress)
}

/// [`produce`] at a bounded rate or replaying the records' timestamps.
pub fn produce_paced<R: BufRead>(
    mut input: R,
    name: &str,
    log: &mut dyn MessageLog,
    pacing: Pacing,
    mut progress: impl FnMut(u64),
) -> Result<ProduceSummary, ProduceError> {
    let mut summary = ProduceSummary::default();
    // The messages of a batch are kept between batches and refilled in place:
    // each line is read straight into its message, with no allocation per record.
    let mut batch: Vec<Message> = Vec::with_capacity(BATCH);
    let mut used = 0;
    let start = std::time::Instant::now();
    let mut first_ts: Option<i64> = None;
    // The largest record (key and value) the log takes: a longer line (its value, plus a
    // `\r\n` not trimmed yet) cannot be one, and is not read further.
    let limit = log.max_record_bytes();
    let cap = limit.map_or(usize::MAX, |max| max.saturating_add(2));
    let mut line_no = 0u64;
    loop {
        if used == batch.len() {
            batch.push(Message {
                key: Vec::new(),
                value: Vec::new(),
            });
        }
        let message = &mut batch[used];
        message.value.clear();
        let (n, cut) = read_line_capped(&mut input, &mut message.value, cap).map_err(|source| {
            ProduceError::Read {
                input: name.to_string(),
                source,
            }
        })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        progress(n as u64);
        let len = trim_terminator(&message.value).len();
        message.value.truncate(len);
        let value = &message.value[..];
        if value.is_empty() {
            summary.blank_lines += 1;
            continue;
        }
        if value == HEADER.as_bytes() {
            summary.header_lines += 1;
            continue;
        }
        if let Some(max) = limit {
            let record = key_of(value).len() + value.len();
            if cut || record > max {
                summary.oversize_records += 1;
                summary.oversize_bytes += n as u64;
                if summary.oversize_records <= OVERSIZE_LOGGED {
                    tracing::warn!(
                        input = name,
                        line = line_no,
                        bytes = n,
                        max_record_bytes = max,
                        "skipping a record larger than the log accepts (message.max.bytes)"
                    );
                }
                continue;
            }
        }
        let due = match (pacing.rate, pacing.replay) {
            (Some(rate), _) if rate > 0.0 => Some(summary.records as f64 / rate),
            (_, Some(speed)) if speed > 0.0 => value
                .rsplit(|b| *b == b'\t')
                .next()
                .and_then(epoch_seconds)
                .map(|ts| (ts - *first_ts.get_or_insert(ts)).max(0) as f64 / speed),
            _ => None,
        };
        summary.records += 1;
        summary.bytes += value.len() as u64;
        message.key.clear();
        message.key.extend_from_slice(key_of(&message.value));
        if let Some(due) = due {
            let wait = due - start.elapsed().as_secs_f64();
            if wait > 0.0 {
                // Everything before this record goes out before the pause.
                log.append(&batch[..used])?;
                batch.swap(0, used);
                used = 0;
                std::thread::sleep(std::time::Duration::from_secs_f64(wait));
            }
        }
        used += 1;
        if used >= BATCH {
            log.append(&batch[..used])?;
            used = 0;
        }
    }
    log.append(&batch[..used])?;
    log.flush()?;
    if summary.oversize_records > OVERSIZE_LOGGED {
        tracing::warn!(
            input = name,
            skipped = summary.oversize_records,
            "records larger than the log accepts were skipped (only the first were logged)"
        );
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps every appended message and counts appends and flushes.
    #[derive(Default)]
    struct Recorder {
        messages: Vec<Message>,
        appends: usize,
        flushes: usize,
        /// The largest record it takes (`None`: any).
        max: Option<usize>,
    }

    impl MessageLog for Recorder {
        fn partitions(&self) -> u32 {
            1
        }
        fn append(&mut self, messages: &[Message]) -> Result<(), LogError> {
            self.appends += 1;
            self.messages.extend_from_slice(messages);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), LogError> {
            self.flushes += 1;
            Ok(())
        }
        fn read(&mut self, _: u32, _: u64, _: usize) -> Result<Vec<(u64, Message)>, LogError> {
            Ok(Vec::new())
        }
        fn end_offset(&self, _: u32) -> Result<u64, LogError> {
            Ok(self.messages.len() as u64)
        }
        fn max_record_bytes(&self) -> Option<usize> {
            self.max
        }
    }

    fn line(i: usize) -> String {
        // Lengths vary, so a refilled message that kept old bytes would show.
        let pad = "x".repeat(i % 7);
        format!(
            "{}\t{}\tBooks{pad}\t1.00\tPayPal\tShipped\t2024-01-01 00:00:{:02}",
            10_000 + i * 37,
            i,
            i % 60
        )
    }

    #[test]
    fn every_line_is_sent_once_with_its_order_id_as_key() {
        let rows = 2 * BATCH + 3;
        let mut input = format!("{HEADER}\n");
        for i in 0..rows {
            input.push_str(&line(i));
            input.push_str(if i % 5 == 0 { "\r\n" } else { "\n" });
            if i == 7 {
                input.push('\n');
            }
        }
        input.push_str("\r\n");
        let mut log = Recorder::default();
        let mut seen = 0;
        let summary = produce(input.as_bytes(), "test", &mut log, |n| seen += n).expect("produce");
        assert_eq!(seen, input.len() as u64);
        assert_eq!(summary.records, rows as u64);
        assert_eq!(summary.header_lines, 1);
        assert_eq!(summary.blank_lines, 2);
        assert_eq!(log.flushes, 1);
        assert_eq!(log.messages.len(), rows);
        for (i, m) in log.messages.iter().enumerate() {
            assert_eq!(m.value, line(i).as_bytes(), "record {i}");
            assert_eq!(
                m.key,
                (10_000 + i * 37).to_string().as_bytes(),
                "record {i}"
            );
        }
        assert_eq!(
            summary.bytes,
            (0..rows).map(|i| line(i).len() as u64).sum::<u64>()
        );
    }

    #[test]
    fn a_paced_run_sends_the_same_records_in_order() {
        let rows = 12;
        let input: String = (0..rows).map(|i| line(i) + "\n").collect();
        let mut log = Recorder::default();
        let rate = 200.0;
        let pacing = Pacing {
            rate: Some(rate),
            replay: None,
        };
        let started = std::time::Instant::now();
        let summary =
            produce_paced(input.as_bytes(), "test", &mut log, pacing, |_| {}).expect("produce");
        // Never faster than the rate: the last record is due (rows - 1) / rate after the start.
        // (A slow machine only makes the run longer, so this bound cannot fail from load.)
        let least = (rows - 1) as f64 / rate;
        assert!(
            started.elapsed().as_secs_f64() >= least,
            "faster than {rate}/s"
        );
        assert_eq!(summary.records, rows as u64);
        let values: Vec<&[u8]> = log.messages.iter().map(|m| &m.value[..]).collect();
        let expected: Vec<String> = (0..rows).map(line).collect();
        let expected: Vec<&[u8]> = expected.iter().map(|l| l.as_bytes()).collect();
        assert_eq!(values, expected);
        // Records go out before the first pause at the latest, not all at the end.
        assert!(log.appends >= 2, "paced records go out before a pause");
    }

    #[test]
    fn epoch_of_timestamps() {
        assert_eq!(epoch_seconds(b"1970-01-01 00:00:00"), Some(0));
        assert_eq!(epoch_seconds(b"2024-01-01 00:00:00"), Some(1_704_067_200));
        assert_eq!(epoch_seconds(b"2024-03-01 01:02:03"), Some(1_709_254_923));
        assert_eq!(epoch_seconds(b"garbage"), None);
    }

    #[test]
    fn records_over_the_limit_are_skipped_and_counted_and_the_rest_sent_once() {
        // A record is its key (the order id) and its line: `7\t` + padding.
        let sized = |id: u32, record: usize| {
            let key = id.to_string();
            let pad = record - 2 * key.len() - 1;
            format!("{key}\t{}", "x".repeat(pad))
        };
        let max = 100;
        let lines = [
            sized(1, 100),                  // exactly the limit: sent
            sized(2, 101),                  // one byte over: skipped
            sized(3, 10),                   // sent
            sized(4, 100_000),              // far over: skipped, read no further than the limit
            sized(5, 99),                   // sent
            format!("{}\r", sized(6, 100)), // the limit, with a CRLF ending: sent
        ];
        let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let mut log = Recorder {
            max: Some(max),
            ..Recorder::default()
        };
        let mut seen = 0;
        let s = produce(input.as_bytes(), "big.tsv", &mut log, |n| seen += n).expect("produce");
        assert_eq!(seen, input.len() as u64, "every byte is consumed");
        assert_eq!((s.records, s.oversize_records), (4, 2));
        assert_eq!(
            s.oversize_bytes,
            (lines[1].len() + 1 + lines[3].len() + 1) as u64
        );
        let keys: Vec<&[u8]> = log.messages.iter().map(|m| &m.key[..]).collect();
        assert_eq!(keys, [&b"1"[..], b"3", b"5", b"6"]);
        for m in &log.messages {
            assert!(m.key.len() + m.value.len() <= max, "{m:?}");
        }
        assert_eq!(log.messages[0].value, lines[0].as_bytes());
        assert_eq!(log.flushes, 1);

        // Without a limit every line goes.
        let mut any = Recorder::default();
        let s = produce(input.as_bytes(), "big.tsv", &mut any, |_| {}).expect("produce");
        assert_eq!((s.records, s.oversize_records), (6, 0));
    }

    #[test]
    fn capped_lines_consume_everything_and_keep_the_cap() {
        let data = b"abcdefgh\nij\n\nklm";
        let mut input = std::io::BufReader::with_capacity(3, &data[..]);
        let mut got = Vec::new();
        loop {
            let mut buf = Vec::new();
            let (n, cut) = read_line_capped(&mut input, &mut buf, 4).expect("read");
            if n == 0 {
                break;
            }
            got.push((n, cut, String::from_utf8(buf).expect("utf8")));
        }
        assert_eq!(
            got,
            [
                (9, true, "abcd".to_string()),
                (3, false, "ij\n".to_string()),
                (1, false, "\n".to_string()),
                (3, false, "klm".to_string()),
            ]
        );
    }
}
