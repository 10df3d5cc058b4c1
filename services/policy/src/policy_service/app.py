"""The policy service's FastAPI application."""

from pathlib import Path

from fastapi import FastAPI

from policy_service.config import Settings
from policy_service.consumers import registry
from teamkit.app import ServiceSpec, create_service_app
from teamkit.events.topics import Topic

SPEC = ServiceSpec(
    name="policy",
    title="TEAM policy service",
    description="Eligibility and approver policies, settings, the AWS directory and evaluation.",
    emits=Topic.POLICY,
    consumes=[],  # the policy service is a source: it consumes no topic
    migrations=Path(__file__).parent / "migrations",
    registry=registry,
)


def create_app(settings: Settings) -> FastAPI:
    """Build the policy service app from explicit settings."""
    return create_service_app(SPEC, settings)
