"""Problems the audit API answers with (problem+json via teamkit.problems)."""

from teamkit.problems import TYPE_BASE, Forbidden, NotFound, ProblemError, Unprocessable


class RequestNotFound(NotFound):
    """No trail event names this request."""

    type = TYPE_BASE + "audit-request-not-found"
    title = "Request not in the audit trail"


class InvalidQuery(Unprocessable):
    """A filter, range, cursor or page size that cannot be used."""

    type = TYPE_BASE + "audit-invalid-query"
    title = "Invalid audit query"


class AuditForbidden(Forbidden):
    """The caller may not read this part of the audit API."""

    type = TYPE_BASE + "audit-forbidden"
    title = "Not allowed to read the audit trail"


class ActivityUnavailable(ProblemError):
    """The CloudTrail backend could not answer."""

    status = 503
    type = TYPE_BASE + "audit-activity-unavailable"
    title = "Session activity unavailable"


class ActivityNotReady(ProblemError):
    """The request has no window yet (no snapshot): nothing to look up."""

    status = 409
    type = TYPE_BASE + "audit-activity-not-ready"
    title = "Session activity not available for this request yet"
