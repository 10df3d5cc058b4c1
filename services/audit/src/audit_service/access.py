"""Who may read what in the audit API: pure rules, no I/O.

Auditors (the auditor group) and integration clients granted `team.audit.read` read everything. A
requester, and the approvers of a request, may read that request's session activity only. An
admin who is not also an auditor reads nothing here: duties stay separate, as in TEAM.
"""

from collections.abc import Iterable

from teamkit.auth import Principal

AUDIT_SCOPE = "team.audit.read"


def reads_everything(principal: Principal) -> bool:
    """True for auditors and for integration clients granted the audit scope.

    A person's token carrying the scope is not enough: people read as auditors, by group, so an
    admin cannot grant themselves the audit view through a scope.
    """
    return principal.is_auditor or (principal.is_client and principal.has_scope(AUDIT_SCOPE))


def reads_activity_of(
    principal: Principal, *, requester: str | None, approvers: Iterable[str]
) -> bool:
    """True when the caller may read the activity of a request with these people."""
    if reads_everything(principal):
        return True
    if principal.is_client or principal.username is None:
        return False
    return principal.username == requester or principal.username in set(approvers)
