"""The audit service's tables (SQLAlchemy Core: the trail is read by streaming Core queries)."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from teamkit.db import new_metadata

metadata = new_metadata()

#: The insert-only, hash-chained trail: one row per consumed record, in append order.
audit_event = Table(
    "audit_event",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("known", Boolean, nullable=False),
    Column("flag", Text, nullable=True),
    Column("body", Text, nullable=False),
    Column("prev_hash", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
)
Index("ix_audit_event_subject", audit_event.c.subject, audit_event.c.position)
Index("ix_audit_event_type", audit_event.c.type, audit_event.c.position)
Index("ix_audit_event_event_time", audit_event.c.event_time)
Index(
    "ix_audit_event_flagged",
    audit_event.c.position,
    postgresql_where=audit_event.c.flag.is_not(None),
)

#: One row per request, rebuilt from the request's trail events each time one arrives.
audit_request = Table(
    "audit_request",
    metadata,
    Column("request_id", UUID(as_uuid=True), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=True),
    Column("requester_id", Text, nullable=True),
    Column("requester_username", Text, nullable=True),
    Column("requester_email", Text, nullable=True),
    Column("account_id", Text, nullable=True),
    Column("account_name", Text, nullable=True),
    Column("permission_set_arn", Text, nullable=True),
    Column("permission_set_name", Text, nullable=True),
    Column("session_duration_minutes", Integer, nullable=True),
    Column("start_at", DateTime(timezone=True), nullable=True),
    Column("end_at", DateTime(timezone=True), nullable=True),
    Column("duration_minutes", Integer, nullable=True),
    Column("justification", Text, nullable=True),
    Column("ticket", Text, nullable=True),
    Column("approval_required", Boolean, nullable=True),
    Column("approvals_needed", Integer, nullable=True),
    Column("auto_approved", Boolean, nullable=False),
    Column("eligible_approvers", JSONB, nullable=False),
    Column("decisions", JSONB, nullable=False),
    Column("approver_usernames", ARRAY(Text), nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=True),
    Column("approved_at", DateTime(timezone=True), nullable=True),
    Column("rejected_at", DateTime(timezone=True), nullable=True),
    Column("cancelled_at", DateTime(timezone=True), nullable=True),
    Column("expired_at", DateTime(timezone=True), nullable=True),
    Column("scheduled_at", DateTime(timezone=True), nullable=True),
    Column("granted_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("revoke_requested_at", DateTime(timezone=True), nullable=True),
    Column("errored_at", DateTime(timezone=True), nullable=True),
    Column("cancelled_by", Text, nullable=True),
    Column("cancel_comment", Text, nullable=True),
    Column("revoked_by", Text, nullable=True),
    Column("revoked_by_email", Text, nullable=True),
    Column("revoke_role", String(20), nullable=True),
    Column("revoke_comment", Text, nullable=True),
    Column("end_reason", String(20), nullable=True),
    Column("errors", JSONB, nullable=False),
    # The list columns of the CSV export, joined once when the row is written, so the export
    # is a plain COPY of columns (no per-row JSON unnesting).
    Column("decision_comments", Text, nullable=True),
    Column("decision_approvers", Text, nullable=True),
    Column("eligible_approver_list", Text, nullable=True),
    Column("error_summary", Text, nullable=True),
    Column("last_event_at", DateTime(timezone=True), nullable=True),
    Column("event_count", Integer, nullable=False),
)
# Keyset pagination walks (created_at, request_id) backwards.
Index("ix_audit_request_created", audit_request.c.created_at, audit_request.c.request_id)
Index("ix_audit_request_status", audit_request.c.status, audit_request.c.created_at)
Index("ix_audit_request_requester", audit_request.c.requester_username)
Index("ix_audit_request_account", audit_request.c.account_id)
Index("ix_audit_request_approvers", audit_request.c.approver_usernames, postgresql_using="gin")
