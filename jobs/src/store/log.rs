//! The message transport seam and its embedded backend: a partitioned,
//! append-only local log (one file per partition), the stand-in for a Kafka topic.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors of a message log, naming the log file.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An I/O operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The log file or directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A remote log (Kafka) failed; the error names its address.
    #[error("{0}")]
    Remote(#[source] Box<super::kafka::KafkaLogError>),
    /// A partition that the log does not have.
    #[error("partition {partition} does not exist (the log has {partitions})")]
    NoPartition {
        /// Requested partition.
        partition: u32,
        /// Partitions of the log.
        partitions: u32,
    },
    /// The next record of a partition is not at the offset expected: the records between
    /// were deleted (retention, or records deleted on purpose) before they were read.
    #[error(
        "partition {partition}: expected offset {expected}, found {found}: the {} records \
         before it were deleted (by retention?) before they were read; nothing was \
         written past offset {expected} (--skip-offset-gaps skips and counts them)",
        found - expected
    )]
    OffsetGap {
        /// The partition.
        partition: u32,
        /// The offset expected next.
        expected: u64,
        /// The offset found (of the next record, or the partition's first one).
        found: u64,
    },
    /// The partition ends before the offset to resume from: the topic was recreated or
    /// truncated since the committed records were read.
    #[error(
        "partition {partition}: the committed records reach offset {expected} but the \
         partition ends at {end}: was the topic recreated or truncated?"
    )]
    OffsetBeyondEnd {
        /// The partition.
        partition: u32,
        /// The offset expected next.
        expected: u64,
        /// The partition's end offset.
        end: u64,
    },
}

impl LogError {
    /// Whether another attempt may succeed: by the I/O or Kafka error; a
    /// missing partition (a topic still being created) leaves it to the attempt.
    pub fn class(&self) -> Option<crate::retry::ErrorClass> {
        match self {
            LogError::Io { source, .. } => crate::retry::io_class(source),
            LogError::Remote(e) => e.class(),
            LogError::NoPartition { .. } => None,
            // Deleted records never come back.
            LogError::OffsetGap { .. } | LogError::OffsetBeyondEnd { .. } => {
                Some(crate::retry::ErrorClass::Permanent)
            }
        }
    }
}

/// Records lost to gaps in a partition's offsets, when gaps are skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gaps {
    /// Gaps found.
    pub gaps: u64,
    /// Offsets skipped over them (records deleted before they were read).
    pub offsets: u64,
}

impl Gaps {
    /// Checks that `found` is the offset `expected` next in `partition`. A larger one is a
    /// gap: with `skip`, logged and counted (the number of offsets skipped is returned),
    /// else [`LogError::OffsetGap`]. A smaller one is not a gap (0).
    pub fn check(
        &mut self,
        topic: &str,
        partition: u32,
        expected: u64,
        found: u64,
        skip: bool,
    ) -> Result<u64, LogError> {
        if found <= expected {
            return Ok(0);
        }
        if !skip {
            return Err(LogError::OffsetGap {
                partition,
                expected,
                found,
            });
        }
        let skipped = found - expected;
        tracing::warn!(
            topic,
            partition,
            expected,
            found,
            skipped,
            "skipping an offset gap: records deleted before they were read"
        );
        self.gaps += 1;
        self.offsets += skipped;
        Ok(skipped)
    }

    /// Where `partition` starts reading given its watermarks `(low, high)` and the offset
    /// `next` it would resume from: `next`, or with `skip` the log's start past a gap
    /// (counted). Resuming past the end is [`LogError::OffsetBeyondEnd`].
    pub fn start(
        &mut self,
        topic: &str,
        partition: u32,
        next: u64,
        (low, high): (u64, u64),
        skip: bool,
    ) -> Result<u64, LogError> {
        if next > high {
            return Err(LogError::OffsetBeyondEnd {
                partition,
                expected: next,
                end: high,
            });
        }
        let skipped = self.check(topic, partition, next, low.min(high), skip)?;
        Ok(next + skipped)
    }
}

/// One message: a key (the order id) and a value (one raw TSV line, no terminator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Routing key.
    pub key: Vec<u8>,
    /// Payload.
    pub value: Vec<u8>,
}

/// A partitioned, ordered, append-only message log (Kafka topic, local log).
pub trait MessageLog {
    /// Number of partitions.
    fn partitions(&self) -> u32;
    /// Appends messages, each to the partition its key hashes to.
    fn append(&mut self, messages: &[Message]) -> Result<(), LogError>;
    /// Makes every appended message durable.
    fn flush(&mut self) -> Result<(), LogError>;
    /// Up to `max` messages of `partition` from offset `from`, with their offsets.
    fn read(
        &mut self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, Message)>, LogError>;
    /// The offset the next message of `partition` will get.
    fn end_offset(&self, partition: u32) -> Result<u64, LogError>;
    /// The offsets of `partition`'s first record still held and of the next message
    /// (the first is above 0 once retention deleted records); the default never deletes.
    fn watermarks(&self, partition: u32) -> Result<(u64, u64), LogError> {
        Ok((0, self.end_offset(partition)?))
    }
    /// The largest record (key and value) the log accepts, in bytes; `None`: no limit.
    fn max_record_bytes(&self) -> Option<usize> {
        None
    }
}

/// A record a [`Tail`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    /// Partition.
    pub partition: u32,
    /// Offset in the partition.
    pub offset: u64,
    /// Payload (one raw TSV line).
    pub value: Vec<u8>,
    /// When the log received it (Kafka's record timestamp), milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// Reads several partitions at once, from given offsets, as records arrive (the
/// streaming stage's consumer).
pub trait Tail {
    /// Number of partitions of the log.
    fn partitions(&self) -> u32;
    /// Reads `positions` (partition -> next offset) from now on, and no other partition.
    fn assign(&mut self, positions: &BTreeMap<u32, u64>) -> Result<(), LogError>;
    /// Up to `max` records of the assigned partitions, each partition's in offset
    /// order, waiting at most `wait` for the first.
    fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Polled>, LogError>;
    /// The offsets of `partition`'s first record still held and of the next message.
    fn watermarks(&self, partition: u32) -> Result<(u64, u64), LogError>;
}

/// Any [`MessageLog`] as a [`Tail`], reading the partitions in turn (the
/// embedded log; Kafka has its own).
pub struct LogTail<L> {
    log: L,
    positions: BTreeMap<u32, u64>,
}

impl<L: MessageLog> LogTail<L> {
    /// Tails `log`.
    pub fn new(log: L) -> Self {
        LogTail {
            log,
            positions: BTreeMap::new(),
        }
    }

    /// The log.
    pub fn log_mut(&mut self) -> &mut L {
        &mut self.log
    }
}

impl<L: MessageLog> Tail for LogTail<L> {
    fn partitions(&self) -> u32 {
        self.log.partitions()
    }

    fn assign(&mut self, positions: &BTreeMap<u32, u64>) -> Result<(), LogError> {
        self.positions = positions.clone();
        Ok(())
    }

    fn watermarks(&self, partition: u32) -> Result<(u64, u64), LogError> {
        self.log.watermarks(partition)
    }

    fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Polled>, LogError> {
        let started = Instant::now();
        loop {
            let mut out = Vec::new();
            for (&partition, next) in self.positions.iter_mut() {
                if out.len() >= max {
                    break;
                }
                for (offset, m) in self.log.read(partition, *next, max - out.len())? {
                    *next = offset + 1;
                    out.push(Polled {
                        partition,
                        offset,
                        value: m.value,
                        timestamp_ms: None,
                    });
                }
            }
            if !out.is_empty() || started.elapsed() >= wait {
                return Ok(out);
            }
            std::thread::sleep(Duration::from_millis(10).min(wait));
        }
    }
}

/// The partition a key goes to (FNV-1a, stable across runs and platforms).
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(partitions.max(1))) as u32
}

struct Partition {
    path: PathBuf,
    writer: BufWriter<File>,
    /// Byte position of every message, by offset.
    positions: Vec<u64>,
    len: u64,
}

/// A local append-only log: `DIR/partition-N.log`, each message framed as
/// `u32 key length, u32 value length, key, value` (little endian). A torn
/// message at the end (crash mid-write) is cut off when the log is opened.
pub struct LocalLog {
    dir: PathBuf,
    parts: Vec<Partition>,
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LogError {
    let path = path.display().to_string();
    move |source| LogError::Io { op, path, source }
}

impl LocalLog {
    /// Opens (or creates) a log with `partitions` partitions in `dir`.
    pub fn open(dir: impl Into<PathBuf>, partitions: u32) -> Result<Self, LogError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let mut parts = Vec::new();
        for p in 0..partitions.max(1) {
            let path = dir.join(format!("partition-{p}.log"));
            let mut file = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)
                .map_err(io("opening", &path))?;
            let (positions, valid_len) = scan(&mut file).map_err(io("scanning", &path))?;
            file.set_len(valid_len)
                .map_err(io("truncating torn tail of", &path))?;
            parts.push(Partition {
                writer: BufWriter::with_capacity(1 << 20, file),
                path,
                positions,
                len: valid_len,
            });
        }
        Ok(LocalLog { dir, parts })
    }

    /// The directory holding the partition files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn part(&mut self, partition: u32) -> Result<&mut Partition, LogError> {
        let partitions = self.parts.len() as u32;
        self.parts
            .get_mut(partition as usize)
            .ok_or(LogError::NoPartition {
                partition,
                partitions,
            })
    }
}

/// Reads every complete frame; returns their positions and the valid length.
fn scan(file: &mut File) -> std::io::Result<(Vec<u64>, u64)> {
    let total = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, &*file);
    let mut positions = Vec::new();
    let mut pos = 0u64;
    let mut header = [0u8; 8];
    while pos + 8 <= total {
        reader.read_exact(&mut header)?;
        let k = u64::from(u32::from_le_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        let v = u64::from(u32::from_le_bytes([
            header[4], header[5], header[6], header[7],
        ]));
        let end = pos + 8 + k + v;
        if end > total {
            break;
        }
        std::io::copy(&mut (&mut reader).take(k + v), &mut std::io::sink())?;
        positions.push(pos);
        pos = end;
    }
    Ok((positions, pos))
}

impl MessageLog for LocalLog {
    fn partitions(&self) -> u32 {
        self.parts.len() as u32
    }

    fn append(&mut self, messages: &[Message]) -> Result<(), LogError> {
        let n = self.partitions();
        for m in messages {
            let part = self.part(partition_for(&m.key, n))?;
            let w = &mut part.writer;
            let frame = [
                &(m.key.len() as u32).to_le_bytes()[..],
                &(m.value.len() as u32).to_le_bytes()[..],
                &m.key,
                &m.value,
            ];
            for piece in frame {
                w.write_all(piece).map_err(io("appending to", &part.path))?;
            }
            part.positions.push(part.len);
            part.len += 8 + m.key.len() as u64 + m.value.len() as u64;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LogError> {
        for part in &mut self.parts {
            part.writer.flush().map_err(io("flushing", &part.path))?;
            part.writer
                .get_ref()
                .sync_data()
                .map_err(io("syncing", &part.path))?;
        }
        Ok(())
    }

    fn read(
        &mut self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, Message)>, LogError> {
        let part = self.part(partition)?;
        part.writer.flush().map_err(io("flushing", &part.path))?;
        let Some(&start) = part.positions.get(from as usize) else {
            return Ok(Vec::new());
        };
        let mut file = File::open(&part.path).map_err(io("opening", &part.path))?;
        file.seek(SeekFrom::Start(start))
            .map_err(io("seeking", &part.path))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let count = max.min(part.positions.len() - from as usize);
        let mut out = Vec::with_capacity(count);
        let mut header = [0u8; 8];
        for i in 0..count {
            reader
                .read_exact(&mut header)
                .map_err(io("reading", &part.path))?;
            let k = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let v = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let mut key = vec![0u8; k];
            let mut value = vec![0u8; v];
            reader
                .read_exact(&mut key)
                .map_err(io("reading", &part.path))?;
            reader
                .read_exact(&mut value)
                .map_err(io("reading", &part.path))?;
            out.push((from + i as u64, Message { key, value }));
        }
        Ok(out)
    }

    fn end_offset(&self, partition: u32) -> Result<u64, LogError> {
        self.parts
            .get(partition as usize)
            .map(|p| p.positions.len() as u64)
            .ok_or(LogError::NoPartition {
                partition,
                partitions: self.parts.len() as u32,
            })
    }
}

/// A log whose records in some offset ranges are gone, as retention or a records deletion
/// leaves a Kafka partition (the embedded log never deletes).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// `log` without the records of `deleted` (partition, offsets).
    pub(crate) struct Deleted<L> {
        pub(crate) log: L,
        pub(crate) deleted: Vec<(u32, std::ops::Range<u64>)>,
    }

    impl<L: MessageLog> Deleted<L> {
        fn gone(&self, partition: u32, offset: u64) -> bool {
            self.deleted
                .iter()
                .any(|(p, r)| *p == partition && r.contains(&offset))
        }
    }

    impl<L: MessageLog> MessageLog for Deleted<L> {
        fn partitions(&self) -> u32 {
            self.log.partitions()
        }
        fn append(&mut self, messages: &[Message]) -> Result<(), LogError> {
            self.log.append(messages)
        }
        fn flush(&mut self) -> Result<(), LogError> {
            self.log.flush()
        }
        fn read(
            &mut self,
            partition: u32,
            from: u64,
            max: usize,
        ) -> Result<Vec<(u64, Message)>, LogError> {
            // Kafka hands out the records after a deleted range (an offset below the log's
            // start resets to its start).
            let mut from = from;
            while self.gone(partition, from) {
                from += 1;
            }
            let mut out = self.log.read(partition, from, max)?;
            out.retain(|(offset, _)| !self.gone(partition, *offset));
            Ok(out)
        }
        fn end_offset(&self, partition: u32) -> Result<u64, LogError> {
            self.log.end_offset(partition)
        }
        fn watermarks(&self, partition: u32) -> Result<(u64, u64), LogError> {
            let end = self.log.end_offset(partition)?;
            let mut low = 0;
            while low < end && self.gone(partition, low) {
                low += 1;
            }
            Ok((low, end))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: u32) -> Message {
        Message {
            key: i.to_string().into_bytes(),
            value: format!("line {i}").into_bytes(),
        }
    }

    #[test]
    fn append_read_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = LocalLog::open(dir.path(), 3).expect("open");
        let msgs: Vec<Message> = (0..100).map(msg).collect();
        log.append(&msgs).expect("append");
        log.flush().expect("flush");
        let total: u64 = (0..3).map(|p| log.end_offset(p).expect("end")).sum();
        assert_eq!(total, 100);
        drop(log);
        let mut log = LocalLog::open(dir.path(), 3).expect("reopen");
        let mut seen = Vec::new();
        for p in 0..3 {
            let all = log.read(p, 0, usize::MAX).expect("read");
            for (i, (off, m)) in all.iter().enumerate() {
                assert_eq!(*off, i as u64);
                assert_eq!(partition_for(&m.key, 3), p);
                seen.push(m.clone());
            }
            let tail = log.read(p, 1, 2).expect("read");
            assert_eq!(tail.len(), 2);
            assert_eq!(tail[0].1, all[1].1);
        }
        seen.sort_by_key(|m| String::from_utf8_lossy(&m.key).parse::<u32>().unwrap_or(0));
        assert_eq!(seen, msgs);
    }

    #[test]
    fn torn_tail_is_cut_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = LocalLog::open(dir.path(), 1).expect("open");
        log.append(&[msg(1), msg(2)]).expect("append");
        log.flush().expect("flush");
        drop(log);
        let path = dir.path().join("partition-0.log");
        let mut f = OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open file");
        f.write_all(&[5, 0, 0, 0, 9, 0, 0, 0, b'x'])
            .expect("torn write");
        drop(f);
        let mut log = LocalLog::open(dir.path(), 1).expect("reopen");
        assert_eq!(log.end_offset(0).expect("end"), 2);
        log.append(&[msg(3)]).expect("append");
        let all = log.read(0, 0, 10).expect("read");
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].1, msg(3));
    }

    #[test]
    fn unknown_partition_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = LocalLog::open(dir.path(), 2).expect("open");
        assert!(matches!(
            log.read(5, 0, 1),
            Err(LogError::NoPartition { .. })
        ));
    }
}
