//! The registry the follower derives from hand-made images.

use super::*;
use crate::controller::metadata::{MetadataRecord, PartitionChange, PartitionRecord, TopicId};

const ME: BrokerId = 2;

fn id(n: u8) -> TopicId {
    let mut id = [0u8; 16];
    id[15] = n;
    id
}

fn hex(n: u8) -> String {
    uuid::Uuid::from_bytes(id(n)).simple().to_string()
}

/// An image built record by record, each at the next offset.
struct ImageBuilder {
    image: MetadataImage,
    offset: u64,
}

impl ImageBuilder {
    fn new() -> Self {
        ImageBuilder {
            image: MetadataImage::new(),
            offset: 0,
        }
    }

    fn apply(&mut self, record: MetadataRecord) -> &mut Self {
        self.offset += 1;
        self.image
            .apply(self.offset, &record)
            .expect("a valid record");
        self
    }

    /// Topic `name` with id `n`, partition p on the replicas `replicas(p)`, led by the first.
    fn topic(
        &mut self,
        name: &str,
        n: u8,
        partitions: i32,
        replicas: fn(i32) -> Vec<i32>,
    ) -> &mut Self {
        self.apply(MetadataRecord::Topic {
            name: name.into(),
            id: id(n),
        });
        for p in 0..partitions {
            self.partition(n, p, replicas(p));
        }
        self
    }

    fn partition(&mut self, n: u8, partition: i32, replicas: Vec<i32>) -> &mut Self {
        self.apply(MetadataRecord::Partition(PartitionRecord {
            topic_id: id(n),
            partition,
            leader: replicas[0],
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
            reassigning: crate::controller::metadata::Reassigning::default(),
        }))
    }

    fn remove(&mut self, n: u8) -> &mut Self {
        self.apply(MetadataRecord::RemoveTopic { id: id(n) })
    }

    fn config(&mut self, topic: &str, name: &str, value: &str) -> &mut Self {
        self.apply(MetadataRecord::Config {
            resource: ConfigResource::Topic(topic.into()),
            name: name.into(),
            value: Some(value.into()),
        })
    }

    /// Where this image stands, caught up with a node that recovered nothing.
    fn at(&self) -> ImageAt {
        ImageAt {
            applied: self.offset,
            recovered_commit: 0,
            node_id: ME,
            shards: 2,
            may_lead: true,
        }
    }
}

/// RF 1 over brokers 1, 2, 3 in turn.
fn spread(p: i32) -> Vec<i32> {
    vec![p % 3 + 1]
}

/// RF 3, led by broker 1 (this broker, 2, follows).
fn everywhere(_: i32) -> Vec<i32> {
    vec![1, 2, 3]
}

fn install(follow: Follow) -> Topics {
    match follow {
        Follow::Install(topics) => topics,
        other => panic!("expected an install, got {other:?}"),
    }
}

/// A lone broker's topic (never from the controller).
fn local_topic(name: &str, id: String, partitions: usize) -> Arc<TopicMeta> {
    Arc::new(TopicMeta {
        name: name.into(),
        id,
        shards: vec![0; partitions],
        configs: BTreeMap::new(),
        controller: None,
    })
}

#[test]
fn every_topic_of_the_image_is_followed_with_this_brokers_part() {
    let mut b = ImageBuilder::new();
    b.topic("orders", 1, 6, spread)
        .topic("replicated", 2, 2, everywhere)
        .config("orders", "retention.ms", "1000");
    let topics = install(derive(&Topics::default(), &b.image, b.at()));
    assert_eq!(topics.metadata_offset, b.offset);
    let orders = topics.get("orders").expect("orders");
    assert_eq!(orders.id, hex(1));
    assert_eq!(orders.configs["retention.ms"], "1000");
    let here: Vec<Here> = (0..6).map(|p| orders.here(p)).collect();
    use Here::{Absent, Follower, Leader};
    assert_eq!(here, vec![Absent, Leader, Absent, Absent, Leader, Absent]);
    let p1 = orders.placement(1).expect("partition 1");
    assert_eq!(
        (p1.leader, p1.replicas.clone(), p1.isr.clone()),
        (2, vec![2], vec![2])
    );
    assert_eq!(orders.placement(0).map(|p| p.leader), Some(1));
    // Hosted partitions are spread over both shards; the others have none to speak of.
    let replicated = topics.get("replicated").expect("replicated");
    assert_eq!(
        (replicated.here(0), replicated.here(1)),
        (Follower, Follower)
    );
    let mut hosted_shards: Vec<usize> = [orders.shards[1], orders.shards[4]]
        .into_iter()
        .chain(replicated.shards.iter().copied())
        .collect();
    hosted_shards.sort();
    assert_eq!(hosted_shards, vec![0, 0, 1, 1]);
    assert_eq!(topics.partitions_per_shard(2), vec![2, 2]);
    // Derived again from the same image: nothing to do.
    assert_eq!(derive(&topics, &b.image, b.at()), Follow::Unchanged);
}

#[test]
fn placement_is_kept_and_new_partitions_are_placed() {
    let mut b = ImageBuilder::new();
    b.topic("t", 1, 2, everywhere);
    let mut topics = install(derive(&Topics::default(), &b.image, b.at()));
    // Suppose an earlier run put both partitions on shard 1.
    Arc::make_mut(topics.by_name.get_mut("t").unwrap()).shards = vec![1, 1];
    // Partition 0's leadership moves here; a partition is added.
    b.apply(MetadataRecord::PartitionChange(PartitionChange {
        topic_id: id(1),
        partition: 0,
        base_partition_epoch: 0,
        leader: Some(ME),
        isr: None,
        replicas: None,
        reassigning: None,
    }))
    .partition(1, 2, vec![2, 3]);
    let next = install(derive(&topics, &b.image, b.at()));
    let t = next.get("t").unwrap();
    assert_eq!(
        &t.shards[..2],
        &[1, 1],
        "existing partitions stay on their shards"
    );
    assert_eq!(t.shards[2], 0, "the new one goes where there are fewest");
    assert_eq!(
        (t.here(0), t.here(1), t.here(2)),
        (Here::Leader, Here::Follower, Here::Leader)
    );
    assert_eq!(
        t.placement(0).map(|p| (p.leader, p.leader_epoch)),
        Some((ME, 1))
    );
    assert_eq!(next.metadata_offset, b.offset);
}

#[test]
fn topics_the_controller_removed_are_dropped_and_re_created_ones_replaced() {
    let mut b = ImageBuilder::new();
    b.topic("gone", 1, 1, everywhere)
        .topic("again", 2, 1, everywhere);
    let topics = install(derive(&Topics::default(), &b.image, b.at()));
    b.remove(1).remove(2).topic("again", 3, 2, everywhere);
    let next = install(derive(&topics, &b.image, b.at()));
    assert!(next.get("gone").is_none());
    let again = next.get("again").unwrap();
    assert_eq!(
        (again.id.as_str(), again.shards.len()),
        (hex(3).as_str(), 2)
    );
}

#[test]
fn topics_from_before_the_cluster_are_left_alone_unless_the_image_holds_them() {
    let mut local = Topics::default();
    local
        .by_name
        .insert("mine".into(), local_topic("mine", hex(9), 3));
    local
        .by_name
        .insert("clash".into(), local_topic("clash", hex(8), 1));
    local
        .by_name
        .insert("same".into(), local_topic("same", hex(4), 1));
    let mut b = ImageBuilder::new();
    b.topic("clash", 5, 1, spread).topic("same", 4, 1, spread);
    let next = install(derive(&local, &b.image, b.at()));
    assert_eq!(
        next.get("mine"),
        local.get("mine"),
        "never from the controller: kept"
    );
    assert_eq!(
        next.get("clash"),
        local.get("clash"),
        "another id: the local data wins"
    );
    let same = next.get("same").unwrap();
    assert!(
        same.from_controller(),
        "the same topic: the image places it"
    );
    assert_eq!(same.here(0), Here::Absent);
}

#[test]
fn an_image_still_replaying_changes_nothing() {
    let mut b = ImageBuilder::new();
    b.topic("a", 1, 1, everywhere).topic("b", 2, 1, everywhere);
    let saved = install(derive(&Topics::default(), &b.image, b.at()));
    // After a restart the replay starts from an empty image (or an old snapshot): it lacks
    // both topics, and must not delete them.
    let replaying = ImageBuilder::new();
    let mut at = replaying.at();
    assert_eq!(
        derive(&saved, &replaying.image, at),
        Follow::Behind {
            applied: 0,
            needed: b.offset
        }
    );
    // Nor may it follow an image holding a topic's deleted predecessor.
    let mut old = ImageBuilder::new();
    old.topic("a", 7, 1, everywhere);
    at.applied = old.offset;
    assert!(matches!(
        derive(&saved, &old.image, at),
        Follow::Behind { .. }
    ));
    // A registry saved without an offset waits for the commit index found on disk.
    let mut unversioned = saved.clone();
    unversioned.metadata_offset = 0;
    at.recovered_commit = b.offset;
    assert!(matches!(
        derive(&unversioned, &old.image, at),
        Follow::Behind { .. }
    ));
    // Caught up, the image's word is final: "b" was deleted meanwhile.
    b.remove(2);
    let next = install(derive(&saved, &b.image, b.at()));
    assert!(next.get("a").is_some() && next.get("b").is_none());
}

#[test]
fn invalid_names_in_the_metadata_are_ignored() {
    let mut b = ImageBuilder::new();
    b.topic("../escape", 1, 1, everywhere)
        .topic("fine", 2, 1, everywhere);
    let topics = install(derive(&Topics::default(), &b.image, b.at()));
    assert_eq!(
        topics
            .by_name
            .keys()
            .map(|k| k.as_ref())
            .collect::<Vec<_>>(),
        vec!["fine"]
    );
}
