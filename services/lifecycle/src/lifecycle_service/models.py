"""The lifecycle service's tables (SQLAlchemy Core, like teamkit's messaging tables).

- `grant_record`: one row per approved request: its window, state and outcome.
- `timer`: durable timers (approval expiry, start, end, revoke); pending rows indexed by due time.
- `assignment_ledger`: one row per (principal, account, permission set) with the grants holding
  it and whether it was standing access before this system touched it.
- `aws_call`: every Identity Center assignment call, committed before and after the call, so a
  crash between the call and the job's commit is visible after a restart.
- `reconciliation`: reports of the reconciler.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from teamkit.db import new_metadata

metadata = new_metadata()

#: NOTIFY channel of the insert trigger on `timer`: the scheduler re-reads its earliest due time.
TIMER_CHANNEL = "lifecycle_timer"

grant_record = Table(
    "grant_record",
    metadata,
    Column("request_id", UUID(as_uuid=True), primary_key=True),
    Column("principal_id", String(64), nullable=False),
    Column("account_id", String(12), nullable=False),
    Column("permission_set_arn", String(2048), nullable=False),
    Column("start_at", DateTime(timezone=True), nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=False),
    # scheduled | active | ended | revoked | cancelled | error
    Column("state", String(16), nullable=False),
    Column("assignment_action", String(32), nullable=True),
    Column("granted_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("end_reason", String(16), nullable=True),
    Column("revoked_by", JSONB, nullable=True),
    # grant | revoke: which side failed, when `state` is `error`.
    Column("error_kind", String(16), nullable=True),
    Column("error_code", String(128), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("create_request_id", String(64), nullable=True),
    Column("delete_request_id", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
# GET /v1/grants pages newest first by (created_at, request_id).
Index("ix_grant_record_created", grant_record.c.created_at, grant_record.c.request_id)
Index("ix_grant_record_state", grant_record.c.state)
Index("ix_grant_record_tuple", grant_record.c.principal_id, grant_record.c.account_id)

timer = Table(
    "timer",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    # approval_expiry | start | end | revoke
    Column("kind", String(32), nullable=False),
    Column("request_id", UUID(as_uuid=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    # pending | done | cancelled
    Column("state", String(16), nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("fired_at", DateTime(timezone=True), nullable=True),
)
# The scheduler only ever scans pending rows in due order; done rows cost nothing here.
Index(
    "ix_timer_pending_due",
    timer.c.due_at,
    timer.c.id,
    postgresql_where=timer.c.state == "pending",
)
Index("ix_timer_request", timer.c.request_id)

assignment_ledger = Table(
    "assignment_ledger",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("principal_id", String(64), nullable=False),
    Column("account_id", String(12), nullable=False),
    Column("permission_set_arn", String(2048), nullable=False),
    Column(
        "holders",
        ARRAY(UUID(as_uuid=True)),
        nullable=False,
        server_default=text("'{}'::uuid[]"),
    ),
    Column("standing", Boolean, nullable=False, server_default=text("false")),
    # Whether the assignment exists in Identity Center as far as the ledger knows.
    Column("assigned", Boolean, nullable=False, server_default=text("false")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint(
        "principal_id", "account_id", "permission_set_arn", name="uq_assignment_ledger_tuple"
    ),
)

aws_call = Table(
    "aws_call",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("request_id", UUID(as_uuid=True), nullable=True),
    # create | delete (the assignment operations; lookups are not logged)
    Column("operation", String(16), nullable=False),
    Column("principal_id", String(64), nullable=False),
    Column("account_id", String(12), nullable=False),
    Column("permission_set_arn", String(2048), nullable=False),
    Column("attempt", Integer, nullable=False),
    # started | in_progress | succeeded | failed | error
    Column("status", String(16), nullable=False),
    Column("aws_request_id", String(64), nullable=True),
    Column("error_code", String(128), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)
Index("ix_aws_call_request", aws_call.c.request_id)
Index(
    "ix_aws_call_tuple",
    aws_call.c.principal_id,
    aws_call.c.account_id,
    aws_call.c.permission_set_arn,
    aws_call.c.id,
)

reconciliation = Table(
    "reconciliation",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("trigger", String(16), nullable=False),
    Column("requested_by", String(255), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("tuples_checked", Integer, nullable=False, server_default=text("0")),
    Column("repairs", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("errors", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
)
