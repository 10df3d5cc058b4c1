"""Problems the policy service raises (rendered as problem+json by teamkit)."""

from teamkit.problems import TYPE_BASE, Conflict, NotFound, ProblemError, Unprocessable


class PolicyNotFound(NotFound):
    """No policy with that id."""

    type = TYPE_BASE + "policy-not-found"
    title = "Policy not found"


class StaleVersion(Conflict):
    """The caller changed an older version than the current one (a lost update avoided)."""

    type = TYPE_BASE + "stale-version"
    title = "Stale version"


class PreconditionRequired(ProblemError):
    """An update must say which version it replaces."""

    status = 428
    type = TYPE_BASE + "precondition-required"
    title = "Precondition required"


class UnknownReferences(Unprocessable):
    """The body names directory ids that do not exist."""

    type = TYPE_BASE + "unknown-references"
    title = "Unknown directory references"


class LimitExceeded(Unprocessable):
    """A value is above a configured limit."""

    type = TYPE_BASE + "limit-exceeded"
    title = "Limit exceeded"


class UnknownCaller(NotFound):
    """The signed-in person has no Identity Center user."""

    type = TYPE_BASE + "unknown-user"
    title = "Unknown user"
