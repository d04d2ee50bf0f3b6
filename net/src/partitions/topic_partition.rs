//! The key of everything kept per partition: logs, replica state, routing.

use std::fmt;
use std::sync::Arc;

/// A topic's partition. The topic name is shared (`Arc<str>`), so keys made from the
/// registry cost a reference count, not a string copy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// `<topic>-<partition>`: the partition's directory under the data directory, as Kafka
    /// names it.
    pub fn dir_name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_topic_then_partition_and_names_kafkas_directory() {
        let a0 = TopicPartition::new("a", 0);
        let a10 = TopicPartition::new("a", 10);
        let b1 = TopicPartition::new("b", 1);
        assert!(a0 < a10 && a10 < b1);
        assert_eq!(a10.dir_name(), "a-10");
        assert_eq!(TopicPartition::new("a-b", 2).to_string(), "a-b-2");
    }
}
