//! The serving table seam (row key -> `family:qualifier` -> value, scans in key
//! order) and its embedded backend on redb, the stand-in for HBase.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// Errors of a table store, naming the table.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The embedded store failed.
    #[error("embedded store {path}, table {table}: {source}")]
    Embedded {
        /// Database file.
        path: String,
        /// Table name.
        table: String,
        /// The store's error.
        source: Box<redb::Error>,
    },
    /// A stored value could not be decoded.
    #[error("table {table}: corrupt row {key:?}")]
    Corrupt {
        /// Table name.
        table: String,
        /// Row key (lossy).
        key: String,
    },
    /// A table that does not exist.
    #[error("table {0} does not exist")]
    NoTable(String),
    /// A remote table service hangs up on every new connection: it speaks
    /// another wire (transport or protocol), which no retry mends.
    #[error("table service {address}, table {table}: {message}")]
    Wire {
        /// Service address.
        address: String,
        /// Table name.
        table: String,
        /// What failed, and what to check.
        message: String,
    },
    /// A remote table service failed.
    #[error("table service {address}, table {table}: {message}")]
    Remote {
        /// Service address.
        address: String,
        /// Table name.
        table: String,
        /// How it failed, for retry decisions.
        kind: RemoteKind,
        /// What failed.
        message: String,
    },
}

/// How a call to a remote table service failed, as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    /// Connecting, the transport or the protocol kept failing until the call's deadline.
    GaveUp,
    /// The server answered with an I/O exception (a region moving, a server
    /// starting); `can_retry` is the server's own verdict when it gave one.
    IoException {
        /// `false` for HBase's do-not-retry exceptions.
        can_retry: Option<bool>,
    },
    /// The server rejected the call's arguments.
    IllegalArgument,
    /// What the call creates exists already.
    AlreadyExists,
    /// The server refused the call itself (a Thrift application error: an
    /// unknown method, a malformed message).
    Refused,
    /// The client failed on its side (a loader thread panicked, a lock poisoned).
    Client,
}

impl TableError {
    /// Whether another attempt may succeed. A corrupt row never heals, nor does
    /// a server of another Thrift wire; a missing table does (in a stage it was
    /// just ensured, so a concurrent purge removed it and the next attempt
    /// creates it again). A remote failure by its [`RemoteKind`].
    pub fn class(&self) -> Option<crate::retry::ErrorClass> {
        use crate::retry::ErrorClass::{Permanent, Transient};
        match self {
            TableError::Corrupt { .. } | TableError::Wire { .. } => Some(Permanent),
            TableError::NoTable(_) => Some(Transient),
            TableError::Embedded { .. } => None,
            TableError::Remote { kind, .. } => match kind {
                RemoteKind::GaveUp => Some(Transient),
                RemoteKind::IoException { can_retry } => Some(if *can_retry == Some(false) {
                    Permanent
                } else {
                    Transient
                }),
                RemoteKind::IllegalArgument | RemoteKind::AlreadyExists | RemoteKind::Refused => {
                    Some(Permanent)
                }
                RemoteKind::Client => None,
            },
        }
    }
}

/// Cells of one row: `family:qualifier` -> value.
pub type Cells = BTreeMap<String, Vec<u8>>;

/// One row of a table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row {
    /// Row key.
    pub key: Vec<u8>,
    /// Its cells.
    pub cells: Cells,
}

/// A wide-column table (HBase table, embedded table).
pub trait Table: Send + Sync {
    /// Writes rows; cells are merged into existing rows (same cell: last write wins).
    fn put(&self, rows: &[Row]) -> Result<(), TableError>;
    /// One row, if present.
    fn get(&self, key: &[u8]) -> Result<Option<Row>, TableError>;
    /// The rows of `keys`, in the order of `keys` (`None` for a key without a
    /// row; a repeated key gets its row each time). The default reads them one
    /// `get` at a time; backends override it to read many per round trip.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Row>>, TableError> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    /// Rows with `start <= key < stop` (`stop` empty: to the end), in key order, at most `limit`.
    fn scan(&self, start: &[u8], stop: &[u8], limit: usize) -> Result<Vec<Row>, TableError>;
}

/// Rows whose key starts with `prefix`, in key order.
pub fn scan_prefix(table: &dyn Table, prefix: &[u8], limit: usize) -> Result<Vec<Row>, TableError> {
    table.scan(prefix, &prefix_end(prefix), limit)
}

/// The smallest key greater than every key starting with `prefix` (empty: no bound).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    end
}

/// A set of tables (HBase cluster, embedded database).
pub trait TableStore: Send + Sync {
    /// Creates `name` with `families` if missing (existing tables are kept).
    fn ensure_table(&self, name: &str, families: &[&str]) -> Result<(), TableError>;
    /// A handle on an existing table.
    fn table(&self, name: &str) -> Result<Arc<dyn Table>, TableError>;
}

/// Tables in one embedded redb database file.
#[derive(Clone)]
pub struct EmbeddedTables {
    db: Arc<redb::Database>,
    path: PathBuf,
}

impl EmbeddedTables {
    /// Opens or creates the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TableError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| TableError::Embedded {
                path: path.display().to_string(),
                table: String::new(),
                source: Box::new(redb::Error::Io(e)),
            })?;
        }
        let db = redb::Database::create(&path).map_err(|e| TableError::Embedded {
            path: path.display().to_string(),
            table: String::new(),
            source: Box::new(e.into()),
        })?;
        Ok(EmbeddedTables {
            db: Arc::new(db),
            path,
        })
    }
}

impl TableStore for EmbeddedTables {
    fn ensure_table(&self, name: &str, _families: &[&str]) -> Result<(), TableError> {
        let t = EmbeddedTable {
            db: self.db.clone(),
            path: self.path.display().to_string(),
            name: name.to_string(),
        };
        t.write(|_| Ok(()))
    }

    fn table(&self, name: &str) -> Result<Arc<dyn Table>, TableError> {
        let t = EmbeddedTable {
            db: self.db.clone(),
            path: self.path.display().to_string(),
            name: name.to_string(),
        };
        let txn = self.db.begin_read().map_err(|e| t.err(e))?;
        match txn.open_table(t.def()) {
            Ok(_) => Ok(Arc::new(t)),
            Err(redb::TableError::TableDoesNotExist(_)) => Err(TableError::NoTable(name.into())),
            Err(e) => Err(t.err(e)),
        }
    }
}

struct EmbeddedTable {
    db: Arc<redb::Database>,
    path: String,
    name: String,
}

impl EmbeddedTable {
    fn def(&self) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
        TableDefinition::new(&self.name)
    }

    fn err(&self, e: impl Into<redb::Error>) -> TableError {
        TableError::Embedded {
            path: self.path.clone(),
            table: self.name.clone(),
            source: Box::new(e.into()),
        }
    }

    fn write(
        &self,
        f: impl FnOnce(&mut redb::Table<'_, &'static [u8], &'static [u8]>) -> Result<(), TableError>,
    ) -> Result<(), TableError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(self.def()).map_err(|e| self.err(e))?;
            f(&mut table)?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn decode(&self, key: &[u8], value: &[u8]) -> Result<Row, TableError> {
        decode_cells(value)
            .map(|cells| Row {
                key: key.to_vec(),
                cells,
            })
            .ok_or_else(|| TableError::Corrupt {
                table: self.name.clone(),
                key: String::from_utf8_lossy(key).into_owned(),
            })
    }
}

/// Encodes cells as `u16 name length, name, u32 value length, value`, repeated.
fn encode_cells(cells: &Cells) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in cells {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

fn decode_cells(mut buf: &[u8]) -> Option<Cells> {
    let mut cells = Cells::new();
    while !buf.is_empty() {
        let n = usize::from(u16::from_le_bytes(buf.get(..2)?.try_into().ok()?));
        let name = std::str::from_utf8(buf.get(2..2 + n)?).ok()?.to_string();
        buf = &buf[2 + n..];
        let v = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
        cells.insert(name, buf.get(4..4 + v)?.to_vec());
        buf = &buf[4 + v..];
    }
    Some(cells)
}

impl Table for EmbeddedTable {
    fn put(&self, rows: &[Row]) -> Result<(), TableError> {
        self.write(|table| {
            for row in rows {
                let existing = table
                    .get(row.key.as_slice())
                    .map_err(|e| self.err(e))?
                    .map(|v| self.decode(&row.key, v.value()))
                    .transpose()?;
                let cells = match existing {
                    Some(mut old) => {
                        old.cells
                            .extend(row.cells.iter().map(|(k, v)| (k.clone(), v.clone())));
                        old.cells
                    }
                    None => row.cells.clone(),
                };
                table
                    .insert(row.key.as_slice(), encode_cells(&cells).as_slice())
                    .map_err(|e| self.err(e))?;
            }
            Ok(())
        })
    }

    fn get(&self, key: &[u8]) -> Result<Option<Row>, TableError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(self.def()).map_err(|e| self.err(e))?;
        let value = table.get(key).map_err(|e| self.err(e))?;
        value.map(|v| self.decode(key, v.value())).transpose()
    }

    /// All keys in one read transaction (one consistent view).
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Row>>, TableError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(self.def()).map_err(|e| self.err(e))?;
        keys.iter()
            .map(|key| {
                let value = table.get(key.as_slice()).map_err(|e| self.err(e))?;
                value.map(|v| self.decode(key, v.value())).transpose()
            })
            .collect()
    }

    fn scan(&self, start: &[u8], stop: &[u8], limit: usize) -> Result<Vec<Row>, TableError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(self.def()).map_err(|e| self.err(e))?;
        let range = if stop.is_empty() {
            table.range::<&[u8]>(start..)
        } else {
            table.range::<&[u8]>(start..stop)
        }
        .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in range.take(limit) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(self.decode(k.value(), v.value())?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, cells: &[(&str, &str)]) -> Row {
        Row {
            key: key.as_bytes().to_vec(),
            cells: cells
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn put_get_merge_and_scan_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedTables::open(dir.path().join("db.redb")).expect("open");
        assert!(matches!(store.table("t"), Err(TableError::NoTable(_))));
        store.ensure_table("t", &["f"]).expect("create");
        let t = store.table("t").expect("table");
        t.put(&[
            row("b", &[("f:x", "1")]),
            row("a", &[("f:x", "0")]),
            row("c", &[]),
        ])
        .expect("put");
        t.put(&[row("b", &[("f:y", "2")])]).expect("merge");
        let b = t.get(b"b").expect("get").expect("present");
        assert_eq!(b, row("b", &[("f:x", "1"), ("f:y", "2")]));
        assert_eq!(t.get(b"zz").expect("get"), None);
        let keys: Vec<Vec<u8>> = t
            .scan(b"", b"", 10)
            .expect("scan")
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(keys, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        let keys: Vec<Vec<u8>> = t
            .scan(b"b", b"c", 10)
            .expect("scan")
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(keys, [b"b".to_vec()]);
        assert_eq!(t.scan(b"a", b"", 2).expect("scan").len(), 2);
        drop(t);
        drop(store);
        let store = EmbeddedTables::open(dir.path().join("db.redb")).expect("reopen");
        let t = store.table("t").expect("table");
        assert_eq!(t.get(b"a").expect("get"), Some(row("a", &[("f:x", "0")])));
    }

    #[test]
    fn get_many_keeps_key_order_and_marks_missing_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedTables::open(dir.path().join("db.redb")).expect("open");
        store.ensure_table("t", &["f"]).expect("create");
        let t = store.table("t").expect("table");
        t.put(&[row("a", &[("f:x", "0")]), row("b", &[("f:x", "1")])])
            .expect("put");
        let keys: Vec<Vec<u8>> = ["b", "zz", "a", "b"]
            .iter()
            .map(|k| k.as_bytes().to_vec())
            .collect();
        let got = t.get_many(&keys).expect("get_many");
        let b = Some(row("b", &[("f:x", "1")]));
        assert_eq!(got, [b.clone(), None, Some(row("a", &[("f:x", "0")])), b]);
        assert!(t.get_many(&[]).expect("no keys").is_empty());
    }

    /// A table with only `get`: the trait's default `get_many`.
    struct GetOnly(Arc<dyn Table>);

    impl Table for GetOnly {
        fn put(&self, rows: &[Row]) -> Result<(), TableError> {
            self.0.put(rows)
        }
        fn get(&self, key: &[u8]) -> Result<Option<Row>, TableError> {
            self.0.get(key)
        }
        fn scan(&self, start: &[u8], stop: &[u8], limit: usize) -> Result<Vec<Row>, TableError> {
            self.0.scan(start, stop, limit)
        }
    }

    #[test]
    fn default_get_many_reads_each_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedTables::open(dir.path().join("db.redb")).expect("open");
        store.ensure_table("t", &["f"]).expect("create");
        let t = GetOnly(store.table("t").expect("table"));
        t.put(&[row("a", &[("f:x", "0")])]).expect("put");
        let got = t
            .get_many(&[b"x".to_vec(), b"a".to_vec()])
            .expect("get_many");
        assert_eq!(got, [None, Some(row("a", &[("f:x", "0")]))]);
    }

    #[test]
    fn prefix_scan_bounds() {
        assert_eq!(prefix_end(b"b/"), b"b0".to_vec());
        assert_eq!(prefix_end(&[0x61, 0xFF]), vec![0x62]);
        assert!(prefix_end(&[0xFF]).is_empty());
    }
}
