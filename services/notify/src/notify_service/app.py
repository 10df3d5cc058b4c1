"""The notify service's FastAPI application."""

from pathlib import Path

from fastapi import FastAPI

from notify_service.config import Settings
from notify_service.consumers import registry
from teamkit.app import ServiceSpec, create_service_app
from teamkit.events.topics import Topic

SPEC = ServiceSpec(
    name="notify",
    title="TEAM notify service",
    description="Email (SES), SNS, Slack and webhook notifications.",
    emits=Topic.NOTIFY,
    consumes=[Topic.REQUEST, Topic.LIFECYCLE, Topic.POLICY],
    migrations=Path(__file__).parent / "migrations",
    registry=registry,
)


def create_app(settings: Settings) -> FastAPI:
    """Build the notify service app from explicit settings."""
    return create_service_app(SPEC, settings)
