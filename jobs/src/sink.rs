//! Sink: message log to raw TSV files, exactly once.
//!
//! Each file holds a contiguous offset range of one partition and is named
//! `{topic}+{partition}+{first:020}+{last:020}.tsv`; it is written to a
//! temporary name and renamed into place. On start every partition resumes
//! after the highest offset found in the committed file names, so a crash at
//! any point neither loses nor repeats a message.
//!
//! Full files are held in an [`Outbox`] and written a few at a time, all at
//! once, by a writer thread while the sink goes on reading (closing an HDFS
//! file waits for the NameNode, about half a second, so one file after
//! another left the sink mostly waiting). The renames keep each partition's
//! files in offset order, and a batch is handed over only once the previous
//! one is committed, so a crash at any point leaves every partition with a
//! gap-free prefix of committed files.
//!
//! Offsets are checked: a partition's first record still held above the offset it resumes
//! from, or a record past the next offset expected, means records were deleted (by
//! retention) before the sink read them. That fails the sink, naming the partition and
//! both offsets, unless [`SinkConfig::skip_offset_gaps`] is set: then the gap is skipped,
//! logged and counted, and the file before it is sealed, so every file still holds a
//! contiguous offset range. A partition that ends before the offset it resumes from (a
//! topic recreated or truncated) always fails.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::store::{FileStore, FileStoreError, Gaps, LogError, MessageLog};

/// Errors of the sink stage.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Reading the message log failed.
    #[error("reading topic {topic}: {source}")]
    Log {
        /// The topic.
        topic: String,
        /// The log error.
        source: LogError,
    },
    /// The file store failed.
    #[error("raw file store: {0}")]
    Files(#[from] FileStoreError),
}

/// How the sink rolls files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkConfig {
    /// Topic name (part of every file name).
    pub topic: String,
    /// Directory of the raw files in the store.
    pub dir: String,
    /// Messages per file at most.
    pub roll_rows: usize,
    /// Bytes per file at most (a file holds at least one message).
    pub roll_bytes: usize,
    /// Commit a file this long after its first message even if it is not
    /// full (0: never; only rows and bytes roll, so file boundaries are
    /// deterministic).
    #[serde(default)]
    pub roll_interval_ms: u64,
    /// Skip (log and count) records deleted before they were read instead of failing.
    #[serde(default)]
    pub skip_offset_gaps: bool,
}

/// What the sink stage did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkSummary {
    /// Messages written in this run.
    pub records: u64,
    /// Files committed in this run.
    pub files: u64,
    /// Offset each partition resumed from.
    pub resumed_from: BTreeMap<u32, u64>,
    /// Gaps skipped in the partitions' offsets (with `skip_offset_gaps`).
    #[serde(default)]
    pub offset_gaps: u64,
    /// Offsets skipped over those gaps: records deleted before they were read.
    #[serde(default)]
    pub skipped_offsets: u64,
}

/// A committed raw file name, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFileName {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// First offset in the file.
    pub first: u64,
    /// Last offset in the file (inclusive).
    pub last: u64,
}

impl RawFileName {
    /// `topic+partition+first+last.tsv` (offsets zero-padded so names sort).
    pub fn render(&self) -> String {
        format!(
            "{}+{}+{:020}+{:020}.tsv",
            self.topic, self.partition, self.first, self.last
        )
    }

    /// Parses a file name (not a path) written by [`RawFileName::render`].
    pub fn parse(name: &str) -> Option<RawFileName> {
        let stem = name.strip_suffix(".tsv")?;
        let mut parts = stem.rsplitn(4, '+');
        let last = parts.next()?.parse().ok()?;
        let first = parts.next()?.parse().ok()?;
        let partition = parts.next()?.parse().ok()?;
        let topic = parts.next()?.to_string();
        (first <= last).then_some(RawFileName {
            topic,
            partition,
            first,
            last,
        })
    }
}

/// The next offset to read per partition, from the committed file names.
pub fn resume_offsets(
    files: &dyn FileStore,
    cfg: &SinkConfig,
) -> Result<BTreeMap<u32, u64>, FileStoreError> {
    let mut next = BTreeMap::new();
    for entry in files.list(&cfg.dir)? {
        let name = entry.path.rsplit('/').next().unwrap_or(&entry.path);
        if let Some(f) = RawFileName::parse(name).filter(|f| f.topic == cfg.topic) {
            let n = next.entry(f.partition).or_insert(0);
            *n = (*n).max(f.last + 1);
        }
    }
    Ok(next)
}

/// When the sink stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SinkMode {
    /// Stop once the end offsets seen at start are written (batch Jobs).
    UntilCaughtUp,
    /// Keep consuming until the stop flag is raised.
    Continuous,
}

/// Messages of one partition read but not yet committed to a file.
struct Pending {
    partition: u32,
    /// Next offset to read.
    next_read: u64,
    first: u64,
    last: u64,
    count: usize,
    data: Vec<u8>,
    started: Option<Instant>,
}

impl Pending {
    /// Hands the messages held to `outbox` as one file (nothing if none).
    fn seal(&mut self, cfg: &SinkConfig, outbox: &mut Outbox) {
        if self.count == 0 {
            return;
        }
        let name = RawFileName {
            topic: cfg.topic.clone(),
            partition: self.partition,
            first: self.first,
            last: self.last,
        };
        outbox.files.push(Sealed {
            name,
            records: self.count,
            data: std::mem::take(&mut self.data),
        });
        self.count = 0;
        self.started = None;
    }
}

/// Sealed files the outbox holds before writing them: at most this many...
const OUTBOX_FILES: usize = 8;
/// ...or this many bytes (a larger file is written alone).
const OUTBOX_BYTES: usize = 256 << 20;

/// A full file, not yet written.
pub(crate) struct Sealed {
    pub(crate) name: RawFileName,
    pub(crate) records: usize,
    pub(crate) data: Vec<u8>,
}

/// Full files waiting to be written, in the order they were sealed.
#[derive(Default)]
struct Outbox {
    files: Vec<Sealed>,
}

impl Outbox {
    fn full(&self) -> bool {
        self.files.len() >= OUTBOX_FILES
            || self.files.iter().map(|f| f.data.len()).sum::<usize>() >= OUTBOX_BYTES
    }

    /// The held files, leaving the outbox empty.
    fn take(&mut self) -> Vec<Sealed> {
        std::mem::take(&mut self.files)
    }
}

/// Writes `held` under temporary names, all at once, then renames the files
/// into place in rounds: round k takes the k-th file of each partition, so a
/// partition's files appear in offset order. Returns each file's name and
/// record count.
pub(crate) fn write_held(
    files: &dyn FileStore,
    cfg: &SinkConfig,
    held: Vec<Sealed>,
) -> Result<Vec<(String, usize)>, SinkError> {
    let pid = std::process::id();
    let mut moves = Vec::with_capacity(held.len());
    let mut rounds: Vec<usize> = Vec::with_capacity(held.len());
    let mut seen: HashMap<u32, usize> = HashMap::new();
    let mut written = Vec::with_capacity(held.len());
    let mut writes = Vec::with_capacity(held.len());
    for file in held {
        let rendered = file.name.render();
        let tmp = format!("{}/.{rendered}.{pid}.tmp", cfg.dir);
        moves.push((tmp.clone(), format!("{}/{rendered}", cfg.dir)));
        let k = seen.entry(file.name.partition).or_insert(0);
        rounds.push(*k);
        *k += 1;
        written.push((rendered, file.records));
        writes.push((tmp, file.data));
    }
    let renamed = (|| {
        files.write_files(&[], &mut writes.into_iter())?;
        let last_round = rounds.iter().copied().max().unwrap_or(0);
        for round in 0..=last_round {
            let batch: Vec<(String, String)> = moves
                .iter()
                .zip(&rounds)
                .filter(|(_, r)| **r == round)
                .map(|(m, _)| m.clone())
                .collect();
            files.rename_files(&batch)?;
        }
        Ok::<(), FileStoreError>(())
    })();
    if let Err(e) = renamed {
        // The temporary files of this batch that were not renamed go (best effort: a
        // restarted sink or stream also removes them).
        for (tmp, _) in &moves {
            if let Err(e) = files.remove_all(tmp) {
                tracing::debug!(error = %e, "temporary raw file not removed");
            }
        }
        return Err(e.into());
    }
    Ok(written)
}

/// Hands outboxes to a writer thread, one at a time: the next is handed over
/// only once the previous one is committed, so files are committed in the
/// order they were sealed while the sink goes on reading.
struct Writer<'a> {
    handoff: std::sync::mpsc::SyncSender<Vec<Sealed>>,
    results: std::sync::mpsc::Receiver<Result<Vec<(String, usize)>, SinkError>>,
    in_flight: bool,
    /// The raw directory, for errors.
    dir: &'a str,
    summary: &'a mut SinkSummary,
    progress: &'a mut dyn FnMut(u64),
}

impl Writer<'_> {
    /// Waits for the outbox being written, if any, and counts its files.
    fn settle(&mut self) -> Result<(), SinkError> {
        if !std::mem::take(&mut self.in_flight) {
            return Ok(());
        }
        let written = self
            .results
            .recv()
            .map_err(|_| writer_stopped(self.dir))??;
        for (file, n) in written {
            tracing::debug!(%file, records = n, "committed raw file");
            self.summary.records += n as u64;
            self.summary.files += 1;
            (self.progress)(n as u64);
        }
        Ok(())
    }

    /// Hands over the outbox's files once the previous ones are committed.
    fn submit(&mut self, outbox: &mut Outbox) -> Result<(), SinkError> {
        self.settle()?;
        if outbox.files.is_empty() {
            return Ok(());
        }
        self.handoff
            .send(outbox.take())
            .map_err(|_| writer_stopped(self.dir))?;
        self.in_flight = true;
        Ok(())
    }
}

fn writer_stopped(dir: &str) -> SinkError {
    SinkError::Files(FileStoreError::Stopped {
        op: "writing",
        path: dir.to_string(),
        what: "the sink's writer thread",
    })
}

/// Copies everything up to the current end of every partition into raw files.
pub fn sink_until_caught_up(
    log: &mut dyn MessageLog,
    files: &dyn FileStore,
    cfg: &SinkConfig,
    progress: impl FnMut(u64),
) -> Result<SinkSummary, SinkError> {
    run_sink(
        log,
        files,
        cfg,
        SinkMode::UntilCaughtUp,
        &AtomicBool::new(false),
        progress,
    )
}

/// Copies the log into raw files, exactly once: each partition resumes after
/// its highest committed file; files roll by rows, bytes and (if set) a
/// wall-clock interval since their first message. In [`SinkMode::Continuous`]
/// it runs until `stop` is raised, then commits what it holds and returns.
pub fn run_sink(
    log: &mut dyn MessageLog,
    files: &dyn FileStore,
    cfg: &SinkConfig,
    mode: SinkMode,
    stop: &AtomicBool,
    mut progress: impl FnMut(u64),
) -> Result<SinkSummary, SinkError> {
    let resume = resume_offsets(files, cfg)?;
    let mut summary = SinkSummary::default();
    let log_err = |source| SinkError::Log {
        topic: cfg.topic.clone(),
        source,
    };
    let mut parts = Vec::new();
    let mut targets = Vec::new();
    let mut gaps = Gaps::default();
    for partition in 0..log.partitions() {
        let resumed = resume.get(&partition).copied().unwrap_or(0);
        let (low, high) = log.watermarks(partition).map_err(log_err)?;
        let next = gaps
            .start(
                &cfg.topic,
                partition,
                resumed,
                (low, high),
                cfg.skip_offset_gaps,
            )
            .map_err(log_err)?;
        summary.resumed_from.insert(partition, next);
        if mode == SinkMode::UntilCaughtUp {
            targets.push(high);
        }
        parts.push(Pending {
            partition,
            next_read: next,
            first: next,
            last: next,
            count: 0,
            data: Vec::new(),
            started: None,
        });
    }
    let (handoff, batches) = std::sync::mpsc::sync_channel::<Vec<Sealed>>(0);
    let (done, results) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for held in batches {
                let written = write_held(files, cfg, held);
                let failed = written.is_err();
                if done.send(written).is_err() || failed {
                    break;
                }
            }
        });
        let mut writer = Writer {
            handoff,
            results,
            in_flight: false,
            dir: &cfg.dir,
            summary: &mut summary,
            progress: &mut progress,
        };
        let read = read_loop(
            log,
            cfg,
            mode,
            stop,
            &mut parts,
            &targets,
            &mut gaps,
            &mut writer,
        );
        // The last outbox is committed (or failed) before the sink returns.
        let settled = writer.settle();
        read.and(settled)
    })?;
    summary.offset_gaps = gaps.gaps;
    summary.skipped_offsets = gaps.offsets;
    Ok(summary)
}

/// Reads every partition in turn into files, handing full ones to `writer`,
/// until caught up (batch) or stopped (continuous); checks every offset (`gaps`).
#[allow(clippy::too_many_arguments)]
fn read_loop(
    log: &mut dyn MessageLog,
    cfg: &SinkConfig,
    mode: SinkMode,
    stop: &AtomicBool,
    parts: &mut [Pending],
    targets: &[u64],
    gaps: &mut Gaps,
    writer: &mut Writer<'_>,
) -> Result<(), SinkError> {
    let log_err = |source| SinkError::Log {
        topic: cfg.topic.clone(),
        source,
    };
    let roll_rows = cfg.roll_rows.max(1);
    let interval = (cfg.roll_interval_ms > 0).then(|| Duration::from_millis(cfg.roll_interval_ms));
    let mut outbox = Outbox::default();
    // Seals `part`'s messages, and hands the outbox over once it is full.
    let seal = |part: &mut Pending,
                outbox: &mut Outbox,
                writer: &mut Writer<'_>|
     -> Result<(), SinkError> {
        part.seal(cfg, outbox);
        if outbox.full() {
            writer.submit(outbox)?;
        }
        Ok(())
    };
    loop {
        let mut done = true;
        for part in parts.iter_mut() {
            let target = targets.get(part.partition as usize).copied();
            if target.is_some_and(|t| part.next_read >= t) {
                seal(part, &mut outbox, writer)?;
                continue;
            }
            done = false;
            let mut want = roll_rows - part.count;
            if let Some(t) = target {
                want = want.min((t - part.next_read).min(usize::MAX as u64) as usize);
            }
            let batch = log
                .read(part.partition, part.next_read, want.max(1))
                .map_err(log_err)?;
            for (offset, msg) in batch {
                if target.is_some_and(|t| offset >= t) {
                    break;
                }
                let skipped = gaps
                    .check(
                        &cfg.topic,
                        part.partition,
                        part.next_read,
                        offset,
                        cfg.skip_offset_gaps,
                    )
                    .map_err(log_err)?;
                if skipped > 0 {
                    // A file holds a contiguous offset range: the one before the gap ends here.
                    seal(part, &mut outbox, writer)?;
                }
                if part.count > 0 && part.data.len() + msg.value.len() + 1 > cfg.roll_bytes {
                    seal(part, &mut outbox, writer)?;
                }
                if part.count == 0 {
                    part.first = offset;
                    part.started = Some(Instant::now());
                }
                part.data.extend_from_slice(&msg.value);
                part.data.push(b'\n');
                part.last = offset;
                part.count += 1;
                part.next_read = offset + 1;
                if part.count >= roll_rows {
                    seal(part, &mut outbox, writer)?;
                }
            }
            let expired =
                matches!((interval, part.started), (Some(i), Some(s)) if s.elapsed() >= i);
            if expired || target.is_some_and(|t| part.next_read >= t) {
                seal(part, &mut outbox, writer)?;
            }
        }
        let stopping = stop.load(Ordering::Relaxed);
        if stopping {
            for part in parts.iter_mut() {
                part.seal(cfg, &mut outbox);
            }
        }
        // A continuous sink hands over what it sealed at every pass, so a file rolled by the
        // interval is not held back; a batch sink only when the outbox is full, and at the end.
        let finished = stopping || (mode == SinkMode::UntilCaughtUp && done);
        if finished || mode == SinkMode::Continuous {
            writer.submit(&mut outbox)?;
        }
        if finished {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests;
