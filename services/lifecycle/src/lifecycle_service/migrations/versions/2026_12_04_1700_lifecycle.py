"""Create the grant, timer, ledger, AWS call and reconciliation tables.

Revision ID: lifecycle_0002
Revises: lifecycle_0001
Create Date: 2026-12-04 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision: str = "lifecycle_0002"
down_revision: str | None = "lifecycle_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "grant_record",
        sa.Column("request_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("principal_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("permission_set_arn", sa.String(2048), nullable=False),
        sa.Column("start_at", _TS, nullable=False),
        sa.Column("end_at", _TS, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("assignment_action", sa.String(32), nullable=True),
        sa.Column("granted_at", _TS, nullable=True),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("end_reason", sa.String(16), nullable=True),
        sa.Column("revoked_by", JSONB, nullable=True),
        sa.Column("error_kind", sa.String(16), nullable=True),
        sa.Column("error_code", sa.String(128), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("create_request_id", sa.String(64), nullable=True),
        sa.Column("delete_request_id", sa.String(64), nullable=True),
        sa.Column("created_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", _TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_grant_record_created", "grant_record", ["created_at", "request_id"])
    op.create_index("ix_grant_record_state", "grant_record", ["state"])
    op.create_index("ix_grant_record_tuple", "grant_record", ["principal_id", "account_id"])

    op.create_table(
        "timer",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("request_id", UUID(as_uuid=True), nullable=False),
        sa.Column("due_at", _TS, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default=sa.text("'pending'")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("payload", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.Column("fired_at", _TS, nullable=True),
    )
    op.create_index(
        "ix_timer_pending_due",
        "timer",
        ["due_at", "id"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index("ix_timer_request", "timer", ["request_id"])
    op.execute(
        """
        CREATE OR REPLACE FUNCTION lifecycle_timer_notify() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('lifecycle_timer', '');
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        """
        CREATE TRIGGER lifecycle_timer_notify AFTER INSERT ON timer
        FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_timer_notify()
        """
    )

    op.create_table(
        "assignment_ledger",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("principal_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("permission_set_arn", sa.String(2048), nullable=False),
        sa.Column(
            "holders",
            ARRAY(UUID(as_uuid=True)),
            nullable=False,
            server_default=sa.text("'{}'::uuid[]"),
        ),
        sa.Column("standing", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("assigned", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("updated_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint(
            "principal_id",
            "account_id",
            "permission_set_arn",
            name="uq_assignment_ledger_tuple",
        ),
    )

    op.create_table(
        "aws_call",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("request_id", UUID(as_uuid=True), nullable=True),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("principal_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("permission_set_arn", sa.String(2048), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("aws_request_id", sa.String(64), nullable=True),
        sa.Column("error_code", sa.String(128), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("started_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", _TS, nullable=True),
    )
    op.create_index("ix_aws_call_request", "aws_call", ["request_id"])
    op.create_index(
        "ix_aws_call_tuple",
        "aws_call",
        ["principal_id", "account_id", "permission_set_arn", "id"],
    )

    op.create_table(
        "reconciliation",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=True),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("tuples_checked", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("repairs", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("errors", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    )


def downgrade() -> None:
    op.drop_table("reconciliation")
    op.drop_table("aws_call")
    op.drop_table("assignment_ledger")
    op.execute("DROP TRIGGER IF EXISTS lifecycle_timer_notify ON timer")
    op.execute("DROP FUNCTION IF EXISTS lifecycle_timer_notify()")
    op.drop_table("timer")
    op.drop_table("grant_record")
