//! What a compacted topic refuses: records without a key (INVALID_RECORD, named in
//! `record_errors`) and, without `delete` in its policy, DeleteRecords (POLICY_VIOLATION).

use super::*;

#[test]
fn keyless_records_and_delete_records_are_refused_on_compacted_topics() {
    let dir = TempDir::new("compaction-refusals");
    let broker = start(&dir, FAST);
    let addr = broker.addr.to_string();
    create_topic(&addr, "compacted", 1, &COMPACT);
    create_topic(
        &addr,
        "both",
        1,
        &[
            ("cleanup.policy", "compact,delete"),
            ("segment.bytes", "16384"),
        ],
    );

    // librdkafka: a keyless record fails with INVALID_RECORD; a keyed one is stored.
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let producer = producer(&addr, &outcomes, &[]);
    producer
        .send(
            BaseRecord::<str, str>::to("compacted")
                .payload("no key")
                .partition(0),
        )
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    producer
        .send(
            BaseRecord::to("compacted")
                .key("k")
                .payload("keyed")
                .partition(0),
        )
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    {
        let outcomes = outcomes.lock().unwrap();
        assert_eq!(outcomes.failed, [RDKafkaErrorCode::InvalidRecord]);
        assert_eq!(outcomes.acked.len(), 1);
        assert_eq!(outcomes.acked[0].key.as_deref(), Some("k"));
    }

    // A batch mixing keyed and keyless records is refused whole, each keyless record named
    // in record_errors (Produce v8+), as Kafka answers.
    let mut builder = BatchBuilder::new();
    for i in 0..10 {
        builder.push(&Record {
            key: (i % 4 != 1).then(|| format!("k{i}").into_bytes()),
            value: Some(b"v".to_vec()),
            headers: Vec::new(),
            timestamp: 1,
        });
    }
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    let request = produce_request("compacted", 0, -1, builder.build());
    let response: ProduceResponse = conn.call(ApiKey::Produce, 9, &request).unwrap();
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, INVALID_RECORD);
    let named: Vec<i32> = answer.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(named, [1, 5, 9]);
    let message = answer.record_errors[0]
        .batch_index_error_message
        .as_ref()
        .unwrap();
    assert_eq!(
        message.as_str(),
        "Compacted topic cannot accept message without key in topic partition compacted-0."
    );
    assert!(
        answer
            .error_message
            .as_ref()
            .is_some_and(|m| m.contains("3 record errors")),
        "{:?}",
        answer.error_message
    );
    assert_eq!(
        read_all(&addr, "compacted", 1).len(),
        1,
        "nothing of the refused batches was stored"
    );

    // kafka-python: the same refusal; DeleteRecords too, with POLICY_VIOLATION, on a topic
    // whose policy lacks delete, and allowed where it has delete.
    const SCRIPT: &str = r#"
import sys
from kafka import KafkaProducer, KafkaAdminClient, TopicPartition
from kafka.errors import InvalidRecordError, PolicyViolationError
addr = sys.argv[1]
producer = KafkaProducer(bootstrap_servers=addr, retries=0)
try:
    producer.send("compacted", value=b"no key", partition=0).get(timeout=30)
    sys.exit("a keyless record was accepted")
except InvalidRecordError:
    print("keyless: INVALID_RECORD")
producer.send("both", key=b"k", value=b"v", partition=0).get(timeout=30)
producer.send("both", key=b"k", value=b"w", partition=0).get(timeout=30)
producer.close()
admin = KafkaAdminClient(bootstrap_servers=addr)
try:
    admin.delete_records({TopicPartition("compacted", 0): 1})
    sys.exit("DeleteRecords on a compact-only topic was accepted")
except PolicyViolationError:
    print("delete compacted: POLICY_VIOLATION")
result = admin.delete_records({TopicPartition("both", 0): 1})
print("delete both:", result)
"#;
    let out = python::run_ok(SCRIPT, &[&addr]);
    assert!(out.contains("keyless: INVALID_RECORD"), "{out}");
    assert!(out.contains("delete compacted: POLICY_VIOLATION"), "{out}");

    // librdkafka's DeleteRecords: the same answers.
    let admin = admin(&addr);
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("compacted", 0, Offset::Offset(1))
        .unwrap();
    let result = block_on(admin.delete_records(&offsets, &AdminOptions::new())).unwrap();
    assert_eq!(
        result.elements()[0].error(),
        Err(KafkaError::OffsetFetch(RDKafkaErrorCode::PolicyViolation)),
        "{result:?}"
    );
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("both", 0, Offset::Offset(2))
        .unwrap();
    let result = block_on(admin.delete_records(&offsets, &AdminOptions::new())).unwrap();
    assert_eq!(result.elements()[0].error(), Ok(()), "{result:?}");
    assert_eq!(
        result.elements()[0].offset(),
        Offset::Offset(2),
        "the new low watermark"
    );
}
