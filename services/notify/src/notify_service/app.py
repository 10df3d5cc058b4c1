"""The notify service's FastAPI application."""

import asyncio
import contextlib
import dataclasses
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from notify_service import service
from notify_service.api import deliveries, webhooks
from notify_service.config import Settings
from notify_service.consumers import build_registry
from notify_service.rendering import Renderer
from notify_service.worker import DeliveryWorker, SesReadiness
from teamkit.app import ServiceSpec, ServiceState, create_service_app
from teamkit.aws import AwsClients
from teamkit.events.topics import Topic

SPEC = ServiceSpec(
    name="notify",
    title="TEAM notify service",
    description="Email (SES), SNS, Slack and signed webhook notifications, once per recipient.",
    emits=Topic.NOTIFY,
    consumes=[Topic.REQUEST, Topic.LIFECYCLE, Topic.POLICY],
    migrations=Path(__file__).parent / "migrations",
    routers=[deliveries.router, webhooks.router],
    openapi_tags=[
        {"name": "deliveries", "description": "What was sent to whom, and why not (admins)."},
        {"name": "webhooks", "description": "Signed outbound webhooks for ticketing systems."},
    ],
)


async def _start_delivery(state: ServiceState, stack: AsyncExitStack) -> None:
    settings = state["settings"]
    if not isinstance(settings, Settings):
        raise TypeError("the notify app needs notify_service.config.Settings")
    clients = AwsClients(settings.aws)
    ses = await stack.enter_async_context(clients.sesv2())
    sns = await stack.enter_async_context(clients.sns())
    readiness = SesReadiness(ses, probe_recipient=settings.SES_PROBE_RECIPIENT)
    async with state["sessionmaker"]() as session:
        config = await service.current_config(session, settings)
    if config.email_enabled:
        # An unverified sender is logged as an error now and keeps /readyz at 503.
        await readiness.check(config.ses_sender)
    worker = DeliveryWorker(
        settings=settings,
        engine=state["engine"],
        sessionmaker=state["sessionmaker"],
        http=state["http"],
        ses=ses,
        sns=sns,
    )
    task = asyncio.create_task(worker.run(), name="notify-delivery-worker")

    async def stop() -> None:
        # Let the sends in flight finish and be recorded, so a restart does not repeat them.
        worker.stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), settings.SEND_TIMEOUT_SECONDS + 10)
        except (TimeoutError, Exception):  # noqa: BLE001
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    stack.push_async_callback(stop)
    state["extras"].update(worker=worker, ses_readiness=readiness)


async def _worker_ready(request: Request) -> dict[str, Any]:
    worker: DeliveryWorker = request.state.extras["worker"]
    return {"ok": worker.running, **worker.status()}


async def _ses_ready(request: Request) -> dict[str, Any]:
    settings: Settings = request.state.settings
    async with request.state.sessionmaker() as session:
        config = await service.current_config(session, settings)
    if not config.email_enabled:
        return {"ok": True, "email": "switched off"}
    readiness: SesReadiness = request.state.extras["ses_readiness"]
    return await readiness.check(config.ses_sender)


def create_app(settings: Settings) -> FastAPI:
    """Build the notify service app from explicit settings."""
    spec = dataclasses.replace(
        SPEC,
        registry=build_registry(settings, Renderer()),
        extra_lifespan=_start_delivery,
        ready_checks={"delivery_worker": _worker_ready, "ses_sender": _ses_ready},
    )
    return create_service_app(spec, settings)
