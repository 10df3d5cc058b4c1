"""The lifecycle service's FastAPI application."""

from pathlib import Path

from fastapi import FastAPI

from lifecycle_service.config import Settings
from lifecycle_service.consumers import registry
from teamkit.app import ServiceSpec, create_service_app
from teamkit.events.topics import Topic

SPEC = ServiceSpec(
    name="lifecycle",
    title="TEAM lifecycle service",
    description="Durable timers, AWS grant and revoke, the assignment ledger and reconciliation.",
    emits=Topic.LIFECYCLE,
    consumes=[Topic.REQUEST],
    migrations=Path(__file__).parent / "migrations",
    registry=registry,
)


def create_app(settings: Settings) -> FastAPI:
    """Build the lifecycle service app from explicit settings."""
    return create_service_app(SPEC, settings)
