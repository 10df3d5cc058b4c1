"""aiokafka plumbing: the producer, topic creation, and the idempotent consumer runner.

The runner commits a partition's offset only after the database transactions of its records
committed; each record's effects and its inbox claim share one transaction, so a redelivery after
a crash is a no-op. A handler that keeps failing, or a payload that cannot be parsed, becomes a
dead-letter row (plus a message on the group's dead-letter topic) and the partition moves on.
"""

import asyncio
import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from teamkit import inbox, outbox
from teamkit.clock import utc_now
from teamkit.events.envelope import EnvelopeHead, Event
from teamkit.events.topics import dead_letter_topic, topic_name
from teamkit.logging import bind_correlation_id
from teamkit.metrics import ServiceMetrics
from teamkit.settings import KafkaSettings

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=Event)
Handler = Callable[[AsyncSession, Any], Awaitable[None]]


def create_producer(settings: KafkaSettings, *, client_id: str) -> AIOKafkaProducer:
    """The service's one producer: `acks=all`, idempotence as configured, no lingering."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.KAFKA_ENABLE_IDEMPOTENCE,
        linger_ms=0,
        request_timeout_ms=30_000,
    )


async def ensure_topics(settings: KafkaSettings, topics: list[str], *, client_id: str) -> None:
    """Create any of `topics` (logical names) that do not exist yet; existing ones are kept."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, client_id=client_id
    )
    await admin.start()
    try:
        wanted = {topic_name(t, settings.KAFKA_TOPIC_PREFIX) for t in topics}
        existing = set(await admin.list_topics())
        missing = sorted(wanted - existing)
        if missing:
            # A concurrent creator wins harmlessly: "already exists" comes back as an error code.
            await admin.create_topics(
                [NewTopic(name, settings.KAFKA_TOPIC_PARTITIONS, 1) for name in missing]
            )
            log.info("kafka.topics_created", topics=missing)
    finally:
        await admin.close()


async def broker_reachable(producer: AIOKafkaProducer, *, timeout: float = 2.0) -> bool:
    """True when the broker answers a metadata request within `timeout` seconds."""
    try:
        await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout)
    except Exception:  # noqa: BLE001 - any failure means "not reachable" for readiness
        return False
    return True


@dataclass(frozen=True)
class Delivery:
    """One consumed record as a catch-all handler sees it (audit stores even unknown events)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes
    payload: dict[str, Any]
    head: EnvelopeHead
    event: Event | None


class HandlerRegistry:
    """Handlers keyed by (event type, version); an optional catch-all sees every parsed record."""

    def __init__(self) -> None:
        self._by_tag: dict[str, tuple[type[Event], Handler]] = {}
        self._types: set[str] = set()
        self.catch_all: Handler | None = None
        self.parse: Callable[[dict[str, Any]], Event] | None = None

    def on(
        self, cls: type[E]
    ) -> Callable[
        [Callable[[AsyncSession, E], Awaitable[None]]], Callable[[AsyncSession, E], Awaitable[None]]
    ]:
        """Register the decorated coroutine for events of class `cls`."""
        type_ = cls.model_fields["type"].default
        version = cls.model_fields["version"].default

        def decorate(
            fn: Callable[[AsyncSession, E], Awaitable[None]],
        ) -> Callable[[AsyncSession, E], Awaitable[None]]:
            self._by_tag[f"{type_}@{version}"] = (cls, fn)
            self._types.add(str(type_))
            return fn

        return decorate

    def on_any(self, fn: Callable[[AsyncSession, Delivery], Awaitable[None]]) -> None:
        """Register a handler that receives every record, known or not (after typed handlers)."""
        self.catch_all = fn

    def lookup(self, head: EnvelopeHead) -> tuple[type[Event], Handler] | None:
        """The typed handler for this envelope, if any."""
        return self._by_tag.get(f"{head.type}@{head.version}")

    def handles_type(self, type_: str) -> bool:
        """True when some version of `type_` has a handler (an unknown version is then an error)."""
        return type_ in self._types


class PoisonMessage(Exception):
    """A record that can never be applied: not JSON, no envelope, or an unknown version."""


class ConsumerRunner:
    """Consumes `topics` as consumer group `group` and applies each record exactly once."""

    def __init__(
        self,
        *,
        group: str,
        topics: list[str],
        registry: HandlerRegistry,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: KafkaSettings,
        metrics: ServiceMetrics | None = None,
        after_commit: Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]] | None = None,
    ) -> None:
        self.group = group
        self.topics = [topic_name(t, settings.KAFKA_TOPIC_PREFIX) for t in topics]
        self._prefix = settings.KAFKA_TOPIC_PREFIX
        self._registry = registry
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._metrics = metrics or ServiceMetrics()
        self._after_commit = after_commit
        self._consumer: AIOKafkaConsumer | None = None
        self._next_offset: dict[TopicPartition, int] = {}
        self.running = False
        self.processed = 0
        self.dead_lettered = 0
        self.last_processed_at: datetime | None = None
        self.last_error: str | None = None

    async def run(self) -> None:
        """Consume until cancelled; the consumer is recreated after unexpected failures."""
        while True:
            consumer = AIOKafkaConsumer(
                *self.topics,
                bootstrap_servers=self._settings.KAFKA_BOOTSTRAP_SERVERS,
                group_id=self.group,
                client_id=self.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=self._settings.KAFKA_SESSION_TIMEOUT_MS,
                heartbeat_interval_ms=self._settings.KAFKA_HEARTBEAT_INTERVAL_MS,
                max_poll_records=500,
                fetch_max_wait_ms=self._settings.KAFKA_FETCH_MAX_WAIT_MS,
            )
            try:
                await consumer.start()
                self._consumer = consumer
                self.running = True
                log.info("consumer.started", group=self.group, topics=self.topics)
                while True:
                    batches = await consumer.getmany(timeout_ms=500)
                    for tp, records in batches.items():
                        for record in records:
                            await self._handle(record)
                            self._next_offset[tp] = record.offset + 1
                        await consumer.commit({tp: records[-1].offset + 1})
                        if self._after_commit is not None:
                            await self._after_commit(records[-1])
                    self._update_lag(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = repr(exc)
                log.exception("consumer.failed", group=self.group)
                await asyncio.sleep(1.0)
            finally:
                self.running = False
                self._consumer = None
                await consumer.stop()

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        raw = record.value or b""
        try:
            payload, head = self._envelope(raw)
        except PoisonMessage as exc:
            await self._dead_letter(record, raw, error=str(exc), attempts=1)
            return
        bind_correlation_id(head.correlation_id)
        typed = self._registry.lookup(head)
        if typed is None and self._registry.handles_type(head.type):
            await self._dead_letter(
                record,
                raw,
                error=f"no handler for version {head.version} of {head.type}",
                attempts=1,
                head=head,
            )
            return
        if typed is None and self._registry.catch_all is None:
            self._metrics.events_consumed.labels(head.type, "ignored").inc()
            self._mark_processed()
            return

        event: Event | None = None
        if typed is not None:
            try:
                event = typed[0].model_validate(payload)
            except ValidationError as exc:
                await self._dead_letter(
                    record, raw, error=f"invalid payload: {exc}", attempts=1, head=head
                )
                return

        attempts = 0
        max_attempts = self._settings.KAFKA_CONSUMER_MAX_RETRIES + 1
        while True:
            attempts += 1
            try:
                outcome = await self._apply(record, raw, payload, head, event, typed)
            except Exception as exc:  # noqa: BLE001 - the handler's failure is data here
                if attempts >= max_attempts:
                    log.warning(
                        "consumer.handler_gave_up",
                        type=head.type,
                        event_id=str(head.id),
                        attempts=attempts,
                        error=repr(exc),
                    )
                    await self._dead_letter(
                        record, raw, error=repr(exc), attempts=attempts, head=head
                    )
                    return
                self._metrics.handler_retries.labels(head.type).inc()
                delay = self._settings.KAFKA_CONSUMER_RETRY_BACKOFF_MS / 1000 * 2 ** (attempts - 1)
                await asyncio.sleep(min(delay, 10.0))
                continue
            self._metrics.events_consumed.labels(head.type, outcome).inc()
            self._mark_processed()
            return

    def _envelope(self, raw: bytes) -> tuple[dict[str, Any], EnvelopeHead]:
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            raise PoisonMessage(f"not JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise PoisonMessage("not a JSON object")
        try:
            head = EnvelopeHead.model_validate(payload)
        except ValidationError as exc:
            raise PoisonMessage(f"no valid envelope: {exc}") from exc
        return payload, head

    async def _apply(
        self,
        record: ConsumerRecord[bytes, bytes],
        raw: bytes,
        payload: dict[str, Any],
        head: EnvelopeHead,
        event: Event | None,
        typed: tuple[type[Event], Handler] | None,
    ) -> str:
        async with self._sessionmaker() as session, session.begin():
            if not await inbox.claim(
                session, consumer=self.group, event_id=head.id, event_type=head.type
            ):
                return "duplicate"
            if typed is not None:
                await typed[1](session, event)
            if self._registry.catch_all is not None:
                delivery = Delivery(
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key,
                    raw=raw,
                    payload=payload,
                    head=head,
                    event=event,
                )
                await self._registry.catch_all(session, delivery)
        return "applied"

    async def _dead_letter(
        self,
        record: ConsumerRecord[bytes, bytes],
        raw: bytes,
        *,
        error: str,
        attempts: int,
        head: EnvelopeHead | None = None,
    ) -> None:
        log.error(
            "consumer.dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=error[:500],
        )
        async with self._sessionmaker() as session, session.begin():
            stored = await inbox.record_dead_letter(
                session,
                consumer=self.group,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                payload=raw,
                error=error,
                attempts=attempts,
                event_id=head.id if head else None,
                event_type=head.type if head else None,
            )
            if stored:
                await outbox.add_raw(
                    session,
                    event_id=uuid.uuid4(),
                    topic=dead_letter_topic(self.group),
                    key=record.key.decode(errors="replace") if record.key else None,
                    payload={
                        "consumer": self.group,
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "event_id": str(head.id) if head else None,
                        "event_type": head.type if head else None,
                        "error": error[:4000],
                        "attempts": attempts,
                        # Base64: raw bytes may hold NULs, which JSONB cannot store.
                        "payload_base64": base64.b64encode(raw[:65536]).decode(),
                    },
                    headers={"consumer": self.group},
                )
        self.dead_lettered += 1
        self._metrics.events_consumed.labels(
            head.type if head else "unparsable", "dead_lettered"
        ).inc()
        self._mark_processed()

    def _mark_processed(self) -> None:
        self.processed += 1
        self.last_processed_at = utc_now()

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None or tp not in self._next_offset:
                continue
            self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                max(0, highwater - self._next_offset[tp])
            )

    def lag(self) -> dict[str, int]:
        """Messages behind the high watermark per `topic/partition` (Tansu-safe: uses highwater)."""
        consumer = self._consumer
        if consumer is None:
            return {}
        result: dict[str, int] = {}
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            position = self._next_offset.get(tp, highwater)
            result[f"{tp.topic}/{tp.partition}"] = max(0, highwater - position)
        return result

    def status(self) -> dict[str, Any]:
        """Consumer facts for `/readyz`."""
        lag = self.lag()
        return {
            "running": self.running,
            "group": self.group,
            "topics": self.topics,
            "lag": sum(lag.values()),
            "lag_by_partition": lag,
            "processed": self.processed,
            "dead_lettered": self.dead_lettered,
            "last_processed_at": self.last_processed_at.isoformat()
            if self.last_processed_at
            else None,
            "last_error": self.last_error,
        }
