//! `runnelctl group`: consumer groups as kafka-consumer-groups.sh shows and changes them:
//! list, describe (members, assignments, committed offsets and lag), delete, and moving an
//! empty group's committed offsets (reset-offsets, seek).

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, DeleteGroupsRequest, DeleteGroupsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde_json::{json, Value};

use crate::client::{kafka_error, Client};
use crate::lookup::{self, Failure, Tp};
use crate::output::{Format, Report};
use crate::Global;

#[derive(Debug, clap::Subcommand)]
pub enum GroupCommand {
    /// Every group on every broker: its id, state and protocol type.
    List,
    /// A group's state and members, and per partition its committed offset, end offset and
    /// lag, with the member it is assigned to.
    Describe {
        /// The group id.
        group: String,
    },
    /// Delete groups and their committed offsets (a group must have no members).
    Delete {
        /// The group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move an empty group's committed offsets on a topic (Kafka requires the group to have
    /// no members: stop its consumers first). Prints old -> new offset per partition.
    ResetOffsets {
        /// The group id.
        group: String,
        /// The topic whose offsets move.
        #[arg(long)]
        topic: String,
        /// Only this partition (default: every partition of the topic).
        #[arg(long, value_name = "N")]
        partition: Option<i32>,
        #[command(flatten)]
        to: ResetTarget,
        /// Print the new offsets without committing them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Move an empty group's committed offsets on a topic to the first record at or after
    /// a time (ListOffsets by timestamp; past the last record: the end).
    Seek {
        /// The group id.
        group: String,
        /// The topic whose offsets move.
        #[arg(long)]
        topic: String,
        /// Only this partition (default: every partition of the topic).
        #[arg(long, value_name = "N")]
        partition: Option<i32>,
        /// The time, in milliseconds since the epoch.
        #[arg(long, value_name = "MS")]
        to_timestamp: i64,
        /// Print the new offsets without committing them.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Where `reset-offsets` moves to: exactly one of these.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct ResetTarget {
    /// The log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// The log end offset.
    #[arg(long)]
    to_latest: bool,
    /// The first record at or after a time: YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM|-HH:MM]
    /// (UTC when no zone is given).
    #[arg(long, value_name = "ISO8601")]
    to_datetime: Option<String>,
    /// This offset (kept within the log's start and end).
    #[arg(long, value_name = "N")]
    to_offset: Option<i64>,
    /// The committed offset plus N (N may be negative; kept within the log).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    shift_by: Option<i64>,
}

/// A resolved reset target.
#[derive(Debug, Clone, Copy)]
enum Target {
    Earliest,
    Latest,
    Timestamp(i64),
    Offset(i64),
    Shift(i64),
}

pub fn run(command: GroupCommand, global: &Global) -> Result<(), String> {
    match command {
        GroupCommand::List => list(global),
        GroupCommand::Describe { group } => describe(global, &group),
        GroupCommand::Delete { groups } => delete(global, &groups),
        GroupCommand::ResetOffsets {
            group,
            topic,
            partition,
            to,
            dry_run,
        } => {
            let target = if to.to_earliest {
                Target::Earliest
            } else if to.to_latest {
                Target::Latest
            } else if let Some(datetime) = &to.to_datetime {
                Target::Timestamp(parse_datetime(datetime)?)
            } else if let Some(offset) = to.to_offset {
                Target::Offset(offset)
            } else if let Some(shift) = to.shift_by {
                Target::Shift(shift)
            } else {
                return Err("say where to: --to-earliest, --to-latest, --to-datetime, \
                            --to-offset or --shift-by"
                    .into());
            };
            reset(global, &group, &topic, partition, target, dry_run)
        }
        GroupCommand::Seek {
            group,
            topic,
            partition,
            to_timestamp,
            dry_run,
        } => {
            if to_timestamp < 0 {
                return Err("--to-timestamp is milliseconds since the epoch".into());
            }
            reset(
                global,
                &group,
                &topic,
                partition,
                Target::Timestamp(to_timestamp),
                dry_run,
            )
        }
    }
}

fn list(global: &Global) -> Result<(), String> {
    let mut client = global.connect()?;
    let cluster = lookup::metadata(&mut client, Some(&[]), false)?;
    let mut groups = BTreeMap::new();
    let brokers: Vec<String> = if cluster.brokers.is_empty() {
        vec![client.addr().to_owned()]
    } else {
        cluster.brokers.values().cloned().collect()
    };
    for addr in brokers {
        let mut client = if global.is_bootstrap(&addr) {
            global.connect()?
        } else {
            Client::connect(&addr, std::time::Duration::from_secs(global.timeout.max(1)))?
        };
        let response: ListGroupsResponse =
            client.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default())?;
        if response.error_code != 0 {
            return Err(format!(
                "listing groups on {addr}: {}",
                kafka_error(response.error_code, None)
            ));
        }
        for group in response.groups {
            groups.insert(
                group.group_id.to_string(),
                (
                    group.group_state.to_string(),
                    group.protocol_type.to_string(),
                ),
            );
        }
    }
    let mut report = Report::new(&["group", "state", "protocol type"]);
    let mut json = Vec::new();
    for (group, (state, protocol_type)) in groups {
        json.push(json!({"group": group, "state": state, "protocol_type": protocol_type}));
        report.row(vec![group, state, protocol_type]);
    }
    report.json = Some(Value::Array(json));
    report.print(global.output);
    Ok(())
}

/// A group as DescribeGroups tells it.
#[derive(Debug)]
struct Described {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
}

#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    host: String,
    /// The consumer protocol assignment (empty when not a consumer group or not decodable).
    assignment: Vec<Tp>,
}

fn describe_group(client: &mut Client, group: &str) -> Result<Described, Failure> {
    let mut request = DescribeGroupsRequest::default();
    request.groups = vec![GroupId(StrBytes::from_string(group.to_owned()))];
    let response: DescribeGroupsResponse = client.call(ApiKey::DescribeGroups, 5, &request)?;
    let described = response
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| format!("DescribeGroups answered nothing for {group}"))?;
    if described.error_code != 0 {
        return Err(Failure::kafka(
            described.error_code,
            described.error_message.as_deref(),
        ));
    }
    let consumer = described.protocol_type.as_str() == "consumer";
    Ok(Described {
        state: described.group_state.to_string(),
        protocol_type: described.protocol_type.to_string(),
        protocol: described.protocol_data.to_string(),
        members: described
            .members
            .into_iter()
            .map(|m| Member {
                id: m.member_id.to_string(),
                instance_id: m.group_instance_id.map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment: if consumer {
                    decode_assignment(m.member_assignment)
                } else {
                    Vec::new()
                },
            })
            .collect(),
    })
}

/// The partitions in a consumer protocol assignment (a version, then the assignment).
fn decode_assignment(mut bytes: Bytes) -> Vec<Tp> {
    if bytes.remaining() < 2 {
        return Vec::new();
    }
    let version = bytes.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut bytes, version) {
        Ok(assignment) => assignment
            .assigned_partitions
            .into_iter()
            .flat_map(|tp| {
                let topic = tp.topic.to_string();
                tp.partitions.into_iter().map(move |p| (topic.clone(), p))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The group's committed offsets (of `topic` only, when given).
fn committed(
    client: &mut Client,
    group: &str,
    topic: Option<(&str, &[i32])>,
) -> Result<BTreeMap<Tp, i64>, Failure> {
    let mut request = OffsetFetchRequest::default();
    request.group_id = GroupId(StrBytes::from_string(group.to_owned()));
    request.topics = topic.map(|(name, partitions)| {
        let mut topic = OffsetFetchRequestTopic::default();
        topic.name = TopicName(StrBytes::from_string(name.to_owned()));
        topic.partition_indexes = partitions.to_vec();
        vec![topic]
    });
    let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 7, &request)?;
    if response.error_code != 0 {
        return Err(Failure::kafka(response.error_code, None));
    }
    let mut offsets = BTreeMap::new();
    for topic in response.topics {
        for partition in topic.partitions {
            if partition.error_code != 0 {
                return Err(Failure::kafka(partition.error_code, None));
            }
            if partition.committed_offset >= 0 {
                offsets.insert(
                    (topic.name.to_string(), partition.partition_index),
                    partition.committed_offset,
                );
            }
        }
    }
    Ok(offsets)
}

fn describe(global: &Global, group: &str) -> Result<(), String> {
    let (described, committed) = lookup::with_coordinator(global, group, |client| {
        let described = describe_group(client, group)?;
        let offsets = committed(client, group, None)?;
        Ok((described, offsets))
    })?;
    if described.state == "Dead" && committed.is_empty() {
        return Err(format!("group {group} does not exist"));
    }
    // Every partition the group has an offset for or is assigned, with its member.
    let mut owner: BTreeMap<Tp, usize> = BTreeMap::new();
    for (i, member) in described.members.iter().enumerate() {
        for tp in &member.assignment {
            owner.insert(tp.clone(), i);
        }
    }
    let partitions: BTreeSet<Tp> = committed.keys().chain(owner.keys()).cloned().collect();
    let topics: BTreeSet<&str> = partitions.iter().map(|(t, _)| t.as_str()).collect();
    let topics: Vec<&str> = topics.into_iter().collect();
    let mut client = global.connect()?;
    let cluster = lookup::metadata(&mut client, Some(&topics), false)?;
    // Partitions of deleted topics have no end offset.
    let known: Vec<Tp> = partitions
        .iter()
        .filter(|(t, p)| cluster.topics.get(t).is_some_and(|ps| ps.contains_key(p)))
        .cloned()
        .collect();
    let ends = lookup::list_offsets(global, &cluster, &known, lookup::LATEST)?;

    let dash = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut report = Report::new(&[
        "topic",
        "partition",
        "current offset",
        "log end offset",
        "lag",
        "member id",
        "client id",
        "host",
    ]);
    let mut rows = Vec::new();
    let mut total_lag = 0i64;
    for tp in &partitions {
        let current = committed.get(tp).copied();
        let end = ends.get(tp).copied();
        let lag = match (current, end) {
            (Some(c), Some(e)) => Some((e - c).max(0)),
            _ => None,
        };
        total_lag += lag.unwrap_or(0);
        let member = owner.get(tp).map(|i| &described.members[*i]);
        report.row(vec![
            tp.0.clone(),
            tp.1.to_string(),
            dash(current),
            dash(end),
            dash(lag),
            member.map_or("-".into(), |m| m.id.clone()),
            member.map_or("-".into(), |m| m.client_id.clone()),
            member.map_or("-".into(), |m| m.host.clone()),
        ]);
        rows.push(json!({
            "topic": tp.0, "partition": tp.1, "committed_offset": current,
            "log_end_offset": end, "lag": lag, "member_id": member.map(|m| m.id.clone()),
        }));
    }
    // Members without partitions still show.
    for (i, member) in described.members.iter().enumerate() {
        if !owner.values().any(|o| *o == i) {
            report.row(vec![
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                member.id.clone(),
                member.client_id.clone(),
                member.host.clone(),
            ]);
        }
    }
    let members: Vec<Value> = described
        .members
        .iter()
        .map(|m| {
            let mut assignment: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &m.assignment {
                assignment.entry(t).or_default().push(*p);
            }
            json!({
                "member_id": m.id, "group_instance_id": m.instance_id, "client_id": m.client_id,
                "host": m.host,
                "assignment": assignment.into_iter()
                    .map(|(t, ps)| json!({"topic": t, "partitions": ps}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    report.json = Some(json!({
        "group": group,
        "state": described.state,
        "protocol_type": described.protocol_type,
        "protocol": described.protocol,
        "members": members,
        "partitions": rows,
        "total_lag": total_lag,
    }));
    if global.output == Format::Table {
        println!(
            "group {group}: {}, {} member(s), protocol {} {}, total lag {total_lag}",
            described.state,
            described.members.len(),
            if described.protocol_type.is_empty() {
                "-"
            } else {
                &described.protocol_type
            },
            if described.protocol.is_empty() {
                "-"
            } else {
                &described.protocol
            },
        );
    }
    report.print(global.output);
    Ok(())
}

fn delete(global: &Global, groups: &[String]) -> Result<(), String> {
    let mut report = Report::new(&["group", "result"]);
    let mut json = Vec::new();
    let mut failed = 0;
    for group in groups {
        let code = lookup::with_coordinator(global, group, |client| {
            let mut request = DeleteGroupsRequest::default();
            request.groups_names = vec![GroupId(StrBytes::from_string(group.clone()))];
            let response: DeleteGroupsResponse = client.call(ApiKey::DeleteGroups, 2, &request)?;
            let code = response.results.first().map_or(0, |r| r.error_code);
            // Retried while the coordinator loads or moves; other errors are this group's.
            if matches!(code, 14..=16) {
                return Err(Failure::kafka(code, None));
            }
            Ok(code)
        })?;
        let result = if code == 0 {
            "deleted".to_owned()
        } else {
            failed += 1;
            kafka_error(code, None)
        };
        json.push(json!({"group": group, "deleted": code == 0, "error": (code != 0).then(|| result.clone())}));
        report.row(vec![group.clone(), result]);
    }
    report.json = Some(Value::Array(json));
    report.print(global.output);
    if failed > 0 {
        return Err(format!("{failed} of {} group(s) not deleted", groups.len()));
    }
    Ok(())
}

/// The new offset of one partition, kept within the log as Kafka keeps it.
fn new_offset(
    target: Target,
    tp: &Tp,
    current: Option<i64>,
    earliest: i64,
    latest: i64,
    by_time: Option<i64>,
) -> Result<i64, String> {
    let wanted = match target {
        Target::Earliest => earliest,
        Target::Latest => latest,
        // No record at or after the time: the end, as Kafka does.
        Target::Timestamp(_) => by_time.filter(|o| *o >= 0).unwrap_or(latest),
        Target::Offset(offset) => offset,
        Target::Shift(shift) => {
            let current = current.ok_or_else(|| {
                format!(
                    "{}-{} has no committed offset to shift from; use --to-offset",
                    tp.0, tp.1
                )
            })?;
            current.saturating_add(shift)
        }
    };
    Ok(wanted.clamp(earliest, latest.max(earliest)))
}

fn reset(
    global: &Global,
    group: &str,
    topic: &str,
    partition: Option<i32>,
    target: Target,
    dry_run: bool,
) -> Result<(), String> {
    let mut client = global.connect()?;
    let cluster = lookup::metadata(&mut client, Some(&[topic]), false)?;
    let partitions = cluster.partitions(topic, partition)?;
    let described =
        lookup::with_coordinator(global, group, |client| describe_group(client, group))?;
    if described.state != "Empty" && described.state != "Dead" {
        return Err(format!(
            "group {group} is {} with {} member(s): offsets can only be reset while it has no \
             members (stop its consumers first)",
            described.state,
            described.members.len()
        ));
    }
    let current = lookup::with_coordinator(global, group, |client| {
        committed(client, group, Some((topic, &partitions)))
    })?;
    let tps: Vec<Tp> = partitions.iter().map(|p| (topic.to_owned(), *p)).collect();
    let earliest = lookup::list_offsets(global, &cluster, &tps, lookup::EARLIEST)?;
    let latest = lookup::list_offsets(global, &cluster, &tps, lookup::LATEST)?;
    let by_time = match target {
        Target::Timestamp(ms) => Some(lookup::list_offsets(global, &cluster, &tps, ms)?),
        _ => None,
    };
    let mut moves = Vec::new();
    for tp in &tps {
        let old = current.get(tp).copied();
        let new = new_offset(
            target,
            tp,
            old,
            earliest[tp],
            latest[tp],
            by_time.as_ref().map(|b| b[tp]),
        )?;
        moves.push((tp.1, old, new));
    }
    if !dry_run {
        lookup::with_coordinator(global, group, |client| commit(client, group, topic, &moves))?;
    }
    let mut report = Report::new(&["topic", "partition", "old offset", "new offset"]);
    let mut rows = Vec::new();
    for (partition, old, new) in &moves {
        report.row(vec![
            topic.to_owned(),
            partition.to_string(),
            old.map_or_else(|| "-".into(), |o| o.to_string()),
            new.to_string(),
        ]);
        rows.push(
            json!({"topic": topic, "partition": partition, "old_offset": old, "new_offset": new}),
        );
    }
    report.json = Some(json!({"group": group, "dry_run": dry_run, "partitions": rows}));
    report.print(global.output);
    if dry_run && global.output == Format::Table {
        println!("dry run: nothing committed");
    }
    Ok(())
}

/// Commits `moves` (partition, old, new) as an admin: generation -1, no member id.
fn commit(
    client: &mut Client,
    group: &str,
    topic: &str,
    moves: &[(i32, Option<i64>, i64)],
) -> Result<(), Failure> {
    let mut request = OffsetCommitRequest::default();
    request.group_id = GroupId(StrBytes::from_string(group.to_owned()));
    request.generation_id_or_member_epoch = -1;
    request.member_id = StrBytes::from_static_str("");
    request.retention_time_ms = -1;
    let mut commit_topic = OffsetCommitRequestTopic::default();
    commit_topic.name = TopicName(StrBytes::from_string(topic.to_owned()));
    commit_topic.partitions = moves
        .iter()
        .map(|(partition, _, offset)| {
            let mut p = OffsetCommitRequestPartition::default();
            p.partition_index = *partition;
            p.committed_offset = *offset;
            p.committed_leader_epoch = -1;
            p
        })
        .collect();
    request.topics = vec![commit_topic];
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &request)?;
    for topic in &response.topics {
        for partition in &topic.partitions {
            if partition.error_code != 0 {
                let mut failure = Failure::kafka(partition.error_code, None);
                failure.message = format!(
                    "committing {}-{}: {}",
                    topic.name.as_str(),
                    partition.partition_index,
                    failure.message
                );
                return Err(failure);
            }
        }
    }
    Ok(())
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM|±HHMM]` (UTC when
/// no zone is given).
fn parse_datetime(text: &str) -> Result<i64, String> {
    let bad =
        || format!("bad --to-datetime {text:?}: YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM] expected");
    let number = |s: &str| -> Result<i64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<i64>().map_err(|_| bad())
    };
    let (date, time) = text.split_once(['T', ' ']).ok_or_else(bad)?;
    let date: Vec<&str> = date.split('-').collect();
    let [year, month, day] = date[..] else {
        return Err(bad());
    };
    let (year, month, day) = (number(year)?, number(month)?, number(day)?);
    // The zone: Z, or a sign after the seconds.
    let (time, offset_minutes) = if let Some(time) = time.strip_suffix(['Z', 'z']) {
        (time, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let zone = &time[at + 1..];
        let (hours, minutes) = match zone.split_once(':') {
            Some((h, m)) => (number(h)?, number(m)?),
            None if zone.len() == 4 => (number(&zone[..2])?, number(&zone[2..])?),
            None if zone.len() == 2 => (number(zone)?, 0),
            None => return Err(bad()),
        };
        if hours > 23 || minutes > 59 {
            return Err(bad());
        }
        let sign = if time.as_bytes()[at] == b'-' { -1 } else { 1 };
        (&time[..at], sign * (hours * 60 + minutes))
    } else {
        (time, 0)
    };
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (time, None),
    };
    let clock: Vec<&str> = clock.split(':').collect();
    let (hour, minute, second) = match clock[..] {
        [h, m, s] => (number(h)?, number(m)?, number(s)?),
        [h, m] => (number(h)?, number(m)?, 0),
        _ => return Err(bad()),
    };
    let millis = match fraction {
        Some(f) => {
            number(f)?;
            let digits: String = f.chars().chain("000".chars()).take(3).collect();
            number(&digits)?
        }
        None => 0,
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_to_epoch_millis() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00").unwrap(), 0);
        assert_eq!(parse_datetime("1970-01-01T00:00:00.5Z").unwrap(), 500);
        assert_eq!(
            parse_datetime("2024-02-29T12:34:56.789Z").unwrap(),
            1_709_210_096_789
        );
        assert_eq!(
            parse_datetime("2024-02-29T14:34:56.789+02:00").unwrap(),
            1_709_210_096_789
        );
        assert_eq!(
            parse_datetime("2024-02-29T07:04:56.789-0530").unwrap(),
            1_709_210_096_789
        );
        assert_eq!(parse_datetime("2000-03-01T00:00").unwrap(), 951_868_800_000);
        for bad in [
            "2023-02-29T00:00:00",
            "2024-13-01T00:00:00",
            "2024-01-01",
            "yesterday",
            "2024-01-01T25:00:00",
            "2024-01-01T00:00:00+5",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_offsets_stay_within_the_log() {
        let tp = ("t".to_owned(), 0);
        let at = |target, current, by_time| new_offset(target, &tp, current, 10, 20, by_time);
        assert_eq!(at(Target::Earliest, Some(15), None).unwrap(), 10);
        assert_eq!(at(Target::Latest, None, None).unwrap(), 20);
        assert_eq!(at(Target::Offset(5), None, None).unwrap(), 10);
        assert_eq!(at(Target::Offset(25), None, None).unwrap(), 20);
        assert_eq!(at(Target::Offset(12), None, None).unwrap(), 12);
        assert_eq!(at(Target::Shift(-3), Some(15), None).unwrap(), 12);
        assert_eq!(at(Target::Shift(-30), Some(15), None).unwrap(), 10);
        assert!(at(Target::Shift(1), None, None).is_err());
        assert_eq!(at(Target::Timestamp(1), None, Some(-1)).unwrap(), 20);
        assert_eq!(at(Target::Timestamp(1), None, Some(13)).unwrap(), 13);
    }
}
