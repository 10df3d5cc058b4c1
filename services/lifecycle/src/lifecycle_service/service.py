"""Use cases driven by request events and the operations API: one function, one transaction.

The caller opens the transaction (the consumer runner for handlers, the router for the API);
every state change stages its event with `teamkit.outbox.add` in that same transaction.
Handlers never wait for a lock: a grant or timer that a job is firing right now is left to the
job, and the change is queued as a timer that runs after it (no deadlock, no blocked partition).
"""

from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from lifecycle_service import repository
from lifecycle_service.errors import GrantNotFound, GrantNotRetryable
from lifecycle_service.repository import Tuple, tuple_of
from teamkit import outbox
from teamkit.auth import Principal
from teamkit.clock import utc_now
from teamkit.events.common import Actor
from teamkit.events.lifecycle import (
    AccessEndedData,
    AccessEndedV1,
    ApprovalTimedOutData,
    ApprovalTimedOutV1,
    GrantScheduledData,
    GrantScheduledV1,
)
from teamkit.events.request import (
    RequestApprovedV1,
    RequestRevokeRequestedV1,
    RequestSubmittedV1,
)

log = structlog.get_logger(__name__)

APPROVAL_KINDS = ("approval_expiry",)
WINDOW_KINDS = ("start", "end")
#: Kinds whose firing may call Identity Center (they run in operation slots).
AWS_KINDS = ("start", "end", "revoke")


async def note_submitted(session: AsyncSession, *, event: RequestSubmittedV1) -> None:
    """Start the approval-expiry timer of a request that needs approval."""
    data = event.data
    if not data.approval_required or data.approval_deadline is None:
        return
    await repository.add_timer(
        session,
        kind="approval_expiry",
        request_id=data.request_id,
        due_at=data.approval_deadline,
        payload={"deadline": data.approval_deadline.isoformat()},
    )


async def schedule_grant(session: AsyncSession, *, event: RequestApprovedV1) -> None:
    """Hold durable start and end timers for an approved request; emit `grant.scheduled`."""
    data = event.data
    await repository.cancel_pending_timers(session, data.request_id, APPROVAL_KINDS)
    created = await repository.insert_grant(
        session,
        request_id=data.request_id,
        target=Tuple(data.principal_id, data.account_id, data.permission_set_arn),
        start_at=data.start,
        end_at=data.end,
    )
    if not created:
        log.info("grant.already_scheduled", request_id=str(data.request_id))
        return
    start_id, end_id = await _window_timers(
        session, request_id=data.request_id, start=data.start, end=data.end
    )
    await outbox.add(
        session,
        GrantScheduledV1(
            subject=str(data.request_id),
            data=GrantScheduledData(
                request_id=data.request_id,
                start=data.start,
                end=data.end,
                start_timer_id=str(start_id),
                end_timer_id=str(end_id),
            ),
        ),
    )


async def _window_timers(
    session: AsyncSession, *, request_id: UUID, start: datetime, end: datetime
) -> tuple[int, int]:
    start_id = await repository.add_timer(
        session, kind="start", request_id=request_id, due_at=start
    )
    end_id = await repository.add_timer(session, kind="end", request_id=request_id, due_at=end)
    return start_id, end_id


async def close_undecided(session: AsyncSession, *, request_id: UUID) -> None:
    """A rejected or expired request: its approval-expiry timer has nothing left to do."""
    await repository.cancel_pending_timers(session, request_id, APPROVAL_KINDS)


async def cancel_request(session: AsyncSession, *, request_id: UUID, by: Actor) -> None:
    """A cancelled request: drop its approval timer and, if scheduled, its window timers.

    If a start job holds the grant right now, the cancellation becomes a revoke timer that runs
    after the job, so access granted in that race is removed at once.
    """
    await repository.cancel_pending_timers(session, request_id, APPROVAL_KINDS)
    if await repository.get_grant(session, request_id) is None:
        return
    grant = await repository.lock_grant(session, request_id, skip_locked=True)
    if grant is not None and grant.state != "scheduled":
        return
    if grant is not None and await _drop_window_timers(session, request_id):
        await repository.update_grant(
            session,
            request_id,
            state="cancelled",
            ended_at=utc_now(),
            assignment_action="not_granted",
        )
        return
    await _queue_revoke(session, request_id=request_id, by=by, reason="cancelled")


async def request_revoke(session: AsyncSession, *, event: RequestRevokeRequestedV1) -> None:
    """End a grant early: at once if it never started, else through a revoke timer due now."""
    data = event.data
    await repository.cancel_pending_timers(session, data.request_id, APPROVAL_KINDS)
    if await repository.get_grant(session, data.request_id) is None:
        log.warning("grant.revoke_unknown", request_id=str(data.request_id))
        return
    grant = await repository.lock_grant(session, data.request_id, skip_locked=True)
    if grant is None:
        # A job is firing one of its timers: revoke right after it.
        await _queue_revoke(session, request_id=data.request_id, by=data.by, reason="revoked")
        return
    never_granted = grant.state == "scheduled" or (
        grant.state == "error" and grant.error_kind == "grant"
    )
    if never_granted and await _drop_window_timers(session, data.request_id):
        await end_without_assignment(session, grant=grant, reason="revoked", by=data.by)
        return
    if grant.state in ("ended", "revoked", "cancelled"):
        return
    await _queue_revoke(session, request_id=data.request_id, by=data.by, reason="revoked")


async def _drop_window_timers(session: AsyncSession, request_id: UUID) -> bool:
    """Cancel the pending start/end timers if none is being fired; False when one is."""
    ids, pending = await repository.lock_pending_timers(session, request_id, WINDOW_KINDS)
    if len(ids) != pending:
        return False
    await repository.set_timers_state(session, ids, "cancelled")
    return True


async def _queue_revoke(session: AsyncSession, *, request_id: UUID, by: Actor, reason: str) -> None:
    await repository.add_timer(
        session,
        kind="revoke",
        request_id=request_id,
        due_at=utc_now(),
        payload={"by": by.model_dump(mode="json"), "reason": reason},
    )


async def end_without_assignment(
    session: AsyncSession, *, grant: Row[Any], reason: str, by: Actor | None
) -> None:
    """Close a grant that never held an assignment (`not_granted`) and emit `access.ended`."""
    now = utc_now()
    state = "revoked" if reason == "revoked" else "ended"
    await repository.update_grant(
        session,
        grant.request_id,
        state=state,
        ended_at=now,
        end_reason=reason,
        assignment_action="not_granted",
        revoked_by=by.model_dump(mode="json") if by else None,
    )
    target = tuple_of(grant)
    await outbox.add(
        session,
        AccessEndedV1(
            subject=str(grant.request_id),
            data=AccessEndedData(
                request_id=grant.request_id,
                reason="revoked" if reason == "revoked" else "expired",
                assignment_action="not_granted",
                ended_at=now,
                principal_id=target.principal_id,
                account_id=target.account_id,
                permission_set_arn=target.permission_set_arn,
                revoked_by=by,
            ),
        ),
    )


async def fire_approval_timers(session: AsyncSession, *, limit: int) -> int:
    """Fire due approval-expiry timers (no AWS call): emit `approval.timed_out` for each."""
    due = await repository.claim_due_timers(
        session, kinds=APPROVAL_KINDS, limit=limit, now=utc_now()
    )
    for row in due:
        deadline = datetime.fromisoformat(row.payload.get("deadline") or row.due_at.isoformat())
        await outbox.add(
            session,
            ApprovalTimedOutV1(
                subject=str(row.request_id),
                data=ApprovalTimedOutData(request_id=row.request_id, deadline=deadline),
            ),
        )
    await repository.set_timers_state(session, [row.id for row in due], "done")
    return len(due)


async def retry_grant(session: AsyncSession, *, request_id: UUID, admin: Principal) -> Row[Any]:
    """Admin retry of a grant in `error`: reschedule the start, or run the revoke again."""
    grant = await repository.lock_grant(session, request_id)
    if grant is None:
        raise GrantNotFound(
            f"No grant for request {request_id}. Check the id against GET /v1/grants."
        )
    if grant.state != "error":
        raise GrantNotRetryable(
            f"Grant {request_id} is {grant.state}; only grants in error can be retried.",
            current_state=grant.state,
        )
    now = utc_now()
    log.info("grant.retry", request_id=str(request_id), by=admin.username or admin.client_id)
    if grant.error_kind == "revoke":
        await repository.update_grant(session, request_id, state="active", error_code=None)
        await repository.add_timer(
            session,
            kind="end" if grant.end_reason != "revoked" else "revoke",
            request_id=request_id,
            due_at=now,
            payload={"by": grant.revoked_by} if grant.revoked_by else {},
        )
    else:
        if grant.end_at <= now:
            raise GrantNotRetryable(
                f"The window of grant {request_id} closed at {grant.end_at.isoformat()}; "
                "submit a new request instead.",
                current_state=grant.state,
            )
        await repository.update_grant(
            session,
            request_id,
            state="scheduled",
            error_kind=None,
            error_code=None,
            error_message=None,
        )
        start_id, end_id = await _window_timers(
            session, request_id=request_id, start=max(now, grant.start_at), end=grant.end_at
        )
        await outbox.add(
            session,
            GrantScheduledV1(
                subject=str(request_id),
                data=GrantScheduledData(
                    request_id=request_id,
                    start=grant.start_at,
                    end=grant.end_at,
                    start_timer_id=str(start_id),
                    end_timer_id=str(end_id),
                ),
            ),
        )
    refreshed = await repository.get_grant(session, request_id)
    assert refreshed is not None  # noqa: S101 - locked above, in this transaction
    return refreshed
