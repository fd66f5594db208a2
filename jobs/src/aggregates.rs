//! Aggregates the dashboard reads instead of scanning the fact table.
//!
//! The loader computes one [`Aggregates`] per clean input file and stores it
//! under that file's id, so re-loading a file rewrites the same cells
//! (idempotent) and the dashboard merges a handful of small rows.
//!
//! Every sum is checked: a count, a sum of cents or of squared cents that its
//! type cannot hold is an [`Overflow`] (the caller names the file), never a
//! wrapped or saturated value. Cleaning bounds amounts (`--max-amount`), so a
//! realistic run never gets there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::checked_cents;

/// A sum that cannot be represented (or an amount with no `i64` of cents): which one.
/// Callers turn it into their error naming the file ([`Overflow::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow {
    /// What overflowed, e.g. `revenue of a category`.
    pub sum: &'static str,
}

impl Overflow {
    /// The error of `what` (a file, a cube part) with this overflow.
    pub fn of(self, what: impl Into<String>) -> CubeError {
        CubeError::Overflow {
            what: what.into(),
            sum: self.sum,
        }
    }
}

/// `a + b`, or the overflow of `sum`.
fn add_i64(a: i64, b: i64, sum: &'static str) -> Result<i64, Overflow> {
    a.checked_add(b).ok_or(Overflow { sum })
}

/// `a + b`, or the overflow of `sum`.
fn add_u64(a: u64, b: u64, sum: &'static str) -> Result<u64, Overflow> {
    a.checked_add(b).ok_or(Overflow { sum })
}

/// `a + b`, or the overflow of `sum`.
fn add_u128(a: u128, b: u128, sum: &'static str) -> Result<u128, Overflow> {
    a.checked_add(b).ok_or(Overflow { sum })
}

/// The cents of an amount, or the overflow of the amount itself.
fn cents_of(amount: f64) -> Result<i64, Overflow> {
    checked_cents(amount).ok_or(Overflow {
        sum: "amount in cents",
    })
}

/// Count and revenue of a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Orders.
    pub orders: u64,
    /// Sum of amounts, in cents (exact).
    pub revenue_cents: i64,
}

impl Tally {
    /// This tally plus `orders` and `cents`, or the overflow of `what`.
    fn plus(&self, orders: u64, cents: i64, what: &'static str) -> Result<Tally, Overflow> {
        Ok(Tally {
            orders: add_u64(self.orders, orders, what)?,
            revenue_cents: add_i64(self.revenue_cents, cents, what)?,
        })
    }

    fn add(&mut self, cents: i64, what: &'static str) -> Result<(), Overflow> {
        *self = self.plus(1, cents, what)?;
        Ok(())
    }

    /// Mean amount in currency units (0 for an empty group).
    pub fn average(&self) -> f64 {
        if self.orders == 0 {
            0.0
        } else {
            self.revenue_cents as f64 / 100.0 / self.orders as f64
        }
    }
}

/// Mergeable aggregates of a set of clean rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregates {
    /// All orders.
    pub total: Tally,
    /// Smallest amount, cents.
    pub min_cents: Option<i64>,
    /// Largest amount, cents.
    pub max_cents: Option<i64>,
    /// Per category.
    pub by_category: BTreeMap<String, Tally>,
    /// Per status.
    pub by_status: BTreeMap<String, Tally>,
    /// Per payment method.
    pub by_payment: BTreeMap<String, Tally>,
    /// Per category, then status.
    pub by_category_status: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per hour (`YYYY-MM-DD HH`).
    pub by_hour: BTreeMap<String, Tally>,
    /// Orders per whole-currency amount (`floor(amount)`), for exact quantiles.
    pub amount_units: BTreeMap<i64, u64>,
}

/// The sums of `theirs` added to `mine`, key by key (only the keys of `theirs`).
fn tally_sums(
    mine: &BTreeMap<String, Tally>,
    theirs: &BTreeMap<String, Tally>,
    what: &'static str,
) -> Result<Vec<(String, Tally)>, Overflow> {
    theirs
        .iter()
        .map(|(k, t)| {
            let base = mine.get(k).copied().unwrap_or_default();
            Ok((k.clone(), base.plus(t.orders, t.revenue_cents, what)?))
        })
        .collect()
}

impl Aggregates {
    /// Adds one clean row; an amount with no `i64` of cents or a sum that would overflow
    /// is an [`Overflow`] (then `self` may hold part of the row: discard it).
    pub fn add(
        &mut self,
        category: &str,
        amount: f64,
        payment: &str,
        status: &str,
        timestamp: &str,
    ) -> Result<(), Overflow> {
        let cents = cents_of(amount)?;
        self.total.add(cents, "total revenue")?;
        self.min_cents = Some(self.min_cents.map_or(cents, |m| m.min(cents)));
        self.max_cents = Some(self.max_cents.map_or(cents, |m| m.max(cents)));
        self.by_category
            .entry(category.into())
            .or_default()
            .add(cents, "revenue of a category")?;
        self.by_status
            .entry(status.into())
            .or_default()
            .add(cents, "revenue of a status")?;
        self.by_payment
            .entry(payment.into())
            .or_default()
            .add(cents, "revenue of a payment method")?;
        let n = self
            .by_category_status
            .entry(category.into())
            .or_default()
            .entry(status.into())
            .or_default();
        *n = add_u64(*n, 1, "orders of a category and status")?;
        let hour = timestamp.get(..13).unwrap_or(timestamp);
        self.by_hour
            .entry(hour.into())
            .or_default()
            .add(cents, "revenue of an hour")?;
        let n = self.amount_units.entry(cents.div_euclid(100)).or_default();
        *n = add_u64(*n, 1, "orders of an amount")?;
        Ok(())
    }

    /// Merges another set of aggregates into this one. Every sum is computed, checked,
    /// before anything changes: on an [`Overflow`] `self` is unchanged.
    pub fn merge(&mut self, other: &Aggregates) -> Result<(), Overflow> {
        let total = self.total.plus(
            other.total.orders,
            other.total.revenue_cents,
            "total revenue",
        )?;
        let by_category = tally_sums(
            &self.by_category,
            &other.by_category,
            "revenue of a category",
        )?;
        let by_status = tally_sums(&self.by_status, &other.by_status, "revenue of a status")?;
        let by_payment = tally_sums(
            &self.by_payment,
            &other.by_payment,
            "revenue of a payment method",
        )?;
        let by_hour = tally_sums(&self.by_hour, &other.by_hour, "revenue of an hour")?;
        let mut by_category_status = Vec::new();
        for (cat, statuses) in &other.by_category_status {
            let mine = self.by_category_status.get(cat);
            for (s, n) in statuses {
                let base = mine.and_then(|m| m.get(s)).copied().unwrap_or(0);
                let sum = add_u64(base, *n, "orders of a category and status")?;
                by_category_status.push((cat.clone(), s.clone(), sum));
            }
        }
        let amount_units = other
            .amount_units
            .iter()
            .map(|(u, n)| {
                let base = self.amount_units.get(u).copied().unwrap_or(0);
                Ok((*u, add_u64(base, *n, "orders of an amount")?))
            })
            .collect::<Result<Vec<_>, Overflow>>()?;
        // Everything fits: apply.
        self.total = total;
        self.min_cents = match (self.min_cents, other.min_cents) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_cents = match (self.max_cents, other.max_cents) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.by_category.extend(by_category);
        self.by_status.extend(by_status);
        self.by_payment.extend(by_payment);
        self.by_hour.extend(by_hour);
        for (cat, s, n) in by_category_status {
            self.by_category_status.entry(cat).or_default().insert(s, n);
        }
        self.amount_units.extend(amount_units);
        Ok(())
    }

    /// The whole-unit bucket holding the `q` quantile (0..=1) of amounts:
    /// the true quantile lies in `[bucket, bucket + 1)`.
    pub fn quantile_unit(&self, q: f64) -> Option<i64> {
        let n = self.total.orders;
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * (n - 1) as f64).round() as u64).min(n - 1);
        let mut seen = 0;
        for (unit, count) in &self.amount_units {
            seen += count;
            if seen > rank {
                return Some(*unit);
            }
        }
        None
    }
}

/// Key of one cube cell: the hour and the three filterable dimensions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellKey {
    /// Hour of the timestamp, `YYYY-MM-DD HH` (the text's first 13 characters).
    pub hour: String,
    /// Category.
    pub category: String,
    /// Payment method.
    pub payment: String,
    /// Status.
    pub status: String,
}

/// Per-user tally inside a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserTally {
    /// User id.
    pub user_id: u64,
    /// Orders of the user in the cell.
    pub orders: u64,
    /// Sum of the user's amounts in the cell, cents.
    pub revenue_cents: i64,
}

/// Everything the dashboard needs about the orders of one cube cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cell {
    /// Orders.
    pub orders: u64,
    /// Sum of amounts, cents.
    pub sum_cents: i64,
    /// Sum of squared amounts, cents squared (for the standard deviation).
    pub sum_sq_cents: u128,
    /// Smallest amount, cents.
    pub min_cents: i64,
    /// Largest amount, cents.
    pub max_cents: i64,
    /// Orders per exact amount: `(cents, orders)` sorted by cents.
    pub amounts: Vec<(i64, u64)>,
    /// Per-user tallies sorted by user id.
    pub users: Vec<UserTally>,
    /// Order ids of the cell, sorted.
    pub order_ids: Vec<u64>,
}

impl Cell {
    /// Merges another cell of the same key (sorted lists stay sorted). Every sum is
    /// checked before anything changes: on an [`Overflow`] `self` is unchanged.
    pub fn merge(&mut self, other: &Cell) -> Result<(), Overflow> {
        if other.orders == 0 {
            return Ok(());
        }
        let orders = add_u64(self.orders, other.orders, "orders of a cell")?;
        let sum_cents = add_i64(self.sum_cents, other.sum_cents, "revenue of a cell")?;
        let sum_sq_cents = add_u128(
            self.sum_sq_cents,
            other.sum_sq_cents,
            "squared amounts of a cell",
        )?;
        let amounts = try_merge_sorted(
            &self.amounts,
            &other.amounts,
            |a| a.0,
            |a, b| Ok((a.0, add_u64(a.1, b.1, "orders of an amount")?)),
        )?;
        let users = try_merge_sorted(
            &self.users,
            &other.users,
            |u| u.user_id,
            |a, b| {
                Ok(UserTally {
                    user_id: a.user_id,
                    orders: add_u64(a.orders, b.orders, "orders of a user")?,
                    revenue_cents: add_i64(a.revenue_cents, b.revenue_cents, "revenue of a user")?,
                })
            },
        )?;
        if self.orders == 0 {
            self.min_cents = other.min_cents;
            self.max_cents = other.max_cents;
        } else {
            self.min_cents = self.min_cents.min(other.min_cents);
            self.max_cents = self.max_cents.max(other.max_cents);
        }
        self.orders = orders;
        self.sum_cents = sum_cents;
        self.sum_sq_cents = sum_sq_cents;
        self.amounts = amounts;
        self.users = users;
        let mut ids = Vec::with_capacity(self.order_ids.len() + other.order_ids.len());
        let (mut i, mut j) = (0, 0);
        while i < self.order_ids.len() && j < other.order_ids.len() {
            if self.order_ids[i] <= other.order_ids[j] {
                ids.push(self.order_ids[i]);
                i += 1;
            } else {
                ids.push(other.order_ids[j]);
                j += 1;
            }
        }
        ids.extend_from_slice(&self.order_ids[i..]);
        ids.extend_from_slice(&other.order_ids[j..]);
        self.order_ids = ids;
        Ok(())
    }
}

/// Merges two lists sorted by `key`, combining equal keys with `join`.
pub fn merge_sorted<T: Copy, K: Ord>(
    a: &[T],
    b: &[T],
    key: impl Fn(&T) -> K,
    join: impl Fn(&T, &T) -> T,
) -> Vec<T> {
    match try_merge_sorted(a, b, key, |x, y| {
        Ok::<T, std::convert::Infallible>(join(x, y))
    }) {
        Ok(merged) => merged,
        Err(never) => match never {},
    }
}

/// Merges two lists sorted by `key`, combining equal keys with `join`, which may fail
/// (an overflowing sum): then the first failure.
pub fn try_merge_sorted<T: Copy, K: Ord, E>(
    a: &[T],
    b: &[T],
    key: impl Fn(&T) -> K,
    join: impl Fn(&T, &T) -> Result<T, E>,
) -> Result<Vec<T>, E> {
    if a.is_empty() {
        return Ok(b.to_vec());
    }
    if b.is_empty() {
        return Ok(a.to_vec());
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match key(&a[i]).cmp(&key(&b[j])) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(join(&a[i], &b[j])?);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    Ok(out)
}

/// The cube of one clean file: cells keyed by (hour, category, payment,
/// status). Every dashboard figure under any filter is a merge of cells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cube {
    /// Cells.
    pub cells: BTreeMap<CellKey, Cell>,
}

/// Builds a [`Cube`] row by row.
#[derive(Debug, Default)]
pub struct CubeBuilder {
    rows: std::collections::HashMap<CellKey, Vec<(i64, u64, u64)>>,
}

impl CubeBuilder {
    /// Adds one clean row; an amount with no `i64` of cents is an [`Overflow`].
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        order_id: u64,
        user_id: u64,
        category: &str,
        amount: f64,
        payment: &str,
        status: &str,
        timestamp: &str,
    ) -> Result<(), Overflow> {
        let cents = cents_of(amount)?;
        let key = CellKey {
            hour: timestamp.get(..13).unwrap_or(timestamp).to_string(),
            category: category.to_string(),
            payment: payment.to_string(),
            status: status.to_string(),
        };
        self.rows
            .entry(key)
            .or_default()
            .push((cents, user_id, order_id));
        Ok(())
    }

    /// The finished cube, or the [`Overflow`] of one of its sums.
    pub fn finish(self) -> Result<Cube, Overflow> {
        let mut cells = BTreeMap::new();
        for (key, mut rows) in self.rows {
            let mut cell = Cell {
                min_cents: i64::MAX,
                max_cents: i64::MIN,
                ..Default::default()
            };
            for &(cents, _, order_id) in &rows {
                cell.orders = add_u64(cell.orders, 1, "orders of a cell")?;
                cell.sum_cents = add_i64(cell.sum_cents, cents, "revenue of a cell")?;
                // |cents| < 2^63, so its square (< 2^126) fits; the sum is checked.
                let square = u128::from(cents.unsigned_abs()).pow(2);
                cell.sum_sq_cents =
                    add_u128(cell.sum_sq_cents, square, "squared amounts of a cell")?;
                cell.min_cents = cell.min_cents.min(cents);
                cell.max_cents = cell.max_cents.max(cents);
                cell.order_ids.push(order_id);
            }
            cell.order_ids.sort_unstable();
            rows.sort_unstable_by_key(|r| r.0);
            for &(cents, _, _) in &rows {
                match cell.amounts.last_mut() {
                    Some(last) if last.0 == cents => {
                        last.1 = add_u64(last.1, 1, "orders of an amount")?;
                    }
                    _ => cell.amounts.push((cents, 1)),
                }
            }
            rows.sort_unstable_by_key(|r| r.1);
            for &(cents, user_id, _) in &rows {
                match cell.users.last_mut() {
                    Some(last) if last.user_id == user_id => {
                        last.orders = add_u64(last.orders, 1, "orders of a user")?;
                        last.revenue_cents =
                            add_i64(last.revenue_cents, cents, "revenue of a user")?;
                    }
                    _ => cell.users.push(UserTally {
                        user_id,
                        orders: 1,
                        revenue_cents: cents,
                    }),
                }
            }
            cells.insert(key, cell);
        }
        Ok(Cube { cells })
    }
}

/// Errors of stored aggregates: a cube part that does not decode, or a sum that cannot be
/// represented.
#[derive(Debug, thiserror::Error)]
pub enum CubeError {
    /// The bytes are not a cube part of this version.
    #[error("cube part {part}: {message}")]
    Corrupt {
        /// Which part (row key).
        part: String,
        /// What is wrong.
        message: String,
    },
    /// A sum of the aggregates of `what` does not fit its type (never wrapped or
    /// saturated): amounts beyond what cleaning keeps by default (`--max-amount`).
    #[error(
        "aggregates of {what}: the {sum} cannot be represented (overflow); cleaning drops \
         such amounts (rule amount_out_of_range, --max-amount) unless --seed-compat"
    )]
    Overflow {
        /// The file, run or cube part.
        what: String,
        /// Which sum.
        sum: &'static str,
    },
}

const CUBE_MAGIC: &[u8; 4] = b"ECQ1";

fn put_uvarint(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, u128::from(((v << 1) ^ (v >> 63)) as u64));
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u128);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
    part: &'a str,
}

impl Reader<'_> {
    fn err(&self, message: &str) -> CubeError {
        CubeError::Corrupt {
            part: self.part.to_string(),
            message: message.to_string(),
        }
    }
    fn uvarint(&mut self) -> Result<u128, CubeError> {
        let mut v: u128 = 0;
        for shift in (0..128).step_by(7) {
            let (&byte, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| self.err("truncated number"))?;
            self.buf = rest;
            v |= u128::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("number too long"))
    }
    fn u64(&mut self) -> Result<u64, CubeError> {
        u64::try_from(self.uvarint()?).map_err(|_| self.err("number out of range"))
    }
    fn i64(&mut self) -> Result<i64, CubeError> {
        let z = self.u64()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }
    fn len(&mut self) -> Result<usize, CubeError> {
        let n = self.u64()?;
        // Every element takes at least one byte: a larger count is corrupt.
        if n as usize > self.buf.len() {
            return Err(self.err("length beyond the end"));
        }
        Ok(n as usize)
    }
    /// The id after `prev` in a delta-coded list.
    fn next_id(&mut self, prev: u64) -> Result<u64, CubeError> {
        let delta = self.u64()?;
        prev.checked_add(delta)
            .ok_or_else(|| self.err("id beyond 64 bits"))
    }
    fn str(&mut self) -> Result<String, CubeError> {
        let n = self.len()?;
        let (s, rest) = self.buf.split_at(n);
        self.buf = rest;
        String::from_utf8(s.to_vec()).map_err(|_| self.err("text is not UTF-8"))
    }
}

impl Cube {
    /// Merges another cube into this one; on an [`Overflow`] the cells merged before
    /// the failing one stay merged (discard the cube).
    pub fn merge(&mut self, other: &Cube) -> Result<(), Overflow> {
        for (k, c) in &other.cells {
            self.cells.entry(k.clone()).or_default().merge(c)?;
        }
        Ok(())
    }

    /// Orders in the cube (saturating: a count only for logs).
    pub fn orders(&self) -> u64 {
        self.cells
            .values()
            .fold(0u64, |n, c| n.saturating_add(c.orders))
    }

    /// Encodes the cube as parts of at most about `part_bytes` bytes each
    /// (cells are never split), compact binary with delta-coded lists.
    pub fn encode_parts(&self, part_bytes: usize) -> Vec<Vec<u8>> {
        let mut parts = Vec::new();
        let mut body = Vec::new();
        let mut count = 0u64;
        let flush = |body: &mut Vec<u8>, count: &mut u64, parts: &mut Vec<Vec<u8>>| {
            let mut part = Vec::with_capacity(body.len() + 16);
            part.extend_from_slice(CUBE_MAGIC);
            put_uvarint(&mut part, u128::from(*count));
            part.append(body);
            parts.push(part);
            *count = 0;
        };
        for (k, c) in &self.cells {
            put_str(&mut body, &k.hour);
            put_str(&mut body, &k.category);
            put_str(&mut body, &k.payment);
            put_str(&mut body, &k.status);
            put_uvarint(&mut body, u128::from(c.orders));
            put_ivarint(&mut body, c.sum_cents);
            put_uvarint(&mut body, c.sum_sq_cents);
            put_ivarint(&mut body, c.min_cents);
            put_ivarint(&mut body, c.max_cents);
            put_uvarint(&mut body, c.amounts.len() as u128);
            let mut prev = 0i64;
            for &(cents, n) in &c.amounts {
                put_ivarint(&mut body, cents.wrapping_sub(prev));
                put_uvarint(&mut body, u128::from(n));
                prev = cents;
            }
            put_uvarint(&mut body, c.users.len() as u128);
            let mut prev = 0u64;
            for u in &c.users {
                put_uvarint(&mut body, u128::from(u.user_id - prev));
                put_uvarint(&mut body, u128::from(u.orders));
                put_ivarint(&mut body, u.revenue_cents);
                prev = u.user_id;
            }
            put_uvarint(&mut body, c.order_ids.len() as u128);
            let mut prev = 0u64;
            for &id in &c.order_ids {
                put_uvarint(&mut body, u128::from(id - prev));
                prev = id;
            }
            count += 1;
            if body.len() >= part_bytes {
                flush(&mut body, &mut count, &mut parts);
            }
        }
        if count > 0 || parts.is_empty() {
            flush(&mut body, &mut count, &mut parts);
        }
        parts
    }

    /// Decodes one part written by [`Cube::encode_parts`] and merges it in;
    /// `part` names it in errors (a sum that overflows included).
    pub fn merge_part(&mut self, bytes: &[u8], part: &str) -> Result<(), CubeError> {
        let mut r = Reader { buf: bytes, part };
        if r.buf.get(..4) != Some(CUBE_MAGIC.as_slice()) {
            return Err(r.err("not a cube part (bad magic)"));
        }
        r.buf = &r.buf[4..];
        let cells = r.u64()?;
        for _ in 0..cells {
            let key = CellKey {
                hour: r.str()?,
                category: r.str()?,
                payment: r.str()?,
                status: r.str()?,
            };
            let mut c = Cell {
                orders: r.u64()?,
                sum_cents: r.i64()?,
                sum_sq_cents: r.uvarint()?,
                min_cents: r.i64()?,
                max_cents: r.i64()?,
                ..Default::default()
            };
            let n = r.len()?;
            c.amounts.reserve(n);
            let mut prev = 0i64;
            for _ in 0..n {
                prev = prev.wrapping_add(r.i64()?);
                c.amounts.push((prev, r.u64()?));
            }
            let n = r.len()?;
            c.users.reserve(n);
            let mut prev = 0u64;
            for _ in 0..n {
                prev = r.next_id(prev)?;
                c.users.push(UserTally {
                    user_id: prev,
                    orders: r.u64()?,
                    revenue_cents: r.i64()?,
                });
            }
            let n = r.len()?;
            c.order_ids.reserve(n);
            let mut prev = 0u64;
            for _ in 0..n {
                prev = r.next_id(prev)?;
                c.order_ids.push(prev);
            }
            self.cells
                .entry(key)
                .or_default()
                .merge(&c)
                .map_err(|o| o.of(part))?;
        }
        if !r.buf.is_empty() {
            return Err(r.err("trailing bytes"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
