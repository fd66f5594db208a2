//! The in-memory model the dashboard answers from: the per-file cubes of the
//! loader merged into one set of cells keyed by (hour, category, payment,
//! status). Every panel under any filter is a pass over the matching cells;
//! no request reads the fact table (except the drill-down's page of rows).

mod answers;
mod cells;
mod merge;
mod orders;
mod select;
mod top_users;

use std::collections::HashMap;

use cells::{CellRec, Derived, Dict};

/// Hour of cells whose timestamp has no valid hour (seed-compat data):
/// excluded by every time filter, left out of the time series.
pub const NO_HOUR: i64 = i64::MIN;

/// Merged cells of every loaded file.
#[derive(Debug, Clone, Default)]
pub struct Model {
    dims: [Dict; 3],
    cells: Vec<CellRec>,
    cell_index: HashMap<(i64, [u16; 3]), u32>,
    users: Vec<u64>,
    user_index: HashMap<u64, u32>,
    /// `(order id, cell)` sorted by order id.
    orders: Vec<(u64, u32)>,
    derived: Derived,
}

/// Memory the model holds, bytes (approximate: vector capacities).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ModelSize {
    /// Cells.
    pub cells: usize,
    /// Distinct users.
    pub users: usize,
    /// Orders indexed for the drill-down.
    pub orders: usize,
    /// Approximate bytes.
    pub bytes: usize,
}

impl Model {
    /// What the model holds.
    pub fn size(&self) -> ModelSize {
        let cells: usize = self
            .cells
            .iter()
            .map(|c| {
                std::mem::size_of::<CellRec>()
                    + c.agg.amounts.capacity() * std::mem::size_of::<(i64, u32)>()
                    + c.users.capacity() * std::mem::size_of::<(u32, u32, i64)>()
            })
            .sum();
        ModelSize {
            cells: self.cells.len(),
            users: self.users.len(),
            orders: self.orders.len(),
            bytes: cells
                + self.derived.bytes()
                + self.cell_index.capacity() * 40
                + self.users.capacity() * 8
                + self.user_index.capacity() * 16
                + self.orders.capacity() * 16,
        }
    }

    /// Orders in the model.
    pub fn orders(&self) -> u64 {
        self.orders.len() as u64
    }
}
