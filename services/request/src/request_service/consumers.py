"""Event handlers of the request service: lifecycle facts move requests (DESIGN §2).

Each handler runs in the consumer's transaction, which also claims the event id in the inbox;
the rules about which fact applies in which status live in `state_machine`.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from request_service import service
from request_service.state_machine import Fact
from teamkit.events.lifecycle import (
    AccessEndedV1,
    AccessGrantedV1,
    ApprovalTimedOutV1,
    GrantFailedV1,
    GrantScheduledV1,
    RevokeFailedV1,
)
from teamkit.kafka import HandlerRegistry

registry = HandlerRegistry()


@registry.on(GrantScheduledV1)
async def on_grant_scheduled(session: AsyncSession, event: GrantScheduledV1) -> None:
    """Lifecycle holds the timers: `approved` (or `error`, after a retry) → `scheduled`."""
    await service.apply_lifecycle_fact(
        session, request_id=event.data.request_id, fact=Fact.GRANT_SCHEDULED, at=event.time
    )


@registry.on(AccessGrantedV1)
async def on_access_granted(session: AsyncSession, event: AccessGrantedV1) -> None:
    """The assignment is confirmed: `scheduled` → `in_progress`."""
    await service.apply_lifecycle_fact(
        session,
        request_id=event.data.request_id,
        fact=Fact.ACCESS_GRANTED,
        at=event.data.confirmed_at,
    )


@registry.on(AccessEndedV1)
async def on_access_ended(session: AsyncSession, event: AccessEndedV1) -> None:
    """The access is over: `ended` when the window closed, `revoked` when ended early."""
    data = event.data
    fact = Fact.ACCESS_ENDED_REVOKED if data.reason == "revoked" else Fact.ACCESS_ENDED_EXPIRED
    await service.apply_lifecycle_fact(
        session,
        request_id=data.request_id,
        fact=fact,
        at=data.ended_at,
        reason=f"{data.reason}; assignment {data.assignment_action}",
    )


@registry.on(GrantFailedV1)
async def on_grant_failed(session: AsyncSession, event: GrantFailedV1) -> None:
    """Creating the assignment failed: `error`, carrying the AWS error."""
    data = event.data
    await service.apply_lifecycle_fact(
        session,
        request_id=data.request_id,
        fact=Fact.GRANT_FAILED,
        at=event.time,
        reason=f"grant failed after {data.attempts} attempt(s): {data.error_code}: "
        f"{data.error_message}",
    )


@registry.on(RevokeFailedV1)
async def on_revoke_failed(session: AsyncSession, event: RevokeFailedV1) -> None:
    """Removing the assignment failed: `error`, carrying the AWS error (access may remain)."""
    data = event.data
    await service.apply_lifecycle_fact(
        session,
        request_id=data.request_id,
        fact=Fact.REVOKE_FAILED,
        at=event.time,
        reason=f"revoke failed after {data.attempts} attempt(s): {data.error_code}: "
        f"{data.error_message}",
    )


@registry.on(ApprovalTimedOutV1)
async def on_approval_timed_out(session: AsyncSession, event: ApprovalTimedOutV1) -> None:
    """The approval deadline passed: `expired` only if still `pending` (else nothing)."""
    await service.apply_lifecycle_fact(
        session,
        request_id=event.data.request_id,
        fact=Fact.APPROVAL_TIMED_OUT,
        at=event.time,
        reason="no quorum before the approval deadline",
    )
