"""The policy service's FastAPI application."""

import asyncio
import contextlib
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from policy_service import service
from policy_service.api import ROUTERS
from policy_service.cache import PolicyCache
from policy_service.config import Settings
from policy_service.consumers import registry
from policy_service.directory import DirectoryReader
from policy_service.service import DirectoryRefresher
from teamkit.app import ServiceSpec, ServiceState, create_service_app
from teamkit.aws import AwsClients
from teamkit.events.topics import Topic


async def _start_directory(state: ServiceState, stack: AsyncExitStack) -> None:
    settings = state["settings"]
    assert isinstance(settings, Settings)  # noqa: S101 - create_app only accepts Settings
    reader = DirectoryReader(
        AwsClients(settings.aws, max_pool_connections=settings.DIRECTORY_CONCURRENCY),
        concurrency=settings.DIRECTORY_CONCURRENCY,
        instance_arn=settings.SSO_INSTANCE_ARN,
    )
    refresher = DirectoryRefresher(state["sessionmaker"], reader, seed_demo=settings.SEED_DEMO)
    state["extras"]["refresher"] = refresher
    state["extras"]["cache"] = PolicyCache()
    task = asyncio.create_task(
        refresher.run_periodically(
            settings.DIRECTORY_REFRESH_SECONDS, at_start=settings.DIRECTORY_REFRESH_ON_START
        ),
        name="policy-directory-refresh",
    )

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    stack.push_async_callback(stop)


async def _directory_ready(request: Request) -> dict[str, Any]:
    # Not ready without a good copy, or while the last refresh failed: decisions would rest on
    # a directory of unknown age. The copy is still served meanwhile.
    refresher: DirectoryRefresher = request.state.extras["refresher"]
    async with request.state.sessionmaker() as session:
        status = await service.directory_status(session, refreshing=refresher.running)
    return status.model_dump(mode="json")


SPEC = ServiceSpec(
    name="policy",
    title="TEAM policy service",
    description="Eligibility and approver policies, settings, the AWS directory and evaluation.",
    emits=Topic.POLICY,
    consumes=[],  # the policy service is a source: it consumes no topic
    migrations=Path(__file__).parent / "migrations",
    registry=registry,
    routers=ROUTERS,
    openapi_tags=[
        {"name": "decisions", "description": "Evaluations, approver checks, entitlements."},
        {"name": "eligibility policies", "description": "Who may request what, for how long."},
        {"name": "approver policies", "description": "Who approves what."},
        {"name": "export", "description": "The whole policy set as one document."},
        {"name": "settings", "description": "System settings (never secrets)."},
        {"name": "directory", "description": "The cached AWS directory."},
    ],
    extra_lifespan=_start_directory,
    ready_checks={"directory": _directory_ready},
)


def create_app(settings: Settings) -> FastAPI:
    """Build the policy service app from explicit settings."""
    return create_service_app(SPEC, settings)
