"""The request service's FastAPI application."""

from pathlib import Path

from fastapi import FastAPI

from request_service.config import Settings
from request_service.consumers import registry
from teamkit.app import ServiceSpec, create_service_app
from teamkit.events.topics import Topic

SPEC = ServiceSpec(
    name="request",
    title="TEAM request service",
    description=(
        "Requests and approvals: the requester and approver API and the request state machine."
    ),
    emits=Topic.REQUEST,
    consumes=[Topic.LIFECYCLE],
    migrations=Path(__file__).parent / "migrations",
    registry=registry,
)


def create_app(settings: Settings) -> FastAPI:
    """Build the request service app from explicit settings."""
    return create_service_app(SPEC, settings)
