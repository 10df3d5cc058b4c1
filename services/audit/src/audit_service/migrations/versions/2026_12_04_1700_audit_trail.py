"""Create the hash-chained trail (insert-only, enforced by triggers) and the request projection.

Revision ID: audit_0002
Revises: audit_0001
Create Date: 2026-12-04 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "audit_0002"
down_revision: str | None = "audit_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Text, not bounded varchar, for everything an event carries: a value longer than expected
    # must never make the insert fail, or the record would be dead-lettered instead of kept.
    op.create_table(
        "audit_event",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("event_time", TS, nullable=True),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("known", sa.Boolean, nullable=False),
        sa.Column("flag", sa.Text, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.LargeBinary, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_audit_event"),
    )
    op.create_index("ix_audit_event_subject", "audit_event", ["subject", "position"])
    op.create_index("ix_audit_event_type", "audit_event", ["type", "position"])
    op.create_index("ix_audit_event_event_time", "audit_event", ["event_time"])
    op.create_index(
        "ix_audit_event_flagged",
        "audit_event",
        ["position"],
        postgresql_where=sa.text("flag IS NOT NULL"),
    )
    # Insert-only: any UPDATE, DELETE or TRUNCATE fails, for the owner too. Only a superuser
    # (who can disable triggers) can still tamper, and verification then finds it.
    op.execute(
        """
        CREATE FUNCTION audit_event_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_event is insert-only: % is not allowed', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON audit_event "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_insert_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_insert_only()"
    )
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_event FROM PUBLIC")

    op.create_table(
        "audit_request",
        sa.Column("request_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("requester_id", sa.Text, nullable=True),
        sa.Column("requester_username", sa.Text, nullable=True),
        sa.Column("requester_email", sa.Text, nullable=True),
        sa.Column("account_id", sa.Text, nullable=True),
        sa.Column("account_name", sa.Text, nullable=True),
        sa.Column("permission_set_arn", sa.Text, nullable=True),
        sa.Column("permission_set_name", sa.Text, nullable=True),
        sa.Column("session_duration_minutes", sa.Integer, nullable=True),
        sa.Column("start_at", TS, nullable=True),
        sa.Column("end_at", TS, nullable=True),
        sa.Column("duration_minutes", sa.Integer, nullable=True),
        sa.Column("justification", sa.Text, nullable=True),
        sa.Column("ticket", sa.Text, nullable=True),
        sa.Column("approval_required", sa.Boolean, nullable=True),
        sa.Column("approvals_needed", sa.Integer, nullable=True),
        sa.Column("auto_approved", sa.Boolean, nullable=False),
        sa.Column("eligible_approvers", postgresql.JSONB, nullable=False),
        sa.Column("decisions", postgresql.JSONB, nullable=False),
        sa.Column("approver_usernames", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("submitted_at", TS, nullable=True),
        sa.Column("approved_at", TS, nullable=True),
        sa.Column("rejected_at", TS, nullable=True),
        sa.Column("cancelled_at", TS, nullable=True),
        sa.Column("expired_at", TS, nullable=True),
        sa.Column("scheduled_at", TS, nullable=True),
        sa.Column("granted_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("revoke_requested_at", TS, nullable=True),
        sa.Column("errored_at", TS, nullable=True),
        sa.Column("cancelled_by", sa.Text, nullable=True),
        sa.Column("cancel_comment", sa.Text, nullable=True),
        sa.Column("revoked_by", sa.Text, nullable=True),
        sa.Column("revoked_by_email", sa.Text, nullable=True),
        sa.Column("revoke_role", sa.String(20), nullable=True),
        sa.Column("revoke_comment", sa.Text, nullable=True),
        sa.Column("end_reason", sa.String(20), nullable=True),
        sa.Column("errors", postgresql.JSONB, nullable=False),
        # The list columns of the CSV export, joined once when the row is written.
        sa.Column("decision_comments", sa.Text, nullable=True),
        sa.Column("decision_approvers", sa.Text, nullable=True),
        sa.Column("eligible_approver_list", sa.Text, nullable=True),
        sa.Column("error_summary", sa.Text, nullable=True),
        sa.Column("last_event_at", TS, nullable=True),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_audit_request"),
    )
    op.create_index("ix_audit_request_created", "audit_request", ["created_at", "request_id"])
    op.create_index("ix_audit_request_status", "audit_request", ["status", "created_at"])
    op.create_index("ix_audit_request_requester", "audit_request", ["requester_username"])
    op.create_index("ix_audit_request_account", "audit_request", ["account_id"])
    op.create_index(
        "ix_audit_request_approvers",
        "audit_request",
        ["approver_usernames"],
        postgresql_using="gin",
    )


def downgrade() -> None:
    op.drop_table("audit_request")
    op.execute("DROP TRIGGER audit_event_no_truncate ON audit_event")
    op.execute("DROP TRIGGER audit_event_no_update_delete ON audit_event")
    op.drop_table("audit_event")
    op.execute("DROP FUNCTION audit_event_insert_only()")
