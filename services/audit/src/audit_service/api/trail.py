"""`/v1/audit/events` (the raw trail) and `/v1/audit/verify` (integrity of the chain)."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from audit_service import service
from audit_service.dependencies import (
    PAGE_PARAMS,
    CursorQuery,
    EngineDep,
    LimitQuery,
    ReaderPrincipal,
    SessionDep,
    SettingsDep,
    SignerDep,
    check_range,
    only_params,
)
from audit_service.errors import InvalidQuery
from audit_service.schemas import DEFAULT_PAGE, Page, TrailEvent, Verification

router = APIRouter(prefix="/v1/audit", tags=["audit"])

_READ_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid bearer token."},
    403: {"description": "Not an auditor (admins are not auditors unless in both groups)."},
    422: {"description": "Unknown parameter, bad range, cursor or page size."},
}


@router.get(
    "/events",
    operation_id="list_audit_events",
    summary="The raw trail",
    response_model=Page[TrailEvent],
    responses=_READ_PROBLEMS,
    dependencies=[
        Depends(only_params("type", "source", "subject", "flagged", "from", "to", *PAGE_PARAMS))
    ],
)
async def list_events(
    _: ReaderPrincipal,
    session: SessionDep,
    type_: Annotated[
        str | None,
        Query(alias="type", max_length=255, description="Event type, e.g. access.ended."),
    ] = None,
    source: Annotated[str | None, Query(max_length=100, description="Producing service.")] = None,
    subject: Annotated[
        str | None, Query(max_length=255, description="Aggregate id (request or policy id).")
    ] = None,
    flagged: Annotated[
        bool | None, Query(description="true: only events stored raw and flagged.")
    ] = None,
    time_from: Annotated[
        datetime | None, Query(alias="from", description="Event time at or after (RFC 3339).")
    ] = None,
    time_to: Annotated[
        datetime | None, Query(alias="to", description="Event time before (RFC 3339).")
    ] = None,
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
) -> Page[TrailEvent]:
    """Trail rows in append order, with their hashes; unknown events appear flagged."""
    check_range(time_from, time_to, names="from/to")
    return await service.list_events(
        session,
        type_=type_,
        source=source,
        subject=subject,
        flagged=flagged,
        time_from=time_from,
        time_to=time_to,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/verify",
    operation_id="verify_audit_chain",
    summary="Verify the hash chain",
    response_model=Verification,
    responses=_READ_PROBLEMS,
    dependencies=[Depends(only_params("checkpoint_count", "checkpoint_hash"))],
)
async def verify(
    _: ReaderPrincipal,
    engine: EngineDep,
    settings: SettingsDep,
    signer: SignerDep,
    checkpoint_count: Annotated[
        int | None, Query(ge=1, description="`count` of a checkpoint kept elsewhere.")
    ] = None,
    checkpoint_hash: Annotated[
        str | None,
        Query(pattern="^[0-9a-f]{64}$", description="`head_hash` of that checkpoint (hex)."),
    ] = None,
) -> Verification:
    """Re-compute every hash from the first row (streaming), and report the first break.

    When the chain is intact the answer carries a checkpoint (row count, latest hash, time),
    signed when a checkpoint key is configured, for operators to keep outside this database.
    Pass a kept checkpoint's `count` and `head_hash` back to check that the trail still holds
    exactly those rows (a rewrite from some row on, or a cut at the end, is then found).
    """
    if (checkpoint_count is None) != (checkpoint_hash is None):
        raise InvalidQuery("give checkpoint_count and checkpoint_hash together, or neither")
    checkpoint = (
        (checkpoint_count, bytes.fromhex(checkpoint_hash))
        if checkpoint_count is not None and checkpoint_hash is not None
        else None
    )
    return await service.verify_chain(
        engine,
        batch=settings.STREAM_BATCH_ROWS,
        signer=signer,
        timeout_ms=settings.STREAM_STATEMENT_TIMEOUT_MS,
        checkpoint=checkpoint,
    )
