"""API models of the request service: the OpenAPI contract. Never table classes."""

import unicodedata
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from teamkit.events.common import AccountRef, PermissionSetRef, RequestStatus

MAX_JUSTIFICATION = 2000
MAX_COMMENT = 2000
#: Line breaks and tabs are how people format a justification; every other control (or
#: invisible format) character is refused, since it can hide text from approvers and auditors.
_ALLOWED_CONTROLS = frozenset("\n\r\t")


def _no_controls(allowed: frozenset[str]) -> AfterValidator:
    def check(value: str) -> str:
        for position, char in enumerate(value):
            if char not in allowed and unicodedata.category(char) in ("Cc", "Cf", "Cs"):
                raise ValueError(
                    f"contains control character U+{ord(char):04X} at position {position}; "
                    "remove it"
                )
        return value

    return AfterValidator(check)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Text = Annotated[str, _no_controls(_ALLOWED_CONTROLS)]
Line = Annotated[str, _no_controls(frozenset())]
Username = Annotated[Line, Field(min_length=1, max_length=256)]


class _Body(BaseModel):
    # Unknown fields are refused: a misspelt field must not be silently dropped.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubmitRequest(_Body):
    """A request for one permission set on one account for a window."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "account_id": "111111111111",
                    "permission_set": "AdministratorAccess",
                    "start": "2026-12-07T09:00:00+01:00",
                    "duration_minutes": 60,
                    "justification": "Restart the stuck payment workers (INC-4711).",
                    "ticket": "INC-4711",
                }
            ]
        }
    )

    account_id: Annotated[str, Field(pattern=r"^\d{12}$", examples=["111111111111"])]
    permission_set: Annotated[
        Line,
        Field(min_length=1, max_length=2048, description="Permission set ARN or name."),
    ]
    start: AwareDatetime | None = Field(
        default=None,
        description="Start of the window, RFC 3339 with offset; default now. Not in the past "
        "beyond REQUEST_START_GRACE_SECONDS.",
    )
    duration_minutes: int = Field(ge=1, le=60 * 24 * 366, description="Window length, minutes.")
    justification: Annotated[
        Text, Field(min_length=1, max_length=MAX_JUSTIFICATION), AfterValidator(_not_blank)
    ]
    ticket: Annotated[Line, Field(min_length=1, max_length=256)] | None = Field(
        default=None, description="Ticket id; whether required and its pattern are policy's."
    )
    requested_for: Username | None = Field(
        default=None,
        description="Integrations only (scope team.requests.write): the user name of the person "
        "the request is for, when the settings allow requests on behalf.",
    )


class CommentBody(_Body):
    """An optional comment (required when the settings say so)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"comment": "Done early, thanks."}]})

    comment: Annotated[Text, Field(max_length=MAX_COMMENT)] | None = None


class DecisionBody(CommentBody):
    """An approver's decision; integrations name the person they relay."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"comment": "Matches INC-4711; go ahead."},
                {"comment": "Approved in the change board.", "on_behalf_of": "bob"},
            ]
        }
    )

    on_behalf_of: Username | None = Field(
        default=None,
        description="Integrations only (scope team.requests.approve): the user name of the "
        "approver whose decision this is; re-checked live like a person's own decision.",
    )


class RequesterOut(BaseModel):
    """The person who receives the access."""

    user_id: str
    username: str
    email: str | None
    time_zone: str | None


class ApproverOut(BaseModel):
    """One possible approver."""

    user_id: str
    username: str
    email: str | None


class DecisionOut(BaseModel):
    """One recorded approval or rejection."""

    approver: str = Field(description="User name of the approver.")
    approver_user_id: str | None
    decision: Literal["approved", "rejected"]
    comment: str | None
    client_id: str | None = Field(description="Integration that relayed the decision, if any.")
    decided_at: datetime


_REQUEST_EXAMPLE: JsonDict = {
    "id": "0b9d5a52-6f0e-4a43-9a55-3f0c2b1f7c11",
    "status": "scheduled",
    "status_reason": None,
    "requester": {
        "user_id": "9067e2b4-2011-70aa-0a5e-1d1a2c3b4d5e",
        "username": "alice",
        "email": "alice@example.com",
        "time_zone": "Europe/Berlin",
    },
    "requested_by_client_id": None,
    "account": {"id": "111111111111", "name": "payments-prod", "ou_path": ["r-root", "ou-prod"]},
    "permission_set": {
        "arn": "arn:aws:sso:::permissionSet/ssoins-1111111111111111/ps-1111111111111111",
        "name": "AdministratorAccess",
        "session_duration_minutes": 60,
    },
    "start": "2026-12-07T08:00:00Z",
    "end": "2026-12-07T09:00:00Z",
    "duration_minutes": 60,
    "justification": "Restart the stuck payment workers (INC-4711).",
    "ticket": "INC-4711",
    "approval_required": True,
    "approvals_needed": 1,
    "auto_approved": False,
    "approvals": [
        {
            "approver": "bob",
            "approver_user_id": "9067e2b4-2011-70aa-0a5e-6f7a8b9c0d1e",
            "decision": "approved",
            "comment": "Matches INC-4711; go ahead.",
            "client_id": None,
            "decided_at": "2026-12-07T07:55:12Z",
        }
    ],
    "approvers": [
        {
            "user_id": "9067e2b4-2011-70aa-0a5e-6f7a8b9c0d1e",
            "username": "bob",
            "email": "bob@example.com",
        }
    ],
    "pending_approvers": [],
    "matched_policy_ids": ["6a1f4e9c-0d63-4c0b-9f5e-2b7d8c1e3a40"],
    "approval_deadline": None,
    "revoke_requested_at": None,
    "requested_at": "2026-12-07T07:50:03Z",
    "approved_at": "2026-12-07T07:55:12Z",
    "scheduled_at": "2026-12-07T07:55:13Z",
    "granted_at": None,
    "ended_at": None,
}


class RequestOut(BaseModel):
    """A request as its requester, approvers, admins and auditors see it."""

    model_config = ConfigDict(json_schema_extra={"examples": [_REQUEST_EXAMPLE]})

    id: UUID
    status: RequestStatus
    status_reason: str | None = Field(description="E.g. the AWS error behind `error`.")
    requester: RequesterOut
    requested_by_client_id: str | None = Field(
        description="The integration that submitted on the requester's behalf, if any."
    )
    account: AccountRef
    permission_set: PermissionSetRef
    start: datetime
    end: datetime
    duration_minutes: int
    justification: str
    ticket: str | None
    approval_required: bool
    approvals_needed: int
    auto_approved: bool
    approvals: list[DecisionOut] = Field(description="Decisions so far, oldest first.")
    approvers: list[ApproverOut] = Field(description="Who could approve at submit time.")
    pending_approvers: list[str] = Field(
        description="User names still able to decide (empty unless pending)."
    )
    matched_policy_ids: list[str]
    approval_deadline: datetime | None = Field(description="Expiry deadline while pending.")
    revoke_requested_at: datetime | None
    requested_at: datetime
    approved_at: datetime | None
    scheduled_at: datetime | None
    granted_at: datetime | None
    ended_at: datetime | None


class RequestPage(BaseModel):
    """One page of requests; pass `next_cursor` as `cursor` for the next (null: last page)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [_REQUEST_EXAMPLE], "next_cursor": None}]}
    )

    items: list[RequestOut]
    next_cursor: str | None
