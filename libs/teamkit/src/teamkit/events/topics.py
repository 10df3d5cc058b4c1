"""Every Kafka topic, declared once. A deployment may prefix them (`KAFKA_TOPIC_PREFIX`)."""

from enum import StrEnum


class Topic(StrEnum):
    """The topic each service emits to; the key is the aggregate id (request or policy id)."""

    REQUEST = "request.events"
    POLICY = "policy.events"
    LIFECYCLE = "lifecycle.events"
    NOTIFY = "notify.events"


def topic_name(topic: str, prefix: str = "") -> str:
    """Return the broker-side name of `topic` under an optional shared-cluster prefix."""
    return f"{prefix}{topic}"


def dead_letter_topic(consumer_group: str) -> str:
    """Return the dead-letter topic of one consumer group (unprefixed)."""
    return f"dead-letter.{consumer_group}"
