//! `runnelctl consume TOPIC`: records printed one by one (kcat -C, rpk consume,
//! kafka-console-consumer), read by librdkafka: from chosen offsets of every partition (or one),
//! or as a member of a consumer group that commits what it printed.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message;
use serde_json::json;

use crate::output::Format;
use crate::{lookup, Global};

#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// The topic to read.
    pub topic: String,
    /// Where to start: earliest, latest, OFFSET (every partition; -N is N before the end)
    /// or @TIMESTAMP_MS (the first record at or after it). In a group: where a partition
    /// without a committed offset starts (earliest or latest).
    #[arg(long, short = 'o', value_name = "WHERE", allow_hyphen_values = true,
          conflicts_with_all = ["offset", "timestamp"])]
    pub from: Option<String>,
    /// Start at this offset (the same as --from OFFSET).
    #[arg(
        long,
        value_name = "OFFSET",
        allow_hyphen_values = true,
        conflicts_with = "timestamp"
    )]
    pub offset: Option<i64>,
    /// Start at the first record at or after this time, in ms (the same as --from @MS).
    #[arg(long, value_name = "MS")]
    pub timestamp: Option<i64>,
    /// Read only this partition.
    #[arg(long, short = 'p', value_name = "N", conflicts_with = "group")]
    pub partition: Option<i32>,
    /// Consume as a member of this group, committing the offsets of what was printed.
    #[arg(
        long,
        short = 'G',
        value_name = "GROUP",
        conflicts_with = "exit_at_end"
    )]
    pub group: Option<String>,
    /// Stop after N records.
    #[arg(long, short = 'n', value_name = "N")]
    pub num: Option<u64>,
    /// Stop at the end of every partition (its end when consuming started).
    #[arg(long, short = 'e')]
    pub exit_at_end: bool,
    /// How to print each record: %t topic, %p partition, %o offset, %k key, %s value,
    /// %K / %S key / value length, %T timestamp (ms), %h headers (k=v,...), %% a percent
    /// sign, \n \t \r \\ escapes. With --output json: one JSON object a record instead.
    #[arg(long, short = 'f', value_name = "FORMAT", default_value = "%s\\n")]
    pub format: String,
}

/// Where consumption starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Earliest,
    Latest,
    Offset(i64),
    /// N records before the end.
    Tail(i64),
    Timestamp(i64),
}

fn parse_start(args: &ConsumeArgs) -> Result<Start, String> {
    if let Some(offset) = args.offset {
        return Ok(if offset < 0 {
            Start::Tail(-offset)
        } else {
            Start::Offset(offset)
        });
    }
    if let Some(ms) = args.timestamp {
        return Ok(Start::Timestamp(ms));
    }
    let Some(from) = args.from.as_deref() else {
        return Ok(Start::Earliest);
    };
    match from {
        "earliest" | "beginning" | "oldest" | "start" => Ok(Start::Earliest),
        "latest" | "end" | "newest" => Ok(Start::Latest),
        _ => {
            if let Some(ms) = from.strip_prefix('@') {
                let ms = ms
                    .parse::<i64>()
                    .ok()
                    .filter(|ms| *ms >= 0)
                    .ok_or_else(|| {
                        format!("bad timestamp in --from {from:?}: milliseconds expected")
                    })?;
                return Ok(Start::Timestamp(ms));
            }
            match from.parse::<i64>() {
                Ok(offset) if offset < 0 => Ok(Start::Tail(-offset)),
                Ok(offset) => Ok(Start::Offset(offset)),
                Err(_) => Err(format!(
                    "bad --from {from:?}: earliest, latest, an offset or @TIMESTAMP_MS expected"
                )),
            }
        }
    }
}

/// A piece of a `--format`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    KeyLength,
    ValueLength,
    Timestamp,
    Headers,
}

fn parse_format(format: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = Vec::new();
    let mut chars = format.chars();
    let flush = |text: &mut Vec<u8>, pieces: &mut Vec<Piece>| {
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(text)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let piece = match chars.next() {
                    Some('t') => Piece::Topic,
                    Some('p') => Piece::Partition,
                    Some('o') => Piece::Offset,
                    Some('k') => Piece::Key,
                    Some('s') => Piece::Value,
                    Some('K') => Piece::KeyLength,
                    Some('S') => Piece::ValueLength,
                    Some('T') => Piece::Timestamp,
                    Some('h') => Piece::Headers,
                    Some('%') => {
                        text.push(b'%');
                        continue;
                    }
                    Some(other) => {
                        return Err(format!(
                            "unknown --format field %{other} (known: %t %p %o %k %s %K %S %T %h %%)"
                        ))
                    }
                    None => return Err("--format ends with a lone %".into()),
                };
                flush(&mut text, &mut pieces);
                pieces.push(piece);
            }
            '\\' => match chars.next() {
                Some('n') => text.push(b'\n'),
                Some('t') => text.push(b'\t'),
                Some('r') => text.push(b'\r'),
                Some('\\') => text.push(b'\\'),
                Some(other) => {
                    text.push(b'\\');
                    let mut buf = [0u8; 4];
                    text.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                }
                None => text.push(b'\\'),
            },
            _ => {
                let mut buf = [0u8; 4];
                text.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    flush(&mut text, &mut pieces);
    Ok(pieces)
}

fn headers_of(message: &BorrowedMessage<'_>) -> Vec<(String, Option<Vec<u8>>)> {
    message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default()
}

/// One record as `--format` says.
fn render(pieces: &[Piece], message: &BorrowedMessage<'_>, out: &mut Vec<u8>) {
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.extend_from_slice(text),
            Piece::Topic => out.extend_from_slice(message.topic().as_bytes()),
            Piece::Partition => out.extend_from_slice(message.partition().to_string().as_bytes()),
            Piece::Offset => out.extend_from_slice(message.offset().to_string().as_bytes()),
            Piece::Key => out.extend_from_slice(message.key().unwrap_or_default()),
            Piece::Value => out.extend_from_slice(message.payload().unwrap_or_default()),
            Piece::KeyLength => {
                let length = message.key().map_or(-1, |k| k.len() as i64);
                out.extend_from_slice(length.to_string().as_bytes())
            }
            Piece::ValueLength => {
                let length = message.payload().map_or(-1, |v| v.len() as i64);
                out.extend_from_slice(length.to_string().as_bytes())
            }
            Piece::Timestamp => {
                let ms = message.timestamp().to_millis().unwrap_or(-1);
                out.extend_from_slice(ms.to_string().as_bytes())
            }
            Piece::Headers => {
                for (i, (key, value)) in headers_of(message).into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(key.as_bytes());
                    out.push(b'=');
                    out.extend_from_slice(&value.unwrap_or_default());
                }
            }
        }
    }
}

/// One record as a JSON line.
fn render_json(message: &BorrowedMessage<'_>, out: &mut Vec<u8>) {
    let text = |bytes: Option<&[u8]>| bytes.map(|b| String::from_utf8_lossy(b).into_owned());
    let headers: Vec<_> = headers_of(message)
        .into_iter()
        .map(|(key, value)| json!({"key": key, "value": text(value.as_deref())}))
        .collect();
    let record = json!({
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp": message.timestamp().to_millis(),
        "key": text(message.key()),
        "value": text(message.payload()),
        "headers": headers,
    });
    out.extend_from_slice(record.to_string().as_bytes());
    out.push(b'\n');
}

pub fn run(args: ConsumeArgs, global: &Global) -> Result<(), String> {
    let start = parse_start(&args)?;
    let pieces = parse_format(&args.format)?;
    // Check the broker, the topic and the partition first, and find where to start.
    let mut client = global.connect()?;
    let cluster = lookup::metadata(&mut client, Some(&[args.topic.as_str()]), false)?;
    let partitions = cluster.partitions(&args.topic, args.partition)?;

    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &global.bootstrap)
        .set("client.id", "runnelctl")
        .set("enable.partition.eof", "true")
        .set(
            "socket.timeout.ms",
            (global.timeout.max(1) * 1000).to_string(),
        );
    // Partitions still to read to their end (with --exit-at-end), and their ends.
    let mut unfinished = BTreeSet::new();
    let mut ends = std::collections::BTreeMap::new();
    let consumer: BaseConsumer = if let Some(group) = &args.group {
        let reset = match start {
            Start::Earliest => "earliest",
            Start::Latest => "latest",
            _ => {
                return Err(
                    "with --group, --from is earliest or latest (where partitions \
                            without a committed offset start); move a group's offsets with \
                            `runnelctl group reset-offsets`"
                        .into(),
                )
            }
        };
        let consumer: BaseConsumer = config
            .set("group.id", group)
            .set("auto.offset.reset", reset)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .create()
            .map_err(|e| format!("creating the consumer: {e}"))?;
        consumer
            .subscribe(&[&args.topic])
            .map_err(|e| format!("subscribing to {}: {e}", args.topic))?;
        consumer
    } else {
        let tps: Vec<lookup::Tp> = partitions
            .iter()
            .map(|p| (args.topic.clone(), *p))
            .collect();
        let latest = lookup::list_offsets(global, &cluster, &tps, lookup::LATEST)?;
        let starts = match start {
            Start::Earliest => lookup::list_offsets(global, &cluster, &tps, lookup::EARLIEST)?,
            Start::Latest => latest.clone(),
            Start::Offset(offset) => tps.iter().map(|tp| (tp.clone(), offset)).collect(),
            Start::Tail(n) => {
                let earliest = lookup::list_offsets(global, &cluster, &tps, lookup::EARLIEST)?;
                tps.iter()
                    .map(|tp| (tp.clone(), (latest[tp] - n).max(earliest[tp])))
                    .collect()
            }
            Start::Timestamp(ms) => lookup::list_offsets(global, &cluster, &tps, ms)?
                .into_iter()
                // No record at or after the time: start at the end, as Kafka does.
                .map(|(tp, offset)| {
                    let offset = if offset < 0 { latest[&tp] } else { offset };
                    (tp, offset)
                })
                .collect(),
        };
        // librdkafka assigns only with a group id; this one never joins nor commits.
        let consumer: BaseConsumer = config
            .set("group.id", "runnelctl")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .map_err(|e| format!("creating the consumer: {e}"))?;
        let mut assignment = TopicPartitionList::new();
        for tp in &tps {
            assignment
                .add_partition_offset(&tp.0, tp.1, Offset::Offset(starts[tp]))
                .map_err(|e| format!("assigning {}-{}: {e}", tp.0, tp.1))?;
            if starts[tp] < latest[tp] {
                unfinished.insert(tp.1);
            }
            ends.insert(tp.1, latest[tp]);
        }
        consumer
            .assign(&assignment)
            .map_err(|e| format!("assigning partitions: {e}"))?;
        consumer
    };

    let exit_at_end = args.exit_at_end && args.group.is_none();
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    let mut out = Vec::new();
    let mut printed = 0u64;
    let mut result = Ok(());
    loop {
        if args.num.is_some_and(|n| printed >= n) || (exit_at_end && unfinished.is_empty()) {
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => {
                out.clear();
                if global.output == Format::Json {
                    render_json(&message, &mut out);
                } else {
                    render(&pieces, &message, &mut out);
                }
                if stdout.write_all(&out).is_err() {
                    break; // the reader went away (`| head`)
                }
                printed += 1;
                if args.group.is_some() {
                    if let Err(e) = consumer.store_offset_from_message(&message) {
                        result = Err(format!("storing the offset: {e}"));
                        break;
                    }
                }
                let partition = message.partition();
                if ends
                    .get(&partition)
                    .is_some_and(|end| message.offset() + 1 >= *end)
                {
                    unfinished.remove(&partition);
                }
                continue;
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                unfinished.remove(&partition);
            }
            Some(Err(error)) => {
                let fatal = matches!(
                    error.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::UnknownTopicOrPartition
                            | RDKafkaErrorCode::UnknownTopic
                            | RDKafkaErrorCode::TopicAuthorizationFailed
                            | RDKafkaErrorCode::GroupAuthorizationFailed
                            | RDKafkaErrorCode::InvalidGroupId
                    )
                );
                if fatal {
                    result = Err(format!("consuming {}: {error}", args.topic));
                    break;
                }
            }
        }
        if stdout.flush().is_err() {
            break;
        }
    }
    let _ = stdout.flush();
    if args.group.is_some() && printed > 0 {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) if result.is_ok() => result = Err(format!("committing offsets: {e}")),
            Err(_) => {}
        }
    }
    // Dropping a group member closes it: it leaves the group.
    drop(consumer);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_fields_and_escapes() {
        assert_eq!(
            parse_format("%t/%p@%o\\t%k=%s %% \\n").unwrap(),
            vec![
                Piece::Topic,
                Piece::Text(b"/".to_vec()),
                Piece::Partition,
                Piece::Text(b"@".to_vec()),
                Piece::Offset,
                Piece::Text(b"\t".to_vec()),
                Piece::Key,
                Piece::Text(b"=".to_vec()),
                Piece::Value,
                Piece::Text(b" % \n".to_vec()),
            ]
        );
        assert!(parse_format("%x").unwrap_err().contains("%x"));
        assert!(parse_format("50%").is_err());
    }
}
