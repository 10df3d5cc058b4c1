"""The audit service's FastAPI application."""

from pathlib import Path

from fastapi import FastAPI

from audit_service.config import Settings
from audit_service.consumers import registry
from teamkit.app import ServiceSpec, create_service_app
from teamkit.events.topics import Topic

SPEC = ServiceSpec(
    name="audit",
    title="TEAM audit service",
    description="The tamper-evident audit trail, auditor API, CSV export and session activity.",
    emits=None,  # audit only listens; its dead letters still go to its dead-letter topic
    consumes=[Topic.REQUEST, Topic.POLICY, Topic.LIFECYCLE, Topic.NOTIFY],
    migrations=Path(__file__).parent / "migrations",
    registry=registry,
)


def create_app(settings: Settings) -> FastAPI:
    """Build the audit service app from explicit settings."""
    return create_service_app(SPEC, settings)
