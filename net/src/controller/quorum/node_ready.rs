//! The Ready protocol half of [`Quorum`]: turning raft-rs Readies into [`Output`]s, taking
//! persistence acknowledgements, compaction and status.
//!
//! We use raft-rs's asynchronous protocol (`advance_append_async` + `on_persist_ready`): the
//! in-memory storage takes each Ready's entries and hard state at once, so raft can read
//! them back, while raft's own `persisted` index (what it counts in votes and commits, and
//! the bound on what it hands out as committed) moves only when the driver reports the write
//! durable. The driver can thus keep stepping and ticking while a write is in flight.

use raft::eraftpb::Message;
use raft::StateRole;

use super::*;

impl Quorum {
    /// The next batch of work, if any. Apply `installed` and `committed` before calling
    /// again (they are counted as applied from here on).
    pub fn ready(&mut self) -> Option<Output> {
        let unpersisted = self.conf_unpersisted || self.rotation_unpersisted;
        if self.deferred.is_some() || !(self.raw.has_ready() || unpersisted) {
            return None;
        }
        let mut rd = self.raw.ready();
        let number = rd.number();
        self.issued = number;
        let mut out = Output {
            number,
            messages: rd.take_messages(),
            ..Output::default()
        };
        out.persist.must_sync = rd.must_sync();
        for m in &out.messages {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.snapshots_sent.insert(m.to, self.ticks);
            }
        }
        let store = self.raw.mut_store();

        let snapshot = rd.snapshot().clone();
        if !snapshot.is_empty() {
            let meta = snapshot.get_metadata();
            out.installed = Some(InstalledSnapshot {
                index: meta.index,
                term: meta.term,
                data: snapshot.data.clone(),
            });
            out.persist.rotation = Some(Rotation {
                snapshot_index: meta.index,
                snapshot_file: wal::encode_snapshot(&snapshot),
            });
            store
                .apply_snapshot(snapshot)
                .expect("raft installs only snapshots beyond its commit, hence beyond ours");
        }
        if self.rotation_unpersisted && out.persist.rotation.is_none() {
            // Finish the rotation a crash cut short: the WAL on disk predates the snapshot.
            let snap = store.latest_snapshot();
            out.persist.rotation = Some(Rotation {
                snapshot_index: snap.get_metadata().index,
                snapshot_file: wal::encode_snapshot(snap),
            });
            out.persist.must_sync = true;
        }
        self.rotation_unpersisted = false;
        let entries = rd.take_entries();
        store
            .append(&entries)
            .expect("raft's unstable entries continue its log above the compaction point");
        if let Some(hs) = rd.hs() {
            store.set_hard_state(hs.clone());
        }
        if out.persist.rotation.is_some() {
            // The new WAL file starts with everything the log now holds.
            out.persist.wal = wal::encode_head(store);
        } else {
            if self.conf_unpersisted {
                wal::encode_conf_state(store.conf_state(), &mut out.persist.wal);
                out.persist.must_sync = true;
            }
            wal::encode_entries(&entries, &mut out.persist.wal);
            if let Some(hs) = rd.hs() {
                wal::encode_hard_state(hs, &mut out.persist.wal);
            }
        }
        self.conf_unpersisted = false;

        let committed = rd.take_committed_entries();
        if let Some(last) = committed.last() {
            self.applied = last.index;
        }
        if let Some(snap) = &out.installed {
            self.applied = snap.index;
        }
        out.applied = self.applied;
        out.committed = committed
            .into_iter()
            .filter(|e| e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty())
            .map(|e| Committed {
                index: e.index,
                term: e.term,
                data: e.data,
            })
            .collect();
        let persisted_msgs = rd.take_persisted_messages();
        if !persisted_msgs.is_empty() {
            self.waiting.push_back((number, persisted_msgs));
        }
        if out.installed.is_some() {
            self.deferred = Some(rd);
        } else {
            self.raw.advance_append_async(rd);
            self.raw.advance_apply_to(self.applied);
        }
        Some(out)
    }

    /// Outputs up to `number` are durable: returns the messages that were waiting for that
    /// (votes, append acknowledgements), to send now. Numbers must not go backwards.
    pub fn persisted(&mut self, number: u64) -> Vec<Message> {
        let number = number.min(self.issued);
        if let Some(rd) = self.deferred.take_if(|rd| rd.number() <= number) {
            // The installed snapshot is durable: only now may raft treat it as stable and
            // count it applied (before, raft would look for entries below the snapshot).
            self.raw.advance_append_async(rd);
            self.raw.on_persist_ready(number);
            self.raw.advance_apply_to(self.applied);
        } else {
            self.raw.on_persist_ready(number);
        }
        self.pin_election_timeout();
        let mut out = Vec::new();
        while self.waiting.front().is_some_and(|(n, _)| *n <= number) {
            if let Some((_, mut msgs)) = self.waiting.pop_front() {
                out.append(&mut msgs);
            }
        }
        out
    }

    /// Snapshots the state machine (`data`, at `applied`) and drops the log before it.
    /// Returns the rotation to write (snapshot file, then a new WAL starting with `wal`);
    /// write it after every output already handed out, before any later one.
    pub fn compact(&mut self, applied: u64, data: Vec<u8>) -> Result<Persist, QuorumError> {
        if self.deferred.is_some() {
            return Err(QuorumError::SnapshotInFlight);
        }
        if applied > self.applied {
            return Err(QuorumError::AppliedOutOfRange {
                applied,
                first: self.raw.store().first(),
                last: self.applied,
            });
        }
        let cs = self.raw.store().conf_state().clone();
        let store = self.raw.mut_store();
        let snapshot = store
            .create_snapshot(applied, cs, data)
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let rotation = Rotation {
            snapshot_index: applied,
            snapshot_file: wal::encode_snapshot(snapshot),
        };
        store
            .compact(applied + 1)
            .expect("the snapshot just taken covers everything up to applied");
        Ok(Persist {
            rotation: Some(rotation),
            wal: wal::encode_head(store),
            must_sync: true,
        })
    }

    /// Role, term, leader, indexes and (as leader) each voter's progress.
    pub fn status(&self) -> QuorumStatus {
        let raft = &self.raw.raft;
        let role = match raft.state {
            StateRole::Follower => Role::Follower,
            StateRole::PreCandidate => Role::PreCandidate,
            StateRole::Candidate => Role::Candidate,
            StateRole::Leader => Role::Leader,
        };
        let mut voters = Vec::new();
        if role == Role::Leader {
            voters = raft
                .prs()
                .iter()
                .map(|(id, pr)| VoterProgress {
                    id: *id,
                    matched: pr.matched,
                })
                .collect();
            voters.sort_by_key(|v| v.id);
        }
        let store = self.raw.store();
        QuorumStatus {
            id: raft.id,
            role,
            term: raft.term,
            leader: self.leader(),
            commit: raft.raft_log.committed,
            applied: self.applied,
            last_index: raft.raft_log.last_index(),
            snapshot_index: store.latest_snapshot().get_metadata().index,
            voters,
        }
    }

    /// The log's storage (for inspection; the driver never writes it directly).
    pub fn storage(&self) -> &QuorumStorage {
        self.raw.store()
    }
}
