"""The lifecycle service's FastAPI application."""

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from lifecycle_service.api import grants, reconciliations
from lifecycle_service.config import Settings
from lifecycle_service.consumers import registry
from lifecycle_service.identity_center import IdentityCenter
from lifecycle_service.reconciler import Reconciler
from lifecycle_service.scheduler import Scheduler
from teamkit import db
from teamkit.app import ServiceSpec, ServiceState, create_service_app
from teamkit.aws import AwsClients
from teamkit.db import DatabaseSettings
from teamkit.events.topics import Topic


async def _start_workers(state: ServiceState, stack: AsyncExitStack) -> None:
    """Start the timer scheduler, the AWS worker and the reconciler (WORKERS_ENABLED)."""
    settings = state["settings"]
    assert isinstance(settings, Settings)  # noqa: S101 - create_app passes our Settings
    if not settings.WORKERS_ENABLED:
        return
    # Jobs hold a connection for their whole transaction and note AWS calls on a second one:
    # an engine of their own keeps them from starving the API, consumer and relay.
    slots = settings.MAX_OUTSTANDING_OPERATIONS
    engine = db.create_engine(
        settings.DATABASE_URL,
        DatabaseSettings(
            DB_POOL_SIZE=2 * slots + 4,
            DB_MAX_OVERFLOW=4,
            DB_STATEMENT_TIMEOUT_MS=settings.db.DB_STATEMENT_TIMEOUT_MS,
        ),
    )
    stack.push_async_callback(engine.dispose)
    sessionmaker = db.create_sessionmaker(engine)
    clients = AwsClients(settings.aws, max_pool_connections=slots + 10)
    sso = await stack.enter_async_context(clients.sso_admin())
    ic = IdentityCenter(sso, settings)
    scheduler = Scheduler(engine=engine, sessionmaker=sessionmaker, ic=ic, settings=settings)
    reconciler = Reconciler(sessionmaker=sessionmaker, ic=ic, settings=settings)
    tasks = [
        asyncio.create_task(scheduler.run(), name="lifecycle-scheduler"),
        asyncio.create_task(reconciler.run_periodically(), name="lifecycle-reconciler"),
    ]

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await reconciler.aclose()

    stack.push_async_callback(stop)
    state["extras"].update(identity_center=ic, scheduler=scheduler, reconciler=reconciler)


async def _scheduler_ready(request: Request) -> dict[str, Any]:
    scheduler: Scheduler | None = request.state.extras.get("scheduler")
    if scheduler is None:
        return {"ok": True, "workers": False}
    ic: IdentityCenter = request.state.extras["identity_center"]
    return {
        "ok": scheduler.listening,
        **scheduler.status(),
        "aws_calls": ic.stats.calls,
        "aws_retries": ic.stats.retries,
    }


SPEC = ServiceSpec(
    name="lifecycle",
    title="TEAM lifecycle service",
    description="Durable timers, AWS grant and revoke, the assignment ledger and reconciliation.",
    emits=Topic.LIFECYCLE,
    consumes=[Topic.REQUEST],
    migrations=Path(__file__).parent / "migrations",
    registry=registry,
    routers=[grants.router, reconciliations.router],
    openapi_tags=[
        {"name": "grants", "description": "Grants, their timelines, and admin retry."},
        {"name": "reconciliations", "description": "Ledger vs Identity Center drift repair."},
    ],
    extra_lifespan=_start_workers,
    ready_checks={"scheduler": _scheduler_ready},
)


def create_app(settings: Settings) -> FastAPI:
    """Build the lifecycle service app from explicit settings."""
    return create_service_app(SPEC, settings)
