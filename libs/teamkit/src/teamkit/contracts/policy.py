"""The policy service's synchronous API, as its callers (the request service) use it.

Declared once here so the provider (policy) and its consumers build against one contract; the
policy service serves these models on `POST /v1/evaluations`, `POST /v1/approver-checks` and
`GET /v1/settings`.
"""

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from teamkit.events.common import AccountRef, Approver, PermissionSetRef, Requester


class _Contract(BaseModel):
    # Tolerate fields a newer policy service adds; callers read what they know.
    model_config = ConfigDict(frozen=True, extra="ignore")


class DenialCode(StrEnum):
    """Why an evaluation says no; every applicable code is listed."""

    UNKNOWN_USER = "unknown_user"
    UNKNOWN_ACCOUNT = "unknown_account"
    UNKNOWN_PERMISSION_SET = "unknown_permission_set"
    NOT_ELIGIBLE = "not_eligible"
    DURATION_ABOVE_MAX = "duration_above_max"
    TICKET_MISSING = "ticket_missing"
    TICKET_MALFORMED = "ticket_malformed"
    JUSTIFICATION_MALFORMED = "justification_malformed"
    NO_APPROVER = "no_approver"
    TOO_MANY_ACTIVE_GRANTS = "too_many_active_grants"


class DenialReason(_Contract):
    """One reason for a denial, with a sentence a person can act on."""

    code: DenialCode
    detail: str


class EvaluationRequest(_Contract):
    """May `user` request `permission_set` on `account_id` for `duration_minutes`?"""

    user: str = Field(
        min_length=1,
        max_length=256,
        description="Identity Center user id or user name of the requester.",
    )
    account_id: str = Field(pattern=r"^\d{12}$")
    permission_set: str = Field(
        min_length=1, max_length=2048, description="Permission set ARN or name."
    )
    duration_minutes: int = Field(ge=1, le=60 * 24 * 366)
    ticket: str | None = Field(default=None, max_length=256)
    justification: str | None = Field(default=None, max_length=4000)
    active_grants: int = Field(
        default=0,
        ge=0,
        description="The requester's grants active or scheduled now (for the concurrency cap).",
    )


class RequestSettings(_Contract):
    """The settings a request needs at submit and decision time, snapshotted with the decision."""

    approval_workflow_enabled: bool
    comments_required: bool
    ticket_required: bool
    pending_expiry_minutes: int = Field(ge=1)
    max_concurrent_grants: int | None = Field(default=None, ge=1)
    allow_requests_on_behalf: bool = False


class EvaluationDecision(_Contract):
    """The answer: allowed or not (with every reason), and everything a request must snapshot."""

    allowed: bool
    reasons: list[DenialReason] = Field(default_factory=list)
    requester: Requester | None = None
    account: AccountRef | None = None
    permission_set: PermissionSetRef | None = None
    matched_policy_ids: list[str] = Field(default_factory=list)
    approval_required: bool = True
    approvals_needed: int = Field(default=1, ge=0)
    approvers: list[Approver] = Field(
        default_factory=list, description="Who may approve, the requester excluded."
    )
    max_duration_minutes: int | None = Field(default=None, ge=1)
    settings: RequestSettings


class ApproverCheckRequest(_Contract):
    """May `approver` decide a request of `requester` for this account and permission set?"""

    approver: str = Field(min_length=1, max_length=256, description="User id or user name.")
    requester: str = Field(min_length=1, max_length=256, description="User id or user name.")
    account_id: str = Field(pattern=r"^\d{12}$")
    permission_set_arn: str = Field(min_length=1, max_length=2048)


class ApproverCheck(_Contract):
    """The live answer, from the current directory and approver policies."""

    allowed: bool
    detail: str
    approver: Approver | None = None
    approvals_needed: int = Field(default=1, ge=0)
