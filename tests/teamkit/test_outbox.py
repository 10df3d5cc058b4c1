import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from teamkit import db, outbox
from teamkit.kafka import create_producer, ensure_topics
from teamkit.messaging_schema import outbox_message
from teamkit.settings import KafkaSettings
from tests.harness.postgres import MigratedDb
from tests.harness.wait import eventually
from tests.teamkit.messaging_fixtures import TEST_TOPIC, ids, ping, read_topic

REPO = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture(loop_scope="session")
async def engine(migrated_database: MigratedDb) -> AsyncIterator[AsyncEngine]:
    url = await migrated_database("request")
    engine = db.create_engine(url)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(kafka_settings, [TEST_TOPIC], client_id="tests")
    producer = create_producer(kafka_settings, client_id="tests")
    await producer.start()
    yield producer
    await producer.stop()


@contextlib.asynccontextmanager
async def running_relay(
    engine: AsyncEngine, producer: AIOKafkaProducer, settings: KafkaSettings, service: str = "t"
) -> AsyncIterator[outbox.OutboxRelay]:
    relay = outbox.OutboxRelay(
        service=service,
        engine=engine,
        sessionmaker=db.create_sessionmaker(engine),
        producer=producer,
        topic_prefix=settings.KAFKA_TOPIC_PREFIX,
        poll_interval=5.0,
    )
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def unpublished(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(outbox_message)
            .where(outbox_message.c.published_at.is_(None))
        )
        return int(count or 0)


class TestOutbox:
    async def test_committed_events_are_published_in_order_with_headers(
        self, engine: AsyncEngine, producer: AIOKafkaProducer, kafka_settings: KafkaSettings
    ) -> None:
        sessionmaker = db.create_sessionmaker(engine)
        async with sessionmaker() as session, session.begin():
            events = [await outbox.add(session, ping(n, subject="same-key")) for n in range(20)]
        async with running_relay(engine, producer, kafka_settings):
            messages = await read_topic(kafka_settings, TEST_TOPIC, expect=20)
        assert ids(messages) == [e.id for e in events]  # one key -> one partition, in order
        assert await unpublished(engine) == 0

    async def test_a_rolled_back_transaction_publishes_nothing(
        self, engine: AsyncEngine, producer: AIOKafkaProducer, kafka_settings: KafkaSettings
    ) -> None:
        sessionmaker = db.create_sessionmaker(engine)

        async def failing_use_case() -> None:
            async with sessionmaker() as session, session.begin():
                await outbox.add(session, ping(1))
                raise RuntimeError("use case failed after writing its event")

        with pytest.raises(RuntimeError):
            await failing_use_case()
        async with sessionmaker() as session, session.begin():
            sentinel = await outbox.add(session, ping(2))
        async with running_relay(engine, producer, kafka_settings):
            messages = await read_topic(kafka_settings, TEST_TOPIC, expect=1)
        assert ids(messages) == [sentinel.id]

    async def test_an_event_committed_by_a_killed_process_is_published_after_restart(
        self, engine: AsyncEngine, producer: AIOKafkaProducer, kafka_settings: KafkaSettings
    ) -> None:
        child = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "tests.teamkit.outbox_crash_child",
                engine.url.render_as_string(hide_password=False),
                "7",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert child.returncode == -9, child.stderr  # SIGKILL, after the commit
        event_id = UUID(child.stdout.strip())
        assert await unpublished(engine) == 1
        async with running_relay(engine, producer, kafka_settings):
            messages = await read_topic(kafka_settings, TEST_TOPIC, expect=1)
        assert ids(messages) == [event_id]
        assert await unpublished(engine) == 0

    async def test_only_one_relay_leads_and_listen_notify_wakes_it(
        self, engine: AsyncEngine, producer: AIOKafkaProducer, kafka_settings: KafkaSettings
    ) -> None:
        sessionmaker = db.create_sessionmaker(engine)
        async with (
            running_relay(engine, producer, kafka_settings) as first,
            running_relay(engine, producer, kafka_settings) as second,
        ):

            async def one_leader() -> None:
                assert sorted([first.is_leader, second.is_leader]) == [False, True]

            await eventually(one_leader)
            loop = asyncio.get_running_loop()
            started = loop.time()
            async with sessionmaker() as session, session.begin():
                await outbox.add(session, ping(3))

            async def drained() -> None:
                assert await unpublished(engine) == 0

            await eventually(drained, timeout=10)
            # The poll interval is 5 s: publishing sooner proves the NOTIFY woke the relay.
            assert loop.time() - started < 4.0
