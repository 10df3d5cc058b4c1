"""The request service with the real policy service behind it, both served in-process."""

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio

from devstack.seed_aws import SeedResult
from policy_service.app import create_app as create_policy_app
from policy_service.config import Settings as PolicySettings
from request_service.app import create_app as create_request_app
from request_service.config import Settings as RequestSettings
from teamkit.settings import AwsSettings, KafkaSettings, RuntimeSettings
from tests.harness.oidc import RunningIssuer
from tests.harness.postgres import PostgresForTests
from tests.harness.servers import serving


@pytest_asyncio.fixture(loop_scope="session")
async def request_and_policy(
    postgres: PostgresForTests,
    kafka_bootstrap: str,
    oidc_issuer: RunningIssuer,
    aws_settings: AwsSettings,
    seeded_org: SeedResult,
) -> AsyncIterator[dict[str, str]]:
    """Service name → base URL: policy (demo policies over the seeded moto) and request."""
    kafka = KafkaSettings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        KAFKA_TOPIC_PREFIX=f"t{uuid.uuid4().hex[:10]}.",
        KAFKA_SESSION_TIMEOUT_MS=2000,
        KAFKA_HEARTBEAT_INTERVAL_MS=500,
        KAFKA_TOPIC_PARTITIONS=1,
    )
    runtime = RuntimeSettings(TEAM_DEV_MODE=True, LOG_FORMAT="console", LOG_LEVEL="WARNING")
    policy_db = await postgres.create("policy")
    request_db = await postgres.create("request")
    try:
        policy_settings = PolicySettings(
            DATABASE_URL=postgres.url(policy_db),
            SEED_DEMO=True,
            kafka=kafka,
            oidc=oidc_issuer.settings(),
            aws=aws_settings,
            runtime=runtime,
        )
        async with serving(create_policy_app(policy_settings)) as policy_url:
            request_settings = RequestSettings(
                DATABASE_URL=postgres.url(request_db),
                POLICY_URL=policy_url,
                CLIENT_ID="request-service",
                CLIENT_SECRET="dev-request-secret",
                kafka=kafka,
                oidc=oidc_issuer.settings(),
                runtime=runtime,
            )
            async with serving(create_request_app(request_settings)) as request_url:
                yield {"request": request_url, "policy": policy_url}
    finally:
        await postgres.drop(request_db)
        await postgres.drop(policy_db)
