//! Unit tests of the aggregates: merging, the cube's encoding, and every overflow.

use super::*;

#[test]
fn merge_equals_adding_everything_once() {
    let rows = [
        ("Books", 12.5, "Cash", "Pending", "2024-01-01 10:00:00"),
        ("Books", 7.25, "PayPal", "Shipped", "2024-01-01 10:30:00"),
        ("Toys", 100.0, "Cash", "Pending", "2024-01-01 11:00:00"),
    ];
    let mut all = Aggregates::default();
    let (mut a, mut b) = (Aggregates::default(), Aggregates::default());
    for (i, r) in rows.iter().enumerate() {
        all.add(r.0, r.1, r.2, r.3, r.4).expect("add");
        let part = if i == 0 { &mut a } else { &mut b };
        part.add(r.0, r.1, r.2, r.3, r.4).expect("add");
    }
    a.merge(&b).expect("merge");
    assert_eq!(a, all);
    assert_eq!(all.total.revenue_cents, 11975);
    assert_eq!(all.by_category["Books"].orders, 2);
    assert_eq!(all.by_hour["2024-01-01 10"].orders, 2);
    assert_eq!(all.min_cents, Some(725));
    assert_eq!(all.quantile_unit(0.5), Some(12));
}

#[test]
fn cube_round_trips_through_parts_and_merges() {
    let rows = [
        (
            10,
            7,
            "Books",
            12.5,
            "Cash",
            "Pending",
            "2024-01-01 10:00:00",
        ),
        (
            11,
            7,
            "Books",
            12.5,
            "Cash",
            "Pending",
            "2024-01-01 10:59:59",
        ),
        (
            12,
            3,
            "Books",
            7.25,
            "Cash",
            "Pending",
            "2024-01-01 10:30:00",
        ),
        (
            13,
            3,
            "Toys",
            -1.0,
            "PayPal",
            "Shipped",
            "2024-01-01 11:00:00",
        ),
    ];
    let mut all = CubeBuilder::default();
    let (mut a, mut b) = (CubeBuilder::default(), CubeBuilder::default());
    for (i, r) in rows.iter().enumerate() {
        all.add(r.0, r.1, r.2, r.3, r.4, r.5, r.6).expect("add");
        let part = if i % 2 == 0 { &mut a } else { &mut b };
        part.add(r.0, r.1, r.2, r.3, r.4, r.5, r.6).expect("add");
    }
    let all = all.finish().expect("finish");
    let mut merged = a.finish().expect("finish");
    merged.merge(&b.finish().expect("finish")).expect("merge");
    assert_eq!(merged, all);
    let books = &all.cells[&CellKey {
        hour: "2024-01-01 10".into(),
        category: "Books".into(),
        payment: "Cash".into(),
        status: "Pending".into(),
    }];
    assert_eq!(books.orders, 3);
    assert_eq!(books.sum_cents, 3225);
    assert_eq!(books.sum_sq_cents, 1250 * 1250 * 2 + 725 * 725);
    assert_eq!(books.amounts, vec![(725, 1), (1250, 2)]);
    assert_eq!(books.users[1].orders, 2);
    assert_eq!(books.order_ids, vec![10, 11, 12]);
    for size in [1, 1 << 20] {
        let parts = all.encode_parts(size);
        let mut back = Cube::default();
        for (i, p) in parts.iter().enumerate() {
            back.merge_part(p, &i.to_string()).expect("decode");
        }
        assert_eq!(back, all, "part size {size}");
    }
    let mut bad = Cube::default();
    assert!(bad.merge_part(b"nope", "x").is_err());
    let mut truncated = all.encode_parts(1 << 20).remove(0);
    truncated.truncate(truncated.len() - 1);
    let err = bad
        .merge_part(&truncated, "cube/f/0")
        .expect_err("truncated");
    assert!(err.to_string().contains("cube/f/0"), "{err}");
}

/// An amount each file's sums hold, but two of which do not: 50,000,000,000,000,000.00
/// (5 * 10^18 cents).
const HALF_OVERFLOW: f64 = 5e16;

#[test]
fn an_unrepresentable_amount_is_an_overflow_not_a_saturated_value() {
    let mut agg = Aggregates::default();
    let err = agg
        .add(
            "Books",
            99_999_999_999_999_999.0,
            "Cash",
            "Pending",
            "2024-01-01 10:00:00",
        )
        .expect_err("no i64 of cents");
    assert_eq!(err.sum, "amount in cents");
    for bad in [f64::INFINITY, f64::NAN] {
        assert!(Aggregates::default()
            .add("Books", bad, "Cash", "Pending", "2024-01-01 10:00:00")
            .is_err());
    }
    let mut cube = CubeBuilder::default();
    assert!(cube
        .add(
            1,
            1,
            "Books",
            1e17,
            "Cash",
            "Pending",
            "2024-01-01 10:00:00"
        )
        .is_err());
}

#[test]
fn sums_that_overflow_are_errors_and_a_failed_merge_changes_nothing() {
    // Two rows, each representable: their sum is not.
    let mut agg = Aggregates::default();
    let row = (
        "Books",
        HALF_OVERFLOW,
        "Cash",
        "Pending",
        "2024-01-01 10:00:00",
    );
    agg.add(row.0, row.1, row.2, row.3, row.4)
        .expect("one fits");
    let err = agg
        .add(row.0, row.1, row.2, row.3, row.4)
        .expect_err("two overflow");
    assert_eq!(err.sum, "total revenue");

    // Across files: the merge fails and leaves the target as it was.
    let mut one = Aggregates::default();
    one.add(row.0, row.1, row.2, row.3, row.4).expect("add");
    one.add("Toys", 10.0, "PayPal", "Shipped", "2024-01-01 11:00:00")
        .expect("add");
    let mut other = Aggregates::default();
    other.add(row.0, row.1, row.2, row.3, row.4).expect("add");
    let before = one.clone();
    let err = one.merge(&other).expect_err("the sum overflows");
    assert_eq!(err.sum, "total revenue");
    assert_eq!(one, before, "a failed merge changed the aggregates");
    let named = err.of("hdfs://nn/clean/date=2024-01-01/part-r.parquet");
    let text = named.to_string();
    assert!(
        text.contains("part-r.parquet") && text.contains("total revenue"),
        "{text}"
    );

    // A category's revenue alone overflowing: the total is made to fit with a negative row.
    let mut a = Aggregates::default();
    a.add(
        "Books",
        HALF_OVERFLOW,
        "Cash",
        "Pending",
        "2024-01-01 10:00:00",
    )
    .expect("add");
    a.add(
        "Toys",
        -HALF_OVERFLOW,
        "Cash",
        "Pending",
        "2024-01-01 10:00:00",
    )
    .expect("add");
    let before = a.clone();
    let err = a.merge(&before.clone()).expect_err("Books overflows");
    assert_eq!(err.sum, "revenue of a category");
    assert_eq!(a, before);

    // Largest representable totals still merge exactly.
    let mut x = Aggregates::default();
    x.add("Books", 4.6e16, "Cash", "Pending", "2024-01-01 10:00:00")
        .expect("add");
    let y = x.clone();
    x.merge(&y).expect("9.2e18 cents fit");
    assert_eq!(x.total.revenue_cents, 9_200_000_000_000_000_000);
}

#[test]
fn cube_sums_that_overflow_are_errors_naming_the_part() {
    let row = |id| {
        (
            id,
            7,
            "Books",
            HALF_OVERFLOW,
            "Cash",
            "Pending",
            "2024-01-01 10:00:00",
        )
    };
    let mut both = CubeBuilder::default();
    for r in [row(1), row(2)] {
        both.add(r.0, r.1, r.2, r.3, r.4, r.5, r.6).expect("add");
    }
    let err = both.finish().expect_err("one cell, two halves");
    assert_eq!(err.sum, "revenue of a cell");

    // Each file's cube fits; merging the second's stored part into the first overflows.
    let single = |id| {
        let mut b = CubeBuilder::default();
        let r = row(id);
        b.add(r.0, r.1, r.2, r.3, r.4, r.5, r.6).expect("add");
        b.finish().expect("one row fits")
    };
    let mut first = single(1);
    let before = first.clone();
    let part = single(2).encode_parts(1 << 20).remove(0);
    let err = first
        .merge_part(&part, "cube/f2/0000")
        .expect_err("overflow");
    assert!(
        matches!(&err, CubeError::Overflow { what, sum } if what == "cube/f2/0000" && *sum == "revenue of a cell"),
        "{err:?}"
    );
    assert_eq!(first, before, "the failing cell is left as it was");
    let mut again = single(1);
    assert!(again.merge(&single(2)).is_err());
}

#[test]
fn a_corrupt_delta_beyond_64_bits_is_an_error() {
    let mut b = CubeBuilder::default();
    b.add(
        u64::MAX - 1,
        1,
        "Books",
        1.0,
        "Cash",
        "Pending",
        "2024-01-01 10:00:00",
    )
    .expect("add");
    b.add(
        u64::MAX,
        1,
        "Books",
        1.0,
        "Cash",
        "Pending",
        "2024-01-01 10:00:00",
    )
    .expect("add");
    let mut part = b.finish().expect("finish").encode_parts(1 << 20).remove(0);
    let mut cube = Cube::default();
    cube.merge_part(&part, "ok")
        .expect("ids up to u64::MAX decode");
    // The second id's delta (1) becomes 2: past u64::MAX.
    let last = part.len() - 1;
    assert_eq!(part[last], 1);
    part[last] = 2;
    let err = Cube::default()
        .merge_part(&part, "cube/x/0000")
        .expect_err("beyond 64 bits");
    assert!(err.to_string().contains("beyond 64 bits"), "{err}");
}
