"""API models of the audit service (the OpenAPI contract)."""

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from teamkit.events.common import RequestStatus

T = TypeVar("T")

MAX_PAGE = 500
DEFAULT_PAGE = 50


class Page(BaseModel, Generic[T]):
    """One page of a keyset-paginated list; pass `next_cursor` as `cursor` for the next."""

    items: list[T]
    next_cursor: str | None = Field(description="Opaque; null on the last page.")


class RequestFilters(BaseModel):
    """Filters of the request search, the CSV export and the statistics."""

    model_config = ConfigDict(frozen=True)

    status: tuple[RequestStatus, ...] = ()
    requester: str | None = None
    approver: str | None = None
    account: str | None = None
    permission_set: str | None = None
    ticket: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


class Decision(BaseModel):
    """One approver's approval or rejection."""

    username: str
    email: str | None
    decision: Literal["approved", "rejected"]
    comment: str | None
    at: datetime


class StepError(BaseModel):
    """An AWS error that moved the request to `error`."""

    type: str
    code: str
    message: str
    at: datetime


class AuditRequest(BaseModel):
    """Everything the trail says about one request."""

    request_id: UUID
    status: RequestStatus | None = Field(description="Null until a status-bearing event arrives.")
    requester_id: str | None
    requester_username: str | None
    requester_email: str | None
    account_id: str | None
    account_name: str | None
    permission_set_arn: str | None
    permission_set_name: str | None
    session_duration_minutes: int | None
    start: datetime | None
    end: datetime | None
    duration_minutes: int | None
    justification: str | None
    ticket: str | None
    approval_required: bool | None
    approvals_needed: int | None
    auto_approved: bool
    eligible_approvers: list[dict[str, Any]]
    decisions: list[Decision]
    submitted_at: datetime | None
    approved_at: datetime | None
    rejected_at: datetime | None
    cancelled_at: datetime | None
    expired_at: datetime | None
    scheduled_at: datetime | None
    granted_at: datetime | None
    ended_at: datetime | None
    revoke_requested_at: datetime | None
    errored_at: datetime | None
    cancelled_by: str | None
    cancel_comment: str | None
    revoked_by: str | None
    revoke_role: str | None
    revoke_comment: str | None
    end_reason: str | None
    errors: list[StepError]
    created_at: datetime
    updated_at: datetime
    event_count: int


class TrailEvent(BaseModel):
    """One row of the trail: the event as received, its place and its hash."""

    position: int
    event_id: str
    type: str
    version: int
    source: str
    subject: str
    time: datetime | None
    recorded_at: datetime
    topic: str
    known: bool = Field(description="False when no catalogue class matched (stored raw).")
    flag: str | None = Field(description="Why the event is flagged (unknown type, bad payload).")
    data: Any = Field(description="The event's `data` as received.")
    hash: str = Field(description="Hex sha256(prev_hash || canonical JSON of the event).")


class Timeline(BaseModel):
    """One request's projection and every trail event about it, in trail order."""

    request: AuditRequest
    events: list[TrailEvent]
    truncated: bool = Field(description="True when more events exist than were returned.")


class ChainBreakOut(BaseModel):
    """The first position where the stored chain differs from the recomputed one."""

    position: int
    reason: str
    detail: str
    event_id: str | None


class Verification(BaseModel):
    """Result of re-computing the whole chain."""

    ok: bool
    count: int = Field(description="Rows verified before the first break (all rows when ok).")
    head_position: int | None
    head_hash: str | None
    first_break: ChainBreakOut | None
    checkpoint: dict[str, Any] | None = Field(
        description="Signed {count, head_hash, issued_at} when a checkpoint key is configured."
    )
    elapsed_ms: int


class StatusCount(BaseModel):
    """Requests per status inside one group."""

    total: int
    by_status: dict[str, int]


class GroupStats(StatusCount):
    """Counts of one account or one user."""

    key: str
    name: str | None = None


class Stats(BaseModel):
    """Monitoring figures over the requests created in a time range."""

    created_from: datetime | None
    created_to: datetime | None
    total: int
    by_status: dict[str, int]
    approved: int
    rejected: int
    expired: int
    approval_rate: float | None = Field(
        description="approved / (approved + rejected + expired); null when none was decided."
    )
    approval_wait_p50_seconds: float | None
    approval_wait_p90_seconds: float | None
    per_account: list[GroupStats]
    per_user: list[GroupStats]


class ActivityEvent(BaseModel):
    """One CloudTrail event of the requester in the request's account and window."""

    event_id: str
    event_name: str
    event_source: str
    event_time: datetime
    username: str | None
    account_id: str | None
    aws_region: str | None
    source_ip: str | None
    read_only: bool | None
    error_code: str | None


class Activity(BaseModel):
    """What the requester did in the account during the window (plus the grace period)."""

    request_id: UUID
    backend: Literal["lookup_events", "lake"]
    username: str
    account_id: str
    window_start: datetime
    window_end: datetime
    items: list[ActivityEvent]
    truncated: bool = Field(description="True when AUDIT_ACTIVITY_MAX_EVENTS cut the list.")
