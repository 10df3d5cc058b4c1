"""Fixtures of the audit tests: a migrated database, the running service, a CloudTrail endpoint."""

import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from audit_service import service
from audit_service.app import create_app
from audit_service.config import Settings
from teamkit import db
from teamkit.events import EnvelopeHead, Event, Topic, topic_name
from teamkit.kafka import Delivery
from teamkit.settings import AwsSettings, KafkaSettings, OidcSettings, RuntimeSettings
from tests.harness.cloudtrail import cloudtrail  # noqa: F401 - fixture re-exported for tests
from tests.harness.postgres import MigratedDb
from tests.harness.servers import serving

_offsets = itertools.count()


def audit_settings(
    url: str, kafka: KafkaSettings, oidc: OidcSettings, **overrides: Any
) -> Settings:
    """Settings of an audit service under test."""
    values: dict[str, Any] = {
        "DATABASE_URL": url,
        "kafka": kafka,
        "oidc": oidc,
        "aws": AwsSettings(AWS_MAX_ATTEMPTS=1),
        "runtime": RuntimeSettings(TEAM_DEV_MODE=True, LOG_FORMAT="console", LOG_LEVEL="WARNING"),
    }
    values.update(overrides)
    return Settings(**values)


@pytest_asyncio.fixture(loop_scope="session")
async def audit_url(migrated_database: MigratedDb) -> str:
    """A fresh database migrated with the audit service's migrations."""
    return await migrated_database("audit")


@pytest_asyncio.fixture(loop_scope="session")
async def audit_engine(audit_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the audit database (the service's own role: the superuser in tests)."""
    engine = db.create_engine(audit_url)
    yield engine
    await engine.dispose()


def delivery_of(event: Event | dict[str, Any]) -> Delivery:
    """The Delivery the consumer runner would hand the catch-all for this event."""
    payload = json.loads(event.model_dump_json()) if isinstance(event, Event) else event
    raw = json.dumps(payload).encode()
    topic = event.topic if isinstance(event, Event) else "request.events"
    return Delivery(
        topic=topic,
        partition=0,
        offset=next(_offsets),
        key=str(payload.get("subject", "")).encode(),
        raw=raw,
        payload=payload,
        head=EnvelopeHead.model_validate(payload),
        event=None,
    )


async def record(engine: AsyncEngine, events: Iterable[Event | dict[str, Any]]) -> None:
    """Apply events as the consumer does (one transaction each), without Kafka."""
    sessionmaker = db.create_sessionmaker(engine)
    for event in events:
        async with sessionmaker() as session, session.begin():
            await service.record_delivery(session, delivery_of(event))


@contextlib.asynccontextmanager
async def running_audit(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The audit service under uvicorn, and an HTTP client on it."""
    async with (
        serving(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=60.0) as client,
    ):
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A plain aiokafka producer, as the other services' relays publish."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_settings.KAFKA_BOOTSTRAP_SERVERS, acks="all", linger_ms=0
    )
    await producer.start()
    yield producer
    await producer.stop()


async def publish(
    producer: AIOKafkaProducer,
    kafka: KafkaSettings,
    event: Event | dict[str, Any],
    topic: str = Topic.REQUEST,
) -> None:
    """Send one event (value: the envelope JSON, key: its subject) to its topic."""
    if isinstance(event, Event):
        value = event.model_dump_json().encode()
        key, topic = event.subject.encode(), event.topic
    else:
        value, key = json.dumps(event).encode(), str(event["subject"]).encode()
    await producer.send_and_wait(topic_name(topic, kafka.KAFKA_TOPIC_PREFIX), value=value, key=key)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a token."""
    return {"Authorization": f"Bearer {token}"}
