"""Events of the lifecycle service, on `lifecycle.events`; the subject is the request id.

Released classes are never edited: add an optional field, or declare a `...V2` beside the V1.
"""

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from teamkit.events.common import AccessEndReason, Actor, AssignmentEndAction
from teamkit.events.envelope import Event, EventData
from teamkit.events.topics import Topic

_SOURCE = "lifecycle"
_SOURCE_DESCRIPTION = "The emitting service."
_SUBJECT_DESCRIPTION = "The request id; the Kafka key."


# -- grant.scheduled -----------------------------------------------------------------------------


class GrantScheduledData(EventData):
    """The timers that will start and end an approved grant."""

    request_id: UUID
    start: AwareDatetime
    end: AwareDatetime
    start_timer_id: str | None = Field(default=None, description="Lifecycle's start timer id.")
    end_timer_id: str | None = Field(default=None, description="Lifecycle's end timer id.")


class GrantScheduledV1(Event):
    """Lifecycle accepted an approved request and holds durable timers for its window."""

    topic: ClassVar[str] = Topic.LIFECYCLE
    type: Literal["grant.scheduled"] = "grant.scheduled"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: GrantScheduledData


# -- grant.provisioning --------------------------------------------------------------------------


class GrantProvisioningData(EventData):
    """An account assignment operation accepted by Identity Center, not yet confirmed."""

    request_id: UUID
    aws_request_id: str = Field(
        description="Identity Center's `RequestId` of the assignment creation status."
    )
    operation: Literal["create"] = "create"
    principal_id: str = Field(description="Identity Center user id.")
    account_id: str
    permission_set_arn: str
    attempt: int = Field(default=1, ge=1, description="1 for the first try, then each retry.")


class GrantProvisioningV1(Event):
    """`CreateAccountAssignment` was called at the start time; lifecycle polls its status."""

    topic: ClassVar[str] = Topic.LIFECYCLE
    type: Literal["grant.provisioning"] = "grant.provisioning"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: GrantProvisioningData


# -- access.granted ------------------------------------------------------------------------------


class AccessGrantedData(EventData):
    """The confirmed account assignment and when it will be removed."""

    request_id: UUID
    confirmed_at: AwareDatetime = Field(
        description="When Identity Center reported the assignment provisioned."
    )
    aws_request_id: str | None = Field(
        description="The creation's `RequestId`; None when the assignment already existed."
    )
    principal_id: str = Field(description="Identity Center user id.")
    account_id: str
    permission_set_arn: str
    end: AwareDatetime = Field(description="When the access is due to end.")
    assignment_action: Literal["created", "already_assigned"] = Field(
        default="created",
        description=(
            "`already_assigned` when another grant or standing access already held the "
            "assignment, so none was created."
        ),
    )


class AccessGrantedV1(Event):
    """The requester holds the access: the assignment is confirmed provisioned (`in_progress`)."""

    topic: ClassVar[str] = Topic.LIFECYCLE
    type: Literal["access.granted"] = "access.granted"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: AccessGrantedData


# -- grant.failed --------------------------------------------------------------------------------


class GrantFailedData(EventData):
    """The AWS error that stopped a grant."""

    request_id: UUID
    error_code: str = Field(description="AWS error code, e.g. `ValidationException`.")
    error_message: str
    retryable: bool = Field(
        description="Whether an admin retry may succeed (throttling, conflict, internal error)."
    )
    attempts: int = Field(ge=1, description="Calls made before giving up.")
    aws_request_id: str | None = Field(
        default=None, description="The creation's `RequestId`, when AWS accepted the call."
    )


class GrantFailedV1(Event):
    """Creating the assignment failed after retries; the request moves to `error`."""

    topic: ClassVar[str] = Topic.LIFECYCLE
    type: Literal["grant.failed"] = "grant.failed"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: GrantFailedData


# -- access.ended --------------------------------------------------------------------------------


class AccessEndedData(EventData):
    """Why a grant ended, and what became of the account assignment."""

    request_id: UUID
    reason: AccessEndReason
    assignment_action: AssignmentEndAction = Field(
        description=(
            "`removed`: the assignment was deleted and confirmed; `kept_for_other_grant`: an "
            "overlapping grant still needs it; `kept_standing_access`: it existed before the "
            "system granted it; `not_granted`: revoked before the start, nothing was assigned."
        )
    )
    ended_at: AwareDatetime
    principal_id: str = Field(description="Identity Center user id.")
    account_id: str
    permission_set_arn: str
    revoked_by: Actor | None = Field(default=None, description="Who revoked, when `revoked`.")
    aws_request_id: str | None = Field(
        default=None, description="The deletion's `RequestId`, when `removed`."
    )


class AccessEndedV1(Event):
    """The grant is over (`ended` or `revoked`); access is gone unless still needed elsewhere."""

    topic: ClassVar[str] = Topic.LIFECYCLE
    type: Literal["access.ended"] = "access.ended"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: AccessEndedData


# -- revoke.failed -------------------------------------------------------------------------------


class RevokeFailedData(EventData):
    """The AWS error that stopped the removal of an assignment."""

    request_id: UUID
    error_code: str = Field(description="AWS error code, e.g. `AccessDeniedException`.")
    error_message: str
    attempts: int = Field(ge=1, description="Calls made before giving up.")
    principal_id: str = Field(description="Identity Center user id.")
    account_id: str
    permission_set_arn: str


class RevokeFailedV1(Event):
    """Removing the assignment failed after retries: access may outlive its window (`error`)."""

    topic: ClassVar[str] = Topic.LIFECYCLE
    type: Literal["revoke.failed"] = "revoke.failed"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: RevokeFailedData


# -- approval.timed_out --------------------------------------------------------------------------


class ApprovalTimedOutData(EventData):
    """The approval deadline of a pending request passed."""

    request_id: UUID
    deadline: AwareDatetime


class ApprovalTimedOutV1(Event):
    """The approval-expiry timer fired; the request service expires the request if still pending."""

    topic: ClassVar[str] = Topic.LIFECYCLE
    type: Literal["approval.timed_out"] = "approval.timed_out"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: ApprovalTimedOutData


# -- drift.repaired ------------------------------------------------------------------------------


class DriftRepairedData(EventData):
    """One difference between the assignment ledger and Identity Center, and its repair."""

    principal_id: str = Field(description="Identity Center user id.")
    account_id: str
    permission_set_arn: str
    action: Literal["recreated", "removed"] = Field(
        description=(
            "`recreated`: a grant's assignment was missing; `removed`: an assignment no grant "
            "needs any more was still present."
        )
    )
    detail: str = Field(description="What the reconciler found, for people.")
    request_id: UUID | None = Field(
        default=None, description="The grant the repaired assignment belongs to, if any."
    )
    aws_request_id: str | None = Field(
        default=None, description="`RequestId` of the repairing create or delete."
    )


class DriftRepairedV1(Event):
    """The reconciler repaired drift between the ledger and `ListAccountAssignments`."""

    topic: ClassVar[str] = Topic.LIFECYCLE
    type: Literal["drift.repaired"] = "drift.repaired"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(
        description=(
            "The request id of the grant concerned; without one, "
            "`{principal_id}:{account_id}:{permission_set_arn}`. The Kafka key."
        )
    )
    data: DriftRepairedData
