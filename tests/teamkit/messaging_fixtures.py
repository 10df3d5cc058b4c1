"""A test-only event and helpers shared by the outbox and consumer tests."""

import json
from typing import ClassVar, Literal
from uuid import UUID

from aiokafka import AIOKafkaConsumer, TopicPartition

from teamkit.events.envelope import Event, EventData
from teamkit.events.topics import topic_name
from teamkit.settings import KafkaSettings

TEST_TOPIC = "harness.events"


class PingData(EventData):
    n: int


class PingV1(Event):
    topic: ClassVar[str] = TEST_TOPIC
    type: Literal["test.pinged"] = "test.pinged"
    version: Literal[1] = 1
    source: str = "tests"
    data: PingData


def ping(n: int, subject: str = "s-1") -> PingV1:
    return PingV1(subject=subject, data=PingData(n=n))


async def read_topic(
    settings: KafkaSettings, topic: str, *, expect: int, timeout_ms: int = 15_000
) -> list[dict[str, object]]:
    """Read every message of `topic` from the beginning until `expect` arrived or time is up."""
    name = topic_name(topic, settings.KAFKA_TOPIC_PREFIX)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(name)
        for _ in range(50):
            if partitions:
                break
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(name)
        assert partitions, f"topic {name} does not exist"
        tps = [TopicPartition(name, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        messages: list[dict[str, object]] = []
        waited = 0
        while len(messages) < expect and waited < timeout_ms:
            batch = await consumer.getmany(timeout_ms=200)
            waited += 200
            for records in batch.values():
                messages.extend(json.loads(r.value) for r in records)
        # A short extra read catches messages beyond the expected count.
        for records in (await consumer.getmany(timeout_ms=300)).values():
            messages.extend(json.loads(r.value) for r in records)
        return messages
    finally:
        await consumer.stop()


def ids(messages: list[dict[str, object]]) -> list[UUID]:
    return [UUID(str(m["id"])) for m in messages]
