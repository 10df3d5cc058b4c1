"""Problems the request service answers with (RFC 9457, rendered by `teamkit.problems`)."""

from typing import Any

from teamkit.problems import (
    TYPE_BASE,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
)


class InvalidTransition(Conflict):
    """The request's current status does not allow this move (409, with `current_status`)."""

    type = TYPE_BASE + "invalid-transition"
    title = "Invalid transition"

    def __init__(self, detail: str, *, current_status: str, **extensions: Any) -> None:
        super().__init__(detail, current_status=current_status, **extensions)
        self.current_status = current_status


class AlreadyDecided(Conflict):
    """This approver has already approved or rejected the request (409)."""

    type = TYPE_BASE + "already-decided"
    title = "Already decided"


class SelfApproval(Forbidden):
    """Nobody decides their own request, whatever their roles (403)."""

    type = TYPE_BASE + "self-approval"
    title = "Self-approval is not allowed"


class NotAnApprover(Forbidden):
    """The caller may not decide this request (403), per the live approver check."""

    type = TYPE_BASE + "not-an-approver"
    title = "Not an approver"


class RequestNotFound(NotFound):
    """No such request, or the caller may not see it (404: existence is not leaked)."""

    type = TYPE_BASE + "request-not-found"
    title = "Request not found"


class DuplicatePending(Conflict):
    """An identical request (same user, account, permission set) is already pending (409)."""

    type = TYPE_BASE + "duplicate-pending"
    title = "Duplicate pending request"


class IdempotencyConflict(Conflict):
    """The Idempotency-Key was used before with a different body (409)."""

    type = TYPE_BASE + "idempotency-conflict"
    title = "Idempotency key reused"


class PolicyDenied(Forbidden):
    """The policy service denied the request (403); `reasons` lists every reason."""

    type = TYPE_BASE + "policy-denied"
    title = "Denied by policy"


class PolicyRejectedInput(Unprocessable):
    """The policy service rejected values of the body (422); `reasons` lists every reason."""

    type = TYPE_BASE + "policy-rejected-input"
    title = "Rejected by policy"


class PolicyUnavailable(ServiceUnavailable):
    """The policy service could not be asked (503); nothing was stored."""

    type = TYPE_BASE + "policy-unavailable"
    title = "Policy service unavailable"
