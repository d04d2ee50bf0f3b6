//! Produce of batches whose records are bad, compressed or not, to a real broker on each
//! backend: each is refused with Kafka's error code (CORRUPT_MESSAGE for data that doesn't
//! decode, INVALID_RECORD for counts and offset deltas that disagree), the log end offset
//! doesn't move, and a good batch after it lands where it should.

use runnel_engine::log::batch::Compression;
use runnel_engine::log::builder::{compressed_zeros, raw_batch, sample_builder, BatchBuilder};
use runnel_engine::log::codec;
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests::{self, create};
use runnel_tests::{backends_under_test, Broker, TempDir};

const CORRUPT_MESSAGE: i16 = 2;
const INVALID_RECORD: i16 = 87;
const TOPIC: &str = "checked";
/// Room for a gzip'ed GiB of zeros (about 1 MiB) to reach the decompression check.
const MAX_MESSAGE_BYTES: &str = "2097152";

fn create_topic(conn: &mut KafkaConn) {
    let config = [("max.message.bytes", MAX_MESSAGE_BYTES)];
    assert_eq!(create(conn, TOPIC, 1, &config, false).0, 0);
}

/// Produces a record set (acks=1); returns (error code, base offset).
fn produce(conn: &mut KafkaConn, records: Vec<u8>) -> (i16, i64) {
    requests::produce(conn, TOPIC, 0, 1, records)
}

/// The log end offset (ListOffsets with LATEST).
fn log_end(conn: &mut KafkaConn) -> i64 {
    let (code, offset, _) = requests::list_offset(conn, TOPIC, 0, -1);
    assert_eq!(code, 0);
    offset
}

/// The records section of an uncompressed batch of `n` records.
fn records_of(n: usize) -> Vec<u8> {
    let batch = sample_builder(n, 16, 1_700_000_000_000).build();
    batch[61..].to_vec()
}

/// A batch of `codec` holding `records` (compressed here), claiming `count` records.
fn claiming(codec: Compression, records: &[u8], count: i32) -> Vec<u8> {
    raw_batch(codec, &codec::compress(codec, records).unwrap(), count)
}

fn bad_batches() -> Vec<(&'static str, Vec<u8>, i16)> {
    let good_gzip = sample_builder(20, 100, 1)
        .build_compressed(Compression::Gzip)
        .unwrap();
    let mut cases = vec![
        (
            "uncompressed records marked gzip",
            raw_batch(Compression::Gzip, &records_of(3), 3),
            CORRUPT_MESSAGE,
        ),
        (
            "1 record claiming 1,000,000 (gzip)",
            claiming(Compression::Gzip, &records_of(1), 1_000_000),
            INVALID_RECORD,
        ),
        (
            "1 record claiming 2^31-1 (zstd)",
            claiming(Compression::Zstd, &records_of(1), i32::MAX),
            INVALID_RECORD,
        ),
        (
            "1 record claiming 1,000,000 (uncompressed)",
            raw_batch(Compression::None, &records_of(1), 1_000_000),
            INVALID_RECORD,
        ),
        (
            "offset deltas 0, 0 (snappy)",
            claiming(
                Compression::Snappy,
                &[records_of(1), records_of(1)].concat(),
                2,
            ),
            INVALID_RECORD,
        ),
        (
            "bytes after the last record (lz4)",
            claiming(Compression::Lz4, &[records_of(2), vec![0xff]].concat(), 2),
            CORRUPT_MESSAGE,
        ),
        (
            "gzip zip bomb (1 GiB of zeros)",
            raw_batch(
                Compression::Gzip,
                &compressed_zeros(Compression::Gzip, 1 << 30).unwrap(),
                1,
            ),
            CORRUPT_MESSAGE,
        ),
        (
            "zstd zip bomb (1 GiB of zeros)",
            raw_batch(
                Compression::Zstd,
                &compressed_zeros(Compression::Zstd, 1 << 30).unwrap(),
                1,
            ),
            CORRUPT_MESSAGE,
        ),
        (
            "a good batch, then a bad one: nothing written",
            [
                good_gzip.clone(),
                raw_batch(Compression::Gzip, &records_of(3), 3),
            ]
            .concat(),
            CORRUPT_MESSAGE,
        ),
    ];
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let batch = sample_builder(20, 100, 1).build_compressed(codec).unwrap();
        let payload = &batch[61..];
        cases.push((
            "truncated compressed payload",
            raw_batch(codec, &payload[..payload.len() / 2], 20),
            CORRUPT_MESSAGE,
        ));
    }
    cases
}

#[test]
fn bad_batches_are_refused_and_leave_the_log_as_it_was() {
    let cases = bad_batches();
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("batch-validation-{backend}"));
        let broker = Broker::start_in(&dir, backend, &[]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        create_topic(&mut conn);
        assert_eq!(produce(&mut conn, sample_builder(3, 10, 1).build()), (0, 0));
        let mut end = 3;
        for (i, (what, batch, code)) in cases.iter().enumerate() {
            assert_eq!(
                produce(&mut conn, batch.clone()).0,
                *code,
                "{backend}: {what}"
            );
            assert_eq!(
                log_end(&mut conn),
                end,
                "{backend}: {what} moved the log end"
            );
            // A good batch still lands at the log end, each codec in turn.
            let codec = [
                Compression::None,
                Compression::Gzip,
                Compression::Snappy,
                Compression::Lz4,
                Compression::Zstd,
            ][i % 5];
            let good = sample_builder(2, 10, 1).build_compressed(codec).unwrap();
            assert_eq!(
                produce(&mut conn, good),
                (0, end),
                "{backend}: good {codec:?} batch after {what}"
            );
            end += 2;
            assert_eq!(log_end(&mut conn), end, "{backend}");
        }
        // Records with nulls and headers, as real clients send, pass.
        let mut builder = BatchBuilder::new();
        builder.push(&runnel_engine::log::builder::Record {
            key: None,
            value: None,
            headers: vec![("k".into(), None)],
            timestamp: 5,
        });
        let batch = builder.build_compressed(Compression::Zstd).unwrap();
        assert_eq!(produce(&mut conn, batch), (0, end), "{backend}");
    }
}
