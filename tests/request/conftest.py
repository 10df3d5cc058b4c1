"""One request service (real PostgreSQL, Tansu, dev OIDC issuer) and one policy stub per session.

Tests share them for speed and stay independent by using a fresh permission set name each, so
no two tests ever touch the same request or trip the one-pending rule of another.
"""

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from request_service.app import create_app
from request_service.config import Settings
from teamkit.events.envelope import Event
from teamkit.events.topics import topic_name
from teamkit.settings import KafkaSettings, RuntimeSettings
from tests.harness.oidc import RunningIssuer
from tests.harness.policy_stub import PolicyStub
from tests.harness.postgres import PostgresForTests, service_migrations
from tests.harness.servers import serving

ACCOUNT = "111111111111"


@dataclass
class RequestService:
    """The running service and what tests need to reach around it."""

    url: str
    settings: Settings
    dsn: str
    issuer: RunningIssuer
    producer: AIOKafkaProducer

    def client(self, who: str, *, client: bool = False) -> httpx.AsyncClient:
        """An HTTP client with the token of demo user (or, `client=True`, demo client) `who`."""
        token = self.issuer.client_token(who) if client else self.issuer.token_for(who)
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        )

    async def outbox(self, request_id: str) -> list[dict[str, Any]]:
        """The events committed for one request, in order."""
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                "SELECT payload::text AS p FROM outbox_message WHERE key = $1 ORDER BY id",
                request_id,
            )
        finally:
            await conn.close()
        import json

        return [json.loads(row["p"]) for row in rows]

    async def types(self, request_id: str) -> list[str]:
        """The event types committed for one request, in order."""
        return [event["type"] for event in await self.outbox(request_id)]

    async def publish(self, event: Event) -> None:
        """Produce a lifecycle event to Kafka the way the lifecycle service would."""
        await self.producer.send_and_wait(
            topic_name("lifecycle.events", self.settings.kafka.KAFKA_TOPIC_PREFIX),
            value=event.model_dump_json().encode(),
            key=event.subject.encode(),
        )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def policy_stub(oidc_issuer: RunningIssuer) -> AsyncIterator[PolicyStub]:
    """The policy stub, served once; reset before each test."""
    async with PolicyStub(oidc_issuer.settings()).serve() as stub:
        yield stub


@pytest.fixture(autouse=True)
def _fresh_stub(request: pytest.FixtureRequest) -> None:
    if "policy_stub" in request.fixturenames or "svc" in request.fixturenames:
        request.getfixturevalue("policy_stub").reset()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def svc(
    postgres: PostgresForTests,
    kafka_bootstrap: str,
    oidc_issuer: RunningIssuer,
    policy_stub: PolicyStub,
) -> AsyncIterator[RequestService]:
    """The request service under uvicorn, migrated by its own start-up."""
    assert service_migrations("request").is_dir()
    database = await postgres.create("request")
    kafka = KafkaSettings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        KAFKA_TOPIC_PREFIX=f"t{uuid.uuid4().hex[:10]}.",
        KAFKA_SESSION_TIMEOUT_MS=2000,
        KAFKA_HEARTBEAT_INTERVAL_MS=500,
        KAFKA_TOPIC_PARTITIONS=2,
        KAFKA_CONSUMER_MAX_RETRIES=2,
        KAFKA_CONSUMER_RETRY_BACKOFF_MS=10,
    )
    settings = Settings(
        DATABASE_URL=postgres.url(database),
        POLICY_URL=policy_stub.url,
        POLICY_TIMEOUT_SECONDS=2.0,
        CLIENT_ID="request-service",
        CLIENT_SECRET="dev-request-secret",
        OUTBOX_POLL_SECONDS=0.2,
        kafka=kafka,
        oidc=oidc_issuer.settings(),
        runtime=RuntimeSettings(TEAM_DEV_MODE=True, LOG_FORMAT="console", LOG_LEVEL="WARNING"),
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        async with serving(create_app(settings)) as url:
            yield RequestService(url, settings, postgres.dsn(database), oidc_issuer, producer)
    finally:
        await producer.stop()
        await postgres.drop(database)


@pytest.fixture
def new_ps() -> Callable[[], str]:
    """Fresh permission set names, so tests never collide on the one-pending rule."""
    return lambda: f"PS-{uuid.uuid4().hex[:10]}"


def submit_body(permission_set: str, **overrides: Any) -> dict[str, Any]:
    """A valid submission body."""
    body: dict[str, Any] = {
        "account_id": ACCOUNT,
        "permission_set": permission_set,
        "duration_minutes": 60,
        "justification": "Investigate incident INC-1",
    }
    body.update(overrides)
    return body
