"""Kafka for tests: the Tansu broker binary, or the cluster named by KAFKA_BOOTSTRAP_SERVERS."""

import os
import uuid
from collections.abc import Iterator

import pytest

from devstack.kafka import start_tansu
from teamkit.settings import KafkaSettings


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """`host:port` of the test broker."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = start_tansu()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Settings with a topic prefix of this test's own, and Tansu-friendly group timings."""
    return KafkaSettings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        KAFKA_TOPIC_PREFIX=f"t{uuid.uuid4().hex[:10]}.",
        KAFKA_SESSION_TIMEOUT_MS=2000,
        KAFKA_HEARTBEAT_INTERVAL_MS=500,
        KAFKA_TOPIC_PARTITIONS=2,
        KAFKA_CONSUMER_MAX_RETRIES=2,
        KAFKA_CONSUMER_RETRY_BACKOFF_MS=10,
    )
