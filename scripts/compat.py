"""Drives a running Runnel broker with real Kafka clients and checks every message byte for byte.

Clients: confluent-kafka (librdkafka), kafka-python, and kcat. Each does the same round trips:
admin (create / list / delete topics), produce with keys and headers, consume by assignment
from the beginning, list offsets (earliest, latest, by timestamp). confluent-kafka's admin
client also creates topics and partitions with replica assignments and validate_only, reads
authorized operations and the max-timestamp offset. Then consumer groups with
each client: subscribe and read everything, commit, resume in a new member of the group, the
admin views of groups and their offsets, deleting groups; members sharing a topic as they join
and leave; a group with a member of each Python client. Then every config operation through
confluent-kafka's AdminClient (topic and broker; APPEND and SUBTRACT; synonyms; recompression).
Last, confluent-kafka's transactional API: commit, abort, consume-transform-produce with the
group's offsets in the transaction, both isolation levels, and fencing.

Usage: compat.py BOOTSTRAP [ROUND_TRIP...]   (scripts/compat.sh starts a broker and runs this
in a venv; naming round trips, e.g. kcat_group, runs only those)
"""

import json
import subprocess
import sys
import threading
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


def confluent_admin():
    """Admin calls beyond the basics, as confluent-kafka's AdminClient makes them: replica
    assignments and validate_only when creating topics and partitions, authorized operations,
    and the offset of the record with the largest timestamp."""
    from confluent_kafka import KafkaError, KafkaException, Producer, TopicCollection, TopicPartition
    from confluent_kafka.admin import AclOperation, AdminClient, NewPartitions, NewTopic, OffsetSpec

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    node = admin.describe_cluster().result(timeout=30).nodes[0].id
    topic = f"compat-admin-{uuid.uuid4().hex[:8]}"

    def error_code(future):
        try:
            future.result(timeout=30)
            return KafkaError.NO_ERROR
        except KafkaException as e:
            return e.args[0].code()

    def partition_count():
        listed = admin.list_topics(timeout=30).topics
        return len(listed[topic].partitions) if topic in listed else None

    # Topics with explicit replica assignments: validated only, refused, then created.
    # (librdkafka wants the partition count alongside; on the wire it sends -1 for both counts.)
    assigned = NewTopic(topic, num_partitions=2, replica_assignment=[[node], [node]])
    code = error_code(admin.create_topics([assigned], validate_only=True)[topic])
    check(code == KafkaError.NO_ERROR, f"confluent admin: validate_only create ({code})")
    check(partition_count() is None, "confluent admin: validate_only creates nothing")
    bad = NewTopic(topic, num_partitions=1, replica_assignment=[[node + 1]])
    code = error_code(admin.create_topics([bad])[topic])
    check(code == KafkaError.INVALID_REPLICA_ASSIGNMENT, f"confluent admin: unknown broker refused ({code})")
    code = error_code(admin.create_topics([assigned])[topic])
    check(code == KafkaError.NO_ERROR and partition_count() == 2, f"confluent admin: assigned topic ({code})")

    # More partitions, with their assignments: validated only, refused, then made.
    grow = NewPartitions(topic, 4, replica_assignment=[[node], [node]])
    code = error_code(admin.create_partitions([grow], validate_only=True)[topic])
    check(code == KafkaError.NO_ERROR and partition_count() == 2, f"confluent admin: validate_only partitions ({code})")
    short = NewPartitions(topic, 4, replica_assignment=[[node]])
    code = error_code(admin.create_partitions([short])[topic])
    check(code == KafkaError.INVALID_REPLICA_ASSIGNMENT, f"confluent admin: one assignment short refused ({code})")
    code = error_code(admin.create_partitions([grow])[topic])
    check(code == KafkaError.NO_ERROR and partition_count() == 4, f"confluent admin: partitions added ({code})")

    # Authorized operations: everything, until ACLs exist.
    described = admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic].result(timeout=30)
    topic_ops = {AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE, AclOperation.ALTER,
                 AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}
    check(set(described.authorized_operations or []) == topic_ops,
          f"confluent admin: topic authorized operations {described.authorized_operations}")
    cluster = admin.describe_cluster(include_authorized_operations=True).result(timeout=30)
    cluster_ops = {AclOperation.CREATE, AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS,
                   AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER, AclOperation.DESCRIBE}
    check(set(cluster.authorized_operations or []) == cluster_ops,
          f"confluent admin: cluster authorized operations {cluster.authorized_operations}")
    check(not admin.describe_cluster().result(timeout=30).authorized_operations,
          "confluent admin: no cluster operations unless asked")

    # One batch whose largest timestamp is its second record: max_timestamp names that record.
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 1000})
    for i, ts in enumerate([1_000, 5_000, 2_000, 3_000]):
        producer.produce(topic, value=f"v{i}".encode(), partition=0, timestamp=ts)
    producer.flush(30)
    tp = TopicPartition(topic, 0)
    found = admin.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(timeout=30)
    check((found.offset, found.timestamp) == (1, 5_000),
          f"confluent admin: max_timestamp -> offset {found.offset} timestamp {found.timestamp}")
    latest = admin.list_offsets({tp: OffsetSpec.latest()})[tp].result(timeout=30)
    check(latest.offset == 4, f"confluent admin: latest -> {latest.offset}")

    admin.delete_topics([topic])[topic].result(timeout=30)


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


# Consumer groups: subscribe instead of assign, commit, resume in a new consumer, admin views.
# compat.sh starts the broker with a 300 ms group.initial.rebalance.delay so joins settle fast;
# session.timeout.ms is the broker's minimum (6000) and heartbeats every 500 ms, so a
# rebalance after a member joins or leaves takes about a second.
GROUP_PARTITIONS = 4
GROUP_PER_PARTITION = 25
GROUP_EXTRA = 3
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 500


def group_messages(client, partition, start=0, count=GROUP_PER_PARTITION):
    """The (key, value) messages a group test sends to one partition, from index start."""
    return [
        (f"{client}-gkey-{partition}-{i}".encode(), f"{client}-gvalue-{partition}-{i}-".encode() + bytes(range(i % 256)))
        for i in range(start, start + count)
    ]


def confluent_create_topic(topic, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(timeout=30)
    return admin


def confluent_produce(topic, client, partitions, start, count):
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5})
    delivered = []
    for partition in range(partitions):
        for key, value in group_messages(client, partition, start, count):
            producer.produce(topic, value=value, key=key, partition=partition,
                             on_delivery=lambda err, msg: delivered.append(err))
    producer.flush(30)
    check(len(delivered) == partitions * count and not any(delivered), f"{client}: all delivered")


def confluent_group_consumer(group, **extra):
    from confluent_kafka import Consumer

    return Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": HEARTBEAT_MS,
        **extra,
    })


def confluent_drain(consumer, got, total, seconds):
    """Polls into got {partition: [(offset, key, value)]} until it holds total messages or time is up."""
    deadline = time.time() + seconds
    while sum(map(len, got.values())) < total and time.time() < deadline:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            check(False, f"confluent: poll error {msg.error()}")
            continue
        got.setdefault(msg.partition(), []).append((msg.offset(), msg.key(), msg.value()))


def confluent_commit_on_revoke(consumer, revoked):
    """on_revoke: commit where this member stopped, so the next owner of its partitions doesn't
    read them again."""
    try:
        consumer.commit(asynchronous=False)
    except Exception as e:
        check("NO_OFFSET" in str(e), f"confluent: commit on revoke ({e})")


def kafka_python_drain(consumer, got, total, seconds):
    """confluent_drain for a kafka-python KafkaConsumer."""
    deadline = time.time() + seconds
    while sum(map(len, got.values())) < total and time.time() < deadline:
        for tp, records in consumer.poll(timeout_ms=200).items():
            got.setdefault(tp.partition, []).extend((r.offset, r.key, r.value) for r in records)


def drain(consumer, got, total, seconds):
    """Polls either client's group consumer."""
    from confluent_kafka import Consumer

    (confluent_drain if isinstance(consumer, Consumer) else kafka_python_drain)(consumer, got, total, seconds)


def confluent_group():
    from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition

    client = "confluent-group"
    topic = f"compat-confluent-group-{uuid.uuid4().hex[:8]}"
    group = f"compat-confluent-group-{uuid.uuid4().hex[:8]}"
    admin = confluent_create_topic(topic, GROUP_PARTITIONS)
    confluent_produce(topic, client, GROUP_PARTITIONS, 0, GROUP_PER_PARTITION)

    consumer = confluent_group_consumer(group)
    consumer.subscribe([topic])
    got = {}
    confluent_drain(consumer, got, GROUP_PARTITIONS * GROUP_PER_PARTITION, 30)
    for partition in range(GROUP_PARTITIONS):
        check([(k, v) for _, k, v in got.get(partition, [])] == group_messages(client, partition),
              f"confluent group: partition {partition} byte for byte")
    check(sorted(tp.partition for tp in consumer.assignment()) == list(range(GROUP_PARTITIONS)),
          "confluent group: a lone member is assigned every partition")
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, p) for p in range(GROUP_PARTITIONS)], timeout=10)
    check([tp.offset for tp in committed] == [GROUP_PER_PARTITION] * GROUP_PARTITIONS,
          f"confluent group: committed {[tp.offset for tp in committed]}")
    described = admin.describe_consumer_groups([group])[group].result(timeout=30)
    check(described.state == ConsumerGroupState.STABLE and len(described.members) == 1,
          f"confluent group: described while consuming ({described.state}, {len(described.members)} members)")
    check(sorted(tp.partition for tp in described.members[0].assignment.topic_partitions) == list(range(GROUP_PARTITIONS)),
          "confluent group: the described member holds every partition")
    check(described.partition_assignor != "" and not described.is_simple_consumer_group,
          f"confluent group: described assignor {described.partition_assignor!r}")
    consumer.close()

    # A new member of the same group resumes at the commits: only what was produced after.
    confluent_produce(topic, client, GROUP_PARTITIONS, GROUP_PER_PARTITION, GROUP_EXTRA)
    consumer = confluent_group_consumer(group)
    consumer.subscribe([topic])
    got = {}
    confluent_drain(consumer, got, GROUP_PARTITIONS * GROUP_EXTRA, 30)
    confluent_drain(consumer, got, GROUP_PARTITIONS * GROUP_EXTRA + 1, 1)  # nothing more should come
    for partition in range(GROUP_PARTITIONS):
        resumed = got.get(partition, [])
        check([(k, v) for _, k, v in resumed] == group_messages(client, partition, GROUP_PER_PARTITION, GROUP_EXTRA),
              f"confluent group: partition {partition} resumed after the commit")
        check([o for o, _, _ in resumed] == list(range(GROUP_PER_PARTITION, GROUP_PER_PARTITION + GROUP_EXTRA)),
              f"confluent group: partition {partition} resumed offsets {[o for o, _, _ in resumed]}")
    consumer.commit(asynchronous=False)
    consumer.close()

    listed = admin.list_consumer_groups().result(timeout=30)
    mine = [g for g in listed.valid if g.group_id == group]
    check(len(mine) == 1 and not listed.errors, f"confluent group: list_consumer_groups lists the group ({listed.errors})")
    check(mine and mine[0].state == ConsumerGroupState.EMPTY and not mine[0].is_simple_consumer_group,
          f"confluent group: listed state {mine and mine[0].state}")
    described = admin.describe_consumer_groups([group])[group].result(timeout=30)
    check(described.state == ConsumerGroupState.EMPTY and described.members == [],
          f"confluent group: described after close ({described.state}, {len(described.members)} members)")
    request = [ConsumerGroupTopicPartitions(group)]
    offsets = admin.list_consumer_group_offsets(request)[group].result(timeout=30)
    check(sorted((tp.topic, tp.partition, tp.offset) for tp in offsets.topic_partitions)
          == [(topic, p, GROUP_PER_PARTITION + GROUP_EXTRA) for p in range(GROUP_PARTITIONS)],
          f"confluent group: list_consumer_group_offsets {offsets.topic_partitions}")
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 1)])]
    offsets = admin.list_consumer_group_offsets(request)[group].result(timeout=30)
    check([(tp.partition, tp.offset) for tp in offsets.topic_partitions] == [(1, GROUP_PER_PARTITION + GROUP_EXTRA)],
          f"confluent group: list_consumer_group_offsets of one partition {offsets.topic_partitions}")

    admin.delete_consumer_groups([group])[group].result(timeout=30)
    listed = admin.list_consumer_groups().result(timeout=30)
    check(group not in [g.group_id for g in listed.valid], "confluent group: deleted group not listed")
    request = [ConsumerGroupTopicPartitions(group)]
    offsets = admin.list_consumer_group_offsets(request)[group].result(timeout=30)
    check(all(tp.offset < 0 for tp in offsets.topic_partitions),
          f"confluent group: no offsets after delete {offsets.topic_partitions}")
    try:
        admin.delete_consumer_groups([group])[group].result(timeout=30)
        check(False, "confluent group: deleting a deleted group is refused")
    except Exception as e:
        check("GROUP_ID_NOT_FOUND" in str(e), f"confluent group: second delete refused ({e})")
    admin.delete_topics([topic])[topic].result(timeout=30)


def held_partitions(consumer):
    return sorted(tp.partition for tp in consumer.assignment())


def settled(held, partitions):
    """Each member holds partitions, together all of them, once each."""
    return all(held) and sorted(sum(held, [])) == list(range(partitions))


def received(got):
    return sum(len(m) for g in got for m in g.values())


def poll_members(members, got, partitions, total, seconds):
    """Polls members alternately in this thread, got[i] collecting members[i]'s messages, until
    together they hold total messages and the group is settled. Then polls a little longer, so
    late duplicates show. Returns each member's partitions."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        for member, into in zip(members, got):
            drain(member, into, sum(map(len, into.values())) + 1, 0.2)
        if received(got) >= total and settled([held_partitions(m) for m in members], partitions):
            break
    for member, into in zip(members, got):
        drain(member, into, total + 1, 0.5)
    return [held_partitions(m) for m in members]


def poll_members_threaded(members, got, partitions, total, seconds):
    """poll_members with a thread per member, each polling all the time. kafka-python 3.0.12
    needs that in a group that takes a while to rebalance: a JoinGroup round trip that completes
    between two polls is thrown away and sent again, so with alternate polling it never settles."""
    stop = threading.Event()
    held = [[] for _ in members]

    def run(i):
        while not stop.is_set():
            drain(members[i], got[i], sum(map(len, got[i].values())) + 1, 0.2)
            held[i] = held_partitions(members[i])

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(members))]
    for thread in threads:
        thread.start()
    deadline = time.time() + seconds
    while time.time() < deadline and not (received(got) >= total and settled(list(held), partitions)):
        time.sleep(0.1)
    time.sleep(0.5)  # late duplicates
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    return held


def check_exactly_once(what, got, client, partitions, start, count):
    """got: per member {partition: [(offset, key, value)]}; together they hold each message once."""
    seen = [(p, o) for g in got for p, msgs in g.items() for o, _, _ in msgs]
    check(len(seen) == len(set(seen)), f"{what}: no duplicates ({len(seen) - len(set(seen))})")
    for partition in range(partitions):
        # Sorted by offset: a partition may move from one member to another mid-stream.
        merged = sorted(m for g in got for m in g.get(partition, []))
        check([(k, v) for _, k, v in merged] == group_messages(client, partition, start, count),
              f"{what}: partition {partition} byte for byte across the members")


def confluent_shared_group():
    """Members of one group polled alternately split the partitions and read every message once,
    as members join together, one leaves, and one joins late."""
    from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions

    client = "confluent-shared"
    partitions = 6
    topic = f"compat-confluent-shared-{uuid.uuid4().hex[:8]}"
    group = f"compat-confluent-shared-{uuid.uuid4().hex[:8]}"
    admin = confluent_create_topic(topic, partitions)
    confluent_produce(topic, client, partitions, 0, GROUP_PER_PARTITION)

    def member():
        consumer = confluent_group_consumer(group)
        consumer.subscribe([topic], on_revoke=confluent_commit_on_revoke)
        return consumer

    first, second = member(), member()
    got = [{}, {}]
    held = poll_members([first, second], got, partitions, partitions * GROUP_PER_PARTITION, 60)
    check(settled(held, partitions), f"confluent shared: each member holds some partitions, together all ({held})")
    check_exactly_once("confluent shared", got, client, partitions, 0, GROUP_PER_PARTITION)
    described = admin.describe_consumer_groups([group])[group].result(timeout=30)
    check(described.state == ConsumerGroupState.STABLE and len(described.members) == 2,
          f"confluent shared: described ({described.state}, {len(described.members)} members)")
    described_held = sorted(sorted(tp.partition for tp in m.assignment.topic_partitions) for m in described.members)
    check(described_held == sorted(held), f"confluent shared: described assignment {described_held} vs {held}")

    # The second member leaves: the first takes over its partitions where it committed.
    second.close()
    offset = GROUP_PER_PARTITION
    confluent_produce(topic, client, partitions, offset, GROUP_EXTRA)
    got = [{}]
    held = poll_members([first], got, partitions, partitions * GROUP_EXTRA, 60)
    check(held == [list(range(partitions))], f"confluent shared: after a leave one member holds all ({held})")
    check_exactly_once("confluent shared, after a leave", got, client, partitions, offset, GROUP_EXTRA)

    # A third member joins late: the partitions split again, still every message once.
    third = member()
    offset += GROUP_EXTRA
    confluent_produce(topic, client, partitions, offset, GROUP_EXTRA)
    got = [{}, {}]
    held = poll_members([first, third], got, partitions, partitions * GROUP_EXTRA, 60)
    check(settled(held, partitions), f"confluent shared: after a late join each holds some partitions ({held})")
    check_exactly_once("confluent shared, after a late join", got, client, partitions, offset, GROUP_EXTRA)

    for consumer in (first, third):
        consumer.close()
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    check(sorted((tp.partition, tp.offset) for tp in offsets.topic_partitions)
          == [(p, offset + GROUP_EXTRA) for p in range(partitions)],
          f"confluent shared: committed at the end {offsets.topic_partitions}")
    admin.delete_consumer_groups([group])[group].result(timeout=30)
    admin.delete_topics([topic])[topic].result(timeout=30)


def mixed_group():
    """A kafka-python and a confluent-kafka member share a group. The confluent member only
    offers roundrobin, kafka-python prefers range: the group must pick roundrobin."""
    from confluent_kafka import ConsumerGroupState
    from kafka import KafkaConsumer

    client = "mixed-group"
    topic = f"compat-mixed-group-{uuid.uuid4().hex[:8]}"
    group = f"compat-mixed-group-{uuid.uuid4().hex[:8]}"
    admin = confluent_create_topic(topic, GROUP_PARTITIONS)
    confluent_produce(topic, client, GROUP_PARTITIONS, 0, GROUP_PER_PARTITION)

    # kafka-python commits before giving partitions up when it auto-commits (a rebalance
    # listener can't: its callbacks run on the client's I/O thread, where commit() refuses to block).
    python_member = KafkaConsumer(
        topic, bootstrap_servers=BOOTSTRAP, group_id=group, auto_offset_reset="earliest", enable_auto_commit=True,
        session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_MS,
    )
    confluent_member = confluent_group_consumer(group, **{"partition.assignment.strategy": "roundrobin"})
    confluent_member.subscribe([topic], on_revoke=confluent_commit_on_revoke)
    got = [{}, {}]
    members = [python_member, confluent_member]
    held = poll_members_threaded(members, got, GROUP_PARTITIONS, GROUP_PARTITIONS * GROUP_PER_PARTITION, 60)
    check(settled(held, GROUP_PARTITIONS), f"mixed group: each member holds some partitions, together all ({held})")
    check_exactly_once("mixed group", got, client, GROUP_PARTITIONS, 0, GROUP_PER_PARTITION)
    described = admin.describe_consumer_groups([group])[group].result(timeout=30)
    check((described.state, len(described.members), described.partition_assignor)
          == (ConsumerGroupState.STABLE, 2, "roundrobin"),
          f"mixed group: described ({described.state}, {len(described.members)} members, "
          f"{described.partition_assignor!r})")
    python_member.close()
    confluent_member.close()
    admin.delete_consumer_groups([group])[group].result(timeout=30)
    admin.delete_topics([topic])[topic].result(timeout=30)


def kafka_python_group():
    import kafka.errors
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    client = "kafka-python-group"
    topic = f"compat-kafkapython-group-{uuid.uuid4().hex[:8]}"
    group = f"compat-kafkapython-group-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(topic, num_partitions=GROUP_PARTITIONS, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5)

    def produce(start, count):
        futures = [producer.send(topic, value=value, key=key, partition=partition)
                   for partition in range(GROUP_PARTITIONS) for key, value in group_messages(client, partition, start, count)]
        producer.flush(30)
        check(all(f.succeeded() for f in futures), f"kafka-python group: delivered {start}..{start + count}")

    def consumer(auto_commit):
        return KafkaConsumer(
            topic, bootstrap_servers=BOOTSTRAP, group_id=group, auto_offset_reset="earliest",
            enable_auto_commit=auto_commit, session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_MS,
        )

    partitions = [TopicPartition(topic, p) for p in range(GROUP_PARTITIONS)]
    produce(0, GROUP_PER_PARTITION)
    member = consumer(auto_commit=False)
    got = {}
    drain(member, got, GROUP_PARTITIONS * GROUP_PER_PARTITION, 30)
    for partition in range(GROUP_PARTITIONS):
        check([(k, v) for _, k, v in got.get(partition, [])] == group_messages(client, partition),
              f"kafka-python group: partition {partition} byte for byte")
    member.commit()
    check([member.committed(tp) for tp in partitions] == [GROUP_PER_PARTITION] * GROUP_PARTITIONS,
          f"kafka-python group: committed {[member.committed(tp) for tp in partitions]}")
    member.close()

    # A new member with auto commit: nothing old, then exactly what is produced next.
    member = consumer(auto_commit=True)
    got = {}
    deadline = time.time() + 30
    while len(member.assignment()) < GROUP_PARTITIONS and time.time() < deadline:
        drain(member, got, 1, 0.2)
    check(len(member.assignment()) == GROUP_PARTITIONS, f"kafka-python group: assignment {member.assignment()}")
    check([member.position(tp) for tp in partitions] == [GROUP_PER_PARTITION] * GROUP_PARTITIONS,
          f"kafka-python group: resumed positions {[member.position(tp) for tp in partitions]}")
    drain(member, got, 1, 1)
    check(got == {}, f"kafka-python group: nothing old after resuming ({sum(map(len, got.values()))} messages)")
    produce(GROUP_PER_PARTITION, GROUP_EXTRA)
    drain(member, got, GROUP_PARTITIONS * GROUP_EXTRA, 30)
    for partition in range(GROUP_PARTITIONS):
        check([(k, v) for _, k, v in got.get(partition, [])]
              == group_messages(client, partition, GROUP_PER_PARTITION, GROUP_EXTRA),
              f"kafka-python group: partition {partition} got exactly the new messages")
    member.close()  # auto commit commits on close
    producer.close()

    listed = [g for g in admin.list_groups() if g["group_id"] == group]
    check([(g["protocol_type"], g["group_state"]) for g in listed] == [("consumer", "Empty")],
          f"kafka-python group: list_groups lists the group ({listed})")
    described = admin.describe_groups([group])[group]
    check((described["group_state"], described["protocol_type"], described["members"], described["error"])
          == ("Empty", "consumer", [], None), f"kafka-python group: described {described}")
    offsets = admin.list_group_offsets({group: None})[group]
    check({tp.partition: o.offset for tp, o in offsets.items() if tp.topic == topic}
          == {p: GROUP_PER_PARTITION + GROUP_EXTRA for p in range(GROUP_PARTITIONS)},
          f"kafka-python group: list_group_offsets {offsets}")
    errors = admin.delete_group_offsets(group, [TopicPartition(topic, 0)])
    check(list(errors.values()) == [kafka.errors.NoError], f"kafka-python group: delete_group_offsets {errors}")
    offsets = admin.list_group_offsets({group: None})[group]
    check(sorted(tp.partition for tp in offsets) == list(range(1, GROUP_PARTITIONS)),
          f"kafka-python group: partition 0's offset deleted ({sorted(tp.partition for tp in offsets)})")
    results = admin.delete_groups([group])
    check(results == {group: "OK"}, f"kafka-python group: delete_groups {results}")
    check(group not in [g["group_id"] for g in admin.list_groups()], "kafka-python group: deleted group not listed")
    admin.delete_topics([topic])
    admin.close()


def kcat_group():
    from confluent_kafka import ConsumerGroupTopicPartitions

    topic = f"compat-kcat-group-{uuid.uuid4().hex[:8]}"
    group = f"compat-kcat-group-{uuid.uuid4().hex[:8]}"
    admin = confluent_create_topic(topic, GROUP_PARTITIONS)
    lines = []
    for partition in range(GROUP_PARTITIONS):
        part = [f"kcat-gkey-{partition}-{i}\tkcat-gvalue-{partition}-{i}" for i in range(GROUP_PER_PARTITION)]
        produce = subprocess.run(
            ["kcat", "-P", "-b", BOOTSTRAP, "-t", topic, "-p", str(partition), "-K", "\t"],
            input="\n".join(part) + "\n", text=True, capture_output=True, timeout=60,
        )
        check(produce.returncode == 0, f"kcat group: produce to {partition} ({produce.stderr.strip()})")
        lines += part

    def consume(offset):
        return subprocess.run(
            ["kcat", "-b", BOOTSTRAP, "-G", group, topic, "-o", offset, "-e", "-q", "-f", "%p\t%k\t%s\n",
             "-X", "auto.offset.reset=earliest",
             "-X", f"session.timeout.ms={SESSION_TIMEOUT_MS}", "-X", f"heartbeat.interval.ms={HEARTBEAT_MS}"],
            capture_output=True, text=True, timeout=60,
        )

    first = consume("beginning")
    check(first.returncode == 0, f"kcat group: first run exit {first.returncode} ({first.stderr.strip()})")
    by_partition = {}
    for line in first.stdout.splitlines():
        partition, rest = line.split("\t", 1)
        by_partition.setdefault(int(partition), []).append(rest)
    for partition in range(GROUP_PARTITIONS):
        check(by_partition.get(partition) == lines[partition * GROUP_PER_PARTITION:(partition + 1) * GROUP_PER_PARTITION],
              f"kcat group: partition {partition} byte for byte")
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    check(sorted((tp.partition, tp.offset) for tp in offsets.topic_partitions)
          == [(p, GROUP_PER_PARTITION) for p in range(GROUP_PARTITIONS)],
          f"kcat group: committed on exit {offsets.topic_partitions}")
    # kcat's -o beginning overrides the committed offsets on every assignment (so a second run
    # with it reads everything again); -o stored starts at them.
    second = consume("stored")
    check(second.returncode == 0 and second.stdout == "",
          f"kcat group: second run reads nothing old ({len(second.stdout.splitlines())} lines, {second.stderr.strip()})")
    admin.delete_topics([topic])[topic].result(timeout=30)


def confluent_configs():
    """Every config operation through confluent-kafka's AdminClient: incremental SET, DELETE,
    APPEND and SUBTRACT on a topic and on the broker (per broker and cluster-wide), describe
    with synonyms, Kafka's refusals, and a gzip topic fed lz4 batches read back intact."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                       ConfigResource, ConfigSource, NewTopic)
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    topic = f"configs-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)

    def alter(kind, name, *ops):
        resource = ConfigResource(kind, name, incremental_configs=[
            ConfigEntry(key, value, incremental_operation=op) for op, key, value in ops])
        return admin.incremental_alter_configs([resource])[resource].result(timeout=30)

    def describe(kind, name):
        resource = ConfigResource(kind, name)
        return admin.describe_configs([resource])[resource].result(timeout=30)

    def refused(what, code, kind, name, *ops):
        try:
            alter(kind, name, *ops)
            check(False, f"confluent configs: {what} is refused")
        except Exception as e:
            check(code in str(e), f"confluent configs: {what} refused with {code} ({e})")

    TOPIC, BROKER = ConfigResource.Type.TOPIC, ConfigResource.Type.BROKER
    SET, DELETE = AlterConfigOpType.SET, AlterConfigOpType.DELETE
    APPEND, SUBTRACT = AlterConfigOpType.APPEND, AlterConfigOpType.SUBTRACT

    # Describe with synonyms: retention.ms comes from log.retention.hours' default.
    configs = describe(TOPIC, topic)
    retention = configs["retention.ms"]
    check(retention.value == "604800000" and retention.source == ConfigSource.DEFAULT_CONFIG.value,
          f"confluent configs: default retention.ms ({retention.value}, {retention.source})")
    check("log.retention.hours" in retention.synonyms,
          f"confluent configs: retention.ms synonyms {list(retention.synonyms)}")
    check(len(configs) == 38, f"confluent configs: every topic config listed ({len(configs)})")

    # APPEND and SUBTRACT on LIST configs; SET and DELETE.
    alter(TOPIC, topic, (SUBTRACT, "cleanup.policy", "delete"))
    check(describe(TOPIC, topic)["cleanup.policy"].value == "", "confluent configs: SUBTRACT leaves an empty list")
    alter(TOPIC, topic, (APPEND, "cleanup.policy", "delete"))
    alter(TOPIC, topic, (APPEND, "cleanup.policy", "delete"))
    check(describe(TOPIC, topic)["cleanup.policy"].value == "delete", "confluent configs: APPEND skips what is there")
    throttled = "leader.replication.throttled.replicas"
    alter(TOPIC, topic, (APPEND, throttled, "0:0,1:0"), (SET, "retention.ms", "3600000"))
    alter(TOPIC, topic, (SUBTRACT, throttled, "0:0"))
    configs = describe(TOPIC, topic)
    check(configs[throttled].value == "1:0", f"confluent configs: APPEND then SUBTRACT ({configs[throttled].value})")
    check(configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, "confluent configs: SET on the topic")
    alter(TOPIC, topic, (DELETE, "retention.ms", None), (DELETE, throttled, None))
    check(describe(TOPIC, topic)["retention.ms"].value == "604800000", "confluent configs: DELETE restores the default")
    refused("APPEND to a non-list", "INVALID_CONFIG", TOPIC, topic, (APPEND, "retention.ms", "5"))
    refused("an out-of-range level", "INVALID_CONFIG", TOPIC, topic, (SET, "compression.zstd.level", "99"))

    # The broker: its dynamic defaults reach the topic; static ones don't change. (librdkafka
    # can't name the cluster-wide resource "", the Rust test tests/tests/configs.rs does.)
    broker = describe(BROKER, "0")
    check(broker["log.retention.hours"].is_read_only and not broker["log.retention.ms"].is_read_only,
          "confluent configs: broker read-only flags")
    alter(BROKER, "0", (SET, "log.retention.ms", "7200000"), (SUBTRACT, "log.cleanup.policy", "delete"))
    configs = describe(TOPIC, topic)
    check((configs["retention.ms"].value, configs["retention.ms"].source)
          == ("7200000", ConfigSource.DYNAMIC_BROKER_CONFIG.value),
          f"confluent configs: broker default ({configs['retention.ms'].value}, {configs['retention.ms'].source})")
    check(describe(BROKER, "0")["log.cleanup.policy"].value == "", "confluent configs: broker list SUBTRACT")
    check(configs["cleanup.policy"].value == "delete", "confluent configs: the topic's own list wins")
    refused("a dirty ratio above 1", "INVALID_CONFIG", BROKER, "0", (SET, "log.cleaner.min.cleanable.ratio", "1.5"))
    alter(BROKER, "0", (APPEND, "log.cleanup.policy", "delete"))
    check(describe(BROKER, "0")["log.cleanup.policy"].value == "delete", "confluent configs: broker list APPEND")
    refused("a static broker config", "INVALID_REQUEST", BROKER, "0", (SET, "num.partitions", "3"))
    alter(BROKER, "0", (DELETE, "log.retention.ms", None), (DELETE, "log.cleanup.policy", None))
    check(describe(TOPIC, topic)["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value,
          "confluent configs: broker defaults deleted")

    # compression.type=gzip: lz4 batches are recompressed by the broker and read back intact.
    alter(TOPIC, topic, (SET, "compression.type", "gzip"))
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "compression.type": "lz4", "linger.ms": 50})
    sent = messages("gzip", 0)
    for key, value, headers, ts in sent:
        producer.produce(topic, value=value, key=key, headers=headers, timestamp=ts, partition=0)
    check(producer.flush(30) == 0, "confluent configs: lz4 batches acknowledged on a gzip topic")
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"g-{topic}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < len(sent) and time.time() < deadline:
        m = consumer.poll(1)
        if m is not None and not m.error():
            got.append((m.key(), m.value(), m.headers(), m.timestamp()[1]))
    consumer.close()
    check(got == sent, f"confluent configs: recompressed records read back ({len(got)} of {len(sent)})")
    admin.delete_topics([topic])[topic].result(timeout=30)


def confluent_transactions():
    """confluent-kafka's transactional API: an aborted and a committed transaction, a
    consume-transform-produce transaction with the group's offsets in it, read_committed and
    read_uncommitted readers, and a second instance of the transactional id fencing the first."""
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    source = f"compat-txn-in-{uuid.uuid4().hex[:8]}"
    sink = f"compat-txn-out-{uuid.uuid4().hex[:8]}"
    confluent_create_topic(source, 2)
    confluent_create_topic(sink, 2)
    plain = Producer({"bootstrap.servers": BOOTSTRAP})
    for i in range(30):
        plain.produce(source, value=f"in-{i}".encode(), key=b"k", partition=i % 2)
    check(plain.flush(30) == 0, "confluent txn: input acknowledged")

    txn_id = f"compat-txn-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": txn_id})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(10):
        producer.produce(sink, value=f"aborted-{i}".encode(), key=b"k", partition=i % 2)
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    for i in range(10):
        producer.produce(sink, value=f"committed-{i}".encode(), key=b"k", partition=i % 2)
    producer.commit_transaction(30)

    group = f"compat-txn-group-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "isolation.level": "read_committed",
    })
    consumer.subscribe([source])
    copied = []
    deadline = time.time() + 60
    while len(copied) < 30 and time.time() < deadline:
        m = consumer.poll(1)
        if m is not None and not m.error():
            copied.append(m)
    check(len(copied) == 30, f"confluent txn: the group read the input ({len(copied)} of 30)")
    producer.begin_transaction()
    for m in copied:
        producer.produce(sink, value=b"copy-" + m.value(), key=b"k", partition=m.partition())
    positions = consumer.position(consumer.assignment())
    producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
    producer.commit_transaction(30)
    committed = consumer.committed([TopicPartition(source, 0), TopicPartition(source, 1)], timeout=30)
    check(sorted(tp.offset for tp in committed) == [15, 15],
          f"confluent txn: the transaction committed the group's offsets ({committed})")
    consumer.close()

    def read(isolation):
        reader = Consumer({
            "bootstrap.servers": BOOTSTRAP, "group.id": f"r-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False, "isolation.level": isolation,
        })
        reader.assign([TopicPartition(sink, 0, 0), TopicPartition(sink, 1, 0)])
        values = []
        quiet = time.time() + 3
        while time.time() < quiet:
            m = reader.poll(0.5)
            if m is not None and not m.error():
                values.append(m.value().decode())
                quiet = time.time() + 3
        reader.close()
        return sorted(values)

    committed_values = sorted([f"committed-{i}" for i in range(10)] + [f"copy-in-{i}" for i in range(30)])
    check(read("read_committed") == committed_values,
          "confluent txn: read_committed sees the committed transactions only")
    check(read("read_uncommitted") == sorted(committed_values + [f"aborted-{i}" for i in range(10)]),
          "confluent txn: read_uncommitted sees the aborted transaction too")

    # A new instance of the transactional id fences the old one: its commit fails fatally.
    producer.begin_transaction()
    producer.produce(sink, value=b"zombie", key=b"k", partition=0)
    producer.flush(30)
    successor = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": txn_id})
    successor.init_transactions(30)
    try:
        producer.commit_transaction(30)
        check(False, "confluent txn: a fenced producer committed")
    except KafkaException as e:
        check(e.args[0].fatal(), f"confluent txn: fencing is fatal to the old producer ({e})")
    check("zombie" not in read("read_committed"), "confluent txn: the fenced transaction was aborted")


ROUND_TRIPS = (
    confluent_round_trip, confluent_admin, kafka_python_round_trip, kcat_round_trip,
    confluent_group, confluent_shared_group, kafka_python_group, mixed_group, kcat_group,
    confluent_configs, confluent_transactions,
)
chosen = sys.argv[2:]
for round_trip in ROUND_TRIPS:
    if chosen and round_trip.__name__ not in chosen:
        continue
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
