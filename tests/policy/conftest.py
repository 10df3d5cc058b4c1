"""Fixtures of the policy tests: the service running on real peers, and an HTTP helper."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest_asyncio

from devstack.moto_server import MotoProcess, start_moto_process
from devstack.seed_aws import SeedResult, seed_demo_org
from policy_service.app import create_app
from policy_service.config import Settings
from policy_service.schemas import PolicySettings
from teamkit.settings import AwsSettings, KafkaSettings, RuntimeSettings
from tests.harness.oidc import RunningIssuer
from tests.harness.postgres import PostgresForTests
from tests.harness.servers import serving
from tests.harness.wait import eventually

ADMIN_CLIENT = "gitops"  # a minted client token with scope team.policies.admin


@dataclass
class Api:
    """Talks HTTP to a running policy service with tokens from the dev issuer."""

    http: httpx.AsyncClient
    issuer: RunningIssuer
    seed: SeedResult
    dsn: str

    def token(self, who: str) -> str:
        """`client:<id>` is a demo client, `gitops` a client with team.policies.admin."""
        if who == ADMIN_CLIENT:
            claims = self.issuer.issuer.base_claims(ADMIN_CLIENT)
            claims.update(
                {"client_id": ADMIN_CLIENT, "azp": ADMIN_CLIENT, "scope": "team.policies.admin"}
            )
            return self.issuer.mint(claims)
        if who.startswith("client:"):
            return self.issuer.client_token(who.removeprefix("client:"))
        return self.issuer.token_for(who)

    async def call(
        self, method: str, path: str, *, who: str | None = "dave", **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.token(who)}"
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def ok(self, method: str, path: str, *, who: str | None = "dave", **kwargs: Any) -> Any:
        answer = await self.call(method, path, who=who, **kwargs)
        assert answer.status_code < 300, (answer.status_code, answer.text)
        return answer.json() if answer.content else None

    async def reset(self) -> None:
        """Empty the policy set and restore default settings."""
        await self.ok("PUT", "/v1/policies/export", json={"format_version": 1})
        current = await self.ok("GET", "/v1/settings")
        await self.ok(
            "PUT",
            "/v1/settings",
            json={**PolicySettings().model_dump(mode="json"), "version": current["version"]},
        )

    async def set_settings(self, **changes: Any) -> dict[str, Any]:
        current = await self.ok("GET", "/v1/settings")
        body = {k: v for k, v in current.items() if k in PolicySettings.model_fields}
        body.update(changes)
        result: dict[str, Any] = await self.ok(
            "PUT", "/v1/settings", json={**body, "version": current["version"]}
        )
        return result

    async def eligibility(self, **fields: Any) -> dict[str, Any]:
        body = {"name": f"e-{uuid.uuid4().hex[:6]}", "max_duration_minutes": 60, **fields}
        result: dict[str, Any] = await self.ok("POST", "/v1/eligibility-policies", json=body)
        return result

    async def approvers(self, **fields: Any) -> dict[str, Any]:
        body = {"name": f"a-{uuid.uuid4().hex[:6]}", **fields}
        result: dict[str, Any] = await self.ok("POST", "/v1/approver-policies", json=body)
        return result

    async def evaluate(self, **fields: Any) -> dict[str, Any]:
        body = {"duration_minutes": 60, "ticket": "T-1", **fields}
        result: dict[str, Any] = await self.ok(
            "POST", "/v1/evaluations", who="client:request-service", json=body
        )
        return result

    async def rows(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()


def policy_settings(
    url: str,
    kafka_bootstrap: str,
    issuer: RunningIssuer,
    aws: AwsSettings,
    **overrides: Any,
) -> Settings:
    """Settings of a policy service under test (its own topic prefix, no periodic refresh)."""
    values: dict[str, Any] = {
        "DATABASE_URL": url,
        "DIRECTORY_REFRESH_SECONDS": 0,
        "kafka": KafkaSettings(
            KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            KAFKA_TOPIC_PREFIX=f"t{uuid.uuid4().hex[:10]}.",
            KAFKA_TOPIC_PARTITIONS=1,
        ),
        "oidc": issuer.settings(),
        "aws": aws,
        "runtime": RuntimeSettings(TEAM_DEV_MODE=True, LOG_FORMAT="console"),
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running_policy(
    postgres: PostgresForTests,
    kafka_bootstrap: str,
    issuer: RunningIssuer,
    aws: AwsSettings,
    seed: SeedResult,
    **overrides: Any,
) -> AsyncIterator[Api]:
    """A policy service on a fresh database, once its first directory refresh succeeded."""
    name = await postgres.create("policy")
    try:
        settings = policy_settings(postgres.url(name), kafka_bootstrap, issuer, aws, **overrides)
        async with (
            serving(create_app(settings)) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30.0) as http,
        ):
            api = Api(http, issuer, seed, postgres.dsn(name))

            async def ready() -> None:
                answer = await http.get("/readyz")
                assert answer.status_code == 200, answer.text

            await eventually(ready, timeout=60)
            yield api
    finally:
        await postgres.drop(name)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def policy_api(
    postgres: PostgresForTests,
    kafka_bootstrap: str,
    oidc_issuer: RunningIssuer,
    aws_settings: AwsSettings,
    seeded_org: SeedResult,
) -> AsyncIterator[Api]:
    """One policy service per test module, on the shared (seeded) moto."""
    async with running_policy(
        postgres, kafka_bootstrap, oidc_issuer, aws_settings, seeded_org
    ) as api:
        yield api


@pytest_asyncio.fixture(loop_scope="session")
async def api(policy_api: Api) -> Api:
    """The module's service with no policies and default settings."""
    await policy_api.reset()
    return policy_api


@pytest_asyncio.fixture(loop_scope="session")
async def private_moto() -> AsyncIterator[tuple[MotoProcess, AwsSettings, SeedResult]]:
    """A moto of this test alone (a separate process: its state is not the shared moto's)."""
    moto = await asyncio.to_thread(start_moto_process)
    try:
        aws = AwsSettings(AWS_ENDPOINT_URL=moto.endpoint_url, AWS_MAX_ATTEMPTS=1)
        # moto answers the odd 500 to concurrent writes (its own race, not under test here):
        # the seed retries those; the service under test keeps retries off.
        seeded = await seed_demo_org(aws.model_copy(update={"AWS_MAX_ATTEMPTS": 5}))
        yield moto, aws, seeded
    finally:
        await asyncio.to_thread(moto.stop)
