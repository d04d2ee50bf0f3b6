//! `runnelctl topic ...`: create, list, describe, alter the configs of, delete and add
//! partitions to topics, as `kafka-topics.sh` and `rpk topic` do, with CreateTopics,
//! Metadata, ListOffsets, DescribeLogDirs, DescribeConfigs, IncrementalAlterConfigs,
//! DeleteTopics and CreatePartitions.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use crate::client::{kafka_error, Client};
use crate::config::{self, Changes, Entry, DEFAULT_CONFIG, TOPIC};
use crate::output::{Format, Report};
use crate::Global;

#[derive(Debug, clap::Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// The topic's name.
        name: String,
        /// Number of partitions (default: the broker's num.partitions).
        #[arg(long, short = 'p', value_name = "N")]
        partitions: Option<i32>,
        /// Replicas of each partition (default: the broker's default.replication.factor).
        #[arg(long, short = 'r', value_name = "N")]
        replicas: Option<i16>,
        /// A topic config (repeatable), such as retention.ms=86400000.
        #[arg(long, short = 'c', value_name = "NAME=VALUE", value_parser = config::parse_pair)]
        config: Vec<(String, String)>,
        /// Where each partition's replicas go, instead of --partitions and --replicas:
        /// partitions separated by commas, each a colon-separated list of broker ids (the
        /// first preferred as leader), as kafka-topics.sh takes it: "0:1,1:2" is two
        /// partitions of two replicas.
        #[arg(
            long,
            value_name = "ASSIGNMENT",
            value_parser = parse_assignment,
            conflicts_with_all = ["partitions", "replicas"]
        )]
        replica_assignment: Option<Assignment>,
        /// Only check that the topic could be created (validate_only); create nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List topics with their partition counts and replication factors.
    List {
        /// Include internal topics (__consumer_offsets).
        #[arg(long)]
        internal: bool,
    },
    /// Describe topics: each partition's leader, replicas, in-sync replicas, log start offset,
    /// high watermark and size on disk, and the topic's configs that aren't at their default.
    Describe {
        /// The topics (default: every topic but the internal ones).
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
    /// Change a topic's configs, leaving the others as they are.
    AlterConfig {
        /// The topic.
        name: String,
        #[command(flatten)]
        changes: Changes,
        /// Only check the changes; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete topics and their data.
    Delete {
        /// The topics.
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Add partitions to a topic (partitions are never removed).
    AddPartitions {
        /// The topic.
        name: String,
        /// The topic's new total partition count, as Kafka counts it (not the number added).
        #[arg(long, value_name = "N")]
        to: i32,
        /// Only check that the partitions could be added; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(command: TopicCommand, global: &Global) -> Result<(), String> {
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replicas,
            config,
            replica_assignment,
            dry_run,
        } => {
            let spec = Spec {
                partitions: partitions.unwrap_or(-1),
                replicas: replicas.unwrap_or(-1),
                configs: config,
                assignment: replica_assignment.map_or_else(Vec::new, |a| a.0),
            };
            create(global, &name, &spec, dry_run)
        }
        TopicCommand::List { internal } => list(global, internal),
        TopicCommand::Describe { names } => describe(global, &names),
        TopicCommand::AlterConfig {
            name,
            changes,
            dry_run,
        } => {
            let mut client = global.connect()?;
            config::alter(&mut client, TOPIC, &name, &changes, dry_run)?;
            config::changes_report(TOPIC, &name, &changes, dry_run, global.output);
            Ok(())
        }
        TopicCommand::Delete { names } => delete(global, &names),
        TopicCommand::AddPartitions { name, to, dry_run } => {
            add_partitions(global, &name, to, dry_run)
        }
    }
}

/// Each partition's replicas, by broker id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment(Vec<Vec<i32>>);

/// `--replica-assignment`: "0:1,1:2" is partition 0 on brokers 0 and 1, partition 1 on 1 and 2.
fn parse_assignment(s: &str) -> Result<Assignment, String> {
    s.split(',')
        .map(|partition| {
            partition
                .split(':')
                .map(|id| {
                    id.trim()
                        .parse::<i32>()
                        .map_err(|_| format!("{id:?} is not a broker id (in {s:?})"))
                })
                .collect()
        })
        .collect::<Result<_, _>>()
        .map(Assignment)
}

/// The timeout a request gives the broker, in milliseconds.
fn timeout_ms(global: &Global) -> i32 {
    i32::try_from(global.timeout.saturating_mul(1000)).unwrap_or(i32::MAX)
}

/// A topic's Kafka error: its name, then the broker's message.
fn topic_error(code: i16, topic: &str, message: Option<&str>) -> String {
    let message = match message.filter(|m| !m.is_empty()) {
        // The broker's message may name the topic already.
        Some(m) if m.contains(topic) => m.to_owned(),
        Some(m) => format!("topic {topic}: {m}"),
        None => format!("topic {topic}"),
    };
    kafka_error(code, Some(&message))
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// What to create.
struct Spec {
    partitions: i32,
    replicas: i16,
    configs: Vec<(String, String)>,
    assignment: Vec<Vec<i32>>,
}

fn create(global: &Global, name: &str, spec: &Spec, dry_run: bool) -> Result<(), String> {
    let mut topic = CreatableTopic::default();
    topic.name = topic_name(name);
    topic.num_partitions = spec.partitions;
    topic.replication_factor = spec.replicas;
    topic.configs = spec
        .configs
        .iter()
        .map(|(k, v)| {
            let mut c = CreatableTopicConfig::default();
            c.name = StrBytes::from_string(k.clone());
            c.value = Some(StrBytes::from_string(v.clone()));
            c
        })
        .collect();
    topic.assignments = spec
        .assignment
        .iter()
        .enumerate()
        .map(|(index, brokers)| {
            let mut a = CreatableReplicaAssignment::default();
            a.partition_index = index as i32;
            a.broker_ids = brokers.iter().map(|&id| BrokerId(id)).collect();
            a
        })
        .collect();
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![topic];
    request.timeout_ms = timeout_ms(global);
    request.validate_only = dry_run;
    let mut client = global.connect()?;
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &request)?;
    let result = response
        .topics
        .first()
        .ok_or_else(|| "the broker answered CreateTopics with no result".to_owned())?;
    if result.error_code != 0 {
        return Err(topic_error(
            result.error_code,
            name,
            result.error_message.as_deref(),
        ));
    }
    let id = (!result.topic_id.is_nil()).then(|| result.topic_id.to_string());
    let status = if dry_run {
        "valid (dry run, not created)"
    } else {
        "created"
    };
    let mut report = Report::new(&["topic", "partitions", "replicas", "status"]);
    report.row(vec![
        name.to_owned(),
        result.num_partitions.to_string(),
        result.replication_factor.to_string(),
        status.to_owned(),
    ]);
    // The configs the topic sets (the broker reports every config in force).
    let configs: BTreeMap<&str, Option<&str>> = result
        .configs
        .iter()
        .flatten()
        .filter(|c| c.config_source == 1)
        .map(|c| (c.name.as_str(), c.value.as_deref()))
        .collect();
    report.json = Some(json!({
        "name": name,
        "id": id,
        "partitions": result.num_partitions,
        "replicas": result.replication_factor,
        "configs": configs,
        "dry_run": dry_run,
    }));
    report.print(global.output);
    Ok(())
}

/// Metadata of the topics named (every topic when none), without creating any; an unknown or
/// failed topic is an error.
fn metadata(client: &mut Client, names: &[String]) -> Result<Vec<MetadataResponseTopic>, String> {
    let mut request = MetadataRequest::default();
    request.allow_auto_topic_creation = false;
    request.topics = (!names.is_empty()).then(|| {
        names
            .iter()
            .map(|n| {
                let mut t = MetadataRequestTopic::default();
                t.name = Some(topic_name(n));
                t
            })
            .collect()
    });
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request)?;
    let mut topics = response.topics;
    if let Some(failed) = topics.iter().find(|t| t.error_code != 0) {
        let name = failed.name.as_ref().map_or("", |n| n.0.as_str());
        return Err(topic_error(failed.error_code, name, None));
    }
    for name in names {
        if !topics.iter().any(|t| name_of(t) == name) {
            return Err(format!("the broker did not describe topic {name}"));
        }
    }
    topics.sort_by(|a, b| name_of(a).cmp(name_of(b)));
    topics.dedup_by(|a, b| name_of(a) == name_of(b));
    for topic in &mut topics {
        topic.partitions.sort_by_key(|p| p.partition_index);
    }
    Ok(topics)
}

fn name_of(topic: &MetadataResponseTopic) -> &str {
    topic.name.as_ref().map_or("", |n| n.0.as_str())
}

/// A topic's replication factor: its first partition's replica count.
fn replication_factor(topic: &MetadataResponseTopic) -> usize {
    topic
        .partitions
        .first()
        .map_or(0, |p| p.replica_nodes.len())
}

fn list(global: &Global, internal: bool) -> Result<(), String> {
    let mut client = global.connect()?;
    let topics = metadata(&mut client, &[])?;
    let mut report = Report::new(&["name", "partitions", "replicas"]);
    let mut json = Vec::new();
    for topic in topics.iter().filter(|t| internal || !t.is_internal) {
        report.row(vec![
            name_of(topic).to_owned(),
            topic.partitions.len().to_string(),
            replication_factor(topic).to_string(),
        ]);
        json.push(json!({
            "name": name_of(topic),
            "id": topic.topic_id.to_string(),
            "partitions": topic.partitions.len(),
            "replicas": replication_factor(topic),
            "internal": topic.is_internal,
        }));
    }
    report.json = Some(Value::Array(json));
    report.print(global.output);
    Ok(())
}

/// Offsets by (topic, partition), or the partition's error.
type Offsets = BTreeMap<(String, i32), Result<i64, String>>;

/// Each partition's offset at `timestamp` (-1 latest: the high watermark, -2 earliest: the
/// log start), by (topic, partition); a partition's error in place of its offset.
fn offsets(
    client: &mut Client,
    topics: &[MetadataResponseTopic],
    timestamp: i64,
    global: &Global,
) -> Result<Offsets, String> {
    let mut request = ListOffsetsRequest::default();
    request.replica_id = BrokerId(-1);
    request.timeout_ms = timeout_ms(global);
    request.topics = topics
        .iter()
        .map(|topic| {
            let mut t = ListOffsetsTopic::default();
            t.name = topic_name(name_of(topic));
            t.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut lp = ListOffsetsPartition::default();
                    lp.partition_index = p.partition_index;
                    lp.current_leader_epoch = -1;
                    lp.timestamp = timestamp;
                    lp
                })
                .collect();
            t
        })
        .collect();
    let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 7, &request)?;
    let mut offsets = BTreeMap::new();
    for topic in &response.topics {
        for p in &topic.partitions {
            let offset = if p.error_code == 0 {
                Ok(p.offset)
            } else {
                Err(kafka_error(p.error_code, None))
            };
            offsets.insert((topic.name.0.to_string(), p.partition_index), offset);
        }
    }
    Ok(offsets)
}

/// Each partition's size in bytes on the broker answering, by (topic, partition).
fn sizes(
    client: &mut Client,
    topics: &[MetadataResponseTopic],
) -> Result<BTreeMap<(String, i32), i64>, String> {
    let mut request = DescribeLogDirsRequest::default();
    request.topics = Some(
        topics
            .iter()
            .map(|topic| {
                let mut t = DescribableLogDirTopic::default();
                t.topic = topic_name(name_of(topic));
                t.partitions = topic.partitions.iter().map(|p| p.partition_index).collect();
                t
            })
            .collect(),
    );
    let response: DescribeLogDirsResponse = client.call(ApiKey::DescribeLogDirs, 4, &request)?;
    if response.error_code != 0 {
        return Err(kafka_error(
            response.error_code,
            Some("describing log dirs"),
        ));
    }
    let mut sizes = BTreeMap::new();
    for dir in response.results.iter().filter(|d| d.error_code == 0) {
        for topic in &dir.topics {
            for p in topic.partitions.iter().filter(|p| !p.is_future_key) {
                *sizes
                    .entry((topic.name.0.to_string(), p.partition_index))
                    .or_insert(0) += p.partition_size;
            }
        }
    }
    Ok(sizes)
}

fn ids(nodes: &[BrokerId]) -> String {
    nodes
        .iter()
        .map(|n| n.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn describe(global: &Global, names: &[String]) -> Result<(), String> {
    let mut client = global.connect()?;
    let mut topics = metadata(&mut client, names)?;
    if names.is_empty() {
        topics.retain(|t| !t.is_internal);
    }
    let (high, start, sizes, configs) = if topics.is_empty() {
        Default::default()
    } else {
        let resources: Vec<(i8, String)> = topics
            .iter()
            .map(|t| (TOPIC, name_of(t).to_owned()))
            .collect();
        (
            offsets(&mut client, &topics, -1, global)?,
            offsets(&mut client, &topics, -2, global)?,
            sizes(&mut client, &topics)?,
            config::describe(&mut client, &resources, &[])?,
        )
    };
    let mut json = Vec::new();
    let mut text = String::new();
    for (i, topic) in topics.iter().enumerate() {
        let name = name_of(topic);
        let mut partitions = Report::new(&[
            "partition",
            "leader",
            "replicas",
            "isr",
            "log-start",
            "high-watermark",
            "size",
        ]);
        let mut partitions_json = Vec::new();
        for p in &topic.partitions {
            let key = (name.to_owned(), p.partition_index);
            let offset = |offsets: &Offsets| match offsets.get(&key) {
                Some(Ok(o)) => (o.to_string(), json!(o)),
                Some(Err(e)) => (e.clone(), Value::Null),
                None => ("-".to_owned(), Value::Null),
            };
            let (start_cell, start_json) = offset(&start);
            let (high_cell, high_json) = offset(&high);
            let size = sizes.get(&key);
            partitions.row(vec![
                p.partition_index.to_string(),
                p.leader_id.0.to_string(),
                ids(&p.replica_nodes),
                ids(&p.isr_nodes),
                start_cell,
                high_cell,
                size.map_or("-".to_owned(), |s| s.to_string()),
            ]);
            let error = (p.error_code != 0).then(|| kafka_error(p.error_code, None));
            partitions_json.push(json!({
                "partition": p.partition_index,
                "leader": p.leader_id.0,
                "leader_epoch": p.leader_epoch,
                "replicas": p.replica_nodes.iter().map(|n| n.0).collect::<Vec<_>>(),
                "isr": p.isr_nodes.iter().map(|n| n.0).collect::<Vec<_>>(),
                "offline_replicas": p.offline_replicas.iter().map(|n| n.0).collect::<Vec<_>>(),
                "log_start": start_json,
                "high_watermark": high_json,
                "size": size,
                "error": error,
            }));
        }
        let set: Vec<&Entry> = configs
            .get(i)
            .into_iter()
            .flatten()
            .filter(|e| e.source != DEFAULT_CONFIG)
            .collect();
        let mut config_table = Report::new(&["config", "value", "source"]);
        for entry in &set {
            config_table.row(vec![
                entry.name.clone(),
                entry.shown_value(),
                config::source_name(entry.source).to_owned(),
            ]);
        }
        if i > 0 {
            text.push('\n');
        }
        text.push_str(&format!(
            "topic: {name}  id: {}  partitions: {}  replicas: {}{}\n",
            topic.topic_id,
            topic.partitions.len(),
            replication_factor(topic),
            if topic.is_internal { "  internal" } else { "" },
        ));
        text.push_str(&partitions.table());
        if !set.is_empty() {
            text.push('\n');
            text.push_str(&config_table.table());
        }
        json.push(json!({
            "name": name,
            "id": topic.topic_id.to_string(),
            "internal": topic.is_internal,
            "replicas": replication_factor(topic),
            "partitions": partitions_json,
            "configs": set.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
        }));
    }
    match global.output {
        Format::Table => print!("{text}"),
        Format::Json => println!("{}", Value::Array(json)),
    }
    Ok(())
}

fn delete(global: &Global, names: &[String]) -> Result<(), String> {
    let mut request = DeleteTopicsRequest::default();
    request.topic_names = names.iter().map(|n| topic_name(n)).collect();
    request.timeout_ms = timeout_ms(global);
    let mut client = global.connect()?;
    let response: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 5, &request)?;
    let mut report = Report::new(&["topic", "status"]);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        let result = response
            .responses
            .iter()
            .find(|r| r.name.as_ref().is_some_and(|n| n.0.as_str() == name));
        match result {
            Some(r) if r.error_code == 0 => {
                report.row(vec![name.clone(), "deleted".to_owned()]);
                deleted.push(json!({"name": name}));
            }
            Some(r) => errors.push(topic_error(r.error_code, name, r.error_message.as_deref())),
            None => errors.push(format!("the broker did not answer for topic {name}")),
        }
    }
    if !deleted.is_empty() {
        report.json = Some(Value::Array(deleted));
        report.print(global.output);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn add_partitions(global: &Global, name: &str, to: i32, dry_run: bool) -> Result<(), String> {
    let mut topic = CreatePartitionsTopic::default();
    topic.name = topic_name(name);
    topic.count = to;
    topic.assignments = None;
    let mut request = CreatePartitionsRequest::default();
    request.topics = vec![topic];
    request.timeout_ms = timeout_ms(global);
    request.validate_only = dry_run;
    let mut client = global.connect()?;
    let response: CreatePartitionsResponse = client.call(ApiKey::CreatePartitions, 3, &request)?;
    let result = response
        .results
        .first()
        .ok_or_else(|| "the broker answered CreatePartitions with no result".to_owned())?;
    if result.error_code != 0 {
        return Err(topic_error(
            result.error_code,
            name,
            result.error_message.as_deref(),
        ));
    }
    let status = if dry_run {
        "valid (dry run, nothing changed)"
    } else {
        "done"
    };
    let mut report = Report::new(&["topic", "partitions", "status"]);
    report.row(vec![name.to_owned(), to.to_string(), status.to_owned()]);
    report.json = Some(json!({"name": name, "partitions": to, "dry_run": dry_run}));
    report.print(global.output);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_parse_as_kafka_topics_takes_them() {
        assert_eq!(
            parse_assignment("0:1,1:2"),
            Ok(Assignment(vec![vec![0, 1], vec![1, 2]]))
        );
        assert_eq!(
            parse_assignment("0,0,0"),
            Ok(Assignment(vec![vec![0], vec![0], vec![0]]))
        );
        assert!(parse_assignment("0:x").is_err());
        assert!(parse_assignment("").is_err());
    }
}
