//! kafka-python against a cluster: it creates a topic through one broker, produces to
//! partitions led by all three and consumes everything back in a group, finding each leader
//! and the group's coordinator from Metadata and FindCoordinator as Kafka clients do.

use std::time::Duration;

use runnel_tests::cluster::Cluster;
use runnel_tests::python;

use crate::wait_for_brokers;

const SCRIPT: &str = r#"
import sys, time
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

bootstrap, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
admin.create_topics([NewTopic(topic, partitions, 1)])
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=20,
                         retry_backoff_ms=100)
for i in range(600):
    producer.send(topic, key=str(i).encode(), value=f"v{i}".encode(), partition=i % partitions)
producer.flush(60)
consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="py-cluster",
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         consumer_timeout_ms=30000)
seen = {}
for record in consumer:
    seen[int(record.key)] = (record.partition, record.value.decode())
    if len(seen) == 600:
        break
consumer.commit()
described = admin.describe_topics([topic])[0]["partitions"]
leaders = sorted({p.get("leader", p.get("leader_id")) for p in described})
print("leaders", " ".join(map(str, leaders)))
wrong = [k for k, (p, v) in seen.items() if p != k % partitions or v != f"v{k}"]
print("consumed", len(seen), "misplaced", len(wrong))
print("committed", sum(consumer.committed(tp) or 0 for tp in consumer.assignment()))
consumer.close()
"#;

#[test]
fn kafka_python_produces_and_consumes_across_every_leader() {
    let cluster = Cluster::start("cluster-python", 3);
    cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    let bootstrap = cluster.addr(2).to_string();
    let out = python::run_ok(SCRIPT, &[&bootstrap, "py-spread", "6"]);
    assert!(out.contains("leaders 1 2 3\n"), "{out}");
    assert!(out.contains("consumed 600 misplaced 0\n"), "{out}");
    assert!(out.contains("committed 600\n"), "{out}");
}
