//! Cutting a sequence into consecutive runs whose sizes add up to at most a
//! budget: Thrift calls under a frame limit, aggregate rows under a cell limit,
//! raw files under a clean run's byte limit.

/// `items` cut, in order, into runs whose `size`s add up to at most `budget`;
/// an item larger than the budget makes a run of its own. No run is empty.
pub fn by_size<T>(items: &[T], budget: u64, size: impl Fn(&T) -> u64) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let (mut start, mut total) = (0, 0u64);
    for (i, item) in items.iter().enumerate() {
        let n = size(item);
        if i > start && total.saturating_add(n) > budget {
            runs.push(&items[start..i]);
            (start, total) = (i, 0);
        }
        total = total.saturating_add(n);
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_keep_order_and_stay_under_the_budget() {
        let sizes = [3u64, 3, 3, 3, 3, 3, 3, 3, 3, 3];
        let runs = by_size(&sizes, 9, |s| *s);
        assert_eq!(
            runs.iter().map(|r| r.len()).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        assert_eq!(runs.concat(), sizes);
        assert_eq!(by_size(&sizes, u64::MAX, |s| *s).len(), 1);
    }

    #[test]
    fn an_item_above_the_budget_goes_alone() {
        let runs = by_size(&[1u64, 50, 1, 1], 10, |s| *s);
        assert_eq!(runs.iter().map(|r| r.len()).collect::<Vec<_>>(), [1, 1, 2]);
        assert!(by_size(&[] as &[u64], 10, |s| *s).is_empty());
        // A budget below the first item still takes it.
        assert_eq!(by_size(&[5u64, 5], 1, |s| *s)[0].len(), 1);
    }
}
