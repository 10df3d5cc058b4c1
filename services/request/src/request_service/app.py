"""The request service's FastAPI application."""

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, Request

from request_service.api import approvals, requests
from request_service.config import Settings
from request_service.consumers import registry
from request_service.policy_client import PolicyClient
from teamkit.app import ServiceSpec, ServiceState, create_service_app
from teamkit.events.topics import Topic


async def _start_policy_client(state: ServiceState, stack: AsyncExitStack) -> None:
    settings = cast(Settings, state["settings"])
    client = PolicyClient(
        base_url=settings.POLICY_URL,
        issuer=settings.oidc.OIDC_ISSUER,
        client_id=settings.CLIENT_ID,
        client_secret=settings.CLIENT_SECRET,
        timeout=settings.POLICY_TIMEOUT_SECONDS,
        token_http=state["http"],
    )
    stack.push_async_callback(client.aclose)
    state["extras"]["policy"] = client


async def _policy_configured(request: Request) -> dict[str, Any]:
    # Readiness only says whether calls can be authenticated; a down policy service makes
    # submissions answer 503 but the service itself stays ready (reads, cancels still work).
    settings = cast(Settings, request.state.settings)
    configured = bool(settings.CLIENT_ID and settings.CLIENT_SECRET)
    return {"ok": configured, "url": settings.POLICY_URL, "credentials": configured}


SPEC = ServiceSpec(
    name="request",
    title="TEAM request service",
    description=(
        "Requests and approvals: the requester and approver API and the request state machine."
    ),
    emits=Topic.REQUEST,
    consumes=[Topic.LIFECYCLE],
    migrations=Path(__file__).parent / "migrations",
    routers=[requests.router, approvals.router],
    registry=registry,
    openapi_tags=[
        {"name": "requests", "description": "Submit, read, cancel, revoke, approve, reject."},
        {"name": "approvals", "description": "The approver's inbox."},
    ],
    extra_lifespan=_start_policy_client,
    ready_checks={"policy_client": _policy_configured},
)


def create_app(settings: Settings) -> FastAPI:
    """Build the request service app from explicit settings."""
    return create_service_app(SPEC, settings)
