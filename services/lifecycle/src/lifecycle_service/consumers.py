"""Event handlers of the lifecycle service, keyed by (event type, version).

Each runs in the transaction that also claims the event in the inbox; each only records facts
and timers (no AWS call), so a partition is never blocked behind Identity Center.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from lifecycle_service import service
from teamkit.events.request import (
    RequestApprovedV1,
    RequestCancelledV1,
    RequestExpiredV1,
    RequestRejectedV1,
    RequestRevokeRequestedV1,
    RequestSubmittedV1,
)
from teamkit.kafka import HandlerRegistry

registry = HandlerRegistry()


@registry.on(RequestSubmittedV1)
async def on_submitted(session: AsyncSession, event: RequestSubmittedV1) -> None:
    """Start the approval-expiry timer."""
    await service.note_submitted(session, event=event)


@registry.on(RequestApprovedV1)
async def on_approved(session: AsyncSession, event: RequestApprovedV1) -> None:
    """Schedule the grant's start and end."""
    await service.schedule_grant(session, event=event)


@registry.on(RequestRejectedV1)
async def on_rejected(session: AsyncSession, event: RequestRejectedV1) -> None:
    """Drop the approval-expiry timer."""
    await service.close_undecided(session, request_id=event.data.request_id)


@registry.on(RequestExpiredV1)
async def on_expired(session: AsyncSession, event: RequestExpiredV1) -> None:
    """Drop the approval-expiry timer."""
    await service.close_undecided(session, request_id=event.data.request_id)


@registry.on(RequestCancelledV1)
async def on_cancelled(session: AsyncSession, event: RequestCancelledV1) -> None:
    """Drop the request's timers (a grant already started in a race is revoked)."""
    await service.cancel_request(session, request_id=event.data.request_id, by=event.data.by)


@registry.on(RequestRevokeRequestedV1)
async def on_revoke_requested(session: AsyncSession, event: RequestRevokeRequestedV1) -> None:
    """End the grant now: cancel its start, or remove its assignment."""
    await service.request_revoke(session, event=event)
