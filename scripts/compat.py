"""Drives a running Runnel broker with real Kafka clients and checks every message byte for byte.

Clients: confluent-kafka (librdkafka), kafka-python, and kcat. Each does the same round trips:
admin (create / list / delete topics), produce with keys and headers, consume by assignment
from the beginning, list offsets (earliest, latest, by timestamp). Consumer groups are not
served yet, so consumers assign partitions themselves.

Usage: compat.py BOOTSTRAP   (scripts/compat.sh starts a broker and runs this in a venv)
"""

import json
import subprocess
import sys
import time
import uuid

BOOTSTRAP = sys.argv[1]
PARTITIONS = 3
PER_PARTITION = 40
FAILURES = []


def check(condition, what):
    if not condition:
        FAILURES.append(what)
        print(f"FAIL: {what}", flush=True)


def messages(client, partition):
    """The messages a client sends to one partition: (key, value, headers, timestamp ms)."""
    base = 1_700_000_000_000 + partition * 1_000_000
    return [
        (
            f"{client}-key-{partition}-{i}".encode(),
            f"{client}-value-{partition}-{i}-".encode() + bytes(range(i % 256)),
            [("client", client.encode()), ("index", str(i).encode())],
            base + i * 10,
        )
        for i in range(PER_PARTITION)
    ]


def confluent_round_trip():
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"compat-confluent-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    futures = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    futures[topic].result(timeout=30)
    metadata = admin.list_topics(timeout=30)
    check(topic in metadata.topics, "confluent: created topic listed")
    check(len(metadata.topics[topic].partitions) == PARTITIONS, "confluent: partition count")

    producer = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "linger.ms": 5, "enable.idempotence": True})
    delivered = []
    for partition in range(PARTITIONS):
        for key, value, headers, ts in messages("confluent", partition):
            producer.produce(
                topic, value=value, key=key, headers=headers, partition=partition, timestamp=ts,
                on_delivery=lambda err, msg: delivered.append(err),
            )
    producer.flush(30)
    check(len(delivered) == PARTITIONS * PER_PARTITION and not any(delivered), "confluent: all delivered")

    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "compat-unused",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got = {p: [] for p in range(PARTITIONS)}
    deadline = time.time() + 30
    while sum(map(len, got.values())) < PARTITIONS * PER_PARTITION and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        got[msg.partition()].append(
            (msg.key(), msg.value(), [(k, v) for k, v in (msg.headers() or [])], msg.timestamp()[1])
        )
    for partition in range(PARTITIONS):
        check(got[partition] == messages("confluent", partition), f"confluent: partition {partition} byte for byte")

    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 1), timeout=10)
    check((low, high) == (0, PER_PARTITION), f"confluent: watermarks {(low, high)}")
    wanted_ts = messages("confluent", 1)[7][3]
    found = consumer.offsets_for_times([TopicPartition(topic, 1, wanted_ts)], timeout=10)
    check(found[0].offset == 7, f"confluent: offsets_for_times -> {found[0].offset}")
    consumer.close()

    # Topic configs: describe, alter incrementally, describe again; a bad value is refused.
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    described = admin.describe_configs([resource])[resource].result(timeout=30)
    check(described["retention.ms"].value == "604800000", "confluent: default retention.ms described")
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    described = admin.describe_configs([resource])[resource].result(timeout=30)
    check(described["retention.ms"].value == "3600000", "confluent: altered retention.ms described")
    bad = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    try:
        admin.incremental_alter_configs([bad])[bad].result(timeout=30)
        check(False, "confluent: a bad config value is refused")
    except Exception as e:
        check("INVALID_CONFIG" in str(e) or "retention.ms" in str(e), f"confluent: refusal names the problem ({e})")
    cluster = admin.describe_cluster().result(timeout=30) if hasattr(admin, "describe_cluster") else None
    check(cluster is None or len(cluster.nodes) == 1, "confluent: describe_cluster lists one broker")

    futures = admin.delete_topics([topic])
    futures[topic].result(timeout=30)
    check(topic not in admin.list_topics(timeout=30).topics, "confluent: topic deleted")


def kafka_python_round_trip():
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"compat-kafkapython-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    check(topic in admin.list_topics(), "kafka-python: created topic listed")

    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks=1, linger_ms=5)
    futures = []
    for partition in range(PARTITIONS):
        for key, value, headers, ts in messages("kafka-python", partition):
            futures.append(producer.send(
                topic, value=value, key=key, headers=headers, partition=partition, timestamp_ms=ts,
            ))
    producer.flush(30)
    check(all(f.succeeded() for f in futures), "kafka-python: all delivered")
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, consumer_timeout_ms=10_000)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    got = {p: [] for p in range(PARTITIONS)}
    for msg in consumer:
        got[msg.partition].append((msg.key, msg.value, list(msg.headers), msg.timestamp))
        if sum(map(len, got.values())) == PARTITIONS * PER_PARTITION:
            break
    for partition in range(PARTITIONS):
        check(got[partition] == messages("kafka-python", partition), f"kafka-python: partition {partition} byte for byte")
    tp = TopicPartition(topic, 2)
    check(consumer.beginning_offsets([tp])[tp] == 0, "kafka-python: beginning offset")
    check(consumer.end_offsets([tp])[tp] == PER_PARTITION, "kafka-python: end offset")
    wanted_ts = messages("kafka-python", 2)[11][3]
    found = consumer.offsets_for_times({tp: wanted_ts})[tp]
    check(found is not None and found.offset == 11, f"kafka-python: offsets_for_times -> {found}")
    consumer.close()
    from kafka.admin import ConfigResource, ConfigResourceType
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    check("retention.ms" in repr(described), "kafka-python: describe_configs lists retention.ms")
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.bytes": "1000000"})])
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    check("1000000" in repr(described), "kafka-python: altered config described")
    # Defaults: an idempotent producer (InitProducerId, acks=all).
    default_producer = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    meta = default_producer.send(topic, b"idempotent", partition=0).get(timeout=30)
    check(meta.offset == PER_PARTITION, f"kafka-python: default (idempotent) producer -> offset {meta.offset}")
    default_producer.close()
    dirs = admin.describe_log_dirs()
    sizes = [p["partition_size"] for d in dirs[0]["log_dirs"] for t in d["topics"] if t["name"] == topic for p in t["partitions"]]
    check(len(sizes) == PARTITIONS and all(s > 0 for s in sizes), f"kafka-python: describe_log_dirs sizes {sizes}")
    admin.delete_topics([topic])
    check(topic not in admin.list_topics(), "kafka-python: topic deleted")
    admin.close()


def kcat_round_trip():
    topic = f"compat-kcat-{uuid.uuid4().hex[:8]}"
    lines = [f"kcat-key-{i}\tkcat-value-{i}" for i in range(PER_PARTITION)]
    produce = subprocess.run(
        ["kcat", "-P", "-b", BOOTSTRAP, "-t", topic, "-p", "0", "-K", "\t"],
        input="\n".join(lines) + "\n", text=True, capture_output=True, timeout=60,
    )
    check(produce.returncode == 0, f"kcat: produce ({produce.stderr.strip()})")
    consume = subprocess.run(
        ["kcat", "-C", "-b", BOOTSTRAP, "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", "%k\t%s\n"],
        capture_output=True, text=True, timeout=60,
    )
    check(consume.stdout.splitlines() == lines, "kcat: consumed byte for byte")
    metadata = subprocess.run(["kcat", "-L", "-J", "-b", BOOTSTRAP, "-t", topic], capture_output=True, text=True, timeout=60)
    listed = json.loads(metadata.stdout)
    check([t["topic"] for t in listed["topics"]] == [topic], "kcat: metadata lists the topic")
    offsets = subprocess.run(["kcat", "-Q", "-b", BOOTSTRAP, "-t", f"{topic}:0:-1"], capture_output=True, text=True, timeout=60)
    check(f"offset {PER_PARTITION}" in offsets.stdout, f"kcat: latest offset ({offsets.stdout.strip()})")


for round_trip in (confluent_round_trip, kafka_python_round_trip, kcat_round_trip):
    started = time.time()
    try:
        round_trip()
    except Exception as e:  # a client error is a failure of the check, with its message
        FAILURES.append(f"{round_trip.__name__}: {type(e).__name__}: {e}")
        print(f"FAIL: {round_trip.__name__}: {type(e).__name__}: {e}", flush=True)
    print(f"{round_trip.__name__}: {time.time() - started:.1f}s", flush=True)

if FAILURES:
    print(f"{len(FAILURES)} compat failures", flush=True)
    sys.exit(1)
print("compat: every client round trip matched", flush=True)
