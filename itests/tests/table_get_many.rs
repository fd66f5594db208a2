//! `Table::get_many` on real HBase: rows of present keys come back in the
//! order asked, with `None` for keys without a row, across more than one
//! `getRows` chunk and with salted (unsorted) keys, field by field equal to
//! what was written and to a `get` of each key.
//!
//! Needs the services (`make services-up`, `eval "$(scripts/services.sh env)"`).

mod common;

use common::*;
use ecom_jobs::load::row_key;
use ecom_jobs::store::hbase::GET_MANY_CHUNK;
use ecom_jobs::store::{Cells, Row, TableStore};

/// The row written for order `id` (three families, values depending on `id`).
fn order(id: u64) -> Row {
    let mut cells = Cells::new();
    cells.insert(
        "order_details:user_id".into(),
        (id * 7 % 1000).to_string().into_bytes(),
    );
    cells.insert(
        "order_details:category".into(),
        format!("cat-{}", id % 13).into_bytes(),
    );
    cells.insert(
        "payment_info:payment_method".into(),
        format!("pay-{id}").into_bytes(),
    );
    // Only some rows have this cell: rows differ in their set of columns.
    if id.is_multiple_of(3) {
        cells.insert("status_info:status".into(), vec![0, 0xFF, id as u8]);
    }
    Row {
        key: row_key(&id.to_string(), 16).into_bytes(),
        cells,
    }
}

#[test]
fn get_many_returns_rows_in_key_order_with_none_for_missing() {
    let run = Run::new("getmany");
    let tables = run.hbase();
    tables
        .ensure_table(
            &run.table,
            &["order_details", "payment_info", "status_info"],
        )
        .expect("create table");
    let t = tables.table(&run.table).expect("table");

    // Even ids are written, odd ids are not.
    let written: Vec<Row> = (0..3000u64).step_by(2).map(order).collect();
    t.put(&written).expect("put");

    // More keys than two chunks, salted and shuffled (id * 7919 mod 3001
    // walks 0..3001 in a scrambled order), present and missing mixed, plus a
    // repeated key and a key of a row that was never written at all.
    let mut ids: Vec<u64> = (0..3001u64).map(|i| i * 7919 % 3001).collect();
    ids.push(ids[5]);
    ids.push(1_000_000);
    assert!(ids.len() > 2 * GET_MANY_CHUNK);
    let keys: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| row_key(&id.to_string(), 16).into_bytes())
        .collect();
    let got = t.get_many(&keys).expect("get_many");
    assert_eq!(got.len(), keys.len());

    let exists = |id: u64| id < 3000 && id.is_multiple_of(2);
    let mut present = 0;
    for ((id, key), row) in ids.iter().zip(&keys).zip(&got) {
        match row {
            None => assert!(!exists(*id), "order {id}: row missing"),
            Some(row) => {
                assert!(exists(*id), "order {id}: a row for a key never written");
                present += 1;
                let want = order(*id);
                assert_eq!(&row.key, key, "order {id}: key");
                assert_eq!(
                    row.cells.keys().collect::<Vec<_>>(),
                    want.cells.keys().collect::<Vec<_>>(),
                    "order {id}: columns"
                );
                for (column, value) in &want.cells {
                    assert_eq!(&row.cells[column], value, "order {id}: {column}");
                }
            }
        }
    }
    // Every written row was asked for (one of them maybe twice).
    assert_eq!(present, 1500 + usize::from(exists(ids[5])));

    // The same answers as one get per key.
    for (key, row) in keys.iter().zip(&got).step_by(97) {
        assert_eq!(&t.get(key).expect("get"), row);
    }
    // No keys: no rows; only missing keys: all None.
    assert!(t.get_many(&[]).expect("empty").is_empty());
    let missing = vec![b"nope-1".to_vec(), b"nope-2".to_vec()];
    assert_eq!(t.get_many(&missing).expect("missing"), [None, None]);

    run.cleanup();
}
