//! The raw/clean file store on HDFS, through the native `hdfs-native` client.
//!
//! The client is async; every store in the process blocks on one shared
//! multi-threaded runtime, so the stages stay synchronous. (One runtime, not
//! one per store: hdfs-native keeps a process-wide cache of DataNode
//! connections, and a connection cached by a store whose runtime is idle
//! would never be driven when another store picks it up.) Store paths are relative to the path of the
//! `hdfs://host:port/base` URL it was opened with.
//!
//! Batches ([`FileStore::write_files`], [`FileStore::rename_files`],
//! [`FileStore::read_files`]) run as concurrent tasks on that runtime. That
//! matters for writes: closing a file calls the NameNode's `complete`, which
//! refuses until the DataNode has reported the block (a few milliseconds
//! later), and the client then sleeps 0.5 s before asking again. Files written
//! side by side share that wait instead of queueing behind it.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use hdfs_native::{Client, ClientBuilder, HdfsError, WriteOptions};
use tokio::task::JoinSet;

use super::files::{child_path, DirEntry, FileEntry, FileStore, FileStoreError};
use crate::retry::ErrorClass;

/// Files written at once by [`FileStore::write_files`]: a clean run's date
/// partitions (about 90 for three months of data) go in one wave.
const WRITES_IN_FLIGHT: usize = 128;
/// Files fetched ahead by [`FileStore::read_files`].
const READS_AHEAD: usize = 8;

/// Files under a base directory of one HDFS cluster.
pub struct HdfsFiles {
    client: Client,
    rt: &'static tokio::runtime::Runtime,
    /// `hdfs://host:port`, for messages.
    authority: String,
    /// Base directory, without trailing slash (`""` for the root).
    base: String,
    timeout: Duration,
}

/// Why an HDFS call failed, kept typed: retries are decided from it
/// ([`HdfsFailure::class`]), never from its text.
#[derive(Debug, thiserror::Error)]
pub enum HdfsFailure {
    /// The client's error, with the NameNode's exception class for RPC errors.
    #[error(transparent)]
    Client(#[from] HdfsError),
    /// The call did not finish within the store's timeout.
    #[error("no answer from {authority} within {timeout:?}")]
    NoAnswer {
        /// `hdfs://host:port`.
        authority: String,
        /// The store's call timeout.
        timeout: Duration,
    },
    /// A URL that is not `hdfs://host:port/path`.
    #[error("expected hdfs://host:port/path")]
    BadUrl,
    /// The process could not start the runtime the HDFS client runs on.
    #[error("starting the HDFS client's runtime: {0}")]
    Runtime(String),
    /// A task of the client panicked or was cancelled.
    #[error("an HDFS task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// NameNode exceptions that heal by waiting: safe mode, a standby or observer
/// NameNode, a retriable call, a block not replicated yet.
const TRANSIENT_EXCEPTIONS: &[&str] = &[
    "SafeModeException",
    "StandbyException",
    "ObserverRetryOnActiveException",
    "RetriableException",
    "NotReplicatedYetException",
    "LeaseExpiredException",
];

/// NameNode exceptions that do not: a missing file, a file or directory where
/// the other is needed, a refused permission, a malformed path, a quota.
const PERMANENT_EXCEPTIONS: &[&str] = &[
    "FileNotFoundException",
    "FileAlreadyExistsException",
    "ParentNotDirectoryException",
    "PathIsNotDirectoryException",
    "PathIsNotEmptyDirectoryException",
    "AccessControlException",
    "InvalidPathException",
    "DSQuotaExceededException",
    "NSQuotaExceededException",
    "UnsupportedOperationException",
];

impl HdfsFailure {
    /// Whether another attempt may succeed, from the client's error variant and,
    /// for an RPC error, the NameNode's exception class (its simple name).
    pub fn class(&self) -> Option<ErrorClass> {
        use ErrorClass::{Permanent, Transient};
        match self {
            HdfsFailure::NoAnswer { .. } | HdfsFailure::Task(_) => Some(Transient),
            HdfsFailure::BadUrl => Some(Permanent),
            HdfsFailure::Runtime(_) => None,
            HdfsFailure::Client(e) => match e {
                HdfsError::IOError(e) => crate::retry::io_class(e),
                HdfsError::DataTransferError(_)
                | HdfsError::ChecksumError
                | HdfsError::BlocksNotFound(_) => Some(Transient),
                HdfsError::RPCError(class, _) | HdfsError::FatalRPCError(class, _) => {
                    let simple = class.rsplit(['.', '$']).next().unwrap_or(class);
                    if TRANSIENT_EXCEPTIONS.contains(&simple) {
                        Some(Transient)
                    } else if PERMANENT_EXCEPTIONS.contains(&simple) {
                        Some(Permanent)
                    } else {
                        None
                    }
                }
                HdfsError::InvalidPath(_)
                | HdfsError::InvalidArgument(_)
                | HdfsError::UrlParseError(_)
                | HdfsError::AlreadyExists(_)
                | HdfsError::FileNotFound(_)
                | HdfsError::IsADirectoryError(_)
                | HdfsError::TrashNotEnabled
                | HdfsError::UnsupportedErasureCodingPolicy(_)
                | HdfsError::UnsupportedFeature(_)
                | HdfsError::SASLError(_)
                | HdfsError::GSSAPIError(..)
                | HdfsError::NoSASLMechanism
                | HdfsError::XmlParseError(_) => Some(Permanent),
                _ => None,
            },
        }
    }
}

fn hdfs_err(op: &'static str, path: &str, e: impl Into<HdfsFailure>) -> FileStoreError {
    FileStoreError::Hdfs {
        op,
        path: path.to_string(),
        source: e.into(),
    }
}

/// The runtime all HDFS stores of the process share.
fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RT: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hdfs-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Splits `hdfs://host:port/some/dir` into (`hdfs://host:port`, `/some/dir`).
pub fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("hdfs://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() {
        return None;
    }
    Some((
        format!("hdfs://{host}"),
        path.trim_end_matches('/').to_string(),
    ))
}

impl HdfsFiles {
    /// Connects to the NameNode of `url` (`hdfs://host:port/base`); every call
    /// fails after `timeout` naming the address.
    pub fn open(url: &str, timeout: Duration) -> Result<Self, FileStoreError> {
        let (authority, base) =
            split_url(url).ok_or_else(|| hdfs_err("parsing HDFS URL", url, HdfsFailure::BadUrl))?;
        let rt = runtime()
            .map_err(|e| hdfs_err("starting runtime for", url, HdfsFailure::Runtime(e)))?;
        let client = {
            let _guard = rt.enter();
            ClientBuilder::new()
                .with_url(authority.clone())
                .build()
                .map_err(|e| hdfs_err("connecting to", &authority, e))?
        };
        Ok(HdfsFiles {
            client,
            rt,
            authority,
            base,
            timeout,
        })
    }

    fn full(&self, path: &str) -> String {
        let rel = path.trim_matches('/');
        if rel.is_empty() {
            if self.base.is_empty() {
                "/".into()
            } else {
                self.base.clone()
            }
        } else {
            format!("{}/{rel}", self.base)
        }
    }

    /// The failure of a call that outlived the timeout.
    fn no_answer(&self) -> HdfsFailure {
        HdfsFailure::NoAnswer {
            authority: self.authority.clone(),
            timeout: self.timeout,
        }
    }

    /// `hdfs://host:port/full/path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.authority, self.full(path))
    }

    fn run<T>(
        &self,
        op: &'static str,
        path: &str,
        fut: impl std::future::Future<Output = Result<T, HdfsError>>,
    ) -> Result<T, FileStoreError> {
        match self
            .rt
            .block_on(async { tokio::time::timeout(self.timeout, fut).await })
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(hdfs_err(op, &self.url(path), e)),
            Err(_) => Err(hdfs_err(op, &self.url(path), self.no_answer())),
        }
    }

    /// Renames `from` to `to` (overwriting), both store-relative.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), FileStoreError> {
        let (f, t) = (self.full(from), self.full(to));
        self.run("renaming", from, self.client.rename(&f, &t, true))
    }

    /// `fut` bounded by the call timeout, as a task-ready future whose error
    /// names `op` and the URL of `path`.
    fn task<T>(
        &self,
        op: &'static str,
        path: &str,
        fut: impl std::future::Future<Output = Result<T, HdfsError>>,
    ) -> impl std::future::Future<Output = Result<T, FileStoreError>> {
        let (url, authority, timeout) = (self.url(path), self.authority.clone(), self.timeout);
        async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(hdfs_err(op, &url, e)),
                Err(_) => Err(hdfs_err(
                    op,
                    &url,
                    HdfsFailure::NoAnswer { authority, timeout },
                )),
            }
        }
    }

    /// Waits for every task of `tasks`; the first error (or panic) wins.
    fn join_all(
        &self,
        tasks: &mut JoinSet<Result<(), FileStoreError>>,
        mut first: Option<FileStoreError>,
    ) -> Result<(), FileStoreError> {
        self.rt.block_on(async {
            while let Some(done) = tasks.join_next().await {
                if let Err(e) = flatten(done) {
                    first.get_or_insert(e);
                }
            }
        });
        first.map_or(Ok(()), Err)
    }
}

/// A task's result, with a panicked or cancelled task as an error.
fn flatten(
    done: Result<Result<(), FileStoreError>, tokio::task::JoinError>,
) -> Result<(), FileStoreError> {
    done.unwrap_or_else(|e| Err(hdfs_err("running", "an HDFS task", e)))
}

impl HdfsFiles {
    /// The statuses of `dir`'s entries (none when it does not exist).
    fn statuses(&self, dir: &str) -> Result<Vec<hdfs_native::client::FileStatus>, FileStoreError> {
        let full = self.full(dir);
        match self.rt.block_on(async {
            tokio::time::timeout(self.timeout, self.client.list_status(&full, false)).await
        }) {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(HdfsError::FileNotFound(_))) => Ok(Vec::new()),
            Ok(Err(e)) => Err(hdfs_err("listing", &self.url(dir), e)),
            Err(_) => Err(hdfs_err("listing", &self.url(dir), self.no_answer())),
        }
    }
}

impl HdfsFiles {
    /// The files directly under `dir` whose names pass `keep`, sorted by path.
    fn files_named(
        &self,
        dir: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<FileEntry>, FileStoreError> {
        let mut out: Vec<FileEntry> = self
            .statuses(dir)?
            .into_iter()
            .filter(|s| !s.isdir)
            .filter_map(|s| {
                let name = s.path.rsplit('/').next().unwrap_or(&s.path);
                keep(name).then(|| FileEntry {
                    path: child_path(dir, name),
                    len: s.length as u64,
                })
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

impl FileStore for HdfsFiles {
    fn list_hidden(&self, dir: &str) -> Result<Vec<FileEntry>, FileStoreError> {
        self.files_named(dir, |name| name.starts_with('.'))
    }

    fn list(&self, dir: &str) -> Result<Vec<FileEntry>, FileStoreError> {
        self.files_named(dir, crate::store::files::visible)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, FileStoreError> {
        let full = self.full(path);
        self.run("reading", path, async {
            let reader = self.client.read(&full).await?;
            let len = reader.file_length();
            Ok(reader.read_range(0, len).await?.to_vec())
        })
    }

    fn write_atomic(&self, path: &str, data: &[u8]) -> Result<(), FileStoreError> {
        let full = self.full(path);
        let (dir, name) = full.rsplit_once('/').unwrap_or(("", &full));
        let tmp = format!("{dir}/.{name}.{}.tmp", super::files::unique_token());
        let options = WriteOptions {
            overwrite: true,
            create_parent: true,
            ..Default::default()
        };
        let bytes = bytes::Bytes::copy_from_slice(data);
        let written = self.run("writing", path, async {
            let mut w = self.client.create(&tmp, options).await?;
            w.write_bytes(bytes).await?;
            w.close().await?;
            self.client.rename(&tmp, &full, true).await
        });
        if written.is_err() {
            // No temporary file outlives a failed write (best effort: the NameNode may be
            // what failed).
            let removed = self.run("removing", path, self.client.delete(&tmp, false));
            if let Err(e) = removed {
                tracing::debug!(error = %e, tmp = %tmp, "temporary file not removed");
            }
        }
        written
    }

    fn exists(&self, path: &str) -> Result<bool, FileStoreError> {
        let full = self.full(path);
        match self.rt.block_on(async {
            tokio::time::timeout(self.timeout, self.client.get_file_info(&full)).await
        }) {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(HdfsError::FileNotFound(_))) => Ok(false),
            Ok(Err(e)) => Err(hdfs_err("checking", &self.url(path), e)),
            Err(_) => Err(hdfs_err("checking", &self.url(path), self.no_answer())),
        }
    }

    fn remove_all(&self, dir: &str) -> Result<(), FileStoreError> {
        let full = self.full(dir);
        self.run("removing", dir, self.client.delete(&full, true))
            .map(|_| ())
    }

    fn remove_empty_dir(&self, dir: &str) -> Result<bool, FileStoreError> {
        // A non-recursive delete: the NameNode refuses a non-empty directory
        // under its namespace lock, so nothing added meanwhile is lost.
        let full = self.full(dir);
        let refused = |class: &str| class.ends_with("PathIsNotEmptyDirectoryException");
        let deleted = async {
            match self.client.delete(&full, false).await {
                Err(HdfsError::RPCError(class, _)) if refused(&class) => Ok(false),
                other => other,
            }
        };
        self.run("removing empty directory", dir, deleted)
    }

    fn describe(&self, path: &str) -> String {
        self.url(path)
    }

    fn list_dirs(&self, dir: &str) -> Result<Vec<DirEntry>, FileStoreError> {
        let mut out: Vec<DirEntry> = self
            .statuses(dir)?
            .into_iter()
            .filter(|s| s.isdir)
            .map(|s| {
                let name = s.path.rsplit('/').next().unwrap_or(&s.path);
                DirEntry {
                    path: child_path(dir, name),
                    modified: UNIX_EPOCH.checked_add(Duration::from_millis(s.modification_time)),
                }
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn read_files<'a>(
        &'a self,
        paths: &'a [String],
    ) -> Box<dyn Iterator<Item = Result<Vec<u8>, FileStoreError>> + 'a> {
        let fetch = |path: &String| {
            let (client, full) = (self.client.clone(), self.full(path));
            self.rt.spawn(self.task("reading", path, async move {
                let reader = client.read(&full).await?;
                let len = reader.file_length();
                Ok(reader.read_range(0, len).await?.to_vec())
            }))
        };
        let mut next = paths.iter();
        let mut ahead: std::collections::VecDeque<_> =
            next.by_ref().take(READS_AHEAD).map(fetch).collect();
        Box::new(std::iter::from_fn(move || {
            let head = ahead.pop_front()?;
            if let Some(path) = next.next() {
                ahead.push_back(fetch(path));
            }
            Some(
                self.rt
                    .block_on(head)
                    .unwrap_or_else(|e| Err(hdfs_err("reading", "an HDFS task", e))),
            )
        }))
    }

    fn write_files(
        &self,
        dirs: &[String],
        files: &mut dyn Iterator<Item = (String, Vec<u8>)>,
    ) -> Result<(), FileStoreError> {
        let mut tasks = JoinSet::new();
        for dir in dirs {
            let (client, full) = (self.client.clone(), self.full(dir));
            let made = self.task("creating directory", dir, async move {
                client.mkdirs(&full, 0o755, true).await
            });
            tasks.spawn_on(made, self.rt.handle());
        }
        let slots = Arc::new(tokio::sync::Semaphore::new(WRITES_IN_FLIGHT));
        let options = WriteOptions {
            overwrite: true,
            create_parent: true,
            ..Default::default()
        };
        let mut failed = None;
        for (path, data) in files {
            while let Some(done) = tasks.try_join_next() {
                if let Err(e) = flatten(done) {
                    failed.get_or_insert(e);
                }
            }
            if failed.is_some() {
                break;
            }
            let Ok(slot) = self.rt.block_on(Arc::clone(&slots).acquire_owned()) else {
                break;
            };
            let (client, full, options) = (self.client.clone(), self.full(&path), options.clone());
            let written = self.task("writing", &path, async move {
                let mut w = client.create(&full, options).await?;
                w.write_bytes(bytes::Bytes::from(data)).await?;
                w.close().await
            });
            tasks.spawn_on(
                async move {
                    let _slot = slot;
                    written.await
                },
                self.rt.handle(),
            );
        }
        self.join_all(&mut tasks, failed)
    }

    fn rename_files(&self, moves: &[(String, String)]) -> Result<(), FileStoreError> {
        let mut tasks = JoinSet::new();
        for (from, to) in moves {
            let (client, f, t) = (self.client.clone(), self.full(from), self.full(to));
            let renamed = self.task("renaming into place", to, async move {
                client.rename(&f, &t, true).await
            });
            tasks.spawn_on(renamed, self.rt.handle());
        }
        self.join_all(&mut tasks, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_base() {
        assert_eq!(
            split_url("hdfs://127.0.0.1:9000/ecom/raw/"),
            Some(("hdfs://127.0.0.1:9000".into(), "/ecom/raw".into()))
        );
        assert_eq!(
            split_url("hdfs://nn:9000"),
            Some(("hdfs://nn:9000".into(), "".into()))
        );
        assert_eq!(split_url("file:///tmp"), None);
        assert_eq!(split_url("hdfs:///x"), None);
    }
}
