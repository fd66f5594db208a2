//! The raw/clean file store seam and its local-directory backend.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Errors of a file store, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum FileStoreError {
    /// An I/O operation failed on a path.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path it was done to.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An HDFS call failed on a path (its URL).
    #[error("{op} {path}: {source}")]
    Hdfs {
        /// What was being done.
        op: &'static str,
        /// The URL it was done to.
        path: String,
        /// Why, as the client reported it.
        source: super::hdfs::HdfsFailure,
    },
    /// A worker thread of the store stopped (it panicked) before finishing.
    #[error("{op} {path}: {what} stopped")]
    Stopped {
        /// What was being done.
        op: &'static str,
        /// The path or the files it was done to.
        path: String,
        /// The worker.
        what: &'static str,
    },
    /// A path tried to leave the store's root.
    #[error("path {0} escapes the store root")]
    BadPath(String),
}

impl FileStoreError {
    /// Whether another attempt may succeed: by the I/O or HDFS error; a path
    /// leaving the root never heals; a stopped worker leaves it to the attempt.
    pub fn class(&self) -> Option<crate::retry::ErrorClass> {
        match self {
            FileStoreError::Io { source, .. } => crate::retry::io_class(source),
            FileStoreError::Hdfs { source, .. } => source.class(),
            FileStoreError::Stopped { .. } => None,
            FileStoreError::BadPath(_) => Some(crate::retry::ErrorClass::Permanent),
        }
    }
}

/// A file in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the store root.
    pub path: String,
    /// Size in bytes.
    pub len: u64,
}

/// A directory in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Path relative to the store root.
    pub path: String,
    /// Last change of the directory itself (an entry added, removed or renamed).
    pub modified: Option<SystemTime>,
}

/// A hierarchical file store with atomic writes (local directory, HDFS).
pub trait FileStore: Send + Sync {
    /// Files directly under `dir`, sorted by path; empty if `dir` does not exist.
    /// Names starting with `.` or `_` (temporary files, markers) are skipped.
    fn list(&self, dir: &str) -> Result<Vec<FileEntry>, FileStoreError>;
    /// The whole content of a file.
    fn read(&self, path: &str) -> Result<Vec<u8>, FileStoreError>;
    /// Writes a file so that readers see either nothing or all of it
    /// (temporary file, then rename over `path`).
    fn write_atomic(&self, path: &str, data: &[u8]) -> Result<(), FileStoreError>;
    /// Whether a file exists.
    fn exists(&self, path: &str) -> Result<bool, FileStoreError>;
    /// Removes a file, or a directory and everything below it (no error if missing).
    fn remove_all(&self, dir: &str) -> Result<(), FileStoreError>;
    /// Removes `dir` only if it is an empty directory, in one step (so a file
    /// another process adds meanwhile is never lost): `Ok(true)` if removed,
    /// `Ok(false)` if it holds entries or does not exist. The default removes
    /// nothing.
    fn remove_empty_dir(&self, _dir: &str) -> Result<bool, FileStoreError> {
        Ok(false)
    }
    /// Hidden files directly under `dir` (names starting with `.`: temporary
    /// files a writer had not renamed yet), sorted by path.
    fn list_hidden(&self, dir: &str) -> Result<Vec<FileEntry>, FileStoreError>;
    /// Human-readable location of `path` (for reports and logs).
    fn describe(&self, path: &str) -> String;
    /// Subdirectories directly under `dir`, hidden ones included, sorted by
    /// path; empty if `dir` does not exist.
    fn list_dirs(&self, dir: &str) -> Result<Vec<DirEntry>, FileStoreError>;
    /// The contents of `paths`, in order. Backends may fetch a few files ahead
    /// concurrently; the caller owns each file once it is yielded.
    fn read_files<'a>(
        &'a self,
        paths: &'a [String],
    ) -> Box<dyn Iterator<Item = Result<Vec<u8>, FileStoreError>> + 'a> {
        Box::new(paths.iter().map(|p| self.read(p)))
    }
    /// Creates the directories `dirs` (with their parents) and writes every
    /// `(path, bytes)` of `files`, replacing existing files and creating parent
    /// directories. Not atomic: a failure can leave partial files, so write to
    /// temporary paths and [`rename_files`](Self::rename_files) them. Backends
    /// may do all of it concurrently, taking files from the iterator while
    /// earlier ones are written; the first error is returned once nothing is
    /// in flight any more, and no further file is taken after it.
    fn write_files(
        &self,
        dirs: &[String],
        files: &mut dyn Iterator<Item = (String, Vec<u8>)>,
    ) -> Result<(), FileStoreError>;
    /// Renames each `(from, to)`, replacing `to` atomically. The parent of each
    /// `to` must exist. Backends may rename concurrently; the first error is
    /// returned once all have ended.
    fn rename_files(&self, moves: &[(String, String)]) -> Result<(), FileStoreError>;
}

/// A local directory as a file store.
#[derive(Debug, Clone)]
pub struct LocalFiles {
    root: PathBuf,
}

impl LocalFiles {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalFiles { root: root.into() }
    }

    fn resolve(&self, path: &str) -> Result<PathBuf, FileStoreError> {
        let rel = Path::new(path.trim_start_matches('/'));
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(FileStoreError::BadPath(path.to_string()));
        }
        Ok(self.root.join(rel))
    }
}

/// `name` inside `dir` (a store path; empty for the root).
pub(crate) fn child_path(dir: &str, name: &str) -> String {
    if dir.trim_matches('/').is_empty() {
        name.to_string()
    } else {
        format!("{}/{name}", dir.trim_end_matches('/'))
    }
}

/// Whether a listing shows a file of this name: not a temporary file (`.`) or a marker (`_`).
pub(crate) fn visible(name: &str) -> bool {
    !name.starts_with('.') && !name.starts_with('_')
}

impl LocalFiles {
    /// The files directly under `dir` whose names pass `keep`, sorted by path.
    fn files_named(
        &self,
        dir: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<FileEntry>, FileStoreError> {
        let mut out: Vec<FileEntry> = self
            .entries(dir)?
            .into_iter()
            .filter(|(name, meta)| keep(name) && meta.is_file())
            .map(|(name, meta)| FileEntry {
                path: child_path(dir, &name),
                len: meta.len(),
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// The entries of `dir` with their names and metadata (none when it does not exist).
    fn entries(&self, dir: &str) -> Result<Vec<(String, fs::Metadata)>, FileStoreError> {
        let full = if dir.is_empty() {
            self.root.clone()
        } else {
            self.resolve(dir)?
        };
        let entries = match fs::read_dir(&full) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("listing", &full)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io("listing", &full))?;
            let meta = entry
                .metadata()
                .map_err(io("reading metadata of", &entry.path()))?;
            out.push((entry.file_name().to_string_lossy().into_owned(), meta));
        }
        Ok(out)
    }
}

/// A token no other writer uses at the same time: of this host (a pod's name), process, clock
/// and call. Names temporary files and attempts: in pods every process is PID 1, so the
/// process id alone would name two shards' temporary files alike.
pub fn unique_token() -> String {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        host.trim(),
        &std::process::id().to_string(),
        &nanos.to_string(),
        &n.to_string(),
    ] {
        for b in part.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileStoreError {
    let path = path.display().to_string();
    move |source| FileStoreError::Io { op, path, source }
}

impl FileStore for LocalFiles {
    fn list_hidden(&self, dir: &str) -> Result<Vec<FileEntry>, FileStoreError> {
        self.files_named(dir, |name| name.starts_with('.'))
    }

    fn list(&self, dir: &str) -> Result<Vec<FileEntry>, FileStoreError> {
        self.files_named(dir, visible)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, FileStoreError> {
        let full = self.resolve(path)?;
        fs::read(&full).map_err(io("reading", &full))
    }

    fn write_atomic(&self, path: &str, data: &[u8]) -> Result<(), FileStoreError> {
        let full = self.resolve(path)?;
        let parent = full.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&parent).map_err(io("creating", &parent))?;
        let name = full
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{name}.{}.tmp", unique_token()));
        let written = (|| {
            let mut f = fs::File::create(&tmp).map_err(io("creating", &tmp))?;
            f.write_all(data).map_err(io("writing", &tmp))?;
            f.sync_all().map_err(io("syncing", &tmp))?;
            fs::rename(&tmp, &full).map_err(io("renaming into place", &full))
        })();
        if written.is_err() {
            // No temporary file outlives a failed write.
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    fn exists(&self, path: &str) -> Result<bool, FileStoreError> {
        Ok(self.resolve(path)?.exists())
    }

    fn remove_empty_dir(&self, dir: &str) -> Result<bool, FileStoreError> {
        let full = self.resolve(dir)?;
        match fs::remove_dir(&full) {
            Ok(()) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(io("removing empty directory", &full)(e)),
        }
    }

    fn remove_all(&self, dir: &str) -> Result<(), FileStoreError> {
        let full = self.resolve(dir)?;
        let removed = match fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&full),
            Ok(_) => fs::remove_file(&full),
            Err(e) => Err(e),
        };
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", &full)(e)),
            _ => Ok(()),
        }
    }

    fn describe(&self, path: &str) -> String {
        self.root.join(path).display().to_string()
    }

    fn list_dirs(&self, dir: &str) -> Result<Vec<DirEntry>, FileStoreError> {
        let mut out: Vec<DirEntry> = self
            .entries(dir)?
            .into_iter()
            .filter(|(_, meta)| meta.is_dir())
            .map(|(name, meta)| DirEntry {
                path: child_path(dir, &name),
                modified: meta.modified().ok(),
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn write_files(
        &self,
        dirs: &[String],
        files: &mut dyn Iterator<Item = (String, Vec<u8>)>,
    ) -> Result<(), FileStoreError> {
        for dir in dirs {
            let full = self.resolve(dir)?;
            fs::create_dir_all(&full).map_err(io("creating", &full))?;
        }
        for (path, data) in files {
            let full = self.resolve(&path)?;
            let parent = full.parent().unwrap_or(&self.root).to_path_buf();
            fs::create_dir_all(&parent).map_err(io("creating", &parent))?;
            fs::write(&full, &data).map_err(io("writing", &full))?;
        }
        Ok(())
    }

    fn rename_files(&self, moves: &[(String, String)]) -> Result<(), FileStoreError> {
        for (from, to) in moves {
            let (from, to) = (self.resolve(from)?, self.resolve(to)?);
            // Data first, so that the rename never exposes unsynced bytes.
            fs::File::open(&from)
                .and_then(|f| f.sync_all())
                .map_err(io("syncing", &from))?;
            fs::rename(&from, &to).map_err(io("renaming into place", &to))?;
        }
        Ok(())
    }
}

/// Stores for tests of what a crash or a failed step leaves behind.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// A local store whose `rename_files` fails, before renaming anything,
    /// whenever `fails(moves, call)` says so (`call` counts from 0). Built with
    /// [`FailingRenames::new`] it is a process that dies at that step: every call after
    /// the failure fails too, until [`FailingRenames::revive`] (a new process); with
    /// [`FailingRenames::erring`] the process lives on and can clean up.
    pub(crate) struct FailingRenames<F> {
        files: LocalFiles,
        fails: F,
        calls: AtomicUsize,
        /// A failure kills the process.
        crash: bool,
        dead: AtomicBool,
    }

    impl<F> FailingRenames<F>
    where
        F: Fn(&[(String, String)], usize) -> bool + Send + Sync,
    {
        pub(crate) fn new(files: LocalFiles, fails: F) -> Self {
            FailingRenames {
                files,
                fails,
                calls: AtomicUsize::new(0),
                crash: true,
                dead: AtomicBool::new(false),
            }
        }

        /// A store whose failing renames are errors the process survives.
        pub(crate) fn erring(files: LocalFiles, fails: F) -> Self {
            FailingRenames {
                crash: false,
                ..Self::new(files, fails)
            }
        }

        /// The next process on the same files.
        pub(crate) fn revive(&self) {
            self.dead.store(false, Ordering::SeqCst);
        }

        /// Fails when the process died.
        fn alive(&self, op: &'static str, path: &str) -> Result<(), FileStoreError> {
            if self.dead.load(Ordering::SeqCst) {
                return Err(FileStoreError::Io {
                    op,
                    path: path.to_string(),
                    source: std::io::Error::other("the process crashed"),
                });
            }
            Ok(())
        }
    }

    impl<F> FileStore for FailingRenames<F>
    where
        F: Fn(&[(String, String)], usize) -> bool + Send + Sync,
    {
        fn list(&self, dir: &str) -> Result<Vec<FileEntry>, FileStoreError> {
            self.alive("listing", dir)?;
            self.files.list(dir)
        }
        fn list_hidden(&self, dir: &str) -> Result<Vec<FileEntry>, FileStoreError> {
            self.alive("listing", dir)?;
            self.files.list_hidden(dir)
        }
        fn read(&self, path: &str) -> Result<Vec<u8>, FileStoreError> {
            self.alive("reading", path)?;
            self.files.read(path)
        }
        fn write_atomic(&self, path: &str, data: &[u8]) -> Result<(), FileStoreError> {
            self.alive("writing", path)?;
            self.files.write_atomic(path, data)
        }
        fn exists(&self, path: &str) -> Result<bool, FileStoreError> {
            self.alive("checking", path)?;
            self.files.exists(path)
        }
        fn remove_all(&self, dir: &str) -> Result<(), FileStoreError> {
            self.alive("removing", dir)?;
            self.files.remove_all(dir)
        }
        fn remove_empty_dir(&self, dir: &str) -> Result<bool, FileStoreError> {
            self.alive("removing", dir)?;
            self.files.remove_empty_dir(dir)
        }
        fn describe(&self, path: &str) -> String {
            self.files.describe(path)
        }
        fn list_dirs(&self, dir: &str) -> Result<Vec<DirEntry>, FileStoreError> {
            self.alive("listing", dir)?;
            self.files.list_dirs(dir)
        }
        fn write_files(
            &self,
            dirs: &[String],
            files: &mut dyn Iterator<Item = (String, Vec<u8>)>,
        ) -> Result<(), FileStoreError> {
            self.alive("writing", dirs.first().map_or("", String::as_str))?;
            self.files.write_files(dirs, files)
        }
        fn rename_files(&self, moves: &[(String, String)]) -> Result<(), FileStoreError> {
            let to = moves.first().map(|m| m.1.clone()).unwrap_or_default();
            self.alive("renaming into place", &to)?;
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if (self.fails)(moves, call) {
                self.dead.store(self.crash, Ordering::SeqCst);
                return Err(FileStoreError::Io {
                    op: "renaming into place",
                    path: to,
                    source: std::io::Error::other("injected crash"),
                });
            }
            self.files.rename_files(moves)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_empty_dir_keeps_a_directory_with_entries() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = LocalFiles::new(tmp.path());
        store.write_atomic("s/a/f", b"x").expect("write");
        assert!(!store.remove_empty_dir("s").expect("non-empty"));
        assert!(store.exists("s/a/f").expect("exists"));
        store.remove_all("s/a").expect("remove a");
        assert!(store.remove_empty_dir("s").expect("empty"));
        assert!(!store.exists("s").expect("gone"));
        assert!(!store.remove_empty_dir("s").expect("missing"));
    }

    #[test]
    fn write_list_read_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalFiles::new(dir.path());
        store.write_atomic("raw/b.tsv", b"2").expect("write");
        store.write_atomic("raw/a.tsv", b"1").expect("write");
        let names: Vec<String> = store
            .list("raw")
            .expect("list")
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(names, ["raw/a.tsv", "raw/b.tsv"]);
        assert_eq!(store.read("raw/a.tsv").expect("read"), b"1");
        assert!(store.list("missing").expect("list").is_empty());
        assert!(matches!(
            store.read("../etc/passwd"),
            Err(FileStoreError::BadPath(_))
        ));
        store.remove_all("raw").expect("remove");
        assert!(!store.exists("raw/a.tsv").expect("exists"));
    }

    #[test]
    fn batches_write_rename_and_list_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalFiles::new(dir.path());
        let files = vec![
            ("t/_stage/a".to_string(), b"1".to_vec()),
            ("t/_stage/b".to_string(), b"22".to_vec()),
        ];
        store
            .write_files(&["t/x=1".into(), "t/x=2".into()], &mut files.into_iter())
            .expect("write");
        store
            .rename_files(&[
                ("t/_stage/a".into(), "t/x=1/a".into()),
                ("t/_stage/b".into(), "t/x=2/b".into()),
            ])
            .expect("rename");
        let dirs: Vec<String> = store
            .list_dirs("t")
            .expect("dirs")
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert_eq!(dirs, ["t/_stage", "t/x=1", "t/x=2"]);
        assert!(store.list("t/_stage").expect("list").is_empty());
        let read: Vec<Vec<u8>> = store
            .read_files(&["t/x=2/b".into(), "t/x=1/a".into()])
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(read, [b"22".to_vec(), b"1".to_vec()]);
        store.remove_all("t/x=1/a").expect("remove a file");
        assert!(!store.exists("t/x=1/a").expect("exists"));
        assert!(store.list_dirs("missing").expect("dirs").is_empty());
    }
}
