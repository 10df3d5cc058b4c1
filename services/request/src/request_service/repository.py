"""Every query of the request service. Repositories never commit: the use case does."""

from collections.abc import Sequence
from datetime import datetime
from typing import cast
from uuid import UUID

from sqlalchemy import Select, Table, and_, exists, func, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from request_service.models import AccessRequest, RequestDecision
from request_service.state_machine import ACTIVE
from teamkit import outbox
from teamkit.events.common import RequestStatus
from teamkit.events.envelope import Event
from teamkit.messaging_schema import outbox_message

_ACCESS_REQUEST = cast(Table, AccessRequest.__table__)

#: Keyset position: (created_at, id) of the last row of the previous page.
Position = tuple[datetime, UUID]


async def get_request(session: AsyncSession, request_id: UUID) -> AccessRequest | None:
    """The request, without locking it."""
    return await session.get(AccessRequest, request_id)


async def lock_request(session: AsyncSession, request_id: UUID) -> AccessRequest | None:
    """The request, locked (`FOR UPDATE`) until the transaction ends; re-read, never cached.

    Every status move goes through this lock, so two deciders (or a decider and the expiry)
    are serialised and the second sees the first one's outcome.
    """
    result = await session.execute(
        select(AccessRequest)
        .where(AccessRequest.id == request_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def decisions_of(
    session: AsyncSession, request_ids: Sequence[UUID]
) -> dict[UUID, list[RequestDecision]]:
    """The decisions of each request, oldest first."""
    grouped: dict[UUID, list[RequestDecision]] = {rid: [] for rid in request_ids}
    if not request_ids:
        return grouped
    result = await session.execute(
        select(RequestDecision)
        .where(RequestDecision.request_id.in_(request_ids))
        .order_by(RequestDecision.id)
    )
    for decision in result.scalars():
        grouped[decision.request_id].append(decision)
    return grouped


async def find_by_idempotency_key(
    session: AsyncSession, *, owner: str, key: str
) -> AccessRequest | None:
    """The request `owner` submitted earlier with this Idempotency-Key, if any."""
    result = await session.execute(
        select(AccessRequest).where(
            AccessRequest.idempotency_owner == owner, AccessRequest.idempotency_key == key
        )
    )
    return result.scalar_one_or_none()


async def find_pending_duplicate(
    session: AsyncSession, *, requester_user_id: str, account_id: str, permission_set_arn: str
) -> AccessRequest | None:
    """The pending request of this user for this account and permission set, if any."""
    result = await session.execute(
        select(AccessRequest).where(
            AccessRequest.requester_user_id == requester_user_id,
            AccessRequest.account_id == account_id,
            AccessRequest.permission_set_arn == permission_set_arn,
            AccessRequest.status == RequestStatus.PENDING.value,
        )
    )
    return result.scalar_one_or_none()


async def active_grants_and_earlier(
    session: AsyncSession,
    *,
    requester_username: str,
    now: datetime,
    idempotency: tuple[str, str] | None,
) -> tuple[int, AccessRequest | None]:
    """What a submission checks before asking the policy service, in one round trip.

    The user's grants approved, scheduled or running whose window has not ended, and, when an
    `(owner, key)` is given, the request that owner submitted earlier with that Idempotency-Key
    (read by id only when there is one).
    """
    active = (
        select(func.count())
        .select_from(AccessRequest)
        .where(
            AccessRequest.requester_username == requester_username,
            AccessRequest.status.in_([status.value for status in ACTIVE]),
            AccessRequest.end_at > now,
        )
        .scalar_subquery()
    )
    if idempotency is None:
        return int(await session.scalar(select(active)) or 0), None
    owner, key = idempotency
    earlier_id = (
        select(AccessRequest.id)
        .where(AccessRequest.idempotency_owner == owner, AccessRequest.idempotency_key == key)
        .scalar_subquery()
    )
    count, found = (await session.execute(select(active, earlier_id))).one()
    earlier = None if found is None else await session.get(AccessRequest, found)
    return int(count or 0), earlier


async def insert_request(
    session: AsyncSession, request: AccessRequest, events: Sequence[Event]
) -> None:
    """Insert a new request and stage its events in the outbox, in one statement.

    `WITH new_request AS (INSERT INTO access_request ...) INSERT INTO outbox_message ...`:
    PostgreSQL runs a data-modifying CTE to completion whether or not it is referenced, so the
    request row and its outbox rows are written (or refused by a unique index, raising
    `IntegrityError`) together, without the ORM unit of work. The rows staged are those
    `teamkit.outbox.add` would stage (`outbox.staged`). `request` stays transient (not in the
    session).
    """
    values = {column.key: getattr(request, column.key) for column in _ACCESS_REQUEST.columns}
    new_request = insert(_ACCESS_REQUEST).values(values).cte("new_request")
    rows = [outbox.staged(event)[1] for event in events]
    staged = insert(outbox_message).values(rows)
    await session.execute(staged.add_cte(new_request))


async def add_decision(session: AsyncSession, decision: RequestDecision) -> None:
    """Insert one approver's decision (flushed)."""
    session.add(decision)
    await session.flush()


async def list_requests(
    session: AsyncSession,
    *,
    requester_username: str | None,
    client_id: str | None,
    statuses: Sequence[RequestStatus],
    account_id: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    after: Position | None,
    limit: int,
) -> list[AccessRequest]:
    """A page of a requester's (or an integration's) requests, newest first."""
    query = select(AccessRequest)
    if requester_username is not None:
        query = query.where(AccessRequest.requester_username == requester_username)
    if client_id is not None:
        query = query.where(AccessRequest.requested_by_client_id == client_id)
    if statuses:
        query = query.where(AccessRequest.status.in_([status.value for status in statuses]))
    if account_id is not None:
        query = query.where(AccessRequest.account_id == account_id)
    if created_after is not None:
        query = query.where(AccessRequest.created_at >= created_after)
    if created_before is not None:
        query = query.where(AccessRequest.created_at < created_before)
    return await _page(session, query, after=after, limit=limit)


async def list_inbox(
    session: AsyncSession,
    *,
    approver_username: str,
    decided: bool,
    after: Position | None,
    limit: int,
) -> list[AccessRequest]:
    """Requests waiting for this approver (or, with `decided`, those they decided), newest first."""
    mine = exists().where(
        and_(
            RequestDecision.request_id == AccessRequest.id,
            RequestDecision.approver_username == approver_username,
        )
    )
    query = select(AccessRequest)
    if decided:
        query = query.where(mine)
    else:
        query = query.where(
            AccessRequest.status == RequestStatus.PENDING.value,
            AccessRequest.approver_usernames.contains([approver_username]),
            AccessRequest.requester_username != approver_username,
            ~mine,
        )
    return await _page(session, query, after=after, limit=limit)


async def _page(
    session: AsyncSession,
    query: Select[AccessRequest],
    *,
    after: Position | None,
    limit: int,
) -> list[AccessRequest]:
    if after is not None:
        query = query.where(tuple_(AccessRequest.created_at, AccessRequest.id) < tuple_(*after))
    query = query.order_by(AccessRequest.created_at.desc(), AccessRequest.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())
