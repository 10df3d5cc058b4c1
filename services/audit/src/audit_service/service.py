"""Use cases of the audit service: one function, one transaction (or one streaming read)."""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from audit_service import access, chain, csv_export, projection, repository
from audit_service.activity import ActivityBackend, ActivityQuery
from audit_service.errors import (
    ActivityNotReady,
    AuditForbidden,
    RequestNotFound,
)
from audit_service.schemas import (
    Activity,
    AuditRequest,
    ChainBreakOut,
    GroupStats,
    Page,
    RequestFilters,
    Stats,
    Timeline,
    TrailEvent,
    Verification,
)
from teamkit.auth import Principal
from teamkit.clock import utc_now
from teamkit.events import Event, UnknownEventType, parse_event
from teamkit.kafka import Delivery
from teamkit.pagination import (
    InvalidCursor,
    decode_cursor,
    decode_time_id,
    encode_cursor,
    encode_time_id,
)

log = structlog.get_logger(__name__)

# Event types that change a request's projection (their subject is the request id).
PROJECTED_TYPES = frozenset(
    {
        "request.submitted",
        "request.approval_recorded",
        "request.approved",
        "request.rejected",
        "request.cancelled",
        "request.expired",
        "request.revoke_requested",
        "request.status_changed",
        "grant.scheduled",
        "grant.provisioning",
        "access.granted",
        "grant.failed",
        "access.ended",
        "revoke.failed",
        "approval.timed_out",
    }
)
# A request has a handful of events; the bound only guards against a runaway producer.
MAX_EVENTS_PER_REQUEST = 1000
MAX_FLAG_CHARS = 1000
# COPY chunks held between PostgreSQL and a slow client (each is at most a few rows).
EXPORT_QUEUE_CHUNKS = 4


# -- recording --------------------------------------------------------------------------------


def _classify(delivery: Delivery) -> tuple[Event | None, str | None]:
    """The typed event, or None and why it is flagged."""
    if delivery.event is not None:
        return delivery.event, None
    try:
        return parse_event(delivery.payload), None
    except UnknownEventType:
        tag = f"{delivery.head.type}@{delivery.head.version}"
        return None, f"unknown event type {tag}: stored raw"
    except ValidationError as exc:
        tag = f"{delivery.head.type}@{delivery.head.version}"
        return None, f"payload does not match {tag}: {exc}"[:MAX_FLAG_CHARS]


async def record_delivery(session: AsyncSession, delivery: Delivery) -> int:
    """Append one consumed record to the chain and refresh its request's projection.

    Runs in the consumer's transaction (with the inbox claim). Returns the trail position.
    """
    event, flag = _classify(delivery)
    body = chain.canonical_json(delivery.payload)
    await repository.lock_trail(session)
    head = await repository.chain_head(session)
    position, prev_hash = (1, chain.GENESIS_HASH) if head is None else (head[0] + 1, head[1])
    head_info = delivery.head
    await repository.insert_event(
        session,
        {
            "position": position,
            "event_id": str(head_info.id),
            "type": head_info.type,
            "version": head_info.version,
            "source": head_info.source,
            "subject": head_info.subject,
            "event_time": head_info.time,
            "recorded_at": utc_now(),
            "topic": delivery.topic,
            "partition": delivery.partition,
            "offset": delivery.offset,
            "known": event is not None,
            "flag": flag,
            "body": body,
            "prev_hash": prev_hash,
            "hash": chain.chain_hash(prev_hash, body),
        },
    )
    if flag is not None:
        log.warning("audit.event_flagged", event_id=str(head_info.id), flag=flag[:200])
    if event is not None and event.type in PROJECTED_TYPES:
        try:
            async with session.begin_nested():
                await refresh_projection(session, subject=event.subject)
        except Exception:  # the trail row must commit; the projection can be rebuilt
            log.exception("audit.projection_failed", event_id=str(head_info.id))
    return position


async def refresh_projection(session: AsyncSession, *, subject: str) -> None:
    """Rebuild one request's projection row from all its catalogue events in the trail."""
    try:
        request_id = UUID(subject)
    except ValueError:
        log.warning("audit.subject_not_a_request", subject=subject[:100])
        return
    rows = await repository.known_subject_bodies(session, subject, limit=MAX_EVENTS_PER_REQUEST)
    events: list[tuple[int, Event]] = []
    for row in rows:
        event = parse_event(json.loads(row.body))
        if event.type in PROJECTED_TYPES:
            events.append((int(row.position), event))
    if not events:
        return
    view = projection.fold(subject, events)
    await repository.upsert_request(session, _projection_values(request_id, view))


def _projection_values(request_id: UUID, view: projection.RequestView) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "created_at": view.created_at,
        "updated_at": view.last_event_at or view.created_at,
        "status": view.status.value if view.status is not None else None,
        "requester_id": view.requester_id,
        "requester_username": view.requester_username,
        "requester_email": view.requester_email,
        "account_id": view.account_id,
        "account_name": view.account_name,
        "permission_set_arn": view.permission_set_arn,
        "permission_set_name": view.permission_set_name,
        "session_duration_minutes": view.session_duration_minutes,
        "start_at": view.start_at,
        "end_at": view.end_at,
        "duration_minutes": view.duration_minutes,
        "justification": view.justification,
        "ticket": view.ticket,
        "approval_required": view.approval_required,
        "approvals_needed": view.approvals_needed,
        "auto_approved": view.auto_approved,
        "eligible_approvers": view.eligible_approvers,
        "decisions": [d.as_json() for d in view.decisions],
        "approver_usernames": view.approver_usernames,
        "submitted_at": view.submitted_at,
        "approved_at": view.approved_at,
        "rejected_at": view.rejected_at,
        "cancelled_at": view.cancelled_at,
        "expired_at": view.expired_at,
        "scheduled_at": view.scheduled_at,
        "granted_at": view.granted_at,
        "ended_at": view.ended_at,
        "revoke_requested_at": view.revoke_requested_at,
        "errored_at": view.errored_at,
        "cancelled_by": view.cancelled_by,
        "cancel_comment": view.cancel_comment,
        "revoked_by": view.revoked_by,
        "revoked_by_email": view.revoked_by_email,
        "revoke_role": view.revoke_role,
        "revoke_comment": view.revoke_comment,
        "end_reason": view.end_reason,
        "errors": view.errors,
        "decision_comments": _joined(d.comment for d in view.decisions),
        "decision_approvers": _joined(d.email or d.username for d in view.decisions),
        "eligible_approver_list": _joined(
            a.get("email") or a.get("username") for a in view.eligible_approvers
        ),
        "error_summary": _joined(f"{e['code']}: {e['message']}" for e in view.errors),
        "last_event_at": view.last_event_at,
        "event_count": view.event_count,
    }


def _joined(values: Iterable[str | None]) -> str | None:
    """`; `-joined non-empty values, or None: a list cell of the CSV export."""
    return "; ".join(v for v in values if v) or None


# -- cursors ----------------------------------------------------------------------------------


def _position_keyset(cursor: str) -> int:
    (position,) = decode_cursor(cursor, arity=1)
    if not isinstance(position, int):
        raise InvalidCursor
    return position


# -- reading ----------------------------------------------------------------------------------


def to_audit_request(row: Mapping[Any, Any]) -> AuditRequest:
    """The API form of a projection row."""
    values = dict(row)
    values["start"] = values.pop("start_at")
    values["end"] = values.pop("end_at")
    return AuditRequest.model_validate(values)


def _trail_event(row: Mapping[Any, Any]) -> TrailEvent:
    try:
        body = json.loads(row["body"])
    except ValueError:
        body = None
    return TrailEvent(
        position=row["position"],
        event_id=row["event_id"],
        type=row["type"],
        version=row["version"],
        source=row["source"],
        subject=row["subject"],
        time=row["event_time"],
        recorded_at=row["recorded_at"],
        topic=row["topic"],
        known=row["known"],
        flag=row["flag"],
        data=body.get("data") if isinstance(body, dict) else body,
        hash=bytes(row["hash"]).hex(),
    )


async def search_requests(
    session: AsyncSession, *, filters: RequestFilters, cursor: str | None, limit: int
) -> Page[AuditRequest]:
    """One page of matching requests, newest first."""
    before = decode_time_id(cursor) if cursor else None
    async with session.begin():
        rows = await repository.search_requests(session, filters, before=before, limit=limit + 1)
    items = [to_audit_request(row._mapping) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_time_id(last.created_at, last.request_id)
    return Page[AuditRequest](items=items, next_cursor=next_cursor)


async def export_requests_csv(
    engine: AsyncEngine,
    *,
    filters: RequestFilters,
    status_style: csv_export.StatusStyle,
    timeout_ms: int,
) -> AsyncIterator[bytes]:
    """The CSV export as byte chunks, straight from PostgreSQL's COPY, with bounded buffering.

    A producer task runs the COPY into a small queue; when the client reads slowly the queue
    fills, the COPY's sink blocks and asyncpg stops reading from PostgreSQL, so memory stays
    at a few chunks whatever the export size.
    """
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=EXPORT_QUEUE_CHUNKS)

    async def put(chunk: bytes | bytearray) -> None:
        await queue.put(bytes(chunk))  # asyncpg hands out bytearrays; Starlette wants bytes

    async def produce() -> None:
        try:
            async with engine.connect() as conn, conn.begin():
                await repository.copy_requests_csv(
                    conn,
                    filters,
                    team_status=status_style == "team",
                    sink=put,
                    timeout_ms=timeout_ms,
                )
        except Exception as exc:  # handed to the reader of the stream, which raises it
            log.exception("audit.csv_export_failed")
            await queue.put(exc)
            return
        await queue.put(None)

    producer = asyncio.create_task(produce(), name="audit-csv-export")
    try:
        while True:
            chunk = await queue.get()
            if chunk is None:
                return
            if isinstance(chunk, BaseException):
                # Headers are sent already: the truncated body is the only signal left.
                raise chunk
            yield chunk
    finally:
        if not producer.done():
            producer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await producer


async def get_timeline(session: AsyncSession, *, request_id: UUID) -> Timeline:
    """A request's projection and its trail events."""
    async with session.begin():
        row = await repository.get_request(session, request_id)
        if row is None:
            raise RequestNotFound(
                f"No event in the audit trail names request {request_id}. Check the id, or wait "
                "a moment if the request was just submitted."
            )
        events = await repository.subject_events(
            session, str(request_id), limit=MAX_EVENTS_PER_REQUEST + 1
        )
    return Timeline(
        request=to_audit_request(row._mapping),
        events=[_trail_event(e._mapping) for e in events[:MAX_EVENTS_PER_REQUEST]],
        truncated=len(events) > MAX_EVENTS_PER_REQUEST,
    )


async def list_events(
    session: AsyncSession,
    *,
    type_: str | None,
    source: str | None,
    subject: str | None,
    flagged: bool | None,
    time_from: datetime | None,
    time_to: datetime | None,
    cursor: str | None,
    limit: int,
) -> Page[TrailEvent]:
    """One page of the raw trail, in trail order."""
    after = _position_keyset(cursor) if cursor else None
    async with session.begin():
        rows = await repository.list_events(
            session,
            type_=type_,
            source=source,
            subject=subject,
            flagged=flagged,
            time_from=time_from,
            time_to=time_to,
            after_position=after,
            limit=limit + 1,
        )
    items = [_trail_event(row._mapping) for row in rows[:limit]]
    next_cursor = encode_cursor([items[-1].position]) if len(rows) > limit else None
    return Page[TrailEvent](items=items, next_cursor=next_cursor)


async def verify_chain(
    engine: AsyncEngine,
    *,
    batch: int,
    signer: chain.Signer | None,
    timeout_ms: int = 0,
    checkpoint: tuple[int, bytes] | None = None,
) -> Verification:
    """Re-compute the whole chain, streaming; report the first break and a signed checkpoint.

    With `checkpoint` (count, head hash of an earlier checkpoint) the row at that position must
    still carry that hash, and the trail must be at least that long.
    """
    started = time.perf_counter()
    verifier = chain.ChainVerifier(checkpoint)
    async with engine.connect() as conn:
        async for rows in repository.stream_chain(conn, batch=batch, timeout_ms=timeout_ms):
            for row in rows:
                link = chain.StoredLink(
                    position=int(row.position),
                    event_id=row.event_id,
                    prev_hash=bytes(row.prev_hash),
                    hash=bytes(row.hash),
                    body=row.body,
                    derived=(row.event_id, row.type, row.subject),
                )
                if not verifier.feed(link):
                    break
            if verifier.first_break is not None:
                break
    verifier.finish()
    ok = verifier.first_break is None
    head_position = verifier.count or None
    head_hash = verifier.prev_hash.hex() if verifier.count else None
    issued: dict[str, Any] | None = None
    if ok:
        claims = chain.checkpoint_claims(
            count=verifier.count, head_hash=verifier.prev_hash, issued_at=utc_now()
        )
        issued = chain.sign_checkpoint(claims, signer) if signer is not None else claims
    broken = verifier.first_break
    result = Verification(
        ok=ok,
        count=verifier.count,
        head_position=head_position,
        head_hash=head_hash,
        first_break=None
        if broken is None
        else ChainBreakOut(
            position=broken.position,
            reason=broken.reason,
            detail=broken.detail,
            event_id=broken.event_id,
        ),
        checkpoint=issued,
        elapsed_ms=round((time.perf_counter() - started) * 1000),
    )
    log.info("audit.chain_verified", ok=ok, count=verifier.count, elapsed_ms=result.elapsed_ms)
    return result


async def request_stats(session: AsyncSession, *, filters: RequestFilters, top: int) -> Stats:
    """Monitoring figures over the matching requests."""
    async with session.begin():
        totals = await repository.request_totals(session, filters)
        statuses = await repository.status_counts(session, filters)
        accounts = await repository.counts_by(session, filters, group="account", top=top)
        users = await repository.counts_by(session, filters, group="user", top=top)
    decided = totals.approved + totals.rejected + totals.expired
    return Stats(
        created_from=filters.created_from,
        created_to=filters.created_to,
        total=totals.total,
        by_status={str(row.status or "unknown"): row.n for row in statuses},
        approved=totals.approved,
        rejected=totals.rejected,
        expired=totals.expired,
        approval_rate=round(totals.approved / decided, 4) if decided else None,
        approval_wait_p50_seconds=totals.p50,
        approval_wait_p90_seconds=totals.p90,
        per_account=_groups(accounts),
        per_user=_groups(users),
    )


def _groups(rows: Any) -> list[GroupStats]:
    groups: dict[str, GroupStats] = {}
    for row in rows:
        group = groups.setdefault(
            row.key, GroupStats(key=row.key, name=row.name, total=0, by_status={})
        )
        group.total += row.n
        group.by_status[str(row.status or "unknown")] = row.n
    return sorted(groups.values(), key=lambda g: (-g.total, g.key))


async def get_activity(
    session: AsyncSession,
    *,
    request_id: UUID,
    principal: Principal,
    backend: ActivityBackend,
    grace: timedelta,
    max_events: int,
) -> Activity:
    """The requester's CloudTrail activity in the request's account and window (+ grace)."""
    async with session.begin():
        row = await repository.get_request(session, request_id)
    if row is None:
        if not access.reads_everything(principal):
            raise AuditForbidden(
                "only auditors, and the requester and approvers of a request, may read its activity"
            )
        raise RequestNotFound(f"No event in the audit trail names request {request_id}.")
    request = to_audit_request(row._mapping)
    approvers = list(row.approver_usernames or [])
    if not access.reads_activity_of(
        principal, requester=request.requester_username, approvers=approvers
    ):
        raise AuditForbidden(
            "only auditors, and the requester and approvers of this request, may read its activity"
        )
    if request.requester_username is None or request.account_id is None or request.start is None:
        raise ActivityNotReady(
            f"Request {request_id} has no submission snapshot in the trail yet, so its user, "
            "account and window are unknown; retry once request.submitted has been recorded."
        )
    window_start = min(t for t in (request.start, request.granted_at) if t is not None)
    closed = request.ended_at or request.end or request.start
    window_end = min(closed + grace, max(utc_now(), window_start))
    items, truncated = await backend.fetch(
        ActivityQuery(
            username=request.requester_username,
            account_id=request.account_id,
            start=window_start,
            end=window_end,
            max_events=max_events,
        )
    )
    return Activity(
        request_id=request_id,
        backend="lake" if backend.name == "lake" else "lookup_events",
        username=request.requester_username,
        account_id=request.account_id,
        window_start=window_start,
        window_end=window_end,
        items=items,
        truncated=truncated,
    )
