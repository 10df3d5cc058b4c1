"""`/v1/audit/requests`: search, CSV export, timeline and session activity of requests."""

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from audit_service import csv_export, service
from audit_service.dependencies import (
    FILTER_PARAMS,
    PAGE_PARAMS,
    BackendDep,
    CursorQuery,
    EngineDep,
    FiltersDep,
    LimitQuery,
    ReaderPrincipal,
    SessionDep,
    SettingsDep,
    only_params,
)
from audit_service.errors import InvalidQuery
from audit_service.schemas import (
    DEFAULT_PAGE,
    Activity,
    AuditRequest,
    Page,
    RequestFilters,
    Timeline,
)
from teamkit.auth import CurrentPrincipal

router = APIRouter(prefix="/v1/audit", tags=["audit"])

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
_READ_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid bearer token."},
    403: {"description": "Not an auditor (admins are not auditors unless in both groups)."},
    422: {"description": "Unknown parameter, bad range, cursor or page size."},
}
_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV rows."}
}

StatusStyleQuery = Annotated[
    Literal["api", "team"],
    Query(description="`team` spells statuses as TEAM does (`in progress`)."),
]


def _wants_csv(request: Request) -> bool:
    """True when the Accept header prefers text/csv over JSON."""
    accept = request.headers.get("accept", "")
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if "text/csv" not in types:
        return False
    json_at = types.index("application/json") if "application/json" in types else len(types)
    return types.index("text/csv") < json_at


def _csv_response(
    chunks: AsyncIterator[str] | AsyncIterator[bytes], filename: str
) -> StreamingResponse:
    return StreamingResponse(
        chunks,
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _export(
    engine: EngineDep, settings: SettingsDep, filters: RequestFilters, status_style: str
) -> StreamingResponse:
    style: csv_export.StatusStyle = "team" if status_style == "team" else "api"
    chunks = service.export_requests_csv(
        engine,
        filters=filters,
        status_style=style,
        timeout_ms=settings.STREAM_STATEMENT_TIMEOUT_MS,
    )
    return _csv_response(chunks, "audit-requests.csv")


@router.get(
    "/requests",
    operation_id="search_audit_requests",
    summary="Search requests",
    response_model=Page[AuditRequest],
    responses={**_READ_PROBLEMS, **_CSV_RESPONSE},
    dependencies=[Depends(only_params(*FILTER_PARAMS, *PAGE_PARAMS, "status_style"))],
)
async def search_requests(
    request: Request,
    _: ReaderPrincipal,
    session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
    filters: FiltersDep,
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
    status_style: StatusStyleQuery = "api",
) -> Any:
    """Requests newest first, filtered; `Accept: text/csv` streams every match as CSV instead.

    Filters combine with AND; `status` may repeat (any of them). Keyset pagination: pass
    `next_cursor` as `cursor`. With `Accept: text/csv`, `limit` and `cursor` are ignored and the
    whole result is streamed (as `/v1/audit/requests.csv`).
    """
    if _wants_csv(request):
        return _export(engine, settings, filters, status_style)
    if status_style != "api":
        raise InvalidQuery("status_style applies to the CSV export only; drop it or ask for CSV")
    return await service.search_requests(session, filters=filters, cursor=cursor, limit=limit)


@router.get(
    "/requests.csv",
    operation_id="export_audit_requests_csv",
    summary="Export requests as CSV",
    response_class=StreamingResponse,
    responses={**_READ_PROBLEMS, **_CSV_RESPONSE},
    dependencies=[Depends(only_params(*FILTER_PARAMS, "status_style"))],
)
async def export_requests_csv(
    _: ReaderPrincipal,
    engine: EngineDep,
    settings: SettingsDep,
    filters: FiltersDep,
    status_style: StatusStyleQuery = "api",
) -> StreamingResponse:
    """Every matching request as CSV, streamed with constant memory (columns in docs/audit.md).

    Cells a spreadsheet would run as a formula (starting with `= + - @`, tab or CR) are prefixed
    with `'`.
    """
    return _export(engine, settings, filters, status_style)


@router.get(
    "/requests/{request_id}",
    operation_id="get_audit_request_timeline",
    summary="One request's timeline",
    response_model=Timeline,
    responses={**_READ_PROBLEMS, 404: {"description": "No trail event names this request."}},
    dependencies=[Depends(only_params())],
)
async def get_timeline(request_id: UUID, _: ReaderPrincipal, session: SessionDep) -> Timeline:
    """The request's projection and every trail event about it, in trail order."""
    return await service.get_timeline(session, request_id=request_id)


_ACTIVITY_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid bearer token."},
    403: {"description": "Not an auditor, nor the requester or an approver of this request."},
    404: {"description": "No trail event names this request."},
    409: {"description": "No submission snapshot yet: window unknown."},
    503: {"description": "CloudTrail did not answer."},
}


async def _activity(
    request_id: UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    backend: BackendDep,
) -> Activity:
    return await service.get_activity(
        session,
        request_id=request_id,
        principal=principal,
        backend=backend,
        grace=timedelta(minutes=settings.ACTIVITY_GRACE_MINUTES),
        max_events=settings.ACTIVITY_MAX_EVENTS,
    )


@router.get(
    "/requests/{request_id}/activity",
    operation_id="get_audit_request_activity",
    summary="Session activity of one request",
    response_model=Activity,
    responses={**_ACTIVITY_PROBLEMS, **_CSV_RESPONSE},
    dependencies=[Depends(only_params())],
)
async def get_activity(request: Request, activity: Annotated[Activity, Depends(_activity)]) -> Any:
    """CloudTrail events of the requester in the account, from the start to the end + grace.

    Auditors see any request's activity; the requester and the request's approvers see their
    own. `Accept: text/csv` returns the CSV form (as `/activity.csv`).
    """
    if _wants_csv(request):
        return _activity_csv(activity)
    return activity


@router.get(
    "/requests/{request_id}/activity.csv",
    operation_id="export_audit_request_activity_csv",
    summary="Session activity of one request as CSV",
    response_class=StreamingResponse,
    responses={**_ACTIVITY_PROBLEMS, **_CSV_RESPONSE},
    dependencies=[Depends(only_params())],
)
async def get_activity_csv(activity: Annotated[Activity, Depends(_activity)]) -> StreamingResponse:
    """The session activity as CSV (columns in docs/audit.md), formula-neutralised."""
    return _activity_csv(activity)


def _activity_csv(activity: Activity) -> StreamingResponse:
    async def chunks() -> AsyncIterator[str]:
        yield csv_export.render([list(csv_export.ACTIVITY_COLUMNS)])
        yield csv_export.render(csv_export.activity_cells(e) for e in activity.items)

    return _csv_response(chunks(), f"activity-{activity.request_id}.csv")
