"""Problems the lifecycle API answers with (RFC 9457 via teamkit.problems)."""

from teamkit.problems import TYPE_BASE, Conflict, NotFound, ServiceUnavailable


class GrantNotFound(NotFound):
    """No grant is known for the request id."""

    type = TYPE_BASE + "grant-not-found"
    title = "Grant not found"


class GrantNotRetryable(Conflict):
    """The grant is not in `error`, or its window is over."""

    type = TYPE_BASE + "grant-not-retryable"
    title = "Grant cannot be retried"


class WorkersDisabled(ServiceUnavailable):
    """This process runs without the AWS worker (LIFECYCLE_WORKERS_ENABLED=false)."""

    type = TYPE_BASE + "workers-disabled"
    title = "Workers disabled"


class NoReconciliation(NotFound):
    """No reconciliation has run yet."""

    type = TYPE_BASE + "no-reconciliation"
    title = "No reconciliation yet"
