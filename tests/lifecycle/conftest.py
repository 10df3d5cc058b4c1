"""Fixtures of the lifecycle tests: a private moto, the fault proxy, the service under test."""

import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from devstack.moto_server import MotoProcess, start_moto_process
from devstack.seed_aws import SeedResult, seed_demo_org
from lifecycle_service.app import create_app
from lifecycle_service.config import Settings
from lifecycle_service.repository import Tuple
from teamkit.aws import AwsClients
from teamkit.clock import utc_now
from teamkit.events.common import Actor
from teamkit.events.envelope import Event
from teamkit.events.request import (
    RequestApprovedData,
    RequestApprovedV1,
    RequestRevokeRequestedData,
    RequestRevokeRequestedV1,
)
from teamkit.events.topics import Topic, topic_name
from teamkit.settings import AwsSettings, KafkaSettings, OidcSettings, RuntimeSettings
from tests.harness.aws_fault_proxy import FaultProxy, serve_fault_proxy
from tests.harness.oidc import RunningIssuer
from tests.harness.postgres import MigratedDb
from tests.harness.servers import serving
from tests.harness.wait import eventually

ADMIN = Actor(user_id=None, username="admin", email=None)


@pytest.fixture(scope="module")
def private_moto() -> Iterator[MotoProcess]:
    """A moto of this module alone: assignments are state the tests check exactly.

    A child process, not a thread: moto's backends are per process, so two threaded servers in
    one test process would share every assignment.
    """
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = start_moto_process()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def seed(private_moto: MotoProcess) -> SeedResult:
    """The demo organization in the private moto."""
    return await seed_demo_org(
        AwsSettings(AWS_ENDPOINT_URL=private_moto.endpoint_url, AWS_MAX_ATTEMPTS=1)
    )


@pytest.fixture(scope="module")
def tuples(seed: SeedResult) -> Iterator[Tuple]:
    """Distinct (user, account, permission set) tuples, one per `next()`, within the module."""
    combos = itertools.product(
        sorted(seed.permission_set_arns.values()),
        sorted(seed.user_ids.values()),
        sorted(seed.account_ids.values()),
    )
    return (Tuple(user, account, ps) for ps, user, account in combos)


@pytest_asyncio.fixture(loop_scope="session")
async def proxy(private_moto: MotoProcess) -> AsyncIterator[FaultProxy]:
    """The fault proxy in front of the private moto."""
    async with serve_fault_proxy(private_moto.endpoint_url) as running:
        yield running


async def moto_assigned(endpoint_url: str, target: Tuple) -> int:
    """How many copies of `target`'s assignment moto holds (moto stores duplicates)."""
    settings = AwsSettings(AWS_ENDPOINT_URL=endpoint_url, AWS_MAX_ATTEMPTS=1)
    async with AwsClients(settings).sso_admin() as sso:
        instance = (await sso.list_instances())["Instances"][0]["InstanceArn"]
        answer = await sso.list_account_assignments(
            InstanceArn=instance,
            AccountId=target.account_id,
            PermissionSetArn=target.permission_set_arn,
        )
    return sum(1 for a in answer["AccountAssignments"] if a["PrincipalId"] == target.principal_id)


async def moto_create(endpoint_url: str, target: Tuple) -> None:
    """Create `target`'s assignment directly in moto (standing access, or drift)."""
    await _moto_op(endpoint_url, target, "create")


async def moto_delete(endpoint_url: str, target: Tuple) -> None:
    """Delete `target`'s assignment directly in moto (drift)."""
    await _moto_op(endpoint_url, target, "delete")


async def _moto_op(endpoint_url: str, target: Tuple, op: str) -> None:
    settings = AwsSettings(AWS_ENDPOINT_URL=endpoint_url, AWS_MAX_ATTEMPTS=1)
    async with AwsClients(settings).sso_admin() as sso:
        instance = (await sso.list_instances())["Instances"][0]["InstanceArn"]
        kwargs: Any = {
            "InstanceArn": instance,
            "TargetId": target.account_id,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": target.permission_set_arn,
            "PrincipalType": "USER",
            "PrincipalId": target.principal_id,
        }
        if op == "create":
            await sso.create_account_assignment(**kwargs)
        else:
            await sso.delete_account_assignment(**kwargs)


def fast_settings(
    *,
    database_url: str,
    kafka: KafkaSettings,
    oidc: OidcSettings,
    aws_endpoint: str,
    **overrides: Any,
) -> Settings:
    """Lifecycle settings with short polls and back-off, for tests that run in seconds."""
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "STATUS_POLL_SECONDS": 0.05,
        "RETRY_BASE_SECONDS": 0.02,
        "RETRY_MAX_SECONDS": 0.2,
        "TIMER_RETRY_SECONDS": 0.5,
        "RECONCILE_INTERVAL_SECONDS": 0,
        "IC_CALLS_PER_SECOND": 200,
        "kafka": kafka,
        "oidc": oidc,
        "aws": AwsSettings(AWS_ENDPOINT_URL=aws_endpoint, AWS_MAX_ATTEMPTS=1),
        "runtime": RuntimeSettings(TEAM_DEV_MODE=True, LOG_FORMAT="console", LOG_LEVEL="WARNING"),
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Driver:
    """Drives a lifecycle service through Kafka and reads its outcome from its database."""

    kafka: KafkaSettings
    database_dsn: str
    producer: AIOKafkaProducer
    base_url: str = ""

    async def send(self, event: Event) -> None:
        """Produce a request event as the request service's relay would."""
        await self.producer.send_and_wait(
            topic_name(Topic.REQUEST, self.kafka.KAFKA_TOPIC_PREFIX),
            value=event.model_dump_json().encode(),
            key=event.subject.encode(),
        )

    async def approve(
        self, target: Tuple, *, start: datetime, end: datetime, request_id: UUID | None = None
    ) -> UUID:
        """Send `request.approved` for a new request on `target`; return its id."""
        request_id = request_id or uuid4()
        await self.send(
            RequestApprovedV1(
                subject=str(request_id),
                data=RequestApprovedData(
                    request_id=request_id,
                    auto=True,
                    principal_id=target.principal_id,
                    account_id=target.account_id,
                    permission_set_arn=target.permission_set_arn,
                    start=start,
                    end=end,
                ),
            )
        )
        return request_id

    async def revoke(self, request_id: UUID, target: Tuple) -> None:
        """Send `request.revoke_requested` by an admin."""
        await self.send(
            RequestRevokeRequestedV1(
                subject=str(request_id),
                data=RequestRevokeRequestedData(
                    request_id=request_id,
                    by=ADMIN,
                    role="admin",
                    principal_id=target.principal_id,
                    account_id=target.account_id,
                    permission_set_arn=target.permission_set_arn,
                ),
            )
        )

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Run a query on the service's database."""
        conn = await asyncpg.connect(self.database_dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def events(self, request_id: UUID | str) -> list[dict[str, Any]]:
        """The lifecycle events committed for `request_id`, in outbox order."""
        rows = await self.fetch(
            "SELECT payload FROM outbox_message WHERE key = $1 ORDER BY id", str(request_id)
        )
        return [json.loads(r["payload"]) for r in rows]

    async def event_types(self, request_id: UUID | str) -> list[str]:
        """Just the types of `events(request_id)`."""
        return [e["type"] for e in await self.events(request_id)]

    async def state(self, request_id: UUID) -> str | None:
        """The grant's state."""
        rows = await self.fetch("SELECT state FROM grant_record WHERE request_id = $1", request_id)
        return str(rows[0]["state"]) if rows else None

    async def wait_event(
        self, request_id: UUID, type_: str, *, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Wait until an event of `type_` was committed for `request_id`; return it."""

        async def check() -> dict[str, Any]:
            found = [e for e in await self.events(request_id) if e["type"] == type_]
            assert found, f"no {type_} yet for {request_id}: {await self.event_types(request_id)}"
            return found[0]

        return await eventually(check, timeout=timeout, interval=0.1)


def window(start_in: float, length: float) -> tuple[datetime, datetime]:
    """A window starting `start_in` seconds from now, `length` seconds long."""
    start = utc_now() + timedelta(seconds=start_in)
    return start, start + timedelta(seconds=length)


@pytest_asyncio.fixture(loop_scope="session")
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer (acks=all) for request events."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_settings.KAFKA_BOOTSTRAP_SERVERS, acks="all", linger_ms=0
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@dataclass
class Running:
    """A lifecycle service under test, in this process."""

    driver: Driver
    proxy: FaultProxy
    moto_url: str
    http: httpx.AsyncClient


async def wait_ready(http: httpx.AsyncClient, *, timeout: float = 60.0) -> None:
    """Wait until /readyz says the consumer and the scheduler run."""

    async def check() -> None:
        try:
            answer = await http.get("/readyz")
        except httpx.HTTPError as exc:
            raise AssertionError(f"not serving yet: {exc!r}") from exc
        assert answer.status_code == 200, answer.text
        assert answer.json()["checks"]["consumer"]["running"], answer.text

    await eventually(check, timeout=timeout, interval=0.2)


@pytest_asyncio.fixture(loop_scope="session")
async def lifecycle_factory(
    migrated_database: MigratedDb,
    postgres: Any,
    kafka_settings: KafkaSettings,
    oidc_issuer: RunningIssuer,
    proxy: FaultProxy,
    private_moto: MotoProcess,
    producer: AIOKafkaProducer,
) -> AsyncIterator[Any]:
    """Factory: start the service in this process (settings overridable); yields `Running`."""
    stack: list[Any] = []

    async def start(**overrides: Any) -> Running:
        url = await migrated_database("lifecycle")
        settings = fast_settings(
            database_url=url,
            kafka=kafka_settings,
            oidc=oidc_issuer.settings(),
            aws_endpoint=proxy.endpoint_url,
            **overrides,
        )
        context = serving(create_app(settings))
        base = await context.__aenter__()
        stack.append(context)
        http = httpx.AsyncClient(base_url=base, timeout=30.0)
        stack.append(http)
        await wait_ready(http)
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        driver = Driver(kafka_settings, dsn, producer, base)
        return Running(driver, proxy, private_moto.endpoint_url, http)

    yield start
    for item in reversed(stack):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            await item.__aexit__(None, None, None)
