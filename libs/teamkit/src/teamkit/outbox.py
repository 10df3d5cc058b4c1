"""Transactional outbox: events commit with the state change, a relay publishes them in order.

`add()` runs inside the use case's transaction. `OutboxRelay` holds a PostgreSQL advisory lock so
exactly one relay per service publishes (per-key order holds), wakes on LISTEN/NOTIFY and polls as a
fallback, sends each batch with `acks=all`, and marks rows sent only after the broker acknowledged
them. A crash between send and mark re-sends; consumers dedupe by event id.
"""

import asyncio
import contextlib
import json
import zlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from teamkit.clock import utc_now
from teamkit.events.envelope import Event
from teamkit.events.topics import topic_name
from teamkit.logging import correlation_id
from teamkit.messaging_schema import OUTBOX_CHANNEL, outbox_message

log = structlog.get_logger(__name__)


def event_headers(event: Event) -> dict[str, str]:
    """Kafka headers carried beside the payload so routers need not parse the body."""
    headers = {"id": str(event.id), "type": event.type, "version": str(event.version)}
    if event.correlation_id:
        headers["correlation_id"] = event.correlation_id
    return headers


def staged(event: Event) -> tuple[Event, dict[str, Any]]:
    """The event as it will be stored (with the current correlation id) and its outbox row.

    For use cases that insert the row themselves in a larger statement; `add` is the usual way.
    """
    if event.correlation_id is None and correlation_id.get() is not None:
        event = event.model_copy(update={"correlation_id": correlation_id.get()})
    row = {
        "event_id": event.id,
        "topic": event.topic,
        "key": event.subject,
        "payload": event.model_dump(mode="json"),
        "headers": event_headers(event),
    }
    return event, row


async def add(session: AsyncSession, event: Event) -> Event:
    """Stage `event` for publication in the caller's transaction; returns the event as stored."""
    event, row = staged(event)
    await session.execute(insert(outbox_message).values(**row))
    return event


async def add_raw(
    session: AsyncSession,
    *,
    event_id: Any,
    topic: str,
    key: str | None,
    payload: Mapping[str, Any],
    headers: Mapping[str, str],
) -> None:
    """Stage a non-catalogue message (dead letters) for publication in the caller's transaction."""
    await session.execute(
        insert(outbox_message).values(
            event_id=event_id, topic=topic, key=key, payload=dict(payload), headers=dict(headers)
        )
    )


def advisory_key(service: str) -> int:
    """A stable 31-bit advisory-lock key per service name."""
    return zlib.crc32(f"outbox-relay:{service}".encode()) & 0x7FFFFFFF


class OutboxRelay:
    """Publishes committed outbox rows to Kafka, in id order, from exactly one replica."""

    def __init__(
        self,
        *,
        service: str,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        topic_prefix: str = "",
        batch_size: int = 500,
        poll_interval: float = 1.0,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self.service = service
        self._engine = engine
        self._sessionmaker = sessionmaker
        self._producer = producer
        self._prefix = topic_prefix
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._retention = retention
        self._wake = asyncio.Event()
        self.is_leader = False
        self.published = 0
        self.last_published_at: datetime | None = None
        self.last_error: str | None = None

    async def run(self) -> None:
        """Hold the relay lock and publish until cancelled; reconnect after database errors."""
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a relay must outlive any one failure
                self.is_leader = False
                self.last_error = repr(exc)
                log.warning("outbox.relay_failed", error=repr(exc))
                await asyncio.sleep(self._poll_interval)

    async def _lead(self) -> None:
        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            while not await driver.fetchval(
                "SELECT pg_try_advisory_lock($1)", advisory_key(self.service)
            ):
                self.is_leader = False
                await asyncio.sleep(self._poll_interval)
            self.is_leader = True
            log.info("outbox.relay_leading", service=self.service)

            def on_notify(*_: object) -> None:
                self._wake.set()

            await driver.add_listener(OUTBOX_CHANNEL, on_notify)
            try:
                sweeps = 0
                while True:
                    self._wake.clear()
                    while await self.publish_batch() == self._batch_size:
                        pass
                    sweeps += 1
                    if sweeps % 600 == 1:
                        await self._purge_published()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            finally:
                self.is_leader = False
                with contextlib.suppress(Exception):
                    await driver.remove_listener(OUTBOX_CHANNEL, on_notify)
                    await driver.execute("SELECT pg_advisory_unlock_all()")

    async def publish_batch(self) -> int:
        """Publish up to one batch of unpublished rows; return how many were published."""
        async with self._sessionmaker() as session, session.begin():
            rows = (
                await session.execute(
                    select(
                        outbox_message.c.id,
                        outbox_message.c.topic,
                        outbox_message.c.key,
                        outbox_message.c.payload,
                        outbox_message.c.headers,
                    )
                    .where(outbox_message.c.published_at.is_(None))
                    .order_by(outbox_message.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            try:
                futures = [
                    await self._producer.send(
                        topic_name(row.topic, self._prefix),
                        value=json.dumps(row.payload, separators=(",", ":")).encode(),
                        key=row.key.encode() if row.key is not None else None,
                        headers=[(k, str(v).encode()) for k, v in (row.headers or {}).items()],
                    )
                    for row in rows
                ]
                await asyncio.gather(*futures)
            except Exception as exc:
                self.last_error = repr(exc)
                raise
            now = utc_now()
            await session.execute(
                update(outbox_message)
                .where(outbox_message.c.id.in_([row.id for row in rows]))
                .values(published_at=now, attempts=outbox_message.c.attempts + 1)
            )
        self.published += len(rows)
        self.last_published_at = now
        log.debug("outbox.published", count=len(rows))
        return len(rows)

    async def _purge_published(self) -> None:
        cutoff = utc_now() - self._retention
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                delete(outbox_message).where(outbox_message.c.published_at < cutoff)
            )

    async def pending(self) -> int:
        """How many committed rows wait for publication."""
        async with self._sessionmaker() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(outbox_message)
                .where(outbox_message.c.published_at.is_(None))
            )
            return int(count or 0)

    def status(self) -> dict[str, Any]:
        """Relay facts for `/readyz`."""
        return {
            "leader": self.is_leader,
            "published": self.published,
            "last_published_at": self.last_published_at.isoformat()
            if self.last_published_at
            else None,
            "last_error": self.last_error,
        }
