"""CSV vocabulary: the export's columns, TEAM's status spelling, formula neutralisation.

The request export itself is produced by PostgreSQL (`COPY ... TO STDOUT CSV`, see
`repository.copy_requests_csv`), which applies the same neutralisation in SQL; the
session-activity CSV is rendered here.
"""

import csv
import io
from collections.abc import Iterable
from typing import Literal

from audit_service.schemas import ActivityEvent

StatusStyle = Literal["api", "team"]

# TEAM's approvals.csv fields, in TEAM's order and spelling, then our additions.
TEAM_COLUMNS = (
    "id",
    "email",
    "accountId",
    "accountName",
    "role",
    "roleId",
    "startTime",
    "duration",
    "justification",
    "status",
    "comment",
    "approver",
    "approvers",
    "revoker",
    "endTime",
    "ticketNo",
    "revokeComment",
    "session_duration",
    "createdAt",
    "updatedAt",
)
EXTRA_COLUMNS = (
    "username",
    "durationMinutes",
    "approvalsNeeded",
    "submittedAt",
    "approvedAt",
    "rejectedAt",
    "cancelledAt",
    "expiredAt",
    "scheduledAt",
    "grantedAt",
    "endedAt",
    "revokedAt",
    "endReason",
    "accessMinutes",
    "error",
)
COLUMNS = TEAM_COLUMNS + EXTRA_COLUMNS

# A spreadsheet treats a cell starting with one of these as a formula (OWASP CSV injection).
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """Prefix a cell a spreadsheet would evaluate with `'`, so it is shown as text."""
    if value.startswith(_FORMULA_TRIGGERS):
        return "'" + value
    return value


def render(rows: Iterable[list[str]]) -> str:
    """CSV text of `rows` (quoted when needed, LF line ends like PostgreSQL's COPY)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue()


ACTIVITY_COLUMNS = (
    "eventID",
    "eventName",
    "eventSource",
    "eventTime",
    "username",
    "accountId",
    "awsRegion",
    "sourceIPAddress",
    "readOnly",
    "errorCode",
)


def activity_cells(event: ActivityEvent) -> list[str]:
    """The cells of one session-activity event, in `ACTIVITY_COLUMNS` order."""
    cells = [
        event.event_id,
        event.event_name,
        event.event_source,
        event.event_time.isoformat(),
        event.username or "",
        event.account_id or "",
        event.aws_region or "",
        event.source_ip or "",
        "" if event.read_only is None else str(event.read_only).lower(),
        event.error_code or "",
    ]
    return [neutralise(cell) for cell in cells]
