//! The quorum's in-memory Raft log: what raft-rs reads through [`raft::Storage`].
//!
//! It mirrors raft-rs's `MemStorage` but is ours: no locks (the node owns it), the latest
//! snapshot keeps the state machine's bytes (so a leader can ship it to a lagging follower),
//! and bad requests are `raft::Error` values rather than panics. [`super::wal`] is its
//! durable form; [`super::node`] keeps it up to date from each Ready.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{Error, GetEntriesContext, RaftState, StorageError};

/// Entries after the compaction point, hard state, conf state and the latest snapshot.
///
/// Invariant: `entries[k].index == prev_index + 1 + k`, and `prev_index` (the last compacted
/// index, whose term is `prev_term`) is never beyond the latest snapshot's index, so every
/// compacted entry is covered by the snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuorumStorage {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    prev_index: u64,
    prev_term: u64,
    entries: Vec<Entry>,
}

fn other(msg: &str) -> Error {
    Error::Store(StorageError::Other(msg.to_owned().into()))
}

impl QuorumStorage {
    /// The persisted vote, term and commit index.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The voters (and learners) this log was last told about.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// The latest snapshot (empty, index 0, when none was taken or installed).
    pub fn latest_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The entries after the compaction point, in index order.
    pub fn log_entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Index of the first entry still held (compaction point + 1).
    pub fn first(&self) -> u64 {
        self.prev_index + 1
    }

    /// Index of the last entry (the compaction point when the log is empty).
    pub fn last(&self) -> u64 {
        self.prev_index + self.entries.len() as u64
    }

    /// Records a new hard state (raft hands one out whenever term, vote or commit changes).
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// Records the configuration (set at bootstrap; membership changes are not used yet).
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Appends `ents`, which must be contiguous, dropping every entry at or after
    /// `ents[0].index` first: a follower whose log conflicts with the leader's is overwritten
    /// from the first conflicting index, as Raft requires. Entries at or below the compaction
    /// point are already covered by the snapshot and skipped.
    pub fn append(&mut self, ents: &[Entry]) -> raft::Result<()> {
        let skip = ents
            .iter()
            .take_while(|e| e.index <= self.prev_index)
            .count();
        let ents = &ents[skip..];
        let Some(first) = ents.first() else {
            return Ok(());
        };
        if ents
            .windows(2)
            .any(|w| w[1].index != w[0].index.wrapping_add(1))
        {
            return Err(other("appended entries are not contiguous"));
        }
        if first.index > self.last() + 1 {
            return Err(Error::Store(StorageError::Unavailable));
        }
        let keep = (first.index - self.first()) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(ents);
        Ok(())
    }

    /// Drops the entries at and after `from_index` (never those at or below the compaction
    /// point).
    pub fn truncate(&mut self, from_index: u64) {
        let keep = from_index.saturating_sub(self.first()) as usize;
        self.entries.truncate(keep);
    }

    /// Replaces the whole log with `snapshot` (a follower installing the leader's snapshot):
    /// every entry goes, since raft only installs one when our log cannot simply be extended.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> raft::Result<()> {
        let Some(meta) = snapshot.metadata.as_ref() else {
            return Err(other("snapshot without metadata"));
        };
        if meta.index < self.prev_index || meta.index < self.snapshot_index() {
            return Err(Error::Store(StorageError::SnapshotOutOfDate));
        }
        if let Some(cs) = meta.conf_state.clone() {
            self.conf_state = cs;
        }
        self.prev_index = meta.index;
        self.prev_term = meta.term;
        self.entries.clear();
        if meta.term > self.hard_state.term {
            // We never voted in a term we never persisted, so the old vote does not carry over.
            self.hard_state.term = meta.term;
            self.hard_state.vote = 0;
        }
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.snapshot = snapshot;
        Ok(())
    }

    /// Records a snapshot of the state machine at `applied` (which must be committed and
    /// still in the log, or be the compaction point) and returns it. Entries stay until
    /// [`Self::compact`].
    pub fn create_snapshot(
        &mut self,
        applied: u64,
        conf_state: ConfState,
        data: Vec<u8>,
    ) -> raft::Result<&Snapshot> {
        if applied < self.snapshot_index() {
            return Err(Error::Store(StorageError::SnapshotOutOfDate));
        }
        if applied > self.hard_state.commit {
            return Err(other("snapshot beyond the commit index"));
        }
        let term = self.term_of(applied)?;
        self.snapshot = Snapshot {
            data,
            metadata: Some(SnapshotMetadata {
                conf_state: Some(conf_state),
                index: applied,
                term,
            }),
        };
        Ok(&self.snapshot)
    }

    /// Drops every entry before `to_index`. Only entries the latest snapshot covers may go
    /// (otherwise a lagging follower could be served neither entries nor a snapshot).
    pub fn compact(&mut self, to_index: u64) -> raft::Result<()> {
        if to_index <= self.first() {
            return Ok(());
        }
        if to_index > self.snapshot_index() + 1 {
            return Err(other("compaction beyond the latest snapshot"));
        }
        let new_prev = to_index - 1;
        self.prev_term = self.term_of(new_prev)?;
        self.entries.drain(..(to_index - self.first()) as usize);
        self.prev_index = new_prev;
        Ok(())
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.metadata.as_ref().map_or(0, |m| m.index)
    }

    fn term_of(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.prev_index {
            return Ok(self.prev_term);
        }
        if idx < self.prev_index {
            return Err(Error::Store(StorageError::Compacted));
        }
        match self.entries.get((idx - self.first()) as usize) {
            Some(e) => Ok(e.term),
            None => Err(Error::Store(StorageError::Unavailable)),
        }
    }
}

impl raft::Storage for QuorumStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(Error::Store(StorageError::Unavailable));
        }
        let lo = (low - self.first()) as usize;
        let hi = (high - self.first()) as usize;
        let mut ents = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.term_of(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_index() == 0 || self.snapshot_index() < request_index {
            return Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8],
            ..Default::default()
        }
    }

    fn store_with(n: u64) -> QuorumStorage {
        let mut s = QuorumStorage::default();
        s.append(&(1..=n).map(|i| ent(i, 1)).collect::<Vec<_>>())
            .unwrap();
        s.set_hard_state(HardState {
            term: 1,
            vote: 1,
            commit: n,
        });
        s
    }

    fn ctx() -> GetEntriesContext {
        GetEntriesContext::empty(false)
    }

    #[test]
    fn out_of_range_requests_are_errors_not_panics() {
        let s = store_with(5);
        assert_eq!(s.term(0), Ok(0));
        assert_eq!(s.term(6), Err(Error::Store(StorageError::Unavailable)));
        assert_eq!(
            s.entries(1, 8, None, ctx()),
            Err(Error::Store(StorageError::Unavailable))
        );
        assert_eq!(
            s.entries(4, 2, None, ctx()),
            Err(Error::Store(StorageError::Unavailable))
        );
        assert_eq!(s.entries(2, 4, None, ctx()).unwrap().len(), 2);
        assert_eq!(
            s.snapshot(0, 2),
            Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable))
        );
    }

    #[test]
    fn conflicting_append_truncates_from_its_first_index() {
        let mut s = store_with(5);
        s.append(&[ent(3, 2), ent(4, 2)]).unwrap();
        assert_eq!(s.last(), 4);
        assert_eq!(s.term(3), Ok(2));
        assert_eq!(s.term(2), Ok(1));
        // A gap is refused, and so is a non-contiguous batch.
        assert!(s.append(&[ent(7, 2)]).is_err());
        assert!(s.append(&[ent(5, 2), ent(7, 2)]).is_err());
        assert_eq!(s.last(), 4);
    }

    #[test]
    fn snapshot_then_compact_then_compacted_errors() {
        let mut s = store_with(5);
        let cs = ConfState::from((vec![1, 2, 3], vec![]));
        s.create_snapshot(3, cs.clone(), b"sm".to_vec()).unwrap();
        // Only what the snapshot covers may be compacted.
        assert!(s.compact(6).is_err());
        s.compact(4).unwrap();
        assert_eq!(s.first(), 4);
        assert_eq!(s.term(3), Ok(1));
        assert_eq!(s.term(2), Err(Error::Store(StorageError::Compacted)));
        assert_eq!(
            s.entries(3, 5, None, ctx()),
            Err(Error::Store(StorageError::Compacted))
        );
        let snap = s.snapshot(0, 2).unwrap();
        assert_eq!(snap.data, b"sm");
        assert_eq!(snap.get_metadata().index, 3);
        // Older snapshots are refused, and so are uncommitted ones.
        assert!(s.create_snapshot(2, cs.clone(), vec![]).is_err());
        s.set_hard_state(HardState {
            term: 1,
            vote: 1,
            commit: 4,
        });
        assert!(s.create_snapshot(5, cs, vec![]).is_err());
        // Entries below the compaction point are skipped on append.
        s.append(&[ent(2, 1), ent(3, 1), ent(4, 1), ent(5, 1), ent(6, 1)])
            .unwrap();
        assert_eq!((s.first(), s.last()), (4, 6));
    }

    #[test]
    fn installing_a_snapshot_replaces_the_log() {
        let mut s = store_with(5);
        let snap = Snapshot {
            data: b"leader".to_vec(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState::from((vec![1, 2, 3], vec![]))),
                index: 10,
                term: 3,
            }),
        };
        s.apply_snapshot(snap.clone()).unwrap();
        assert_eq!((s.first(), s.last()), (11, 10));
        assert_eq!(s.term(10), Ok(3));
        assert_eq!(s.hard_state().commit, 10);
        assert_eq!((s.hard_state().term, s.hard_state().vote), (3, 0));
        assert_eq!(s.conf_state().voters, vec![1, 2, 3]);
        let mut older = snap;
        older.mut_metadata().index = 9;
        assert_eq!(
            s.apply_snapshot(older),
            Err(Error::Store(StorageError::SnapshotOutOfDate))
        );
    }
}
