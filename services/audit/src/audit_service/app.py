"""The audit service's FastAPI application."""

import base64
import binascii
from contextlib import AsyncExitStack
from pathlib import Path

from fastapi import FastAPI

from audit_service.activity import (
    ActivityBackend,
    AssumedRoleClients,
    CloudTrailClients,
    LakeBackend,
    LookupEventsBackend,
    SharedClient,
    cloudtrail_aws_settings,
)
from audit_service.api import requests, stats, trail
from audit_service.chain import Signer
from audit_service.config import Settings
from audit_service.consumers import registry
from teamkit.app import ServiceSpec, ServiceState, create_service_app
from teamkit.aws import AwsClients
from teamkit.events.topics import Topic


def checkpoint_signer(settings: Settings) -> Signer | None:
    """The signer of the configured checkpoint key, or None when none is set."""
    if settings.CHECKPOINT_HMAC_KEY is not None:
        secret = settings.CHECKPOINT_HMAC_KEY.get_secret_value().encode()
        if len(secret) < 32:
            raise ValueError("AUDIT_CHECKPOINT_HMAC_KEY must be at least 32 characters")
        return Signer("HMAC-SHA256", settings.CHECKPOINT_KEY_ID, secret)
    if settings.CHECKPOINT_ED25519_PRIVATE_KEY is not None:
        try:
            seed = base64.b64decode(
                settings.CHECKPOINT_ED25519_PRIVATE_KEY.get_secret_value(), validate=True
            )
        except binascii.Error:
            seed = b""
        if len(seed) != 32:
            raise ValueError(
                "AUDIT_CHECKPOINT_ED25519_PRIVATE_KEY must be the base64 of a 32-byte Ed25519 seed"
            )
        return Signer("Ed25519", settings.CHECKPOINT_KEY_ID, seed)
    return None


async def _start(state: ServiceState, stack: AsyncExitStack) -> None:
    settings = state["settings"]
    assert isinstance(settings, Settings)  # noqa: S101 - create_app passes the audit settings
    clients = CloudTrailClients(
        cloudtrail_aws_settings(
            settings.aws,
            endpoint_url=settings.CLOUDTRAIL_ENDPOINT_URL,
            region=settings.CLOUDTRAIL_REGION,
        )
    )
    client = await stack.enter_async_context(clients.cloudtrail())
    backend: ActivityBackend
    if settings.ACTIVITY_BACKEND == "lake":
        assert settings.CLOUDTRAIL_LAKE_EVENT_DATA_STORE is not None  # noqa: S101 - validated
        backend = LakeBackend(
            client,
            event_data_store=settings.CLOUDTRAIL_LAKE_EVENT_DATA_STORE,
            poll_seconds=settings.CLOUDTRAIL_LAKE_POLL_SECONDS,
            timeout_seconds=settings.CLOUDTRAIL_LAKE_TIMEOUT_SECONDS,
        )
    elif settings.CLOUDTRAIL_ROLE_NAME:
        backend = LookupEventsBackend(
            AssumedRoleClients(
                sts=AwsClients(settings.aws),
                cloudtrail=clients,
                role_name=settings.CLOUDTRAIL_ROLE_NAME,
            )
        )
    else:
        backend = LookupEventsBackend(SharedClient(client))
    state["extras"]["activity_backend"] = backend
    state["extras"]["checkpoint_signer"] = checkpoint_signer(settings)


SPEC = ServiceSpec(
    name="audit",
    title="TEAM audit service",
    description="The tamper-evident audit trail, auditor API, CSV export and session activity.",
    emits=None,  # audit only listens; its dead letters still go to its dead-letter topic
    consumes=[Topic.REQUEST, Topic.POLICY, Topic.LIFECYCLE, Topic.NOTIFY],
    migrations=Path(__file__).parent / "migrations",
    routers=[requests.router, trail.router, stats.router],
    registry=registry,
    openapi_tags=[
        {
            "name": "audit",
            "description": "Read-only auditor API: requests, trail, integrity, statistics.",
        }
    ],
    extra_lifespan=_start,
)


def create_app(settings: Settings) -> FastAPI:
    """Build the audit service app from explicit settings."""
    checkpoint_signer(settings)  # refuse a malformed key before anything starts
    return create_service_app(SPEC, settings)
