"""The per-request projection, folded from the request's trail events: pure, no I/O.

The projection is rebuilt from every stored event of a request each time one arrives, in event
time order (the trail position breaks ties), so duplicates (same content, new id) and events that
arrive out of order across topics give the same row as an in-order delivery. Status moves follow
two rules: a status never moves back to an earlier stage at the same time, and once a terminal
status (ended, revoked, rejected, cancelled, expired) is reached, no later event changes it, so
a late `grant.scheduled` cannot regress a cancelled request.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from teamkit.events import (
    AccessEndedV1,
    AccessGrantedV1,
    ApprovalTimedOutV1,
    Event,
    GrantFailedV1,
    GrantProvisioningV1,
    GrantScheduledV1,
    RequestApprovalRecordedV1,
    RequestApprovedV1,
    RequestCancelledV1,
    RequestExpiredV1,
    RequestRejectedV1,
    RequestRevokeRequestedV1,
    RequestStatusChangedV1,
    RequestSubmittedV1,
    RevokeFailedV1,
)
from teamkit.events.common import Actor, RequestStatus

TERMINAL = frozenset(
    {
        RequestStatus.ENDED,
        RequestStatus.REVOKED,
        RequestStatus.REJECTED,
        RequestStatus.CANCELLED,
        RequestStatus.EXPIRED,
    }
)

# The stage of each status: a move to a lower stage is refused unless it leaves `error`, which
# an admin retry sends back to `scheduled`.
STAGE: dict[RequestStatus, int] = {
    RequestStatus.PENDING: 0,
    RequestStatus.APPROVED: 1,
    RequestStatus.SCHEDULED: 2,
    RequestStatus.IN_PROGRESS: 3,
    RequestStatus.ERROR: 4,
    RequestStatus.ENDED: 5,
    RequestStatus.REVOKED: 5,
    RequestStatus.REJECTED: 5,
    RequestStatus.CANCELLED: 5,
    RequestStatus.EXPIRED: 5,
}


@dataclass
class Decision:
    """One approver's act on a request."""

    username: str
    email: str | None
    decision: str  # "approved" | "rejected"
    comment: str | None
    at: datetime

    def as_json(self) -> dict[str, Any]:
        """JSON form stored in the projection."""
        return {
            "username": self.username,
            "email": self.email,
            "decision": self.decision,
            "comment": self.comment,
            "at": self.at.isoformat(),
        }


@dataclass
class RequestView:
    """Everything an auditor asks about one request."""

    request_id: str
    created_at: datetime
    status: RequestStatus | None = None
    requester_id: str | None = None
    requester_username: str | None = None
    requester_email: str | None = None
    account_id: str | None = None
    account_name: str | None = None
    permission_set_arn: str | None = None
    permission_set_name: str | None = None
    session_duration_minutes: int | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    duration_minutes: int | None = None
    justification: str | None = None
    ticket: str | None = None
    approval_required: bool | None = None
    approvals_needed: int | None = None
    eligible_approvers: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    auto_approved: bool = False
    submitted_at: datetime | None = None
    approved_at: datetime | None = None
    rejected_at: datetime | None = None
    cancelled_at: datetime | None = None
    expired_at: datetime | None = None
    scheduled_at: datetime | None = None
    granted_at: datetime | None = None
    ended_at: datetime | None = None
    revoke_requested_at: datetime | None = None
    errored_at: datetime | None = None
    cancelled_by: str | None = None
    cancel_comment: str | None = None
    revoked_by: str | None = None
    revoked_by_email: str | None = None
    revoke_role: str | None = None
    revoke_comment: str | None = None
    end_reason: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    last_event_at: datetime | None = None
    event_count: int = 0

    @property
    def approver_usernames(self) -> list[str]:
        """Everybody who approved or rejected, then everybody eligible: the approver filter."""
        names = [d.username for d in self.decisions]
        names += [str(a.get("username")) for a in self.eligible_approvers if a.get("username")]
        return sorted(set(names))


def _move(view: RequestView, to: RequestStatus, at: datetime) -> None:
    current = view.status
    if current is not None and current in TERMINAL:
        return  # a terminal status is final, whatever arrives later
    if current is not None and current != RequestStatus.ERROR and STAGE[to] < STAGE[current]:
        return
    view.status = to


def _who(actor: Actor) -> tuple[str, str | None]:
    return actor.username, actor.email


def _decide(
    view: RequestView, actor: Actor, decision: str, comment: str | None, at: datetime
) -> None:
    for existing in view.decisions:
        if existing.username == actor.username and existing.decision == decision:
            if comment and not existing.comment:
                existing.comment = comment
            return  # the same approver's act seen twice (e.g. recorded, then in approved_by)
    view.decisions.append(Decision(actor.username, actor.email, decision, comment, at))


# The step time a status move stands for, when the specific event is missing or arrives later.
_STEP_FIELD: dict[RequestStatus, str] = {
    RequestStatus.PENDING: "submitted_at",
    RequestStatus.APPROVED: "approved_at",
    RequestStatus.SCHEDULED: "scheduled_at",
    RequestStatus.IN_PROGRESS: "granted_at",
    RequestStatus.REJECTED: "rejected_at",
    RequestStatus.CANCELLED: "cancelled_at",
    RequestStatus.EXPIRED: "expired_at",
    RequestStatus.ENDED: "ended_at",
    RequestStatus.REVOKED: "ended_at",
    RequestStatus.ERROR: "errored_at",
}


def _stamp(view: RequestView, status: RequestStatus, at: datetime) -> None:
    name = _STEP_FIELD[status]
    if getattr(view, name) is None:
        setattr(view, name, at)
    if status in (RequestStatus.ENDED, RequestStatus.REVOKED) and view.end_reason is None:
        view.end_reason = "revoked" if status == RequestStatus.REVOKED else "expired"


def apply(view: RequestView, event: Event) -> None:
    """Fold one typed event into `view` (events must come in event time order)."""
    at = event.time
    view.event_count += 1
    view.last_event_at = max(view.last_event_at or at, at)
    if isinstance(event, RequestSubmittedV1):
        d = event.data
        view.requester_id = d.requester.user_id
        view.requester_username = d.requester.username
        view.requester_email = d.requester.email
        view.account_id = d.account.id
        view.account_name = d.account.name
        view.permission_set_arn = d.permission_set.arn
        view.permission_set_name = d.permission_set.name
        view.session_duration_minutes = d.permission_set.session_duration_minutes
        view.start_at = d.start
        view.end_at = d.end
        view.duration_minutes = d.duration_minutes
        view.justification = d.justification
        view.ticket = d.ticket
        view.approval_required = d.approval_required
        view.approvals_needed = d.approvals_needed
        view.eligible_approvers = [a.model_dump(mode="json") for a in d.approvers]
        view.submitted_at = at
        _move(view, RequestStatus.PENDING, at)
    elif isinstance(event, RequestApprovalRecordedV1):
        _decide(view, event.data.approver, "approved", event.data.comment, at)
    elif isinstance(event, RequestApprovedV1):
        d2 = event.data
        for actor in d2.approved_by:
            _decide(view, actor, "approved", None, at)
        view.auto_approved = d2.auto
        view.approved_at = view.approved_at or at
        view.account_id = view.account_id or d2.account_id
        view.permission_set_arn = view.permission_set_arn or d2.permission_set_arn
        view.requester_id = view.requester_id or d2.principal_id
        view.start_at = view.start_at or d2.start
        view.end_at = view.end_at or d2.end
        _move(view, RequestStatus.APPROVED, at)
    elif isinstance(event, RequestRejectedV1):
        _decide(view, event.data.by, "rejected", event.data.comment, at)
        view.rejected_at = view.rejected_at or at
        _move(view, RequestStatus.REJECTED, at)
    elif isinstance(event, RequestCancelledV1):
        view.cancelled_by, _ = _who(event.data.by)
        view.cancel_comment = event.data.comment
        view.cancelled_at = view.cancelled_at or at
        _move(view, RequestStatus.CANCELLED, at)
    elif isinstance(event, RequestExpiredV1):
        view.expired_at = view.expired_at or at
        _move(view, RequestStatus.EXPIRED, at)
    elif isinstance(event, RequestRevokeRequestedV1):
        view.revoked_by, view.revoked_by_email = _who(event.data.by)
        view.revoke_role = event.data.role
        view.revoke_comment = event.data.comment
        view.revoke_requested_at = view.revoke_requested_at or at
    elif isinstance(event, RequestStatusChangedV1):
        _move(view, event.data.to_status, at)
        _stamp(view, event.data.to_status, at)
    elif isinstance(event, GrantScheduledV1):
        view.scheduled_at = view.scheduled_at or at
        _move(view, RequestStatus.SCHEDULED, at)
    elif isinstance(event, GrantProvisioningV1):
        pass  # a step of its own in the timeline; no status of its own
    elif isinstance(event, AccessGrantedV1):
        view.granted_at = event.data.confirmed_at  # the confirmed time beats a status stamp
        _move(view, RequestStatus.IN_PROGRESS, at)
    elif isinstance(event, GrantFailedV1 | RevokeFailedV1):
        view.errors.append(
            {
                "type": event.type,
                "code": event.data.error_code,
                "message": event.data.error_message,
                "at": at.isoformat(),
            }
        )
        view.errored_at = at
        _move(view, RequestStatus.ERROR, at)
    elif isinstance(event, AccessEndedV1):
        d3 = event.data
        view.ended_at = d3.ended_at
        view.end_reason = d3.reason
        if d3.reason == "revoked":
            if d3.revoked_by is not None and view.revoked_by is None:
                view.revoked_by, view.revoked_by_email = _who(d3.revoked_by)
            _move(view, RequestStatus.REVOKED, at)
        else:
            _move(view, RequestStatus.ENDED, at)
    elif isinstance(event, ApprovalTimedOutV1):
        pass  # the request service decides whether this expires the request


def fold(request_id: str, events: list[tuple[int, Event]]) -> RequestView:
    """Build the view of one request from its (position, event) pairs, in any order."""
    if not events:
        raise ValueError("a request view needs at least one event")
    ordered = sorted(events, key=lambda pair: (pair[1].time, pair[0]))
    view = RequestView(request_id=request_id, created_at=ordered[0][1].time)
    seen: set[str] = set()
    for _, event in ordered:
        if str(event.id) in seen:
            continue
        seen.add(str(event.id))
        apply(view, event)
    if view.submitted_at is not None:
        view.created_at = view.submitted_at
    return view
