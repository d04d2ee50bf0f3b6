//! Requests waiting for the high watermark to reach an offset: acks=all produces (and
//! anything else that needs data replicated). The leader's state machine says when the high
//! watermark moves; the wiring keeps one of these per partition and takes what is ready.
//!
//! Bounded by the caller: it refuses new waiters past its own limit (the produce purgatory's
//! size), since each one holds a request.

use std::collections::BTreeMap;

/// Items keyed by the offset the high watermark must reach, in offset order (and in arrival
/// order at one offset).
#[derive(Debug)]
pub struct Waiters<T> {
    by_offset: BTreeMap<i64, Vec<T>>,
    len: usize,
}

impl<T> Default for Waiters<T> {
    fn default() -> Self {
        Waiters {
            by_offset: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<T> Waiters<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until the high watermark is at least `required` (the end offset of the appended
    /// batches: the offset after the last record).
    pub fn add(&mut self, required: i64, item: T) {
        self.by_offset.entry(required).or_default().push(item);
        self.len += 1;
    }

    /// Everything waiting for `high_watermark` or less, in offset order.
    pub fn take_ready(&mut self, high_watermark: i64) -> Vec<T> {
        // `split_off` keeps the keys below its argument here: those are the ready ones.
        let ready = match high_watermark.checked_add(1) {
            Some(first_not_ready) => {
                let rest = self.by_offset.split_off(&first_not_ready);
                std::mem::replace(&mut self.by_offset, rest)
            }
            None => std::mem::take(&mut self.by_offset),
        };
        let items: Vec<T> = ready.into_values().flatten().collect();
        self.len -= items.len();
        items
    }

    /// Everything, in offset order: leadership was lost, or the partition is going away.
    pub fn take_all(&mut self) -> Vec<T> {
        self.len = 0;
        std::mem::take(&mut self.by_offset)
            .into_values()
            .flatten()
            .collect()
    }

    /// Removes and returns the items `expired` picks (their timeout passed), in offset order.
    pub fn take_where(&mut self, mut expired: impl FnMut(&T) -> bool) -> Vec<T> {
        let mut taken = Vec::new();
        self.by_offset.retain(|_, items| {
            let mut kept = Vec::with_capacity(items.len());
            for item in items.drain(..) {
                if expired(&item) {
                    taken.push(item);
                } else {
                    kept.push(item);
                }
            }
            *items = kept;
            !items.is_empty()
        });
        self.len -= taken.len();
        taken
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The lowest offset anyone waits for.
    pub fn first_required(&self) -> Option<i64> {
        self.by_offset.keys().next().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_waiters_come_out_in_offset_then_arrival_order() {
        let mut w = Waiters::new();
        w.add(10, "a");
        w.add(5, "b");
        w.add(10, "c");
        w.add(20, "d");
        assert_eq!(w.len(), 4);
        assert_eq!(w.first_required(), Some(5));
        assert!(w.take_ready(4).is_empty());
        assert_eq!(w.take_ready(10), vec!["b", "a", "c"]);
        assert_eq!(w.len(), 1);
        assert_eq!(w.take_ready(19), Vec::<&str>::new());
        assert_eq!(w.take_all(), vec!["d"]);
        assert!(w.is_empty());
    }

    #[test]
    fn extreme_offsets_do_not_overflow() {
        let mut w = Waiters::new();
        w.add(i64::MAX, 1);
        w.add(i64::MIN, 2);
        w.add(-1, 3);
        assert_eq!(w.take_ready(i64::MIN), vec![2]);
        assert_eq!(w.take_ready(i64::MAX), vec![3, 1]);
        assert!(w.is_empty());
    }

    #[test]
    fn expired_waiters_are_taken_wherever_they_are() {
        let mut w = Waiters::new();
        for (offset, deadline) in [(1, 100), (2, 50), (2, 300), (3, 60)] {
            w.add(offset, deadline);
        }
        assert_eq!(w.take_where(|&deadline| deadline <= 100), vec![100, 50, 60]);
        assert_eq!(w.len(), 1);
        assert_eq!(w.first_required(), Some(2));
    }
}
