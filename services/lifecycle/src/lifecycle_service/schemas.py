"""API models of the lifecycle service (the OpenAPI contract); never table rows."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

GrantState = Literal["scheduled", "active", "ended", "revoked", "cancelled", "error"]


class GrantOut(BaseModel):
    """One grant: a request's window and what lifecycle did about it."""

    model_config = ConfigDict(from_attributes=True)

    request_id: UUID
    principal_id: str = Field(description="Identity Center user id.")
    account_id: str
    permission_set_arn: str
    start: datetime
    end: datetime
    state: GrantState
    assignment_action: str | None = Field(
        description="created | already_assigned while active; the access.ended action after."
    )
    granted_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    error_kind: Literal["grant", "revoke"] | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime


class GrantPage(BaseModel):
    """A page of grants, newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[GrantOut]
    next_cursor: str | None


class TimerOut(BaseModel):
    """A durable timer of the grant."""

    id: int
    kind: Literal["approval_expiry", "start", "end", "revoke"]
    due_at: datetime
    state: Literal["pending", "done", "cancelled"]
    attempts: int
    fired_at: datetime | None
    last_error: str | None


class AwsCallOut(BaseModel):
    """One Identity Center assignment operation made for the grant."""

    id: int
    operation: Literal["create", "delete"]
    status: Literal["started", "in_progress", "succeeded", "failed", "error"]
    aws_request_id: str | None = Field(description="Identity Center's RequestId.")
    error_code: str | None
    error_message: str | None
    started_at: datetime
    finished_at: datetime | None


class GrantDetail(GrantOut):
    """A grant with its timeline: its timers and the AWS calls made for it."""

    timers: list[TimerOut]
    aws_calls: list[AwsCallOut]


class ReconciliationOut(BaseModel):
    """A reconciliation run and what it repaired."""

    id: int
    trigger: Literal["periodic", "api"]
    requested_by: str | None
    status: Literal["running", "finished"]
    started_at: datetime
    finished_at: datetime | None
    tuples_checked: int
    repairs: list[dict[str, Any]] = Field(
        description="One entry per repair: principal_id, account_id, permission_set_arn, "
        "action (recreated | removed), request_id, aws_request_id."
    )
    errors: list[dict[str, Any]]
