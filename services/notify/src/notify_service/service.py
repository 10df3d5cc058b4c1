"""Use cases of the notify service: one function = one transaction (+ outbox rows).

`record_event` and `apply_settings` run inside the consumer's transaction (which also holds the
inbox claim), so they never open one. They only record pending deliveries: sending happens in
the delivery worker, outside any long-held transaction.
"""

import secrets
from dataclasses import asdict
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import structlog
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notify_service import repository
from notify_service.channel_config import ChannelConfig, effective, extract
from notify_service.channels import json_body
from notify_service.config import Settings
from notify_service.errors import WebhookNotFound
from notify_service.pagination import decode_cursor, encode_cursor
from notify_service.rendering import Renderer, message_context
from notify_service.routing import AUDIENCES, MACHINE_EVENT_TYPES, people
from notify_service.schemas import (
    DeliveryFilters,
    DeliveryOut,
    Page,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookUpdate,
)
from teamkit import outbox
from teamkit.auth import Principal
from teamkit.clock import utc_now
from teamkit.events.catalogue import parse_event
from teamkit.events.envelope import Event
from teamkit.events.notify import (
    NotificationDeliveredData,
    NotificationDeliveredV1,
    NotificationFailedData,
    NotificationFailedV1,
)
from teamkit.events.policy import SettingsUpdatedV1
from teamkit.events.request import (
    RequestRevokeRequestedV1,
    RequestSubmittedData,
    RequestSubmittedV1,
)
from teamkit.events.topics import dead_letter_topic

log = structlog.get_logger(__name__)

AUDIT_TEMPLATE = "_audit.j2"


# -- consuming -----------------------------------------------------------------------------------


async def current_config(session: AsyncSession, settings: Settings) -> ChannelConfig:
    """The channel configuration in force: environment defaults and the latest settings event."""
    return effective(settings, await repository.get_channel_overrides(session))


async def apply_settings(session: AsyncSession, *, event: SettingsUpdatedV1) -> None:
    """Keep the notify keys of a settings.updated event (in the consumer's transaction)."""
    values = extract(event.data.after)
    stored = await repository.store_channel_overrides(
        session, values=values, event_id=event.id, time=event.time
    )
    log.info("settings.applied" if stored else "settings.stale_ignored", keys=sorted(values))


async def record_event(
    session: AsyncSession, *, event: Event, settings: Settings, renderer: Renderer
) -> int:
    """Record the pending deliveries an event causes; returns how many were new.

    Runs in the consumer's transaction: the inbox claim, the snapshot and the delivery rows
    commit together, so a redelivered event finds its deliveries recorded and adds none.
    """
    request_id: UUID | None = getattr(event.data, "request_id", None)
    if isinstance(event, RequestSubmittedV1):
        await repository.insert_snapshot(
            session,
            request_id=event.data.request_id,
            event_id=event.id,
            snapshot=event.data.model_dump(mode="json"),
        )
    elif isinstance(event, RequestRevokeRequestedV1):
        await repository.set_revoke(
            session,
            request_id=event.data.request_id,
            revoke=event.data.model_dump(mode="json", include={"by", "role", "comment"}),
        )

    snapshot: RequestSubmittedData | None = None
    revoke: dict[str, Any] | None = None
    if request_id is not None:
        stored = await repository.get_snapshot(session, request_id)
        if stored is not None:
            snapshot = RequestSubmittedData.model_validate(stored[0])
            revoke = stored[1]

    config = await current_config(session, settings)
    base = {
        "event_id": event.id,
        "event_type": event.type,
        "subject": event.subject[:255],
        "request_id": request_id,
    }
    rows: list[dict[str, Any]] = []
    if event.type in AUDIENCES:
        rows += _audience_rows(
            event, snapshot=snapshot, revoke=revoke, config=config, renderer=renderer, base=base
        )
        if snapshot is None and request_id is not None:
            # A lifecycle event can overtake its request.submitted (another topic): keep it,
            # and the people hear of it once the snapshot arrives (ops already did).
            await repository.defer_event(
                session,
                request_id=request_id,
                event_id=event.id,
                payload=event.model_dump(mode="json"),
            )
            log.warning(
                "notify.person_notices_deferred", request_id=str(request_id), type=event.type
            )
    if isinstance(event, RequestSubmittedV1) and snapshot is not None:
        for payload in await repository.take_deferred(session, request_id=event.data.request_id):
            late = parse_event(payload)
            rows += _audience_rows(
                late,
                snapshot=snapshot,
                revoke=revoke,
                config=config,
                renderer=renderer,
                base={
                    **base,
                    "event_id": late.id,
                    "event_type": late.type,
                    "subject": late.subject[:255],
                },
            )
    if event.type in MACHINE_EVENT_TYPES:
        if config.enabled("sns") and config.sns_topic_arn:
            rows.append(
                {
                    **base,
                    "channel": "sns",
                    "recipient": config.sns_topic_arn,
                    "audience": "machine",
                    "payload": {
                        "message": event.model_dump_json(),
                        "subject": f"TEAM {event.type}"[:100],
                        "attributes": {
                            "event_type": event.type,
                            "request_id": str(request_id) if request_id else event.subject,
                            "source": event.source,
                        },
                    },
                }
            )
        if config.webhooks_enabled:
            body = json_body(
                {
                    "event": event.model_dump(mode="json"),
                    "request": snapshot.model_dump(mode="json") if snapshot else None,
                }
            )
            for hook in await repository.webhooks_for(session, event.type):
                rows.append(
                    {
                        **base,
                        "channel": "webhook",
                        "recipient": str(hook.id),
                        "audience": "machine",
                        "payload": {"body": body},
                    }
                )
    created = await repository.insert_deliveries(session, rows)
    log.info("notify.deliveries_recorded", type=event.type, event_id=str(event.id), new=created)
    return created


def _audience_rows(
    event: Event,
    *,
    snapshot: RequestSubmittedData | None,
    revoke: dict[str, Any] | None,
    config: ChannelConfig,
    renderer: Renderer,
    base: dict[str, Any],
) -> list[dict[str, Any]]:
    """The person-facing deliveries (email, Slack, the audit channel) of one event."""
    rows: list[dict[str, Any]] = []
    for person in people(event.type, snapshot, ops_email=config.ops_email):
        name = renderer.template_name(event.type, person.audience)
        context = message_context(
            event=event,
            snapshot=snapshot,
            revoke=revoke,
            audience=person.audience,
            recipient_name=person.name,
            time_zone=person.time_zone,
            app_base_url=config.app_base_url,
        )
        common = {**base, "recipient": person.email[:320], "audience": person.audience}
        if config.email_enabled:
            rows.append(
                {**common, "channel": "email", "payload": asdict(renderer.email(name, context))}
            )
        # Operations is a mailbox, not necessarily a Slack user: it hears via the audit channel.
        if config.slack_enabled and person.audience != "ops":
            rows.append(
                {**common, "channel": "slack", "payload": asdict(renderer.slack(name, context))}
            )
    if config.slack_enabled and config.slack_audit_channel:
        context = message_context(
            event=event,
            snapshot=snapshot,
            revoke=revoke,
            audience="audit",
            recipient_name="team",
            time_zone=None,
            app_base_url=config.app_base_url,
        )
        rows.append(
            {
                **base,
                "channel": "slack",
                "recipient": config.slack_audit_channel,
                "audience": "audit",
                "payload": asdict(renderer.slack(AUDIT_TEMPLATE, context)),
            }
        )
    return rows


# -- settling claimed deliveries (delivery worker) -----------------------------------------------


async def mark_delivered(
    sessionmaker: async_sessionmaker[AsyncSession], *, row: Row[Any], provider_ref: str | None
) -> None:
    """Mark a delivery sent and emit notification.delivered, in one transaction."""
    async with sessionmaker() as session, session.begin():
        if not await repository.mark_sent(
            session, delivery_id=row.id, attempts=row.attempts, provider_ref=provider_ref
        ):
            log.warning("delivery.claim_lost", delivery_id=row.id)
            return
        await outbox.add(
            session,
            NotificationDeliveredV1(
                subject=row.subject,
                data=NotificationDeliveredData(
                    source_event_id=row.event_id,
                    source_event_type=row.event_type,
                    channel=row.channel,
                    recipient=row.recipient,
                    delivered_at=utc_now(),
                ),
            ),
        )


async def mark_failed(
    sessionmaker: async_sessionmaker[AsyncSession], *, row: Row[Any], error: str
) -> None:
    """Give up on a delivery: record why, emit notification.failed and a dead letter."""
    async with sessionmaker() as session, session.begin():
        if not await repository.settle(
            session, delivery_id=row.id, attempts=row.attempts, status="failed", error=error
        ):
            log.warning("delivery.claim_lost", delivery_id=row.id)
            return
        event = await outbox.add(
            session,
            NotificationFailedV1(
                subject=row.subject,
                data=NotificationFailedData(
                    source_event_id=row.event_id,
                    source_event_type=row.event_type,
                    channel=row.channel,
                    recipient=row.recipient,
                    failed_at=utc_now(),
                    error=error[:2000],
                    attempts=row.attempts,
                ),
            ),
        )
        await outbox.add_raw(
            session,
            event_id=uuid4(),
            topic=dead_letter_topic("notify"),
            key=row.subject,
            payload={
                "consumer": "notify",
                "delivery_id": row.id,
                "notification_failed_event_id": str(event.id),
                "event_id": str(row.event_id),
                "event_type": row.event_type,
                "channel": row.channel,
                "recipient": row.recipient,
                "error": error[:4000],
                "attempts": row.attempts,
            },
            headers={"consumer": "notify"},
        )
    log.warning(
        "delivery.failed",
        delivery_id=row.id,
        channel=row.channel,
        attempts=row.attempts,
        error=error[:500],
    )


async def retry_later(
    sessionmaker: async_sessionmaker[AsyncSession], *, row: Row[Any], at: datetime, error: str
) -> None:
    """Put a delivery back for another attempt at `at`."""
    async with sessionmaker() as session, session.begin():
        await repository.reschedule(
            session, delivery_id=row.id, attempts=row.attempts, at=at, error=error
        )


async def mark_skipped(
    sessionmaker: async_sessionmaker[AsyncSession], *, row: Row[Any], reason: str
) -> None:
    """Drop a delivery that must not be sent any more (channel switched off, webhook deleted)."""
    async with sessionmaker() as session, session.begin():
        await repository.settle(
            session, delivery_id=row.id, attempts=row.attempts, status="skipped", error=reason
        )


# -- API -----------------------------------------------------------------------------------------


async def list_deliveries(
    session: AsyncSession, *, filters: DeliveryFilters, limit: int, cursor: str | None
) -> Page[DeliveryOut]:
    """One page of deliveries, newest first."""
    before = decode_cursor(cursor, ("id",))
    async with session.begin():
        rows = await repository.list_deliveries(
            session,
            limit=limit,
            before_id=int(before[0]) if before else None,
            request_id=filters.request_id,
            channel=filters.channel,
            status=filters.status,
            event_id=filters.event_id,
        )
    items = [DeliveryOut.model_validate(row._mapping) for row in rows[:limit]]
    next_cursor = encode_cursor([items[-1].id]) if len(rows) > limit and items else None
    return Page[DeliveryOut](items=items, next_cursor=next_cursor)


def new_webhook_secret() -> str:
    """A fresh signing secret: 256 random bits, URL-safe."""
    return "whsec_" + secrets.token_urlsafe(32)


async def create_webhook(
    session: AsyncSession, *, body: WebhookCreate, actor: Principal
) -> WebhookCreated:
    """Register a webhook; the answer is the only place its secret is ever shown."""
    secret = new_webhook_secret()
    async with session.begin():
        row = await repository.insert_webhook(
            session,
            {
                "id": uuid4(),
                "url": str(body.url),
                "event_types": sorted(set(body.event_types)),
                "description": body.description,
                "secret": secret,
                "enabled": body.enabled,
                "created_by": (actor.username or actor.client_id or actor.subject)[:255],
            },
        )
    log.info("webhook.created", webhook_id=str(row.id), url=str(body.url))
    return WebhookCreated(**WebhookOut.model_validate(row._mapping).model_dump(), secret=secret)


async def list_webhooks(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> Page[WebhookOut]:
    """One page of webhooks, oldest first, without secrets."""
    after = decode_cursor(cursor, ("created_at", "id"))
    async with session.begin():
        rows = await repository.list_webhooks(
            session,
            limit=limit,
            after=(datetime.fromisoformat(after[0]), UUID(after[1])) if after else None,
        )
    items = [WebhookOut.model_validate(row._mapping) for row in rows[:limit]]
    next_cursor = (
        encode_cursor([items[-1].created_at.isoformat(), str(items[-1].id)])
        if len(rows) > limit and items
        else None
    )
    return Page[WebhookOut](items=items, next_cursor=next_cursor)


async def get_webhook(session: AsyncSession, *, webhook_id: UUID) -> WebhookOut:
    """One webhook, without its secret."""
    async with session.begin():
        row = await repository.get_webhook(session, webhook_id)
    if row is None:
        raise WebhookNotFound(webhook_id)
    return WebhookOut.model_validate(row._mapping)


async def update_webhook(
    session: AsyncSession, *, webhook_id: UUID, body: WebhookUpdate
) -> WebhookOut:
    """Change a webhook's URL, event types, description or switch; the secret stays."""
    # Only `description` may be cleared; a null for any other field means "leave it".
    values = {
        k: v
        for k, v in body.model_dump(exclude_unset=True).items()
        if v is not None or k == "description"
    }
    if "url" in values:
        values["url"] = str(values["url"])
    if "event_types" in values:
        values["event_types"] = sorted(set(values["event_types"]))
    async with session.begin():
        row = (
            await repository.update_webhook(session, webhook_id, values)
            if values
            else await repository.get_webhook(session, webhook_id)
        )
    if row is None:
        raise WebhookNotFound(webhook_id)
    return WebhookOut.model_validate(row._mapping)


async def delete_webhook(session: AsyncSession, *, webhook_id: UUID) -> None:
    """Delete a webhook; its pending deliveries are skipped."""
    async with session.begin():
        if not await repository.delete_webhook(session, webhook_id):
            raise WebhookNotFound(webhook_id)
    log.info("webhook.deleted", webhook_id=str(webhook_id))
