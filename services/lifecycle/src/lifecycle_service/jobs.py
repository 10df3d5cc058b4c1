"""Firing a window timer: the grant at the start, the removal at the end or on revoke.

A job runs in ONE transaction that holds the timer's row lock (taken by the scheduler's claim),
then the grant's, then the ledger row's of its (principal, account, permission set): grants,
revokes and repairs of one tuple are serialised, and a crash anywhere rolls the transaction back
so the timer is pending (and overdue) again. What a crash could hide, the AWS call itself, is
noted in `aws_call` in separate short transactions before and after the call; after a restart the
job reads those notes together with `ListAccountAssignments` so it neither grants twice nor
mistakes its own assignment for standing access, nor leaves one behind.
"""

from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lifecycle_service import repository, service
from lifecycle_service.identity_center import AwsFailure, IdentityCenter
from lifecycle_service.repository import Tuple, tuple_of
from teamkit import outbox
from teamkit.clock import utc_now
from teamkit.events.common import Actor
from teamkit.events.lifecycle import (
    AccessEndedData,
    AccessEndedV1,
    AccessGrantedData,
    AccessGrantedV1,
    GrantFailedData,
    GrantFailedV1,
    GrantProvisioningData,
    GrantProvisioningV1,
    RevokeFailedData,
    RevokeFailedV1,
)

log = structlog.get_logger(__name__)


class JobCallLog:
    """Notes about one assignment call, committed at once in their own transactions."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        request_id: UUID | None,
        operation: str,
        target: Tuple,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._request_id = request_id
        self._operation = operation
        self._target = target

    async def started(self, attempt: int) -> int:
        """Record the call before it is made (so a crash right after it is visible)."""
        async with self._sessionmaker() as session, session.begin():
            return await repository.insert_call(
                session,
                request_id=self._request_id,
                operation=self._operation,
                target=self._target,
                attempt=attempt,
            )

    async def accepted(self, call_id: int, aws_request_id: str, attempt: int) -> None:
        """Record AWS's request id; a grant's create also emits `grant.provisioning`."""
        async with self._sessionmaker() as session, session.begin():
            await repository.update_call(
                session, call_id, status="in_progress", aws_request_id=aws_request_id
            )
            if self._operation == "create" and self._request_id is not None:
                await outbox.add(
                    session,
                    GrantProvisioningV1(
                        subject=str(self._request_id),
                        data=GrantProvisioningData(
                            request_id=self._request_id,
                            aws_request_id=aws_request_id,
                            principal_id=self._target.principal_id,
                            account_id=self._target.account_id,
                            permission_set_arn=self._target.permission_set_arn,
                            attempt=attempt,
                        ),
                    ),
                )

    async def finished(
        self, call_id: int, status: str, code: str | None = None, message: str | None = None
    ) -> None:
        """Record the terminal outcome of the call."""
        async with self._sessionmaker() as session, session.begin():
            await repository.update_call(
                session,
                call_id,
                status=status,
                error_code=code,
                error_message=(message or "")[:4000] or None,
                finished_at=utc_now(),
            )


async def fire(
    session: AsyncSession,
    *,
    timer: Row[Any],
    ic: IdentityCenter,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Fire one claimed window timer inside the caller's transaction, then mark it done."""
    if timer.kind == "start":
        await start_grant(session, request_id=timer.request_id, ic=ic, sessionmaker=sessionmaker)
    else:
        payload = timer.payload or {}
        by = Actor.model_validate(payload["by"]) if payload.get("by") else None
        reason = "expired" if timer.kind == "end" else str(payload.get("reason", "revoked"))
        await end_grant(
            session,
            request_id=timer.request_id,
            reason=reason,
            by=by,
            ic=ic,
            sessionmaker=sessionmaker,
        )
    await repository.set_timers_state(session, [timer.id], "done")


async def start_grant(
    session: AsyncSession,
    *,
    request_id: UUID,
    ic: IdentityCenter,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Create (or join) the assignment of a scheduled grant; emit `access.granted` or failure."""
    grant = await repository.lock_grant(session, request_id)
    if grant is None or grant.state != "scheduled":
        return
    now = utc_now()
    if grant.end_at <= now:
        # The whole window passed while the service was down: granting now would give access
        # outside it, so the grant ends without an assignment.
        await repository.cancel_pending_timers(session, request_id, ("end",))
        await service.end_without_assignment(session, grant=grant, reason="expired", by=None)
        return
    target = tuple_of(grant)
    ledger = await repository.lock_ledger(session, target)
    assert ledger is not None  # noqa: S101 - created by lock_ledger
    holders = [h for h in ledger.holders if h != request_id]
    standing = bool(ledger.standing)
    aws_request_id: str | None = None
    try:
        if (holders or standing) and ledger.assigned:
            action = "already_assigned"
        elif await ic.is_assigned(target):
            last = await repository.last_operation(session, target)
            if last is not None and last.operation == "create":
                # Our own create whose commit a crash lost: ours to remove later.
                action, aws_request_id = "created", last.aws_request_id
            else:
                action, standing = "already_assigned", not holders
        else:
            aws_request_id = await ic.create(
                target,
                JobCallLog(sessionmaker, request_id=request_id, operation="create", target=target),
            )
            action = "created"
    except AwsFailure as failure:
        await _fail_grant(session, grant=grant, failure=failure)
        return
    confirmed = utc_now()
    await repository.update_ledger(
        session, ledger.id, holders=[*holders, request_id], standing=standing, assigned=True
    )
    await repository.update_grant(
        session,
        request_id,
        state="active",
        granted_at=confirmed,
        assignment_action=action,
        create_request_id=aws_request_id,
    )
    await outbox.add(
        session,
        AccessGrantedV1(
            subject=str(request_id),
            data=AccessGrantedData(
                request_id=request_id,
                confirmed_at=confirmed,
                aws_request_id=aws_request_id,
                principal_id=target.principal_id,
                account_id=target.account_id,
                permission_set_arn=target.permission_set_arn,
                end=grant.end_at,
                assignment_action="created" if action == "created" else "already_assigned",
            ),
        ),
    )
    log.info("grant.granted", request_id=str(request_id), action=action)


async def _fail_grant(session: AsyncSession, *, grant: Row[Any], failure: AwsFailure) -> None:
    await repository.cancel_pending_timers(session, grant.request_id, ("end",))
    await repository.update_grant(
        session,
        grant.request_id,
        state="error",
        error_kind="grant",
        error_code=failure.code,
        error_message=failure.message[:4000],
        create_request_id=failure.aws_request_id,
    )
    await outbox.add(
        session,
        GrantFailedV1(
            subject=str(grant.request_id),
            data=GrantFailedData(
                request_id=grant.request_id,
                error_code=failure.code,
                error_message=failure.message or failure.code,
                retryable=failure.retryable,
                attempts=max(1, failure.attempts),
                aws_request_id=failure.aws_request_id,
            ),
        ),
    )
    log.warning("grant.failed", request_id=str(grant.request_id), code=failure.code)


async def end_grant(
    session: AsyncSession,
    *,
    request_id: UUID,
    reason: str,
    by: Actor | None,
    ic: IdentityCenter,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Release a grant's hold on its assignment; delete it when nothing else needs it."""
    grant = await repository.lock_grant(session, request_id)
    if grant is None:
        return
    end_reason = "expired" if reason == "expired" else "revoked"
    never_granted = grant.state == "scheduled" or (
        grant.state == "error" and grant.error_kind == "grant"
    )
    if never_granted:
        await repository.cancel_pending_timers(session, request_id, service.WINDOW_KINDS)
        if reason == "cancelled":
            await repository.update_grant(
                session, request_id, state="cancelled", ended_at=utc_now()
            )
        else:
            await service.end_without_assignment(session, grant=grant, reason=end_reason, by=by)
        return
    endable = grant.state == "active" or (grant.state == "error" and grant.error_kind == "revoke")
    if not endable:
        return
    target = tuple_of(grant)
    ledger = await repository.lock_ledger(session, target)
    assert ledger is not None  # noqa: S101 - created by lock_ledger
    holders = [h for h in ledger.holders if h != request_id]
    aws_request_id: str | None = None
    try:
        if holders:
            action = "kept_for_other_grant"
        elif ledger.standing:
            action = "kept_standing_access"
        else:
            action = "removed"
            aws_request_id = await _delete_checked(
                session, target=target, request_id=request_id, ic=ic, sessionmaker=sessionmaker
            )
    except AwsFailure as failure:
        # The grant no longer needs the assignment; the reconciler removes it if it stays.
        await repository.update_ledger(session, ledger.id, holders=holders)
        await _fail_revoke(session, grant=grant, reason=end_reason, by=by, failure=failure)
        return
    now = utc_now()
    await repository.update_ledger(
        session, ledger.id, holders=holders, assigned=action != "removed"
    )
    await repository.cancel_pending_timers(session, request_id, ("end", "revoke"))
    await repository.update_grant(
        session,
        request_id,
        state="ended" if end_reason == "expired" else "revoked",
        ended_at=now,
        end_reason=end_reason,
        assignment_action=action,
        delete_request_id=aws_request_id,
        revoked_by=by.model_dump(mode="json") if by else None,
        error_kind=None,
        error_code=None,
        error_message=None,
    )
    await outbox.add(
        session,
        AccessEndedV1(
            subject=str(request_id),
            data=AccessEndedData(
                request_id=request_id,
                reason="expired" if end_reason == "expired" else "revoked",
                assignment_action=action,
                ended_at=now,
                principal_id=target.principal_id,
                account_id=target.account_id,
                permission_set_arn=target.permission_set_arn,
                revoked_by=by,
                aws_request_id=aws_request_id,
            ),
        ),
    )
    log.info("grant.ended", request_id=str(request_id), action=action, reason=end_reason)


async def _delete_checked(
    session: AsyncSession,
    *,
    target: Tuple,
    request_id: UUID | None,
    ic: IdentityCenter,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> str | None:
    """Delete the assignment, unless an earlier delete whose outcome a crash hid already did."""
    last = await repository.last_operation(session, target)
    # The ledger still holds the assignment, so a delete as the latest call on the tuple is one
    # whose job a crash rolled back (whatever its own note says): check before deleting again.
    if last is not None and last.operation == "delete" and not await ic.is_assigned(target):
        return str(last.aws_request_id) if last.aws_request_id else None
    return await ic.delete(
        target,
        JobCallLog(sessionmaker, request_id=request_id, operation="delete", target=target),
    )


async def _fail_revoke(
    session: AsyncSession,
    *,
    grant: Row[Any],
    reason: str,
    by: Actor | None,
    failure: AwsFailure,
) -> None:
    target = tuple_of(grant)
    await repository.update_grant(
        session,
        grant.request_id,
        state="error",
        error_kind="revoke",
        error_code=failure.code,
        error_message=failure.message[:4000],
        end_reason=reason,
        revoked_by=by.model_dump(mode="json") if by else None,
    )
    await outbox.add(
        session,
        RevokeFailedV1(
            subject=str(grant.request_id),
            data=RevokeFailedData(
                request_id=grant.request_id,
                error_code=failure.code,
                error_message=failure.message or failure.code,
                attempts=max(1, failure.attempts),
                principal_id=target.principal_id,
                account_id=target.account_id,
                permission_set_arn=target.permission_set_arn,
            ),
        ),
    )
    log.warning("grant.revoke_failed", request_id=str(grant.request_id), code=failure.code)
