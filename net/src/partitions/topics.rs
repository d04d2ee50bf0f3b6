//! The topics this broker hosts, where each partition lives, and their configs; persisted in
//! `<data_dir>/topics.toml` (replaced atomically on every change).
//!
//! Shard 0 owns the registry and makes every change; each shard keeps an immutable snapshot
//! ([`Topics`], shared through an `Arc`) that shard 0 replaces after a change, so lookups on
//! the request path take no lock.
//!
//! In a cluster, the topics that came from the controller's metadata carry each partition's
//! placement as this broker sees it ([`ControllerTopic`]): its replicas, ISR, leader, and
//! whether this broker holds a replica. A broker running alone has none, and leads every
//! partition of every topic, as it always has.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use runnel_engine::rt;
use serde::{Deserialize, Serialize};

use super::TopicPartition;

const TOPICS_FILE: &str = "topics.toml";

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: Arc<str>,
    /// Kafka's topic id, as 32 hex digits.
    pub id: String,
    /// The owning shard of each partition, by partition index.
    pub shards: Vec<usize>,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
    /// Set when the topic came from the controller's metadata (cluster mode): where its
    /// partitions live. `None` for a lone broker's topics (and topics made before this node
    /// joined a cluster): this broker leads every partition. Absent from the file when
    /// `None`, so a lone broker's `topics.toml` reads and writes as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<ControllerTopic>,
}

/// A topic as the controller's metadata places it, seen from this broker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerTopic {
    /// By partition index; as long as the topic's `shards`.
    #[serde(default)]
    pub partitions: Vec<PartitionPlacement>,
}

/// One partition's replicas and leadership, as of the metadata the registry follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPlacement {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// The leading broker; -1 when none leads (no live ISR member).
    pub leader: i32,
    pub leader_epoch: i32,
    /// Counts every change to the partition's leader, ISR or replicas: a leader's ISR
    /// change names the one it builds on, so a stale view is refused.
    #[serde(default)]
    pub partition_epoch: i32,
    /// This broker's part in the partition.
    pub here: Here,
}

/// What this broker holds of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Here {
    /// It leads the partition (and holds its log).
    Leader,
    /// It holds a replica and follows the leader.
    Follower,
    /// It holds no replica: no log, and requests go to the leader.
    Absent,
}

impl TopicMeta {
    pub fn uuid(&self) -> uuid::Uuid {
        uuid::Uuid::parse_str(&self.id).unwrap_or_default()
    }

    /// The key of partition `index` (an index below `shards.len()`).
    pub fn partition(&self, index: usize) -> TopicPartition {
        TopicPartition {
            topic: self.name.clone(),
            partition: index as i32,
        }
    }

    /// Partition `partition`'s owning shard, if the topic has that partition. Meaningless for
    /// a partition this broker does not host (see [`TopicMeta::hosts`]).
    pub fn shard_of(&self, partition: i32) -> Option<usize> {
        self.shards.get(usize::try_from(partition).ok()?).copied()
    }

    /// Whether the topic came from the controller's metadata.
    pub fn from_controller(&self) -> bool {
        self.controller.is_some()
    }

    /// Partition `partition`'s placement in the cluster; `None` for a lone broker's topic (or
    /// a partition the topic doesn't have).
    pub fn placement(&self, partition: i32) -> Option<&PartitionPlacement> {
        let index = usize::try_from(partition).ok()?;
        self.controller.as_ref()?.partitions.get(index)
    }

    /// This broker's part in partition `index` (a lone broker leads them all).
    pub fn here(&self, index: usize) -> Here {
        match &self.controller {
            None if index < self.shards.len() => Here::Leader,
            None => Here::Absent,
            Some(topic) => topic.partitions.get(index).map_or(Here::Absent, |p| p.here),
        }
    }

    /// Whether this broker holds a replica (a log) of partition `index`.
    pub fn hosts(&self, index: usize) -> bool {
        self.here(index) != Here::Absent
    }

    /// Whether this broker leads partition `index`.
    pub fn leads(&self, index: usize) -> bool {
        self.here(index) == Here::Leader
    }

    /// The partitions this broker leads, with their shards, by index.
    pub fn led_here(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.shards
            .iter()
            .enumerate()
            .filter(|&(index, _)| self.leads(index))
            .map(|(index, &shard)| (index, shard))
    }
}

/// An immutable view of every topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics {
    pub by_name: BTreeMap<Arc<str>, Arc<TopicMeta>>,
    /// Counts changes since start-up, so a shard never replaces a newer view by an older one.
    pub version: u64,
    /// Cluster mode: the metadata offset (the controller log's applied index) the registry
    /// was last derived from. A restarted broker replays the metadata log from a snapshot,
    /// and an image older than this must not be followed: it could lack topics made since, or
    /// name a topic's deleted predecessor. 0 for a lone broker.
    pub metadata_offset: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TopicsFile {
    /// Before the topics: TOML puts plain keys ahead of arrays of tables.
    #[serde(default, skip_serializing_if = "is_zero")]
    metadata_offset: u64,
    #[serde(default, rename = "topic")]
    topics: Vec<TopicMeta>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Topics {
    pub fn get(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.by_name.get(name)
    }

    /// The topic whose id is `id` (requests may name topics by id instead of by name).
    pub fn by_id(&self, id: uuid::Uuid) -> Option<&Arc<TopicMeta>> {
        self.by_name.values().find(|t| t.uuid() == id)
    }

    /// Partitions per shard, for placing new ones where there are fewest. Only partitions
    /// this broker hosts count: the others have no log anywhere here.
    pub fn partitions_per_shard(&self, shards: usize) -> Vec<usize> {
        let mut counts = vec![0; shards];
        for topic in self.by_name.values() {
            for (index, &shard) in topic.shards.iter().enumerate() {
                if !topic.hosts(index) {
                    continue;
                }
                if let Some(count) = counts.get_mut(shard) {
                    *count += 1;
                }
            }
        }
        counts
    }

    /// Places `partitions` new partitions: each on the shard with the fewest so far.
    pub fn place(&self, partitions: usize, shards: usize) -> Vec<usize> {
        let mut counts = self.partitions_per_shard(shards);
        (0..partitions)
            .map(|_| {
                let shard = (0..shards).min_by_key(|&s| (counts[s], s)).unwrap_or(0);
                counts[shard] += 1;
                shard
            })
            .collect()
    }

    /// The registry a restarted node of a cluster starts from: every partition the
    /// controller placed here is held as a replica with no leader to follow, until the
    /// metadata, caught up, says who leads (the saved placements are as old as the last run,
    /// and leading on their word could serve or accept what the cluster has moved on from).
    pub fn without_leaders(mut self) -> Topics {
        for meta in self.by_name.values_mut() {
            let Some(controller) = &meta.controller else {
                continue;
            };
            if controller
                .partitions
                .iter()
                .all(|p| p.here != Here::Leader && p.leader < 0)
            {
                continue;
            }
            let meta = Arc::make_mut(meta);
            for p in meta.controller.iter_mut().flat_map(|c| &mut c.partitions) {
                if p.here == Here::Leader {
                    p.here = Here::Follower;
                }
                p.leader = -1;
            }
        }
        self
    }

    /// Reads `<data_dir>/topics.toml` (none yet: no topics). Partitions placed on shards
    /// that no longer exist (the broker now runs fewer) move to the remaining ones.
    pub fn load(data_dir: &Path, shards: usize) -> io::Result<Topics> {
        let text = match std::fs::read_to_string(data_dir.join(TOPICS_FILE)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Topics::default()),
            Err(e) => return Err(e),
        };
        let file: TopicsFile = toml::from_str(&text).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{TOPICS_FILE}: {e}"))
        })?;
        let mut topics = Topics {
            metadata_offset: file.metadata_offset,
            ..Topics::default()
        };
        for mut topic in file.topics {
            for shard in &mut topic.shards {
                *shard %= shards.max(1);
            }
            topics.by_name.insert(topic.name.clone(), Arc::new(topic));
        }
        Ok(topics)
    }

    /// Writes `<data_dir>/topics.toml` atomically and durably, off the shard's thread.
    pub async fn save(&self, data_dir: &Path) -> io::Result<()> {
        let file = TopicsFile {
            metadata_offset: self.metadata_offset,
            topics: self.by_name.values().map(|t| TopicMeta::clone(t)).collect(),
        };
        let text = toml::to_string(&file).map_err(io::Error::other)?;
        rt::fs::replace_atomically(data_dir, TOPICS_FILE, text.into_bytes()).await
    }
}

/// Removes partition directories no topic owns: left behind by a deletion that a crash cut
/// short, they would otherwise come back as the data of a topic re-created under the same
/// name. Only directories that look like partitions (`<name>-<n>` holding a checkpoint or
/// segments) are touched. Returns the names removed.
pub fn remove_orphan_partitions(data_dir: &Path, topics: &Topics) -> io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some((topic, partition)) = name
            .rsplit_once('-')
            .and_then(|(t, p)| Some((t, p.parse::<usize>().ok()?)))
        else {
            continue;
        };
        // A partition the cluster placed elsewhere is not ours either (its removal was cut
        // short, like a deletion's).
        let owned = topics.get(topic).is_some_and(|meta| meta.hosts(partition));
        let looks_like_partition = std::fs::read_dir(entry.path())?.any(|f| {
            f.ok()
                .and_then(|f| f.file_name().to_str().map(str::to_owned))
                .is_some_and(|f| f == "checkpoint" || f.ends_with(".log"))
        });
        if !owned && looks_like_partition {
            std::fs::remove_dir_all(entry.path())?;
            removed.push(name);
        }
    }
    if !removed.is_empty() {
        std::fs::File::open(data_dir)?.sync_all()?;
    }
    Ok(removed)
}

/// Why a topic name is not acceptable (Kafka's rules), if it isn't.
pub fn invalid_topic_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("topic name {name:?} is not allowed"));
    }
    if name.len() > 249 {
        return Some(format!(
            "topic name is {} characters long (at most 249)",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "topic name {name:?} contains {c:?} (allowed: a-z A-Z 0-9 . _ -)"
        ));
    }
    None
}

/// A new random topic id.
pub fn new_topic_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .simple()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `test` on the only shard of a runtime started for it.
    fn on_a_shard<F, Fut>(test: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let config = rt::RuntimeConfig {
            cores: 1,
            pin_threads: false,
            ..rt::RuntimeConfig::default()
        };
        let runtime = rt::Runtime::start(config, |_| async {}).expect("runtime starts");
        runtime.handle().run_on(0, test).expect("shard runs");
        runtime.join().expect("runtime stops");
    }

    #[test]
    fn placement_balances_shards() {
        let mut topics = Topics::default();
        let first = topics.place(3, 2);
        assert_eq!(first, vec![0, 1, 0]);
        topics.by_name.insert(
            "a".into(),
            Arc::new(TopicMeta {
                name: "a".into(),
                id: new_topic_id().unwrap(),
                shards: first,
                configs: BTreeMap::new(),
                controller: None,
            }),
        );
        assert_eq!(topics.place(3, 2), vec![1, 0, 1]);
    }

    #[test]
    fn saves_and_loads() {
        let dir = std::env::temp_dir().join(format!("runnel-topics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Topics::load(&dir, 2).unwrap(), Topics::default());
        let mut topics = Topics::default();
        let meta = TopicMeta {
            name: "orders".into(),
            id: new_topic_id().unwrap(),
            shards: vec![0, 1, 0],
            configs: [("retention.ms".to_string(), "1000".to_string())].into(),
            controller: None,
        };
        topics
            .by_name
            .insert("orders".into(), Arc::new(meta.clone()));
        let (saved, save_dir) = (topics.clone(), dir.clone());
        on_a_shard(move || async move { saved.save(&save_dir).await.unwrap() });
        assert_eq!(Topics::load(&dir, 2).unwrap(), topics);
        assert!(!dir.join("topics.toml.tmp").exists());
        // Fewer shards now: partitions fold onto the ones left.
        assert_eq!(
            Topics::load(&dir, 1).unwrap().get("orders").unwrap().shards,
            vec![0, 0, 0]
        );
        assert_eq!(meta.uuid().simple().to_string(), meta.id);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A topic of `partitions` from the controller, with this broker's part in each.
    fn controller_topic(name: &str, shards: Vec<usize>, here: &[Here]) -> TopicMeta {
        let partitions = here
            .iter()
            .map(|&here| PartitionPlacement {
                replicas: vec![1, 2],
                isr: vec![1, 2],
                leader: if here == Here::Leader { 1 } else { 2 },
                leader_epoch: 3,
                partition_epoch: 0,
                here,
            })
            .collect();
        TopicMeta {
            name: name.into(),
            id: new_topic_id().unwrap(),
            shards,
            configs: BTreeMap::new(),
            controller: Some(ControllerTopic { partitions }),
        }
    }

    #[test]
    fn a_lone_brokers_file_is_unchanged_and_cluster_placement_round_trips() {
        let dir = std::env::temp_dir().join(format!("runnel-topics-cl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A file written before placements existed loads as a lone broker's topic.
        std::fs::write(
            dir.join(TOPICS_FILE),
            "[[topic]]\nname = \"old\"\nid = \"00112233445566778899aabbccddeeff\"\nshards = [0, 1]\n",
        )
        .unwrap();
        let loaded = Topics::load(&dir, 2).unwrap();
        let old = loaded.get("old").unwrap();
        assert_eq!((old.controller.as_ref(), loaded.metadata_offset), (None, 0));
        assert!(old.leads(0) && old.leads(1) && !old.hosts(2));
        // Saving it again writes nothing new.
        let (saved, save_dir) = (loaded.clone(), dir.clone());
        on_a_shard(move || async move { saved.save(&save_dir).await.unwrap() });
        let text = std::fs::read_to_string(dir.join(TOPICS_FILE)).unwrap();
        assert!(!text.contains("controller") && !text.contains("metadata_offset"));
        // A cluster topic keeps its placement and the registry its metadata offset.
        let mut topics = loaded;
        let meta = controller_topic(
            "c",
            vec![0, 0, 1],
            &[Here::Leader, Here::Absent, Here::Follower],
        );
        topics.by_name.insert("c".into(), Arc::new(meta));
        topics.metadata_offset = 42;
        let (saved, save_dir) = (topics.clone(), dir.clone());
        on_a_shard(move || async move { saved.save(&save_dir).await.unwrap() });
        assert_eq!(Topics::load(&dir, 2).unwrap(), topics);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn only_hosted_partitions_count_for_placement() {
        let mut topics = Topics::default();
        let meta = controller_topic(
            "c",
            vec![0, 0, 0, 1],
            &[Here::Absent, Here::Absent, Here::Leader, Here::Follower],
        );
        assert!(!meta.hosts(0) && meta.leads(2) && !meta.leads(3) && meta.hosts(3));
        assert_eq!(meta.led_here().collect::<Vec<_>>(), vec![(2, 0)]);
        assert_eq!(meta.placement(3).map(|p| p.leader), Some(2));
        assert_eq!(meta.placement(4), None);
        topics.by_name.insert("c".into(), Arc::new(meta));
        assert_eq!(topics.partitions_per_shard(2), vec![1, 1]);
    }

    #[test]
    fn orphan_partitions_are_removed_and_others_kept() {
        let dir = std::env::temp_dir().join(format!("runnel-orphans-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (sub, file) in [
            ("kept-0", "checkpoint"),
            ("kept-1", "00000000000000000000.log"),
            ("gone-0", "checkpoint"),
            ("kept-7", "checkpoint"),
            ("not-a-partition", "checkpoint"),
            ("stranger-3", "notes.txt"),
            ("elsewhere-0", "checkpoint"),
            ("elsewhere-1", "checkpoint"),
        ] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            std::fs::write(dir.join(sub).join(file), b"").unwrap();
        }
        let mut topics = Topics::default();
        topics.by_name.insert(
            "kept".into(),
            Arc::new(TopicMeta {
                name: "kept".into(),
                id: new_topic_id().unwrap(),
                shards: vec![0, 0],
                configs: BTreeMap::new(),
                controller: None,
            }),
        );
        let elsewhere = controller_topic("elsewhere", vec![0, 0], &[Here::Absent, Here::Follower]);
        topics
            .by_name
            .insert("elsewhere".into(), Arc::new(elsewhere));
        let mut removed = remove_orphan_partitions(&dir, &topics).unwrap();
        removed.sort();
        assert_eq!(removed, vec!["elsewhere-0", "gone-0", "kept-7"]);
        for kept in [
            "kept-0",
            "kept-1",
            "not-a-partition",
            "stranger-3",
            "elsewhere-1",
        ] {
            assert!(dir.join(kept).exists(), "{kept}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn topic_names_follow_kafkas_rules() {
        assert_eq!(invalid_topic_name("orders.v2_eu-1"), None);
        for bad in ["", ".", "..", "has space", "slash/", &"x".repeat(250)] {
            assert!(invalid_topic_name(bad).is_some(), "{bad:?}");
        }
    }
}
