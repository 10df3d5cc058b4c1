"""Every query of the audit service. Repositories never commit: use cases own transactions."""

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    and_,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from audit_service.models import audit_event, audit_request
from audit_service.schemas import RequestFilters

AnyRow: TypeAlias = Row[*tuple[Any, ...]]

# The one advisory lock that serialises appends to the chain (any replica, any transaction).
TRAIL_LOCK_KEY = 0x41554449545F5452  # "AUDIT_TR"


# -- trail ------------------------------------------------------------------------------------


async def lock_trail(session: AsyncSession) -> None:
    """Hold the append lock until the transaction ends, so positions and hashes never race."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": TRAIL_LOCK_KEY})


async def chain_head(session: AsyncSession) -> tuple[int, bytes] | None:
    """(position, hash) of the last row, or None for an empty trail."""
    row = (
        await session.execute(
            select(audit_event.c.position, audit_event.c.hash)
            .order_by(audit_event.c.position.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else (int(row.position), bytes(row.hash))


async def insert_event(session: AsyncSession, values: dict[str, Any]) -> None:
    """Append one row to the trail."""
    await session.execute(audit_event.insert().values(**values))


async def subject_events(session: AsyncSession, subject: str, *, limit: int) -> Sequence[AnyRow]:
    """Up to `limit` trail rows of one subject, in position order."""
    result = await session.execute(
        select(audit_event)
        .where(audit_event.c.subject == subject)
        .order_by(audit_event.c.position)
        .limit(limit)
    )
    return result.all()


async def known_subject_bodies(
    session: AsyncSession, subject: str, *, limit: int
) -> Sequence[AnyRow]:
    """(position, body) of the catalogue events of one subject, for rebuilding its projection."""
    result = await session.execute(
        select(audit_event.c.position, audit_event.c.body)
        .where(audit_event.c.subject == subject, audit_event.c.known.is_(True))
        .order_by(audit_event.c.position)
        .limit(limit)
    )
    return result.all()


async def stream_chain(
    conn: AsyncConnection, *, batch: int, timeout_ms: int
) -> AsyncIterator[Sequence[AnyRow]]:
    """Every trail row in position order, `batch` rows per fetch (server-side cursor)."""
    # A long read of the whole chain outlives the default statement timeout.
    await conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
    stmt = select(
        audit_event.c.position,
        audit_event.c.event_id,
        audit_event.c.type,
        audit_event.c.subject,
        audit_event.c.body,
        audit_event.c.prev_hash,
        audit_event.c.hash,
    ).order_by(audit_event.c.position)
    result = await conn.stream(stmt.execution_options(yield_per=batch))
    async for partition in result.partitions():
        yield partition


async def list_events(
    session: AsyncSession,
    *,
    type_: str | None,
    source: str | None,
    subject: str | None,
    flagged: bool | None,
    time_from: datetime | None,
    time_to: datetime | None,
    after_position: int | None,
    limit: int,
) -> Sequence[AnyRow]:
    """Trail rows matching the filters, in position order after `after_position`."""
    conditions: list[ColumnElement[bool]] = []
    if type_ is not None:
        conditions.append(audit_event.c.type == type_)
    if source is not None:
        conditions.append(audit_event.c.source == source)
    if subject is not None:
        conditions.append(audit_event.c.subject == subject)
    if flagged is not None:
        conditions.append(
            audit_event.c.flag.is_not(None) if flagged else audit_event.c.flag.is_(None)
        )
    if time_from is not None:
        conditions.append(audit_event.c.event_time >= time_from)
    if time_to is not None:
        conditions.append(audit_event.c.event_time < time_to)
    if after_position is not None:
        conditions.append(audit_event.c.position > after_position)
    result = await session.execute(
        select(audit_event).where(*conditions).order_by(audit_event.c.position).limit(limit)
    )
    return result.all()


# -- projection -------------------------------------------------------------------------------


async def upsert_request(session: AsyncSession, values: dict[str, Any]) -> None:
    """Insert or replace the projection row of one request."""
    stmt = pg_insert(audit_request).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[audit_request.c.request_id],
        set_={k: stmt.excluded[k] for k in values if k != "request_id"},
    )
    await session.execute(stmt)


async def get_request(session: AsyncSession, request_id: UUID) -> AnyRow | None:
    """The projection row of one request."""
    result = await session.execute(
        select(audit_request).where(audit_request.c.request_id == request_id)
    )
    return result.first()


def _request_conditions(filters: RequestFilters) -> list[ColumnElement[bool]]:
    r = audit_request.c
    conditions: list[ColumnElement[bool]] = []
    if filters.status:
        conditions.append(r.status.in_([s.value for s in filters.status]))
    if filters.requester is not None:
        conditions.append(
            or_(r.requester_username == filters.requester, r.requester_email == filters.requester)
        )
    if filters.approver is not None:
        conditions.append(r.approver_usernames.contains([filters.approver]))
    if filters.account is not None:
        conditions.append(or_(r.account_id == filters.account, r.account_name == filters.account))
    if filters.permission_set is not None:
        conditions.append(
            or_(
                r.permission_set_name == filters.permission_set,
                r.permission_set_arn == filters.permission_set,
            )
        )
    if filters.ticket is not None:
        conditions.append(r.ticket == filters.ticket)
    if filters.created_from is not None:
        conditions.append(r.created_at >= filters.created_from)
    if filters.created_to is not None:
        conditions.append(r.created_at < filters.created_to)
    return conditions


async def search_requests(
    session: AsyncSession,
    filters: RequestFilters,
    *,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> Sequence[AnyRow]:
    """Newest first by (created_at, request_id), strictly after the keyset `before`."""
    r = audit_request.c
    conditions = _request_conditions(filters)
    if before is not None:
        conditions.append(
            tuple_(r.created_at, r.request_id) < tuple_(literal(before[0]), literal(before[1]))
        )
    result = await session.execute(
        select(audit_request)
        .where(*conditions)
        .order_by(r.created_at.desc(), r.request_id.desc())
        .limit(limit)
    )
    return result.all()


# -- statistics -------------------------------------------------------------------------------


async def request_totals(session: AsyncSession, filters: RequestFilters) -> AnyRow:
    """Totals, decisions and approval-wait percentiles over the matching requests."""
    r = audit_request.c
    wait = func.extract("epoch", r.approved_at - r.submitted_at)
    waited = and_(
        r.approved_at.is_not(None), r.submitted_at.is_not(None), r.auto_approved.is_(False)
    )
    stmt = select(
        func.count().label("total"),
        func.count().filter(r.approved_at.is_not(None)).label("approved"),
        func.count().filter(r.rejected_at.is_not(None)).label("rejected"),
        func.count().filter(r.expired_at.is_not(None)).label("expired"),
        func.percentile_cont(0.5).within_group(wait).filter(waited).label("p50"),
        func.percentile_cont(0.9).within_group(wait).filter(waited).label("p90"),
    ).where(*_request_conditions(filters))
    return (await session.execute(stmt)).one()


async def counts_by(
    session: AsyncSession, filters: RequestFilters, *, group: str, top: int
) -> Sequence[AnyRow]:
    """(key, name, status, count) of the `top` largest groups: `account` or `user`."""
    r = audit_request.c
    key, name = (
        (r.account_id, r.account_name)
        if group == "account"
        else (r.requester_username, r.requester_email)
    )
    conditions = _request_conditions(filters)
    biggest = (
        select(key.label("key"))
        .where(*conditions, key.is_not(None))
        .group_by(key)
        .order_by(func.count().desc(), key)
        .limit(top)
        .subquery()
    )
    stmt = (
        select(key.label("key"), func.max(name).label("name"), r.status, func.count().label("n"))
        .where(*conditions, key.in_(select(biggest.c.key)))
        .group_by(key, r.status)
        .order_by(key)
    )
    return (await session.execute(stmt)).all()


async def status_counts(session: AsyncSession, filters: RequestFilters) -> Sequence[AnyRow]:
    """(status, count) over the matching requests."""
    r = audit_request.c
    stmt = (
        select(r.status, func.count().label("n"))
        .where(*_request_conditions(filters))
        .group_by(r.status)
    )
    return (await session.execute(stmt)).all()


# -- CSV export (COPY) ------------------------------------------------------------------------


def _iso(column: str) -> str:
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


def _iso_duration(minutes: str) -> str:
    """ISO 8601 duration of a minute count, as Identity Center writes SessionDuration (PT1H)."""
    return (
        f"CASE WHEN {minutes} % 60 = 0 THEN 'PT' || ({minutes} / 60) || 'H' "
        f"WHEN {minutes} < 60 THEN 'PT' || {minutes} || 'M' "
        f"ELSE 'PT' || ({minutes} / 60) || 'H' || ({minutes} % 60) || 'M' END"
    )


def _cell(column: str) -> str:
    """A text column a person or another service wrote, formula-neutralised (OWASP).

    Inline rather than a SQL function: PostgreSQL evaluates this per cell of a million rows.
    """
    return f"CASE WHEN {column} ~ '^[=+\\-@\\t\\r]' THEN '''' || {column} ELSE {column} END"


def _csv_expressions(team_status: bool) -> list[tuple[str, str]]:
    """(CSV column, SQL expression) of the export; values we generate need no neutralising."""
    status = (
        "CASE status WHEN 'in_progress' THEN 'in progress' ELSE status END"
        if team_status
        else "status"
    )
    revoked_at = "CASE WHEN end_reason = 'revoked' THEN ended_at END"
    return [
        ("id", "request_id"),
        ("email", _cell("requester_email")),
        ("accountId", _cell("account_id")),
        ("accountName", _cell("account_name")),
        ("role", _cell("permission_set_name")),
        ("roleId", _cell("permission_set_arn")),
        ("startTime", _iso("start_at")),
        ("duration", "trim_scale(duration_minutes / 60.0)"),
        ("justification", _cell("justification")),
        ("status", status),
        ("comment", _cell("decision_comments")),
        ("approver", _cell("decision_approvers")),
        ("approvers", _cell("eligible_approver_list")),
        ("revoker", _cell("coalesce(revoked_by_email, revoked_by)")),
        ("endTime", _iso("end_at")),
        ("ticketNo", _cell("ticket")),
        ("revokeComment", _cell("revoke_comment")),
        ("session_duration", _iso_duration("session_duration_minutes")),
        ("createdAt", _iso("created_at")),
        ("updatedAt", _iso("updated_at")),
        ("username", _cell("requester_username")),
        ("durationMinutes", "duration_minutes"),
        ("approvalsNeeded", "approvals_needed"),
        ("submittedAt", _iso("submitted_at")),
        ("approvedAt", _iso("approved_at")),
        ("rejectedAt", _iso("rejected_at")),
        ("cancelledAt", _iso("cancelled_at")),
        ("expiredAt", _iso("expired_at")),
        ("scheduledAt", _iso("scheduled_at")),
        ("grantedAt", _iso("granted_at")),
        ("endedAt", _iso("ended_at")),
        ("revokedAt", _iso(revoked_at)),
        ("endReason", "end_reason"),
        (
            "accessMinutes",
            "greatest(0, round(extract(epoch FROM ended_at - granted_at) / 60))::bigint",
        ),
        ("error", _cell("error_summary")),
    ]


CSV_COLUMNS = tuple(name for name, _ in _csv_expressions(False))


async def copy_requests_csv(
    conn: AsyncConnection,
    filters: RequestFilters,
    *,
    team_status: bool,
    sink: Callable[[bytearray], Awaitable[None]],
    timeout_ms: int,
) -> None:
    """Stream the matching requests as CSV (header first) into `sink`, via PostgreSQL COPY.

    Text cells people or services wrote are formula-neutralised. asyncpg pauses reading
    while `sink` is busy, so a slow client holds back PostgreSQL instead of filling memory.
    """
    r = audit_request.c
    stmt: Select[*tuple[Any, ...]] = (
        select(*[literal_column(expr).label(name) for name, expr in _csv_expressions(team_status)])
        .select_from(audit_request)
        .where(*_request_conditions(filters))
        .order_by(r.created_at.desc(), r.request_id.desc())
    )
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    args = [compiled.params[name] for name in compiled.positiontup or ()]
    await conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None  # noqa: S101 - an open pooled connection has its driver
    await driver.copy_from_query(str(compiled), *args, output=sink, format="csv", header=True)
