"""Fixtures of the notify tests: the service on real peers, a Slack/webhook recorder, helpers."""

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from devstack.seed_aws import SeedResult
from notify_service.app import create_app
from notify_service.config import Settings
from teamkit.events.envelope import Event
from teamkit.events.topics import topic_name
from teamkit.migrations import upgrade_to_head_async
from teamkit.settings import AwsSettings, KafkaSettings, OidcSettings, RuntimeSettings
from tests.harness.http_recorder import HttpRecorder, recording_server
from tests.harness.oidc import RunningIssuer
from tests.harness.postgres import PostgresForTests, service_migrations
from tests.harness.servers import serving
from tests.harness.wait import eventually

AUDIT_CHANNEL = "C0AUDIT"


def kafka_for_test(bootstrap: str) -> KafkaSettings:
    """Like the `kafka_settings` fixture, for module-scoped stacks."""
    return KafkaSettings(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        KAFKA_TOPIC_PREFIX=f"t{uuid.uuid4().hex[:10]}.",
        KAFKA_SESSION_TIMEOUT_MS=2000,
        KAFKA_HEARTBEAT_INTERVAL_MS=500,
        KAFKA_TOPIC_PARTITIONS=2,
        KAFKA_CONSUMER_MAX_RETRIES=2,
        KAFKA_CONSUMER_RETRY_BACKOFF_MS=10,
    )


def notify_settings(
    *,
    database_url: str,
    kafka: KafkaSettings,
    oidc: OidcSettings,
    aws: AwsSettings,
    seed: SeedResult,
    recorder: HttpRecorder,
    **overrides: Any,
) -> Settings:
    """Settings of a notify service under test: every channel on, fast retries."""
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "kafka": kafka,
        "oidc": oidc,
        "aws": aws,
        "runtime": RuntimeSettings(TEAM_DEV_MODE=True, LOG_FORMAT="console"),
        "SES_SENDER": seed.ses_sender,
        "SNS_TOPIC_ARN": seed.sns_topic_arn,
        "SLACK_ENABLED": True,
        "SLACK_BASE_URL": recorder.slack_api_url,
        "SLACK_BOT_TOKEN": recorder.slack_token,
        "SLACK_AUDIT_CHANNEL": AUDIT_CHANNEL,
        "OPS_EMAIL": "ops@example.com",
        "APP_BASE_URL": "https://team.example.com",
        "MAX_ATTEMPTS": 4,
        "RETRY_BASE_SECONDS": 0.05,
        "RETRY_MAX_SECONDS": 5.0,
        "WORKER_POLL_SECONDS": 0.1,
        "SEND_TIMEOUT_SECONDS": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


class Producer:
    """Produces catalogue events the way the relays do: key = subject, JSON value."""

    def __init__(self, producer: AIOKafkaProducer, prefix: str) -> None:
        self._producer = producer
        self._prefix = prefix

    async def send(self, event: Event) -> None:
        await self._producer.send_and_wait(
            topic_name(event.topic, self._prefix),
            value=event.model_dump_json().encode(),
            key=event.subject.encode(),
        )


@contextlib.asynccontextmanager
async def producer_for(kafka: KafkaSettings) -> AsyncIterator[Producer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.KAFKA_BOOTSTRAP_SERVERS, acks="all")
    await producer.start()
    try:
        yield Producer(producer, kafka.KAFKA_TOPIC_PREFIX)
    finally:
        await producer.stop()


async def wait_ready(base_url: str, timeout: float = 30) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:

        async def ready() -> None:
            answer = await client.get("/readyz")
            assert answer.status_code == 200, answer.text
            checks = answer.json()["checks"]
            # The group has an assignment once the consumer reports partitions.
            assert checks["consumer"]["lag_by_partition"], checks["consumer"]

        await eventually(ready, timeout=timeout, interval=0.1)


class Moto:
    """Read back what moto's SES and SNS accepted (shared state: filter by unique ids)."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url

    async def data(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"{self.endpoint_url}/moto-api/data.json", timeout=30)
        document: dict[str, Any] = answer.json()
        return document

    async def emails(self, to: str) -> list[dict[str, Any]]:
        messages = (await self.data()).get("ses", {}).get("Message", [])
        return [m for m in messages if to in m["destinations"].get("ToAddresses", [])]

    async def sns_messages(self, topic_arn: str, contains: str) -> list[list[Any]]:
        topics = (await self.data()).get("sns", {}).get("Topic", [])
        return [
            n
            for t in topics
            if t["arn"] == topic_arn
            for n in t.get("sent_notifications", [])
            if contains in n[1]
        ]


class Stack:
    """A running notify service and what it talks to."""

    def __init__(
        self,
        *,
        base_url: str,
        settings: Settings,
        recorder: HttpRecorder,
        producer: Producer,
        moto: Moto,
        issuer: RunningIssuer,
    ) -> None:
        self.base_url = base_url
        self.settings = settings
        self.recorder = recorder
        self.producer = producer
        self.moto = moto
        self.issuer = issuer

    def admin(self) -> httpx.AsyncClient:
        token = self.issuer.token_for("dave")
        return httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    async def deliveries(self, **params: Any) -> list[dict[str, Any]]:
        async with self.admin() as client:
            answer = await client.get("/v1/deliveries", params={"limit": 200, **params})
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    async def settled(
        self, request_id: uuid.UUID, expected: int, timeout: float = 30
    ) -> list[dict[str, Any]]:
        """Wait until `expected` deliveries of the request are sent, failed or skipped."""

        async def check() -> list[dict[str, Any]]:
            items = await self.deliveries(request_id=str(request_id))
            done = [i for i in items if i["status"] in ("sent", "failed", "skipped")]
            seen = [(i["channel"], i["recipient"], i["status"], i["last_error"]) for i in items]
            assert len(items) == expected, seen
            assert len(done) == expected, seen
            return items

        return await eventually(check, timeout=timeout, interval=0.1)


class StackFactory:
    """Starts notify services; several may share one database (a restart) or one Kafka prefix."""

    def __init__(
        self,
        *,
        postgres: PostgresForTests,
        kafka_bootstrap: str,
        issuer: RunningIssuer,
        oidc: OidcSettings,
        aws: AwsSettings,
        seed: SeedResult,
        moto_endpoint: str,
    ) -> None:
        self._postgres = postgres
        self._kafka_bootstrap = kafka_bootstrap
        self._issuer = issuer
        self._oidc = oidc
        self._aws = aws
        self._seed = seed
        self._moto_endpoint = moto_endpoint
        self.databases: list[str] = []

    async def new_database(self) -> str:
        name = await self._postgres.create("notify")
        self.databases.append(name)
        url = self._postgres.url(name)
        await upgrade_to_head_async(service_migrations("notify"), url)
        return url

    def kafka(self) -> KafkaSettings:
        return kafka_for_test(self._kafka_bootstrap)

    @contextlib.asynccontextmanager
    async def start(
        self,
        recorder: HttpRecorder,
        *,
        database_url: str | None = None,
        kafka: KafkaSettings | None = None,
        wait_until_ready: bool = True,
        **overrides: Any,
    ) -> AsyncIterator[Stack]:
        kafka = kafka or self.kafka()
        settings = notify_settings(
            database_url=database_url or await self.new_database(),
            kafka=kafka,
            oidc=self._oidc,
            aws=self._aws,
            seed=self._seed,
            recorder=recorder,
            **overrides,
        )
        async with serving(create_app(settings)) as base_url, producer_for(kafka) as producer:
            if wait_until_ready:
                await wait_ready(base_url)
            yield Stack(
                base_url=base_url,
                settings=settings,
                recorder=recorder,
                producer=producer,
                moto=Moto(self._moto_endpoint),
                issuer=self._issuer,
            )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack_factory(
    postgres: PostgresForTests,
    kafka_bootstrap: str,
    oidc_issuer: RunningIssuer,
    oidc_settings: OidcSettings,
    aws_settings: AwsSettings,
    seeded_org: SeedResult,
    moto_server: Any,
) -> AsyncIterator[StackFactory]:
    factory = StackFactory(
        postgres=postgres,
        kafka_bootstrap=kafka_bootstrap,
        issuer=oidc_issuer,
        oidc=oidc_settings,
        aws=aws_settings,
        seed=seeded_org,
        moto_endpoint=moto_server.endpoint_url,
    )
    yield factory
    for name in factory.databases:
        await postgres.drop(name)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shared_recorder() -> AsyncIterator[HttpRecorder]:
    async with recording_server() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shared(
    stack_factory: StackFactory, shared_recorder: HttpRecorder
) -> AsyncIterator[Stack]:
    """One notify service shared by the tests of a module (each uses its own request ids)."""
    async with stack_factory.start(shared_recorder) as stack:
        yield stack


@pytest_asyncio.fixture(loop_scope="session")
async def recorder() -> AsyncIterator[HttpRecorder]:
    async with recording_server() as running:
        yield running
