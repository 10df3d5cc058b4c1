"""Event hop latency: outbox commit → relay → Kafka → consumer's database commit.

Events are written at a fixed rate, one transaction each; the consumer records when the
transaction that applied each event committed. Same process, so one monotonic clock.
"""

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from bench.environment import BenchEnv
from bench.results import Figure, percentile
from teamkit import db, outbox
from teamkit.events.envelope import EnvelopeHead, Event, EventData
from teamkit.kafka import ConsumerRunner, HandlerRegistry, create_producer, ensure_topics
from teamkit.migrations import upgrade_to_head_async

MIGRATIONS = Path(__file__).resolve().parents[1] / "services/request/src/request_service/migrations"
TOPIC = "bench.events"


class HopData(EventData):
    n: int


class HopV1(Event):
    topic: ClassVar[str] = TOPIC
    type: Literal["bench.hopped"] = "bench.hopped"
    version: Literal[1] = 1
    source: str = "bench"
    data: HopData


class TimedRunner(ConsumerRunner):
    """Records when each event's transaction committed."""

    committed_at: ClassVar[dict[int, float]] = {}

    async def _apply(
        self,
        record: Any,
        raw: bytes,
        payload: dict[str, Any],
        head: EnvelopeHead,
        event: Event | None,
        typed: Any,
    ) -> str:
        outcome = await super()._apply(record, raw, payload, head, event, typed)
        if isinstance(event, HopV1):
            self.committed_at[event.data.n] = time.perf_counter()
        return outcome


async def run(env: BenchEnv, *, quick: bool) -> list[Figure]:
    """Measure hop latency p50/p99 at a fixed arrival rate."""
    rate, seconds = (100, 3) if quick else (200, 15)
    url = env.new_database("hop")
    await upgrade_to_head_async(MIGRATIONS, url)
    settings = env.kafka_settings()
    await ensure_topics(settings, [TOPIC], client_id="bench")
    engine = db.create_engine(url)
    sessionmaker = db.create_sessionmaker(engine)
    producer = create_producer(settings, client_id="bench")
    await producer.start()
    registry = HandlerRegistry()

    @registry.on(HopV1)
    async def apply(session: AsyncSession, event: HopV1) -> None:
        return None

    TimedRunner.committed_at.clear()
    runner = TimedRunner(
        group="bench",
        topics=[TOPIC],
        registry=registry,
        sessionmaker=sessionmaker,
        settings=settings,
    )
    relay = outbox.OutboxRelay(
        service="bench",
        engine=engine,
        sessionmaker=sessionmaker,
        producer=producer,
        topic_prefix=settings.KAFKA_TOPIC_PREFIX,
    )
    tasks = [asyncio.create_task(runner.run()), asyncio.create_task(relay.run())]
    try:
        while not (runner.running and runner._consumer and runner._consumer.assignment()):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        written_at: dict[int, float] = {}
        total = rate * seconds
        start = time.perf_counter()
        for n in range(total):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with sessionmaker() as session, session.begin():
                await outbox.add(session, HopV1(subject=f"k{n % 64}", data=HopData(n=n)))
            written_at[n] = time.perf_counter()
        deadline = time.perf_counter() + 60
        while len(TimedRunner.committed_at) < total and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        hops = [
            (TimedRunner.committed_at[n] - written_at[n]) * 1000
            for n in written_at
            if n in TimedRunner.committed_at
        ]
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await producer.stop()
        await engine.dispose()
    lost = total - len(hops)
    note = f"{total} events at {rate}/s; {lost} not delivered within 60 s"
    return [
        Figure("pipeline", "event hop p50", percentile(hops, 0.50), "ms", note=note),
        Figure("pipeline", "event hop p99", percentile(hops, 0.99), "ms", note=note),
    ]
