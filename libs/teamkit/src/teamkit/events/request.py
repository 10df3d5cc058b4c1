"""Events of the request service, on `request.events`; the subject (Kafka key) is the request id.

Released classes are never edited: add an optional field, or declare a `...V2` beside the V1.
"""

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from teamkit.events.common import (
    AccountRef,
    Actor,
    Approver,
    PermissionSetRef,
    Requester,
    RequestStatus,
    RevokerRole,
)
from teamkit.events.envelope import Event, EventData
from teamkit.events.topics import Topic

_SOURCE = "request"
_SOURCE_DESCRIPTION = "The emitting service."
_SUBJECT_DESCRIPTION = "The request id; the Kafka key."


# -- request.submitted ---------------------------------------------------------------------------


class RequestSubmittedData(EventData):
    """Full snapshot of a new request and of the policy decision taken at submit time."""

    request_id: UUID
    requester: Requester
    requested_by: Actor | None = Field(
        default=None,
        description="Who submitted: the requester, or an integration submitting on their behalf.",
    )
    account: AccountRef
    permission_set: PermissionSetRef
    start: AwareDatetime = Field(description="Start of the access window.")
    end: AwareDatetime = Field(description="End of the access window (`start + duration`).")
    duration_minutes: int = Field(ge=1)
    justification: str
    ticket: str | None = Field(default=None, description="Ticket reference, where required.")
    approval_required: bool
    approvals_needed: int = Field(
        ge=0, description="Distinct approvals needed (N of a quorum); 0 when none is required."
    )
    approvers: list[Approver] = Field(
        default_factory=list, description="Everybody who may approve; the requester excluded."
    )
    matched_policy_ids: list[str] = Field(
        default_factory=list, description="Eligibility and approver policies that matched."
    )
    approval_deadline: AwareDatetime | None = Field(
        default=None, description="When a pending request expires; None when no approval needed."
    )


class RequestSubmittedV1(Event):
    """A request was submitted and passed the policy evaluation; it is now `pending`."""

    topic: ClassVar[str] = Topic.REQUEST
    type: Literal["request.submitted"] = "request.submitted"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: RequestSubmittedData


# -- request.approval_recorded -------------------------------------------------------------------


class RequestApprovalRecordedData(EventData):
    """One approval of a quorum; the request stays `pending` until the quorum is met."""

    request_id: UUID
    approver: Actor
    comment: str | None = None
    approvals_so_far: int = Field(ge=1, description="Distinct approvals, this one included.")
    approvals_needed: int = Field(ge=1)


class RequestApprovalRecordedV1(Event):
    """An approver approved; emitted for every approval, before `request.approved`."""

    topic: ClassVar[str] = Topic.REQUEST
    type: Literal["request.approval_recorded"] = "request.approval_recorded"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: RequestApprovalRecordedData


# -- request.approved ----------------------------------------------------------------------------


class RequestApprovedData(EventData):
    """The request is approved; carries everything the lifecycle service needs to schedule it."""

    request_id: UUID
    approved_by: list[Actor] = Field(
        default_factory=list, description="The approvers of the quorum; empty when `auto`."
    )
    auto: bool = Field(default=False, description="True when no approval was required.")
    principal_id: str = Field(description="Identity Center user id of the requester.")
    account_id: str
    permission_set_arn: str
    start: AwareDatetime
    end: AwareDatetime


class RequestApprovedV1(Event):
    """Enough approvals were recorded (or none was needed): the grant can be scheduled."""

    topic: ClassVar[str] = Topic.REQUEST
    type: Literal["request.approved"] = "request.approved"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: RequestApprovedData


# -- request.rejected ----------------------------------------------------------------------------


class RequestRejectedData(EventData):
    """Who rejected the request, and why."""

    request_id: UUID
    by: Actor
    comment: str


class RequestRejectedV1(Event):
    """An approver rejected the request; it will never be granted."""

    topic: ClassVar[str] = Topic.REQUEST
    type: Literal["request.rejected"] = "request.rejected"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: RequestRejectedData


# -- request.cancelled ---------------------------------------------------------------------------


class RequestCancelledData(EventData):
    """Who withdrew the request before its access started."""

    request_id: UUID
    by: Actor
    comment: str | None = None


class RequestCancelledV1(Event):
    """The requester (or an admin) withdrew a pending or scheduled request."""

    topic: ClassVar[str] = Topic.REQUEST
    type: Literal["request.cancelled"] = "request.cancelled"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: RequestCancelledData


# -- request.expired -----------------------------------------------------------------------------


class RequestExpiredData(EventData):
    """A pending request that ran out of time for its approvals."""

    request_id: UUID
    approval_deadline: AwareDatetime | None = Field(
        default=None, description="The deadline that passed."
    )
    approvals_so_far: int = Field(default=0, ge=0, description="Approvals recorded in time.")


class RequestExpiredV1(Event):
    """No quorum was reached before the approval deadline; the request will never be granted."""

    topic: ClassVar[str] = Topic.REQUEST
    type: Literal["request.expired"] = "request.expired"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: RequestExpiredData


# -- request.revoke_requested --------------------------------------------------------------------


class RequestRevokeRequestedData(EventData):
    """An early end of a grant; carries everything the lifecycle service needs to remove it."""

    request_id: UUID
    by: Actor
    role: RevokerRole = Field(description="The capacity in which `by` revoked.")
    comment: str | None = None
    principal_id: str = Field(description="Identity Center user id of the requester.")
    account_id: str
    permission_set_arn: str


class RequestRevokeRequestedV1(Event):
    """Someone asked to end a scheduled or running grant early; lifecycle removes the access."""

    topic: ClassVar[str] = Topic.REQUEST
    type: Literal["request.revoke_requested"] = "request.revoke_requested"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: RequestRevokeRequestedData


# -- request.status_changed ----------------------------------------------------------------------


class RequestStatusChangedData(EventData):
    """One move of the request state machine."""

    request_id: UUID
    from_status: RequestStatus | None = Field(
        description="The previous status; None for the first status of a new request."
    )
    to_status: RequestStatus
    reason: str | None = Field(
        default=None, description="Why, when not obvious (e.g. the AWS error behind `error`)."
    )


class RequestStatusChangedV1(Event):
    """The request's status moved; emitted for every move, beside the specific event."""

    topic: ClassVar[str] = Topic.REQUEST
    type: Literal["request.status_changed"] = "request.status_changed"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: RequestStatusChangedData
