import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from teamkit import db, outbox
from teamkit.events.topics import dead_letter_topic, topic_name
from teamkit.kafka import ConsumerRunner, HandlerRegistry, create_producer, ensure_topics
from teamkit.settings import KafkaSettings
from tests.harness.postgres import MigratedDb
from tests.harness.wait import eventually
from tests.teamkit.messaging_fixtures import TEST_TOPIC, PingV1, ping, read_topic


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, no offset is committed."""


@pytest_asyncio.fixture(loop_scope="session")
async def engine(migrated_database: MigratedDb) -> AsyncIterator[AsyncEngine]:
    url = await migrated_database("request")
    engine = db.create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE effect (event_id uuid NOT NULL, n int NOT NULL)"))
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(kafka_settings, [TEST_TOPIC, dead_letter_topic("g")], client_id="tests")
    producer = create_producer(kafka_settings, client_id="tests")
    await producer.start()
    yield producer
    await producer.stop()


def registry_applying(fail_when: Callable[[int], bool] = lambda n: False) -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.on(PingV1)
    async def apply(session: AsyncSession, event: PingV1) -> None:
        await session.execute(
            text("INSERT INTO effect VALUES (:id, :n)"), {"id": event.id, "n": event.data.n}
        )
        if fail_when(event.data.n):
            raise RuntimeError(f"handler cannot apply n={event.data.n}")

    return registry


async def send(producer: AIOKafkaProducer, settings: KafkaSettings, value: bytes) -> None:
    await producer.send_and_wait(
        topic_name(TEST_TOPIC, settings.KAFKA_TOPIC_PREFIX), value, key=b"k"
    )


async def effects(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.scalars(text("SELECT n FROM effect ORDER BY n"))).all())


async def dead_letters(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_type, error, attempts, payload FROM dead_letter_message ORDER BY id")
        )
        return [dict(r._mapping) for r in rows]


@contextlib.asynccontextmanager
async def running(runner: ConsumerRunner) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(runner.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Crash):
            await task


def runner(
    engine: AsyncEngine, settings: KafkaSettings, registry: HandlerRegistry, **kwargs: Any
) -> ConsumerRunner:
    return ConsumerRunner(
        group="g",
        topics=[TEST_TOPIC],
        registry=registry,
        sessionmaker=db.create_sessionmaker(engine),
        settings=settings,
        **kwargs,
    )


def until(check: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
    return eventually(check, timeout=30)


class TestConsumerRunner:
    async def test_the_same_event_delivered_twice_is_applied_once(
        self, engine: AsyncEngine, producer: AIOKafkaProducer, kafka_settings: KafkaSettings
    ) -> None:
        event = ping(1)
        body = event.model_dump_json().encode()
        await send(producer, kafka_settings, body)
        await send(producer, kafka_settings, body)
        await send(producer, kafka_settings, ping(2).model_dump_json().encode())
        consumer = runner(engine, kafka_settings, registry_applying())
        async with running(consumer):

            async def both_seen() -> None:
                assert consumer.processed == 3

            await until(both_seen)
        assert await effects(engine) == [1, 2]

    async def test_a_crash_after_the_db_commit_and_before_the_offset_commit_applies_once(
        self, engine: AsyncEngine, producer: AIOKafkaProducer, kafka_settings: KafkaSettings
    ) -> None:
        class CrashingRunner(ConsumerRunner):
            async def _handle(self, record: Any) -> None:
                await super()._handle(record)  # the handler's transaction commits here
                raise Crash  # ...and the process dies before commit()

        await send(producer, kafka_settings, ping(5).model_dump_json().encode())
        first = CrashingRunner(
            group="g",
            topics=[TEST_TOPIC],
            registry=registry_applying(),
            sessionmaker=db.create_sessionmaker(engine),
            settings=kafka_settings,
        )
        task = asyncio.create_task(first.run())
        with pytest.raises(Crash):
            await asyncio.wait_for(task, 30)
        assert await effects(engine) == [5]

        second = runner(engine, kafka_settings, registry_applying())
        async with running(second):

            async def redelivered() -> None:
                assert second.processed == 1

            await until(redelivered)
        assert await effects(engine) == [5]  # the redelivery found its inbox claim

    async def test_poison_and_failing_messages_are_dead_lettered_and_the_next_is_processed(
        self, engine: AsyncEngine, producer: AIOKafkaProducer, kafka_settings: KafkaSettings
    ) -> None:
        await send(producer, kafka_settings, b"\x00not json at all")
        await send(producer, kafka_settings, json.dumps({"no": "envelope"}).encode())
        unknown_version = json.loads(ping(3).model_dump_json()) | {"version": 9}
        await send(producer, kafka_settings, json.dumps(unknown_version).encode())
        await send(producer, kafka_settings, ping(13).model_dump_json().encode())  # handler fails
        await send(producer, kafka_settings, ping(4).model_dump_json().encode())
        consumer = runner(engine, kafka_settings, registry_applying(lambda n: n == 13))
        async with running(consumer):

            async def all_done() -> None:
                assert consumer.processed == 5

            await until(all_done)
        assert await effects(engine) == [4]  # the failing handler's writes were rolled back
        letters = await dead_letters(engine)
        assert len(letters) == 4
        assert "not JSON" in letters[0]["error"]
        assert "no valid envelope" in letters[1]["error"]
        assert "no handler for version 9 of test.pinged" in letters[2]["error"]
        assert letters[3]["event_type"] == "test.pinged"
        assert "cannot apply n=13" in letters[3]["error"]
        assert letters[3]["attempts"] == kafka_settings.KAFKA_CONSUMER_MAX_RETRIES + 1
        assert bytes(letters[0]["payload"]) == b"\x00not json at all"

        # The dead letters also travel to the group's dead-letter topic, through the outbox.
        sessionmaker = db.create_sessionmaker(engine)
        relay = outbox.OutboxRelay(
            service="g",
            engine=engine,
            sessionmaker=sessionmaker,
            producer=producer,
            topic_prefix=kafka_settings.KAFKA_TOPIC_PREFIX,
        )
        assert await relay.publish_batch() == 4
        published = await read_topic(kafka_settings, dead_letter_topic("g"), expect=4)
        offsets = [int(str(m["offset"])) for m in published]
        assert offsets == sorted(offsets)
        assert {m["consumer"] for m in published} == {"g"}

    async def test_unhandled_types_are_skipped_and_status_reports_lag(
        self, engine: AsyncEngine, producer: AIOKafkaProducer, kafka_settings: KafkaSettings
    ) -> None:
        other = json.loads(ping(8).model_dump_json()) | {"type": "test.unrelated"}
        await send(producer, kafka_settings, json.dumps(other).encode())
        consumer = runner(engine, kafka_settings, registry_applying())
        async with running(consumer):

            async def caught_up() -> None:
                status = consumer.status()
                assert status["running"]
                assert status["processed"] == 1
                assert status["lag"] == 0
                assert status["last_processed_at"]

            await until(caught_up)
        assert await effects(engine) == []
        assert await dead_letters(engine) == []
