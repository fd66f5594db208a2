//! Shards: a disjoint, stable share of the raw files for each pod of an Indexed Job.

use super::*;

/// A disjoint, stable share of the inputs: shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = IncrementalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IncrementalError::BadShard(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether this shard owns the item with stable key `key`.
    pub fn owns(&self, key: &str) -> bool {
        self.count <= 1 || partition_for(key.as_bytes(), self.count) == self.index
    }
}

/// The shard key of a raw file: `topic+partition` for sink files (all files
/// of a partition go to one shard), else the file name.
pub fn raw_shard_key(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    match RawFileName::parse(name) {
        Some(f) => format!("{}+{}", f.topic, f.partition),
        None => name.to_string(),
    }
}
