//! `runnelctl produce TOPIC`: every line of stdin becomes a record (kcat -P, rpk produce,
//! kafka-console-producer), written by librdkafka. Prints what was written per partition.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message};
use serde_json::json;

use crate::output::{Format, Report};
use crate::{lookup, Global};

#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// The topic to write to.
    pub topic: String,
    /// Split each line at the first SEP into key and value (a line without SEP is a value
    /// with no key).
    #[arg(long, short = 'K', value_name = "SEP")]
    pub key_separator: Option<String>,
    /// A header on every record (repeatable).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Write every record to this partition (default: librdkafka's partitioner, by key).
    #[arg(long, short = 'p', value_name = "N")]
    pub partition: Option<i32>,
    /// Compression codec of the batches.
    #[arg(long, short = 'z', value_enum, default_value = "none")]
    pub compression: Compression,
    /// Acknowledgements to wait for: all (-1), 1 (the leader) or 0 (none).
    #[arg(long, value_enum, default_value = "all", allow_hyphen_values = true)]
    pub acks: Acks,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Acks {
    All,
    #[value(name = "-1")]
    MinusOne,
    #[value(name = "1")]
    One,
    #[value(name = "0")]
    Zero,
}

/// Per-partition delivery counts and the first failure.
#[derive(Debug, Default)]
struct Deliveries {
    /// Partition -> (records, first offset, last offset); offsets are -1 with acks=0.
    partitions: BTreeMap<i32, (u64, i64, i64)>,
    failed: u64,
    first_error: Option<String>,
}

#[derive(Debug, Default)]
struct Context {
    deliveries: Mutex<Deliveries>,
}

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut deliveries = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(message) => {
                let offset = message.offset();
                let entry = deliveries
                    .partitions
                    .entry(message.partition())
                    .or_insert((0, offset, offset));
                entry.0 += 1;
                if offset >= 0 {
                    entry.1 = if entry.1 < 0 {
                        offset
                    } else {
                        entry.1.min(offset)
                    };
                    entry.2 = entry.2.max(offset);
                }
            }
            Err((error, _)) => {
                deliveries.failed += 1;
                deliveries
                    .first_error
                    .get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// A line split into key and value.
fn split_line<'a>(line: &'a [u8], separator: Option<&[u8]>) -> (Option<&'a [u8]>, &'a [u8]) {
    let Some(separator) = separator.filter(|s| !s.is_empty()) else {
        return (None, line);
    };
    match line
        .windows(separator.len())
        .position(|window| window == separator)
    {
        Some(at) => (Some(&line[..at]), &line[at + separator.len()..]),
        None => (None, line),
    }
}

pub fn run(args: ProduceArgs, global: &Global) -> Result<(), String> {
    let mut headers = Vec::new();
    for header in &args.headers {
        let (key, value) = header
            .split_once('=')
            .ok_or_else(|| format!("--header expects KEY=VALUE, not {header:?}"))?;
        headers.push((key.to_owned(), value.to_owned()));
    }
    // Check the broker, the topic and the partition first: librdkafka would only time out.
    // A topic the broker creates on demand may show no leader for a moment.
    let mut client = global.connect()?;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match lookup::metadata(&mut client, Some(&[args.topic.as_str()]), true) {
            Err(e) if e.contains("LeaderNotAvailable") && attempts < 20 => {
                std::thread::sleep(Duration::from_millis(100))
            }
            cluster => {
                cluster?.partitions(&args.topic, args.partition)?;
                break;
            }
        }
    }

    let acks = match args.acks {
        Acks::All | Acks::MinusOne => "all",
        Acks::One => "1",
        Acks::Zero => "0",
    };
    let codec = match args.compression {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    };
    let timeout_ms = (global.timeout.max(1) * 1000).to_string();
    let producer: BaseProducer<Context> = ClientConfig::new()
        .set("bootstrap.servers", &global.bootstrap)
        .set("client.id", "runnelctl")
        .set("acks", acks)
        .set("compression.codec", codec)
        .set("linger.ms", "5")
        .set("message.timeout.ms", &timeout_ms)
        .set("socket.timeout.ms", &timeout_ms)
        .create_with_context(Context::default())
        .map_err(|e| format!("creating the producer: {e}"))?;

    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    let mut sent = 0u64;
    loop {
        line.clear();
        let read = stdin
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("reading stdin: {e}"))?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let (key, value) = split_line(&line, separator);
        let mut record: BaseRecord<'_, [u8], [u8], ()> =
            BaseRecord::with_opaque_to(&args.topic, ()).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(partition) = args.partition {
            record = record.partition(partition);
        }
        if !headers.is_empty() {
            let mut owned = OwnedHeaders::new_with_capacity(headers.len());
            for (key, value) in &headers {
                owned = owned.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
            record = record.headers(owned);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    record = back;
                    producer.poll(Duration::from_millis(50));
                }
                Err((error, _)) => return Err(format!("producing to {}: {error}", args.topic)),
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(global.timeout.max(1) + 5))
        .map_err(|e| format!("flushing: {e}"))?;

    let deliveries = std::mem::take(
        &mut *producer
            .context()
            .deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    let offset = |o: i64| {
        if o < 0 {
            "-".to_owned()
        } else {
            o.to_string()
        }
    };
    let mut report = Report::new(&["partition", "records", "first offset", "last offset"]);
    let mut partitions = Vec::new();
    for (partition, (records, first, last)) in &deliveries.partitions {
        report.row(vec![
            partition.to_string(),
            records.to_string(),
            offset(*first),
            offset(*last),
        ]);
        partitions.push(json!({
            "partition": partition, "records": records,
            "first_offset": (*first >= 0).then_some(*first),
            "last_offset": (*last >= 0).then_some(*last),
        }));
    }
    report.json = Some(json!({
        "topic": args.topic,
        "records": sent - deliveries.failed,
        "failed": deliveries.failed,
        "partitions": partitions,
    }));
    if global.output == Format::Table {
        println!(
            "{} records written to {}",
            sent - deliveries.failed,
            args.topic
        );
    }
    report.print(global.output);
    match deliveries.first_error {
        Some(error) => Err(format!(
            "{} of {sent} records not written: {error}",
            deliveries.failed
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::split_line;

    #[test]
    fn lines_split_at_the_first_separator() {
        assert_eq!(
            split_line(b"k:v:w", Some(b":")),
            (Some(&b"k"[..]), &b"v:w"[..])
        );
        assert_eq!(split_line(b"kv", Some(b"::")), (None, &b"kv"[..]));
        assert_eq!(
            split_line(b"a::b", Some(b"::")),
            (Some(&b"a"[..]), &b"b"[..])
        );
        assert_eq!(split_line(b":v", Some(b":")), (Some(&b""[..]), &b"v"[..]));
        assert_eq!(split_line(b"k:v", None), (None, &b"k:v"[..]));
    }
}
