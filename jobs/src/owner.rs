//! Ownership of storage: a pipeline records its identity (the UID of its `EcomPipeline`) on
//! the HDFS directories and the HBase table it writes, writes into nothing another pipeline's
//! identity marks, and deletes only what carries its own.
//!
//! A directory's mark is the file [`MARKER`] inside it (hidden from listings); a table's is
//! the row [`OWNER_ROW`] of its aggregates table. A mark is written once, when the first
//! stage of the pipeline touches the place, and never changed.

use serde::{Deserialize, Serialize};

use crate::load::AGG_FAMILY;
use crate::retry::ErrorClass;
use crate::store::files::child_path;
use crate::store::table::Cells;
use crate::store::{FileStore, FileStoreError, Row, Table, TableError};

/// Name of a directory's mark.
pub const MARKER: &str = ".ecom-owner";
/// Row key of a table's mark in its aggregates table.
pub const OWNER_ROW: &[u8] = b"owner";

/// The pipeline that owns a place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// `metadata.uid` of the `EcomPipeline`.
    pub uid: String,
    /// `namespace/name` of the `EcomPipeline` (for messages).
    pub name: String,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (uid {})", self.name, self.uid)
    }
}

/// Errors of marking and checking ownership.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    /// The place carries another pipeline's mark.
    #[error("{place} belongs to EcomPipeline {other}, not to {me}: give this pipeline its own (to adopt the data of a deleted pipeline, remove {adopt})")]
    Taken {
        /// What to remove to adopt the place.
        adopt: String,
        /// The directory or table.
        place: String,
        /// Who owns it: `namespace/name (uid U)`.
        other: String,
        /// Who asked, likewise.
        me: String,
    },
    /// A mark could not be read or parsed.
    #[error("the owner mark of {place} is unreadable ({detail}); remove it if the place is yours")]
    Corrupt {
        /// The directory or table.
        place: String,
        /// What is wrong.
        detail: String,
    },
    /// The file store failed.
    #[error("owner mark of {place}: {source}")]
    Files {
        /// The directory.
        place: String,
        /// The store error.
        #[source]
        source: FileStoreError,
    },
    /// The table store failed.
    #[error("owner mark of {place}: {source}")]
    Table {
        /// The table.
        place: String,
        /// The table error.
        #[source]
        source: TableError,
    },
}

impl OwnerError {
    /// Retry class: another owner or a corrupt mark stays so; store errors keep theirs.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            OwnerError::Taken { .. } | OwnerError::Corrupt { .. } => Some(ErrorClass::Permanent),
            OwnerError::Files { source, .. } => source.class(),
            OwnerError::Table { source, .. } => source.class(),
        }
    }
}

/// What a place's mark says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// No mark.
    None,
    /// Marked by this owner.
    Owner(Owner),
}

fn dir_adopt(place: &str) -> String {
    format!("{}/{MARKER}", place.trim_end_matches('/'))
}

fn parse(place: &str, bytes: &[u8]) -> Result<Owner, OwnerError> {
    serde_json::from_slice(bytes).map_err(|e| OwnerError::Corrupt {
        place: place.to_string(),
        detail: e.to_string(),
    })
}

/// The mark of directory `dir` (`place` names it in errors).
pub fn dir_mark(store: &dyn FileStore, dir: &str, place: &str) -> Result<Mark, OwnerError> {
    let path = child_path(dir, MARKER);
    let files = |source| OwnerError::Files {
        place: place.to_string(),
        source,
    };
    if !store.exists(&path).map_err(files)? {
        return Ok(Mark::None);
    }
    let bytes = store.read(&path).map_err(files)?;
    Ok(Mark::Owner(parse(place, &bytes)?))
}

/// Marks a place as `me`'s if unmarked (`write` stores the mark, `read` reads it back);
/// fails if another pipeline marked it. `adopt` says what to remove to take it over.
fn claim(
    place: &str,
    adopt: &str,
    me: &Owner,
    read: impl Fn() -> Result<Mark, OwnerError>,
    write: impl FnOnce(Vec<u8>) -> Result<(), OwnerError>,
) -> Result<(), OwnerError> {
    let decide = |mark: Mark| match mark {
        Mark::Owner(o) if o.uid == me.uid => Ok(true),
        Mark::Owner(other) => Err(OwnerError::Taken {
            adopt: adopt.to_string(),
            place: place.to_string(),
            other: other.to_string(),
            me: me.to_string(),
        }),
        Mark::None => Ok(false),
    };
    if decide(read()?)? {
        return Ok(());
    }
    let bytes = serde_json::to_vec(me).map_err(|e| OwnerError::Corrupt {
        place: place.to_string(),
        detail: e.to_string(),
    })?;
    write(bytes)?;
    // Two first writers at once: the mark that stayed decides.
    if decide(read()?)? {
        Ok(())
    } else {
        Err(OwnerError::Corrupt {
            place: place.to_string(),
            detail: "the mark just written is missing".into(),
        })
    }
}

/// Marks directory `dir` as `me`'s if unmarked; fails if another pipeline marked it.
pub fn claim_dir(
    store: &dyn FileStore,
    dir: &str,
    place: &str,
    me: &Owner,
) -> Result<(), OwnerError> {
    claim(
        place,
        &dir_adopt(place),
        me,
        || dir_mark(store, dir, place),
        |bytes| {
            store
                .write_atomic(&child_path(dir, MARKER), &bytes)
                .map_err(|source| OwnerError::Files {
                    place: place.to_string(),
                    source,
                })
        },
    )
}

fn owner_column() -> String {
    format!("{AGG_FAMILY}:owner")
}

/// The mark of the table whose aggregates table is `agg` (`place` names it in errors).
pub fn table_mark(agg: &dyn Table, place: &str) -> Result<Mark, OwnerError> {
    let row = agg.get(OWNER_ROW).map_err(|source| OwnerError::Table {
        place: place.to_string(),
        source,
    })?;
    match row.as_ref().and_then(|r| r.cells.get(&owner_column())) {
        None => Ok(Mark::None),
        Some(bytes) => Ok(Mark::Owner(parse(place, bytes)?)),
    }
}

/// Marks the table whose aggregates table is `agg` as `me`'s if unmarked; fails if another
/// pipeline marked it.
pub fn claim_table(agg: &dyn Table, place: &str, me: &Owner) -> Result<(), OwnerError> {
    claim(
        place,
        "the row 'owner' of the aggregates table",
        me,
        || table_mark(agg, place),
        |bytes| {
            let mut cells = Cells::new();
            cells.insert(owner_column(), bytes);
            agg.put(&[Row {
                key: OWNER_ROW.to_vec(),
                cells,
            }])
            .map_err(|source| OwnerError::Table {
                place: place.to_string(),
                source,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EmbeddedTables, LocalFiles, TableStore};

    fn owner(uid: &str) -> Owner {
        Owner {
            uid: uid.into(),
            name: format!("shop/{uid}"),
        }
    }

    #[test]
    fn shards_of_one_pipeline_claim_a_directory_at_the_same_time() {
        // The shards of a stage start together and each claims the directory; their
        // temporary files must not share a name (in pods every process is PID 1).
        let tmp = tempfile::tempdir().expect("tmp");
        let store = LocalFiles::new(tmp.path());
        let me = owner("a");
        std::thread::scope(|scope| {
            let claims: Vec<_> = (0..16)
                .map(|_| scope.spawn(|| claim_dir(&store, "clean", "clean", &me)))
                .collect();
            for c in claims {
                c.join().expect("thread").expect("claim");
            }
        });
        assert_eq!(
            dir_mark(&store, "clean", "clean").expect("read"),
            Mark::Owner(owner("a"))
        );
        let left: Vec<_> = std::fs::read_dir(tmp.path().join("clean"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from(MARKER)],
            "no temporary file left"
        );
    }

    #[test]
    fn a_directory_is_claimed_once_and_refused_to_another_pipeline() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = LocalFiles::new(tmp.path());
        assert_eq!(dir_mark(&store, "raw", "raw").expect("read"), Mark::None);
        claim_dir(&store, "raw", "raw", &owner("a")).expect("claim");
        claim_dir(&store, "raw", "raw", &owner("a")).expect("again");
        assert_eq!(
            dir_mark(&store, "raw", "raw").expect("read"),
            Mark::Owner(owner("a"))
        );
        let err = claim_dir(&store, "raw", "hdfs://nn/raw", &owner("b")).expect_err("taken");
        assert_eq!(err.class(), Some(ErrorClass::Permanent));
        assert!(
            err.to_string()
                .starts_with("hdfs://nn/raw belongs to EcomPipeline shop/a (uid a), not to shop/b"),
            "{err}"
        );
        // The mark is no data file.
        assert!(store.list("raw").expect("list").is_empty());
    }

    #[test]
    fn a_corrupt_mark_is_named_and_never_overwritten() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = LocalFiles::new(tmp.path());
        store
            .write_atomic(&child_path("clean", MARKER), b"{not json")
            .expect("write");
        let err = claim_dir(&store, "clean", "clean", &owner("a")).expect_err("corrupt");
        assert!(err.to_string().contains("unreadable"), "{err}");
        assert_eq!(
            store.read(&child_path("clean", MARKER)).expect("read"),
            b"{not json"
        );
    }

    #[test]
    fn a_table_is_claimed_once_and_refused_to_another_pipeline() {
        let tmp = tempfile::tempdir().expect("tmp");
        let tables = EmbeddedTables::open(tmp.path().join("t.redb")).expect("open");
        tables.ensure_table("t_agg", &[AGG_FAMILY]).expect("ensure");
        let agg = tables.table("t_agg").expect("table");
        assert_eq!(table_mark(agg.as_ref(), "t").expect("read"), Mark::None);
        claim_table(agg.as_ref(), "t", &owner("a")).expect("claim");
        claim_table(agg.as_ref(), "t", &owner("a")).expect("again");
        let err = claim_table(agg.as_ref(), "HBase table t", &owner("b")).expect_err("taken");
        assert!(
            err.to_string()
                .starts_with("HBase table t belongs to EcomPipeline shop/a"),
            "{err}"
        );
    }
}
