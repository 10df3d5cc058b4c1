"""Every rule of the request state machine (DESIGN §2), pure: no I/O, no clock, no database.

The service loads a row, builds a `Snapshot`, asks a function here for the next snapshot and
writes what changed. A move that is not allowed raises `InvalidTransition` (409 with the current
status); a lifecycle fact that does not apply any more (duplicate or late) yields `None`, so the
caller changes nothing.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from request_service.errors import AlreadyDecided, InvalidTransition, NotAnApprover, SelfApproval
from teamkit.events.common import RequestStatus

S = RequestStatus

#: Statuses a request never leaves.
TERMINAL: frozenset[RequestStatus] = frozenset(
    {S.ENDED, S.REVOKED, S.REJECTED, S.CANCELLED, S.EXPIRED}
)

#: The one table of allowed status moves. `error → ended` goes beyond DESIGN §2: after a
#: `revoke.failed`, lifecycle's end timer may still remove the access, and the request must
#: then say so instead of staying in `error`.
ALLOWED: Mapping[RequestStatus, frozenset[RequestStatus]] = {
    S.PENDING: frozenset({S.APPROVED, S.REJECTED, S.CANCELLED, S.EXPIRED}),
    S.APPROVED: frozenset({S.SCHEDULED}),
    S.SCHEDULED: frozenset({S.IN_PROGRESS, S.CANCELLED, S.REVOKED, S.ERROR}),
    S.IN_PROGRESS: frozenset({S.ENDED, S.REVOKED, S.ERROR}),
    S.ERROR: frozenset({S.SCHEDULED, S.REVOKED, S.ENDED}),
    **{status: frozenset() for status in TERMINAL},
}

#: Statuses from which the requester (or an admin) may cancel.
CANCELLABLE: frozenset[RequestStatus] = frozenset({S.PENDING, S.SCHEDULED})
#: Statuses from which an early end may be requested; `error` included, since access may
#: still exist after a failed revoke.
REVOCABLE: frozenset[RequestStatus] = frozenset({S.SCHEDULED, S.IN_PROGRESS, S.ERROR})
#: Statuses in which a grant counts against the requester's concurrency cap.
ACTIVE: frozenset[RequestStatus] = frozenset({S.APPROVED, S.SCHEDULED, S.IN_PROGRESS})


class Fact(StrEnum):
    """What the lifecycle service reports about a request."""

    GRANT_SCHEDULED = "grant.scheduled"
    ACCESS_GRANTED = "access.granted"
    ACCESS_ENDED_EXPIRED = "access.ended:expired"
    ACCESS_ENDED_REVOKED = "access.ended:revoked"
    GRANT_FAILED = "grant.failed"
    REVOKE_FAILED = "revoke.failed"
    APPROVAL_TIMED_OUT = "approval.timed_out"


#: For each fact: the statuses it applies to, and the status it leads to. Anything else is a
#: duplicate or a late arrival and changes nothing.
FACT_MOVES: Mapping[Fact, tuple[frozenset[RequestStatus], RequestStatus]] = {
    Fact.GRANT_SCHEDULED: (frozenset({S.APPROVED, S.ERROR}), S.SCHEDULED),
    Fact.ACCESS_GRANTED: (frozenset({S.SCHEDULED}), S.IN_PROGRESS),
    Fact.ACCESS_ENDED_EXPIRED: (frozenset({S.IN_PROGRESS, S.ERROR}), S.ENDED),
    Fact.ACCESS_ENDED_REVOKED: (frozenset({S.SCHEDULED, S.IN_PROGRESS, S.ERROR}), S.REVOKED),
    Fact.GRANT_FAILED: (frozenset({S.SCHEDULED}), S.ERROR),
    Fact.REVOKE_FAILED: (frozenset({S.IN_PROGRESS}), S.ERROR),
    Fact.APPROVAL_TIMED_OUT: (frozenset({S.PENDING}), S.EXPIRED),
}


@dataclass(frozen=True)
class Snapshot:
    """What the rules need to know about one request."""

    status: RequestStatus
    requester: str
    approvals_needed: int
    approvals: frozenset[str] = field(default_factory=frozenset)
    rejected_by: str | None = None
    revoke_requested: bool = False


def can_move(current: RequestStatus, target: RequestStatus) -> bool:
    """True when DESIGN §2 allows `current → target`."""
    return target in ALLOWED[current]


def _move(state: Snapshot, target: RequestStatus, action: str) -> Snapshot:
    if not can_move(state.status, target):
        raise InvalidTransition(
            f"cannot {action} a request that is {state.status.value}",
            current_status=state.status.value,
        )
    return replace(state, status=target)


def check_not_self(
    state: Snapshot, decider: str, *, action: str = "approve", same_user: bool = False
) -> None:
    """Refuse a decision by the requester (by user name, or `same_user` by Identity Center id).

    Separation of duties comes before everything else: 403 whatever the status or roles.
    """
    if same_user or decider == state.requester:
        raise SelfApproval(
            f"you cannot {action} your own request; another approver has to decide it"
        )


def _check_decider(state: Snapshot, decider: str, *, eligible: bool, action: str) -> None:
    check_not_self(state, decider, action=action)
    if not eligible:
        raise NotAnApprover(
            f"you are not (or no longer) an approver of this request, so you cannot {action} it"
        )
    if state.status is not S.PENDING:
        raise InvalidTransition(
            f"cannot {action} a request that is {state.status.value}; only pending requests "
            "are decided",
            current_status=state.status.value,
        )
    if decider in state.approvals:
        raise AlreadyDecided(f"you already approved this request; you cannot {action} it again")


def approve(state: Snapshot, approver: str, *, eligible: bool) -> Snapshot:
    """Record `approver`'s approval; the request becomes approved once the quorum is met.

    Raises:
        SelfApproval: the approver is the requester.
        NotAnApprover: the live approver check said no.
        InvalidTransition: the request is no longer pending.
        AlreadyDecided: this approver already approved.
    """
    _check_decider(state, approver, eligible=eligible, action="approve")
    approvals = state.approvals | {approver}
    new = replace(state, approvals=approvals)
    if len(approvals) >= state.approvals_needed:
        return _move(new, S.APPROVED, "approve")
    return new


def reject(state: Snapshot, approver: str, *, eligible: bool) -> Snapshot:
    """One rejection by an eligible non-requester rejects a pending request."""
    _check_decider(state, approver, eligible=eligible, action="reject")
    return replace(_move(state, S.REJECTED, "reject"), rejected_by=approver)


def auto_approve(state: Snapshot) -> Snapshot:
    """A pending request that needs no approval becomes approved at once."""
    if state.approvals_needed != 0:
        raise InvalidTransition(
            f"this request needs {state.approvals_needed} approval(s); it cannot be auto-approved",
            current_status=state.status.value,
        )
    return _move(state, S.APPROVED, "auto-approve")


def cancel(state: Snapshot) -> Snapshot:
    """Withdraw a request while it is pending or scheduled."""
    if state.status not in CANCELLABLE:
        raise InvalidTransition(
            f"cannot cancel a request that is {state.status.value}; only pending or scheduled "
            "requests can be cancelled"
            + ("; revoke it instead" if state.status in REVOCABLE else ""),
            current_status=state.status.value,
        )
    return _move(state, S.CANCELLED, "cancel")


def request_revoke(state: Snapshot) -> Snapshot:
    """Ask for an early end; the status moves to revoked when lifecycle confirms it."""
    if state.status not in REVOCABLE:
        raise InvalidTransition(
            f"cannot revoke a request that is {state.status.value}; only scheduled, in-progress "
            "or failed grants can be revoked"
            + ("; cancel it instead" if state.status is S.PENDING else ""),
            current_status=state.status.value,
        )
    if state.revoke_requested:
        raise InvalidTransition(
            "a revoke of this request was already requested; wait for the access to end",
            current_status=state.status.value,
        )
    return replace(state, revoke_requested=True)


def apply_fact(state: Snapshot, fact: Fact) -> Snapshot | None:
    """The snapshot after a lifecycle fact, or None when it no longer applies."""
    sources, target = FACT_MOVES[fact]
    if state.status not in sources:
        return None
    return replace(state, status=target)
