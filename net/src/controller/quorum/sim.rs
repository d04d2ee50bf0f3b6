//! A deterministic cluster simulator for the quorum: seeded network (loss, delay, reorder,
//! partitions), disks holding only what the driver protocol made durable, crashes that lose
//! (or tear) pending writes, restarts from the disk bytes alone, and invariant checks after
//! every round. It drives [`Quorum`] exactly as the driver must (see [`super`]).

use std::collections::{BTreeMap, HashMap, VecDeque};

use raft::eraftpb::MessageType;

use super::wal::{self, Recovered};
use super::wire;
use super::{Output, Persist, Quorum, Role, Timing};

/// xorshift64*: small, seedable, good enough for fault schedules.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

/// A queued durable write, in the order the driver must perform them.
#[derive(Debug)]
enum Write {
    Append(Vec<u8>),
    Snapshot(Vec<u8>),
    NewWal(Vec<u8>),
    Ack(u64),
}

/// What survives a crash.
#[derive(Debug, Default, Clone)]
pub struct Disk {
    pub snapshot: Option<Vec<u8>>,
    pub wal: Vec<u8>,
}

/// The state machine: every applied proposal with its index.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StateMachine {
    pub applied: u64,
    pub entries: Vec<(u64, Vec<u8>)>,
}

impl StateMachine {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.applied.to_be_bytes().to_vec();
        for (i, d) in &self.entries {
            out.extend_from_slice(&i.to_be_bytes());
            out.extend_from_slice(&(d.len() as u32).to_be_bytes());
            out.extend_from_slice(d);
        }
        out
    }
    fn decode(mut b: &[u8]) -> StateMachine {
        let applied = u64::from_be_bytes(b[..8].try_into().unwrap());
        b = &b[8..];
        let mut entries = Vec::new();
        while !b.is_empty() {
            let i = u64::from_be_bytes(b[..8].try_into().unwrap());
            let n = u32::from_be_bytes(b[8..12].try_into().unwrap()) as usize;
            entries.push((i, b[12..12 + n].to_vec()));
            b = &b[12 + n..];
        }
        StateMachine { applied, entries }
    }
}

#[derive(Debug)]
pub struct SimNode {
    pub id: u64,
    pub q: Option<Quorum>,
    pub disk: Disk,
    queue: VecDeque<Write>,
    pub sm: StateMachine,
    pub installs: usize,
}

#[derive(Debug)]
struct InFlight {
    at: u64,
    from: u64,
    to: u64,
    bytes: Vec<u8>,
}

/// Knobs a test sets; all randomness comes from the seed.
#[derive(Debug, Clone)]
pub struct Faults {
    pub drop: f64,
    pub max_delay: u64,
    /// Chance per round that a node's pending writes become durable.
    pub flush: f64,
    /// Compact when this many entries were applied since the last snapshot (0: never).
    pub compact_after: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            drop: 0.0,
            max_delay: 1,
            flush: 1.0,
            compact_after: 0,
        }
    }
}

#[derive(Debug)]
pub struct Sim {
    pub seed: u64,
    pub rng: Rng,
    pub nodes: Vec<SimNode>,
    pub now: u64,
    pub faults: Faults,
    pub timing: Timing,
    net: Vec<InFlight>,
    /// Partition group per node (same group: connected); None: fully connected.
    groups: Option<Vec<u8>>,
    /// Election safety record: the leader seen in each term.
    pub leaders: HashMap<u64, u64>,
    /// The common applied sequence: index → data, from the first node to apply it.
    pub log: BTreeMap<u64, Vec<u8>>,
    proposals: u64,
    pub crashes: usize,
    /// Crashes that left a partly written WAL append on disk.
    pub torn_writes: usize,
}

impl Sim {
    pub fn new(n: u64, seed: u64, faults: Faults) -> Sim {
        let mut sim = Sim {
            seed,
            rng: Rng::new(seed),
            nodes: Vec::new(),
            now: 0,
            faults,
            timing: Timing::default(),
            net: Vec::new(),
            groups: None,
            leaders: HashMap::new(),
            log: BTreeMap::new(),
            proposals: 0,
            crashes: 0,
            torn_writes: 0,
        };
        for id in 1..=n {
            sim.nodes.push(SimNode {
                id,
                q: None,
                disk: Disk::default(),
                queue: VecDeque::new(),
                sm: StateMachine::default(),
                installs: 0,
            });
        }
        for id in 1..=n {
            sim.restart(id);
        }
        sim
    }

    fn voters(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn node(&mut self, id: u64) -> &mut SimNode {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn quorum(&self, id: u64) -> Option<&Quorum> {
        self.nodes[(id - 1) as usize].q.as_ref()
    }

    fn fail(&self, what: String) -> ! {
        panic!("seed {} tick {}: {what}", self.seed, self.now)
    }

    /// Partitions the cluster: nodes in the same group talk, others do not.
    pub fn partition(&mut self, groups: &[&[u64]]) {
        let mut g = vec![u8::MAX; self.nodes.len()];
        for (k, ids) in groups.iter().enumerate() {
            for id in *ids {
                g[(*id - 1) as usize] = k as u8;
            }
        }
        self.groups = Some(g);
    }

    pub fn heal(&mut self) {
        self.groups = None;
    }

    fn connected(&self, a: u64, b: u64) -> bool {
        self.groups
            .as_ref()
            .is_none_or(|g| g[(a - 1) as usize] == g[(b - 1) as usize])
    }

    /// Loses the node's volatile state. Pending writes may land partly: a random prefix of
    /// them is made durable, the last possibly torn — none of them was acknowledged.
    pub fn crash(&mut self, id: u64) {
        let pending = self.node(id).queue.len() as u64;
        let keep = self.rng.below(pending + 1) as usize;
        let tear = self.rng.next();
        self.crashes += 1;
        let mut torn = false;
        let node = self.node(id);
        node.q = None;
        let pending: Vec<Write> = node.queue.drain(..).collect();
        for (k, w) in pending.into_iter().enumerate().take(keep) {
            match w {
                Write::Append(b) if k + 1 == keep => {
                    let cut = (tear % (b.len() as u64 + 1)) as usize;
                    node.disk.wal.extend_from_slice(&b[..cut]);
                    torn = cut < b.len();
                }
                w => apply_write(&mut node.disk, w),
            }
        }
        self.torn_writes += usize::from(torn);
    }

    /// Loses the node's volatile state and every write not yet durable.
    pub fn crash_losing_pending(&mut self, id: u64) {
        self.crashes += 1;
        let node = self.node(id);
        node.q = None;
        node.queue.clear();
    }

    /// Starts the node from its disk alone, as the driver does.
    pub fn restart(&mut self, id: u64) {
        let voters = self.voters();
        let timing = self.timing;
        let election_seed = self.rng.next() ^ id;
        let node = self.node(id);
        let recovered: Recovered = wal::recover(node.disk.snapshot.as_deref(), &node.disk.wal)
            .unwrap_or_else(|e| panic!("node {id} cannot recover: {e}"));
        node.disk.wal.truncate(recovered.valid_len);
        let snap = recovered.storage.latest_snapshot();
        node.sm = if snap.get_metadata().index > 0 {
            StateMachine::decode(&snap.data)
        } else {
            StateMachine::default()
        };
        let applied = node.sm.applied;
        let mut q = Quorum::new(id, &voters, recovered, applied, timing)
            .unwrap_or_else(|e| panic!("node {id} cannot start: {e}"));
        // raft-rs draws election timeouts from thread_rng; ours come from the seed, distinct
        // per node and per restart, so a run replays exactly.
        q.seed_election_timeouts(election_seed);
        node.q = Some(q);
        let sm = node.sm.clone();
        self.check_sm(id, &sm);
        self.process(id);
    }

    pub fn is_up(&self, id: u64) -> bool {
        self.quorum(id).is_some()
    }

    /// The live leader with the highest term, if any.
    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter_map(|n| n.q.as_ref().map(|q| (n.id, q.status())))
            .filter(|(_, s)| s.role == Role::Leader)
            .max_by_key(|(_, s)| s.term)
            .map(|(id, _)| id)
    }

    /// Proposes a fresh payload on `id`; returns it when the node accepted it.
    pub fn propose(&mut self, id: u64) -> Option<Vec<u8>> {
        self.proposals += 1;
        let data = format!("s{}-p{}", self.seed, self.proposals).into_bytes();
        let q = self.node(id).q.as_mut()?;
        q.propose(data.clone()).ok()?;
        self.process(id);
        Some(data)
    }

    /// Whether any node applied `data`.
    pub fn applied_anywhere(&self, data: &[u8]) -> bool {
        self.log.values().any(|d| d == data)
    }

    /// One tick: tick everyone, deliver what is due, run every node's Ready loop.
    pub fn round(&mut self) {
        self.now += 1;
        for id in self.voters() {
            if let Some(q) = self.node(id).q.as_mut() {
                q.tick();
            }
        }
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = self.net.drain(..).partition(|m| m.at <= now);
        self.net = later;
        for m in due {
            if !self.connected(m.from, m.to) {
                continue;
            }
            let Some(q) = self.node(m.to).q.as_mut() else {
                continue;
            };
            let (msg, _) = wire::decode(&m.bytes, wire::DEFAULT_MAX_FRAME)
                .unwrap_or_else(|e| panic!("our own frame does not decode: {e}"))
                .expect("whole frame");
            let snapshot_from =
                (msg.get_msg_type() == MessageType::MsgSnapshot).then_some(msg.from);
            // Refusals (stale or contradicting messages) are the driver's to log and drop.
            let _ = q.step(msg);
            // Like a transport's acknowledgement, sometimes; the timeout covers the rest.
            if let Some(leader) = snapshot_from {
                if self.rng.chance(0.5) {
                    if let Some(lq) = self.node(leader).q.as_mut() {
                        lq.report_snapshot(m.to, true);
                    }
                }
            }
        }
        for id in self.voters() {
            self.process(id);
            if self.rng.chance(self.faults.flush) {
                self.flush(id);
            }
        }
        self.check_leaders();
    }

    pub fn run(&mut self, rounds: u64) {
        for _ in 0..rounds {
            self.round();
        }
    }

    /// Runs until `cond` holds (true) or `limit` rounds pass (false).
    pub fn run_until(&mut self, limit: u64, mut cond: impl FnMut(&Sim) -> bool) -> bool {
        for _ in 0..limit {
            if cond(self) {
                return true;
            }
            self.round();
        }
        cond(self)
    }

    /// Drains the node's Ready loop, applying and queueing as the driver protocol says.
    fn process(&mut self, id: u64) {
        while let Some(out) = self.node(id).q.as_mut().and_then(|q| q.ready()) {
            self.handle(id, out);
        }
        let after = self.faults.compact_after;
        let node = self.node(id);
        let Some(q) = node.q.as_mut() else { return };
        if after > 0 && node.sm.applied >= q.status().snapshot_index + after {
            match q.compact(node.sm.applied, node.sm.encode()) {
                Ok(persist) => queue_persist(&mut node.queue, persist),
                Err(super::QuorumError::SnapshotInFlight) => {}
                Err(e) => panic!("compaction refused: {e}"),
            }
        }
    }

    fn handle(&mut self, id: u64, out: Output) {
        self.send(id, out.messages);
        if let Some(snap) = out.installed {
            let sm = StateMachine::decode(&snap.data);
            if sm.applied != snap.index {
                self.fail(format!(
                    "installed snapshot at {} holds {}",
                    snap.index, sm.applied
                ));
            }
            self.check_sm(id, &sm);
            self.node(id).installs += 1;
            self.node(id).sm = sm;
        }
        for c in out.committed {
            let prev = self.node(id).sm.applied;
            if c.index <= prev {
                self.fail(format!("node {id} applies {} after {prev}", c.index));
            }
            let node = self.node(id);
            node.sm.applied = c.index;
            node.sm.entries.push((c.index, c.data.clone()));
            match self.log.get(&c.index) {
                Some(d) if *d != c.data => self.fail(format!(
                    "state machine safety: node {id} applied {:?} at {}, others {:?}",
                    String::from_utf8_lossy(&c.data),
                    c.index,
                    String::from_utf8_lossy(d)
                )),
                Some(_) => {}
                None => {
                    self.log.insert(c.index, c.data);
                }
            }
        }
        let node = self.node(id);
        node.sm.applied = node.sm.applied.max(out.applied);
        let sm = node.sm.clone();
        self.check_sm(id, &sm);
        let node = self.node(id);
        queue_persist(&mut node.queue, out.persist);
        node.queue.push_back(Write::Ack(out.number));
    }

    /// Every node's state machine is exactly the common sequence up to its applied index.
    fn check_sm(&self, id: u64, sm: &StateMachine) {
        let common: Vec<(u64, Vec<u8>)> = self
            .log
            .range(..=sm.applied)
            .map(|(i, d)| (*i, d.clone()))
            .collect();
        if sm.entries != common {
            self.fail(format!(
                "node {id}'s state machine is not a prefix of the common log"
            ));
        }
    }

    /// Makes every pending write of `id` durable, acknowledging as it goes.
    pub fn flush(&mut self, id: u64) {
        let had_writes = !self.node(id).queue.is_empty();
        while let Some(w) = self.node(id).queue.pop_front() {
            match w {
                Write::Ack(n) => {
                    let msgs = match self.node(id).q.as_mut() {
                        Some(q) => q.persisted(n),
                        None => return,
                    };
                    self.send(id, msgs);
                }
                w => apply_write(&mut self.node(id).disk, w),
            }
        }
        if had_writes {
            self.check_disk_mirrors_memory(id);
        }
        self.process(id);
    }

    /// With every output written, recovering the disk must give back exactly the log in
    /// memory: what was acknowledged is what a restart will see.
    fn check_disk_mirrors_memory(&self, id: u64) {
        let node = &self.nodes[(id - 1) as usize];
        let Some(q) = &node.q else { return };
        let r = wal::recover(node.disk.snapshot.as_deref(), &node.disk.wal)
            .unwrap_or_else(|e| self.fail(format!("node {id}'s disk does not recover: {e}")));
        if r.valid_len != node.disk.wal.len() || r.storage != *q.storage() {
            self.fail(format!(
                "node {id}'s disk does not hold its acknowledged log"
            ));
        }
    }

    fn send(&mut self, from: u64, msgs: Vec<raft::eraftpb::Message>) {
        for m in msgs {
            if !self.connected(from, m.to) || self.rng.chance(self.faults.drop) {
                continue;
            }
            let mut bytes = Vec::new();
            wire::encode(&m, &mut bytes);
            let at = self.now + 1 + self.rng.below(self.faults.max_delay);
            self.net.push(InFlight {
                at,
                from,
                to: m.to,
                bytes,
            });
        }
    }

    /// Election safety: never two leaders in one term.
    fn check_leaders(&mut self) {
        for n in &self.nodes {
            let Some(q) = &n.q else { continue };
            let s = q.status();
            if s.role != Role::Leader {
                continue;
            }
            match self.leaders.get(&s.term) {
                Some(other) if *other != n.id => self.fail(format!(
                    "two leaders in term {}: {} and {}",
                    s.term, other, n.id
                )),
                _ => {
                    self.leaders.insert(s.term, n.id);
                }
            }
        }
    }
}

fn queue_persist(queue: &mut VecDeque<Write>, persist: Persist) {
    match persist.rotation {
        Some(rot) => {
            queue.push_back(Write::Snapshot(rot.snapshot_file));
            queue.push_back(Write::NewWal(persist.wal));
        }
        None if !persist.wal.is_empty() => queue.push_back(Write::Append(persist.wal)),
        None => {}
    }
}

fn apply_write(disk: &mut Disk, w: Write) {
    match w {
        Write::Append(b) => disk.wal.extend_from_slice(&b),
        Write::Snapshot(f) => disk.snapshot = Some(f),
        Write::NewWal(h) => disk.wal = h,
        Write::Ack(_) => {}
    }
}
