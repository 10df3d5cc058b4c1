"""Every query of the notify service. Functions take the caller's session and never commit."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Row, and_, delete, func, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from notify_service.models import (
    channel_settings,
    deferred_event,
    delivery,
    request_snapshot,
    webhook,
)

# -- request snapshots ---------------------------------------------------------------------------


async def insert_snapshot(
    session: AsyncSession, *, request_id: UUID, event_id: UUID, snapshot: dict[str, Any]
) -> None:
    """Keep the request.submitted snapshot; the first one stored wins."""
    await session.execute(
        insert(request_snapshot)
        .values(request_id=request_id, submitted_event_id=event_id, snapshot=snapshot)
        .on_conflict_do_nothing(index_elements=[request_snapshot.c.request_id])
    )


async def set_revoke(session: AsyncSession, *, request_id: UUID, revoke: dict[str, Any]) -> None:
    """Remember who revoked a request and why (no-op when the snapshot is unknown)."""
    await session.execute(
        update(request_snapshot)
        .where(request_snapshot.c.request_id == request_id)
        .values(revoke=revoke, updated_at=func.now())
    )


async def defer_event(
    session: AsyncSession, *, request_id: UUID, event_id: UUID, payload: dict[str, Any]
) -> None:
    """Keep an event that arrived before its request's snapshot."""
    await session.execute(
        insert(deferred_event)
        .values(event_id=event_id, request_id=request_id, payload=payload)
        .on_conflict_do_nothing(index_elements=[deferred_event.c.event_id])
    )


async def take_deferred(session: AsyncSession, *, request_id: UUID) -> list[dict[str, Any]]:
    """Remove and return the deferred events of a request, oldest first."""
    rows = (
        await session.execute(
            delete(deferred_event)
            .where(deferred_event.c.request_id == request_id)
            .returning(deferred_event.c.payload, deferred_event.c.received_at)
        )
    ).all()
    return [dict(row.payload) for row in sorted(rows, key=lambda row: row.received_at)]


async def get_snapshot(
    session: AsyncSession, request_id: UUID
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """The stored snapshot and revoke facts of a request, if any."""
    row = (
        await session.execute(
            select(request_snapshot.c.snapshot, request_snapshot.c.revoke).where(
                request_snapshot.c.request_id == request_id
            )
        )
    ).first()
    return None if row is None else (row.snapshot, row.revoke)


# -- channel settings ----------------------------------------------------------------------------


async def get_channel_overrides(session: AsyncSession) -> dict[str, Any] | None:
    """The latest non-secret channel settings from settings.updated, if one arrived."""
    values = await session.scalar(select(channel_settings.c["values"]))
    return dict(values) if values is not None else None


async def store_channel_overrides(
    session: AsyncSession, *, values: dict[str, Any], event_id: UUID, time: datetime
) -> bool:
    """Store the overrides unless newer ones are stored already; True when stored."""
    statement = insert(channel_settings).values(
        id=1, values=values, source_event_id=event_id, source_time=time
    )
    result = await session.execute(
        statement.on_conflict_do_update(
            index_elements=[channel_settings.c.id],
            set_={
                "values": statement.excluded["values"],
                "source_event_id": statement.excluded.source_event_id,
                "source_time": statement.excluded.source_time,
                "updated_at": func.now(),
            },
            # Settings events share one key, so they arrive in order; this guards replays.
            where=channel_settings.c.source_time <= statement.excluded.source_time,
        ).returning(channel_settings.c.id)
    )
    return result.first() is not None


# -- deliveries ----------------------------------------------------------------------------------


async def insert_deliveries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Record pending deliveries; an (event, channel, recipient) already recorded is kept as is."""
    if not rows:
        return 0
    result = await session.execute(
        insert(delivery)
        .values(list(rows))
        .on_conflict_do_nothing(constraint="uq_delivery_event_channel_recipient")
        .returning(delivery.c.id)
    )
    return len(result.all())


async def claim_due(
    session: AsyncSession,
    *,
    limit: int,
    lease: timedelta,
    paused_channels: Sequence[str] = (),
) -> Sequence[Row[Any]]:
    """Claim due deliveries (and ones whose worker's lease ran out) for sending.

    `FOR UPDATE SKIP LOCKED` lets several replicas claim side by side; the claim commits at once
    and the lease keeps other workers off the row while it is being sent outside a transaction.
    """
    now = func.now()
    due = (
        select(delivery.c.id)
        .where(
            or_(
                and_(delivery.c.status == "pending", delivery.c.next_attempt_at <= now),
                and_(delivery.c.status == "sending", delivery.c.lease_until < now),
            ),
            delivery.c.channel.not_in(list(paused_channels)) if paused_channels else true(),
        )
        .order_by(delivery.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(delivery)
        .where(delivery.c.id.in_(due.scalar_subquery()))
        .values(
            status="sending",
            attempts=delivery.c.attempts + 1,
            lease_until=now + lease,
            updated_at=now,
        )
        .returning(*delivery.c)
    )
    return result.all()


def _claimed(delivery_id: int, attempts: int) -> Any:
    # Only the worker holding this attempt's claim may settle it (a lease takeover bumps attempts).
    return and_(
        delivery.c.id == delivery_id,
        delivery.c.status == "sending",
        delivery.c.attempts == attempts,
    )


async def mark_sent(
    session: AsyncSession, *, delivery_id: int, attempts: int, provider_ref: str | None
) -> bool:
    """Mark a claimed delivery sent; False when the claim was lost."""
    result = await session.execute(
        update(delivery)
        .where(_claimed(delivery_id, attempts))
        .values(
            status="sent",
            sent_at=func.now(),
            updated_at=func.now(),
            lease_until=None,
            last_error=None,
            provider_ref=provider_ref,
        )
        .returning(delivery.c.id)
    )
    return result.first() is not None


async def reschedule(
    session: AsyncSession, *, delivery_id: int, attempts: int, at: datetime, error: str
) -> bool:
    """Put a claimed delivery back for another attempt at `at`."""
    result = await session.execute(
        update(delivery)
        .where(_claimed(delivery_id, attempts))
        .values(
            status="pending",
            next_attempt_at=at,
            lease_until=None,
            last_error=error,
            updated_at=func.now(),
        )
        .returning(delivery.c.id)
    )
    return result.first() is not None


async def settle(
    session: AsyncSession, *, delivery_id: int, attempts: int, status: str, error: str
) -> bool:
    """Mark a claimed delivery `failed` or `skipped` with the reason."""
    result = await session.execute(
        update(delivery)
        .where(_claimed(delivery_id, attempts))
        .values(status=status, lease_until=None, last_error=error, updated_at=func.now())
        .returning(delivery.c.id)
    )
    return result.first() is not None


async def list_deliveries(
    session: AsyncSession,
    *,
    limit: int,
    before_id: int | None,
    request_id: UUID | None,
    channel: str | None,
    status: str | None,
    event_id: UUID | None,
) -> Sequence[Row[Any]]:
    """Deliveries newest first, filtered, one keyset page (`limit` + 1 rows to see a next page)."""
    query = select(*[c for c in delivery.c if c.name not in ("payload", "lease_until")])
    if before_id is not None:
        query = query.where(delivery.c.id < before_id)
    if request_id is not None:
        query = query.where(delivery.c.request_id == request_id)
    if channel is not None:
        query = query.where(delivery.c.channel == channel)
    if status is not None:
        query = query.where(delivery.c.status == status)
    if event_id is not None:
        query = query.where(delivery.c.event_id == event_id)
    return (await session.execute(query.order_by(delivery.c.id.desc()).limit(limit + 1))).all()


# -- webhooks ------------------------------------------------------------------------------------


async def insert_webhook(session: AsyncSession, values: dict[str, Any]) -> Row[Any]:
    """Store a new webhook subscription."""
    result = await session.execute(insert(webhook).values(**values).returning(*webhook.c))
    return result.one()


async def get_webhook(session: AsyncSession, webhook_id: UUID) -> Row[Any] | None:
    """One webhook subscription (with its secret: never return it from an API)."""
    return (await session.execute(select(webhook).where(webhook.c.id == webhook_id))).first()


async def list_webhooks(
    session: AsyncSession, *, limit: int, after: tuple[datetime, UUID] | None
) -> Sequence[Row[Any]]:
    """Webhooks oldest first, one keyset page (`limit` + 1 rows)."""
    query = select(webhook)
    if after is not None:
        query = query.where(
            or_(
                webhook.c.created_at > after[0],
                and_(webhook.c.created_at == after[0], webhook.c.id > after[1]),
            )
        )
    query = query.order_by(webhook.c.created_at, webhook.c.id).limit(limit + 1)
    return (await session.execute(query)).all()


async def update_webhook(
    session: AsyncSession, webhook_id: UUID, values: dict[str, Any]
) -> Row[Any] | None:
    """Change a webhook subscription; None when it does not exist."""
    result = await session.execute(
        update(webhook)
        .where(webhook.c.id == webhook_id)
        .values(**values, updated_at=func.now())
        .returning(*webhook.c)
    )
    return result.first()


async def delete_webhook(session: AsyncSession, webhook_id: UUID) -> bool:
    """Delete a webhook subscription; False when it did not exist."""
    result = await session.execute(
        delete(webhook).where(webhook.c.id == webhook_id).returning(webhook.c.id)
    )
    return result.first() is not None


async def webhooks_for(session: AsyncSession, event_type: str) -> Sequence[Row[Any]]:
    """Enabled webhooks subscribed to `event_type`."""
    return (
        await session.execute(
            select(webhook.c.id).where(
                webhook.c.enabled.is_(True), webhook.c.event_types.contains([event_type])
            )
        )
    ).all()
