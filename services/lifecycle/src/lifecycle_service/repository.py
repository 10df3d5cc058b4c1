"""Every query of the lifecycle service. Repositories never commit: the caller's use case does."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Row, and_, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from lifecycle_service.models import (
    assignment_ledger,
    aws_call,
    grant_record,
    reconciliation,
    timer,
)
from teamkit.clock import utc_now


@dataclass(frozen=True)
class Tuple:
    """One (principal, account, permission set): the unit of an account assignment."""

    principal_id: str
    account_id: str
    permission_set_arn: str

    def key(self) -> str:
        """`principal:account:permission set`, the subject of events without a grant."""
        return f"{self.principal_id}:{self.account_id}:{self.permission_set_arn}"


def tuple_of(row: Row[Any]) -> Tuple:
    """The tuple of a grant, ledger or call row."""
    return Tuple(row.principal_id, row.account_id, row.permission_set_arn)


# -- grants --------------------------------------------------------------------------------------


async def insert_grant(
    session: AsyncSession,
    *,
    request_id: UUID,
    target: Tuple,
    start_at: datetime,
    end_at: datetime,
) -> bool:
    """Insert a scheduled grant; False when the request already has one (a redelivery)."""
    result = await session.execute(
        pg_insert(grant_record)
        .values(
            request_id=request_id,
            principal_id=target.principal_id,
            account_id=target.account_id,
            permission_set_arn=target.permission_set_arn,
            start_at=start_at,
            end_at=end_at,
            state="scheduled",
        )
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(grant_record.c.request_id)
    )
    return result.first() is not None


async def get_grant(session: AsyncSession, request_id: UUID) -> Row[Any] | None:
    """The grant of `request_id`, unlocked."""
    result = await session.execute(
        select(grant_record).where(grant_record.c.request_id == request_id)
    )
    return result.first()


async def lock_grant(
    session: AsyncSession, request_id: UUID, *, skip_locked: bool = False
) -> Row[Any] | None:
    """The grant of `request_id` locked FOR UPDATE (None if absent, or locked and skipping)."""
    result = await session.execute(
        select(grant_record)
        .where(grant_record.c.request_id == request_id)
        .with_for_update(skip_locked=skip_locked)
    )
    return result.first()


async def update_grant(session: AsyncSession, request_id: UUID, **values: Any) -> None:
    """Set columns of one grant (and its `updated_at`)."""
    await session.execute(
        update(grant_record)
        .where(grant_record.c.request_id == request_id)
        .values(updated_at=utc_now(), **values)
    )


async def list_grants(
    session: AsyncSession,
    *,
    limit: int,
    after: tuple[datetime, UUID] | None,
    state: str | None,
    account_id: str | None,
    principal_id: str | None,
) -> Sequence[Row[Any]]:
    """Grants newest first, filtered, strictly after the keyset position `after`."""
    query = select(grant_record)
    if state is not None:
        query = query.where(grant_record.c.state == state)
    if account_id is not None:
        query = query.where(grant_record.c.account_id == account_id)
    if principal_id is not None:
        query = query.where(grant_record.c.principal_id == principal_id)
    if after is not None:
        created, request_id = after
        query = query.where(
            or_(
                grant_record.c.created_at < created,
                and_(grant_record.c.created_at == created, grant_record.c.request_id < request_id),
            )
        )
    query = query.order_by(grant_record.c.created_at.desc(), grant_record.c.request_id.desc())
    return (await session.execute(query.limit(limit))).all()


# -- timers --------------------------------------------------------------------------------------


async def add_timer(
    session: AsyncSession,
    *,
    kind: str,
    request_id: UUID,
    due_at: datetime,
    payload: dict[str, Any] | None = None,
) -> int:
    """Insert a pending timer (the insert trigger wakes the scheduler); return its id."""
    result = await session.execute(
        insert(timer)
        .values(kind=kind, request_id=request_id, due_at=due_at, payload=payload or {})
        .returning(timer.c.id)
    )
    return int(result.scalar_one())


async def lock_pending_timers(
    session: AsyncSession, request_id: UUID, kinds: Sequence[str]
) -> tuple[list[int], int]:
    """Lock the pending timers of a request without waiting: (locked ids, how many are pending).

    A pending timer that is locked is being fired right now by a job; the caller then knows it
    cannot cancel it and must let the job finish.
    """
    where = and_(
        timer.c.request_id == request_id, timer.c.state == "pending", timer.c.kind.in_(kinds)
    )
    locked = (
        await session.execute(select(timer.c.id).where(where).with_for_update(skip_locked=True))
    ).scalars()
    ids = [int(i) for i in locked]
    total = await session.scalar(select(func.count()).select_from(timer).where(where))
    return ids, int(total or 0)


async def set_timers_state(session: AsyncSession, ids: Sequence[int], state: str) -> None:
    """Move timers to `done` or `cancelled`."""
    if ids:
        await session.execute(
            update(timer).where(timer.c.id.in_(ids)).values(state=state, fired_at=utc_now())
        )


async def cancel_pending_timers(
    session: AsyncSession, request_id: UUID, kinds: Sequence[str]
) -> int:
    """Cancel the unlocked pending timers of `kinds`; return how many."""
    ids, _ = await lock_pending_timers(session, request_id, kinds)
    await set_timers_state(session, ids, "cancelled")
    return len(ids)


async def claim_due_timers(
    session: AsyncSession, *, kinds: Sequence[str], limit: int, now: datetime
) -> Sequence[Row[Any]]:
    """Lock up to `limit` due pending timers of `kinds`, earliest first, skipping locked ones.

    The lock lasts as long as the caller's transaction: a crash rolls it back and the timer is
    pending (and overdue) again, so it fires at once after a restart.
    """
    query = (
        select(timer)
        .where(timer.c.state == "pending", timer.c.due_at <= now, timer.c.kind.in_(kinds))
        .order_by(timer.c.due_at, timer.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(query)).all()


async def next_due_at(session: AsyncSession, *, kinds: Sequence[str]) -> datetime | None:
    """The earliest due time of a pending timer of `kinds` (the partial index answers it)."""
    result: datetime | None = await session.scalar(
        select(func.min(timer.c.due_at)).where(timer.c.state == "pending", timer.c.kind.in_(kinds))
    )
    return result


async def defer_timer(session: AsyncSession, timer_id: int, *, delay: float, error: str) -> None:
    """Push a timer whose job crashed back by `delay` seconds, recording the error."""
    await session.execute(
        update(timer)
        .where(timer.c.id == timer_id, timer.c.state == "pending")
        .values(
            attempts=timer.c.attempts + 1,
            due_at=utc_now() + timedelta(seconds=delay),
            last_error=error[:4000],
        )
    )


async def timers_of(session: AsyncSession, request_id: UUID) -> Sequence[Row[Any]]:
    """Every timer of one request, oldest first."""
    query = select(timer).where(timer.c.request_id == request_id).order_by(timer.c.id)
    return (await session.execute(query)).all()


async def count_timers(session: AsyncSession, *, state: str) -> int:
    """How many timers are in `state`."""
    count = await session.scalar(
        select(func.count()).select_from(timer).where(timer.c.state == state)
    )
    return int(count or 0)


async def set_statement_timeout(session: AsyncSession, seconds: float) -> None:
    """Bound this transaction's statements (a job waits for the lock of its tuple)."""
    await session.execute(text(f"SET LOCAL statement_timeout = {int(seconds * 1000)}"))


# -- ledger --------------------------------------------------------------------------------------


async def lock_ledger(
    session: AsyncSession, target: Tuple, *, skip_locked: bool = False
) -> Row[Any] | None:
    """The ledger row of `target`, created if missing, locked FOR UPDATE.

    The row lock serialises every grant, revoke and repair of one tuple. With `skip_locked`,
    None means another transaction holds it.
    """
    await session.execute(
        pg_insert(assignment_ledger)
        .values(
            principal_id=target.principal_id,
            account_id=target.account_id,
            permission_set_arn=target.permission_set_arn,
        )
        .on_conflict_do_nothing(constraint="uq_assignment_ledger_tuple")
    )
    result = await session.execute(
        select(assignment_ledger)
        .where(
            assignment_ledger.c.principal_id == target.principal_id,
            assignment_ledger.c.account_id == target.account_id,
            assignment_ledger.c.permission_set_arn == target.permission_set_arn,
        )
        .with_for_update(skip_locked=skip_locked)
    )
    return result.first()


async def update_ledger(session: AsyncSession, ledger_id: int, **values: Any) -> None:
    """Set columns of one ledger row."""
    await session.execute(
        update(assignment_ledger)
        .where(assignment_ledger.c.id == ledger_id)
        .values(updated_at=utc_now(), **values)
    )


async def ledger_rows(session: AsyncSession) -> Sequence[Row[Any]]:
    """The whole ledger (the managed tuples), unlocked."""
    query = select(assignment_ledger).order_by(
        assignment_ledger.c.account_id, assignment_ledger.c.permission_set_arn
    )
    return (await session.execute(query)).all()


async def active_holders(session: AsyncSession, holders: Sequence[UUID]) -> list[UUID]:
    """Those of `holders` whose grant is active now."""
    if not holders:
        return []
    query = select(grant_record.c.request_id).where(
        grant_record.c.request_id.in_(list(holders)), grant_record.c.state == "active"
    )
    return list((await session.execute(query)).scalars())


# -- AWS call log --------------------------------------------------------------------------------


async def insert_call(
    session: AsyncSession,
    *,
    request_id: UUID | None,
    operation: str,
    target: Tuple,
    attempt: int,
) -> int:
    """Record an assignment call about to be made; return its id."""
    result = await session.execute(
        insert(aws_call)
        .values(
            request_id=request_id,
            operation=operation,
            principal_id=target.principal_id,
            account_id=target.account_id,
            permission_set_arn=target.permission_set_arn,
            attempt=attempt,
            status="started",
        )
        .returning(aws_call.c.id)
    )
    return int(result.scalar_one())


async def update_call(session: AsyncSession, call_id: int, **values: Any) -> None:
    """Record what became of a call."""
    await session.execute(update(aws_call).where(aws_call.c.id == call_id).values(**values))


async def last_operation(session: AsyncSession, target: Tuple) -> Row[Any] | None:
    """The latest create or delete call on `target` that may have taken effect.

    Failed calls are skipped: they changed nothing. A `started`/`in_progress` row is a call
    whose outcome a crash hid: treat it as having happened.
    """
    query = (
        select(aws_call)
        .where(
            aws_call.c.principal_id == target.principal_id,
            aws_call.c.account_id == target.account_id,
            aws_call.c.permission_set_arn == target.permission_set_arn,
            aws_call.c.status.in_(["started", "in_progress", "succeeded"]),
        )
        .order_by(aws_call.c.id.desc())
        .limit(1)
    )
    return (await session.execute(query)).first()


async def calls_of(session: AsyncSession, request_id: UUID) -> Sequence[Row[Any]]:
    """Every assignment call made for one request, oldest first."""
    query = select(aws_call).where(aws_call.c.request_id == request_id).order_by(aws_call.c.id)
    return (await session.execute(query)).all()


# -- reconciliation ------------------------------------------------------------------------------


async def insert_reconciliation(
    session: AsyncSession, *, trigger: str, requested_by: str | None
) -> int:
    """Open a reconciliation report; return its id."""
    result = await session.execute(
        insert(reconciliation)
        .values(trigger=trigger, requested_by=requested_by, started_at=utc_now())
        .returning(reconciliation.c.id)
    )
    return int(result.scalar_one())


async def finish_reconciliation(
    session: AsyncSession,
    report_id: int,
    *,
    tuples_checked: int,
    repairs: list[dict[str, Any]],
    errors: list[dict[str, Any]],
) -> None:
    """Close a reconciliation report with its findings."""
    await session.execute(
        update(reconciliation)
        .where(reconciliation.c.id == report_id)
        .values(
            finished_at=utc_now(), tuples_checked=tuples_checked, repairs=repairs, errors=errors
        )
    )


async def latest_reconciliation(session: AsyncSession) -> Row[Any] | None:
    """The most recently started reconciliation."""
    query = select(reconciliation).order_by(reconciliation.c.id.desc()).limit(1)
    return (await session.execute(query)).first()
