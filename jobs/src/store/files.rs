//! The raw/clean file store seam and its local-directory backend.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// A path tried to leave the store's root.
    #[error("path {0} escapes the store root")]
    BadPath(String),
}

/// A file in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the store root.
    pub path: String,
    /// Size in bytes.
    pub len: u64,
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
    /// Removes a directory and everything below it (no error if missing).
    fn remove_all(&self, dir: &str) -> Result<(), FileStoreError>;
    /// Human-readable location of `path` (for reports and logs).
    fn describe(&self, path: &str) -> String;
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

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileStoreError {
    let path = path.display().to_string();
    move |source| FileStoreError::Io { op, path, source }
}

impl FileStore for LocalFiles {
    fn list(&self, dir: &str) -> Result<Vec<FileEntry>, FileStoreError> {
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
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry
                .metadata()
                .map_err(io("reading metadata of", &entry.path()))?;
            if name.starts_with('.') || name.starts_with('_') || !meta.is_file() {
                continue;
            }
            let path = if dir.is_empty() {
                name
            } else {
                format!("{}/{name}", dir.trim_end_matches('/'))
            };
            out.push(FileEntry {
                path,
                len: meta.len(),
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
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
        let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut f = fs::File::create(&tmp).map_err(io("creating", &tmp))?;
        f.write_all(data).map_err(io("writing", &tmp))?;
        f.sync_all().map_err(io("syncing", &tmp))?;
        fs::rename(&tmp, &full).map_err(io("renaming into place", &full))
    }

    fn exists(&self, path: &str) -> Result<bool, FileStoreError> {
        Ok(self.resolve(path)?.exists())
    }

    fn remove_all(&self, dir: &str) -> Result<(), FileStoreError> {
        let full = self.resolve(dir)?;
        match fs::remove_dir_all(&full) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", &full)(e)),
            _ => Ok(()),
        }
    }

    fn describe(&self, path: &str) -> String {
        self.root.join(path).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
