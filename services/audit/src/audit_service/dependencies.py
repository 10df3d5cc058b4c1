"""FastAPI dependencies of the audit API: sessions, readers, and strict query parameters."""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from audit_service import access
from audit_service.activity import ActivityBackend
from audit_service.chain import Signer
from audit_service.config import Settings
from audit_service.errors import AuditForbidden, InvalidQuery
from audit_service.schemas import MAX_PAGE, RequestFilters
from teamkit.auth import CurrentPrincipal, Principal
from teamkit.events.common import RequestStatus


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session; the use case opens its transaction."""
    async with request.state.sessionmaker() as s:
        yield s


def engine(request: Request) -> AsyncEngine:
    """The service's engine, for streaming reads that outlive a session."""
    value: AsyncEngine = request.state.engine
    return value


def settings(request: Request) -> Settings:
    """The service's settings."""
    value: Settings = request.state.settings
    return value


def activity_backend(request: Request) -> ActivityBackend:
    """The configured session-activity backend (built in the lifespan)."""
    value: ActivityBackend = request.state.extras["activity_backend"]
    return value


def checkpoint_signer(request: Request) -> Signer | None:
    """The checkpoint signer, when a key is configured."""
    value: Signer | None = request.state.extras.get("checkpoint_signer")
    return value


SessionDep = Annotated[AsyncSession, Depends(session)]
EngineDep = Annotated[AsyncEngine, Depends(engine)]
SettingsDep = Annotated[Settings, Depends(settings)]
BackendDep = Annotated[ActivityBackend, Depends(activity_backend)]
SignerDep = Annotated[Signer | None, Depends(checkpoint_signer)]


async def require_reader(principal: CurrentPrincipal) -> Principal:
    """Auditors and integrations with `team.audit.read`; everyone else, admins included, 403."""
    if access.reads_everything(principal):
        return principal
    if principal.is_admin:
        raise AuditForbidden(
            "admins do not see the audit trail unless they are also auditors (separation of "
            "duties); ask to be added to the auditor group"
        )
    raise AuditForbidden(
        "the audit trail is for auditors (the auditor group) and integrations granted "
        f"{access.AUDIT_SCOPE}"
    )


ReaderPrincipal = Annotated[Principal, Depends(require_reader)]


def only_params(*allowed: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing query parameters not in `allowed`: a typo must not widen a query."""
    names = frozenset(allowed)

    async def check(request: Request) -> None:
        unknown = sorted(set(request.query_params.keys()) - names)
        if unknown:
            raise InvalidQuery(
                f"unknown query parameter(s) {', '.join(unknown)}; "
                f"accepted: {', '.join(sorted(names))}",
                unknown=unknown,
            )

    return check


FILTER_PARAMS = (
    "status",
    "requester",
    "approver",
    "account",
    "permission_set",
    "ticket",
    "created_from",
    "created_to",
)
PAGE_PARAMS = ("limit", "cursor")


def check_range(start: datetime | None, end: datetime | None, *, names: str) -> None:
    """Refuse naive times and empty or inverted ranges."""
    for value in (start, end):
        if value is not None and value.tzinfo is None:
            raise InvalidQuery(
                f"{names}: times need an offset (RFC 3339), e.g. 2026-12-01T00:00:00Z"
            )
    if start is not None and end is not None and start >= end:
        raise InvalidQuery(f"{names}: the start must be before the end (the range is [start, end))")


async def request_filters(
    status: Annotated[
        list[RequestStatus] | None,
        Query(description="Repeat for several statuses (any of them matches).", max_length=10),
    ] = None,
    requester: Annotated[
        str | None, Query(max_length=320, description="User name or email of the requester.")
    ] = None,
    approver: Annotated[
        str | None,
        Query(max_length=255, description="User name of an approver (eligible or who decided)."),
    ] = None,
    account: Annotated[str | None, Query(max_length=255, description="Account id or name.")] = None,
    permission_set: Annotated[
        str | None, Query(max_length=2048, description="Permission set name or ARN.")
    ] = None,
    ticket: Annotated[str | None, Query(max_length=255)] = None,
    created_from: Annotated[
        datetime | None, Query(description="Submitted at or after (RFC 3339 with offset).")
    ] = None,
    created_to: Annotated[
        datetime | None, Query(description="Submitted before (RFC 3339 with offset).")
    ] = None,
) -> RequestFilters:
    """The request filters of the query string, validated."""
    check_range(created_from, created_to, names="created_from/created_to")
    return RequestFilters(
        status=tuple(status or ()),
        requester=requester,
        approver=approver,
        account=account,
        permission_set=permission_set,
        ticket=ticket,
        created_from=created_from,
        created_to=created_to,
    )


FiltersDep = Annotated[RequestFilters, Depends(request_filters)]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, 1..{MAX_PAGE}.")]
CursorQuery = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
]
