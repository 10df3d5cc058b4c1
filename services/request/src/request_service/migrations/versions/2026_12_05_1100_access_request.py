"""Create the access_request and request_decision tables.

Revision ID: request_0002
Revises: request_0001
Create Date: 2026-12-05 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "request_0002"
down_revision: str | None = "request_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = (
    "'pending', 'approved', 'scheduled', 'in_progress', 'ended', 'revoked', 'rejected', "
    "'cancelled', 'expired', 'error'"
)


def _tz(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "access_request",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requester_user_id", sa.String(256), nullable=False),
        sa.Column("requester_username", sa.String(256), nullable=False),
        sa.Column("requester_email", sa.String(320), nullable=True),
        sa.Column("requester_time_zone", sa.String(64), nullable=True),
        sa.Column("requested_by_client_id", sa.String(256), nullable=True),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("account_name", sa.String(256), nullable=False),
        sa.Column("account_ou_path", JSONB, nullable=False),
        sa.Column("permission_set_arn", sa.String(2048), nullable=False),
        sa.Column("permission_set_name", sa.String(256), nullable=False),
        sa.Column("session_duration_minutes", sa.Integer, nullable=True),
        _tz("start_at", False),
        _tz("end_at", False),
        sa.Column("duration_minutes", sa.Integer, nullable=False),
        sa.Column("justification", sa.Text, nullable=False),
        sa.Column("ticket", sa.String(256), nullable=True),
        sa.Column("approval_required", sa.Boolean, nullable=False),
        sa.Column("approvals_needed", sa.Integer, nullable=False),
        sa.Column("auto_approved", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("approvers", JSONB, nullable=False),
        sa.Column("approver_usernames", ARRAY(sa.String(256)), nullable=False),
        sa.Column("matched_policy_ids", JSONB, nullable=False),
        sa.Column("max_duration_minutes", sa.Integer, nullable=True),
        sa.Column("policy_settings", JSONB, nullable=False),
        _tz("approval_deadline"),
        sa.Column("status_reason", sa.Text, nullable=True),
        _tz("revoke_requested_at"),
        sa.Column("revoke_requested_by", sa.String(256), nullable=True),
        _tz("created_at", False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        _tz("approved_at"),
        _tz("scheduled_at"),
        _tz("granted_at"),
        _tz("ended_at"),
        sa.Column("idempotency_owner", sa.String(256), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("body_hash", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_access_request"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="ck_access_request_status_known"),
        sa.CheckConstraint(
            "approvals_needed >= 0", name="ck_access_request_approvals_needed_non_negative"
        ),
        sa.CheckConstraint("end_at > start_at", name="ck_access_request_window_positive"),
    )
    op.create_index(
        "uq_access_request_one_pending",
        "access_request",
        ["requester_user_id", "account_id", "permission_set_arn"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "uq_access_request_idempotency",
        "access_request",
        ["idempotency_owner", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index(
        "ix_access_request_requester_page",
        "access_request",
        ["requester_username", "created_at", "id"],
    )
    op.create_index(
        "ix_access_request_client_page",
        "access_request",
        ["requested_by_client_id", "created_at", "id"],
    )
    op.create_index(
        "ix_access_request_approvers",
        "access_request",
        ["approver_usernames"],
        postgresql_using="gin",
    )
    op.create_table(
        "request_decision",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("request_id", sa.Uuid, nullable=False),
        sa.Column("approver_username", sa.String(256), nullable=False),
        sa.Column("approver_user_id", sa.String(256), nullable=True),
        sa.Column("approver_email", sa.String(320), nullable=True),
        sa.Column("client_id", sa.String(256), nullable=True),
        sa.Column("requester_username", sa.String(256), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        _tz("decided_at", False),
        sa.PrimaryKeyConstraint("id", name="pk_request_decision"),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["access_request.id"],
            name="fk_request_decision_request_id_access_request",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("request_id", "approver_username", name="uq_request_decision_approver"),
        sa.CheckConstraint(
            "approver_username <> requester_username", name="ck_request_decision_not_self"
        ),
        sa.CheckConstraint(
            "decision IN ('approved', 'rejected')", name="ck_request_decision_decision_known"
        ),
    )
    op.create_index(
        "ix_request_decision_approver", "request_decision", ["approver_username", "decided_at"]
    )


def downgrade() -> None:
    op.drop_table("request_decision")
    op.drop_table("access_request")
