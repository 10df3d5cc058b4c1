"""Directory cache, eligibility and approver policies, settings.

Revision ID: policy_0002
Revises: policy_0001
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "policy_0002"
down_revision: str | None = "policy_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _audit_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "directory_ou",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("parent_id", sa.String(128), nullable=True),
        sa.Column("path", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_directory_ou"),
    )
    op.create_table(
        "directory_account",
        sa.Column("id", sa.String(12), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("parent_id", sa.String(128), nullable=False),
        sa.Column("ou_path", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_directory_account"),
    )
    op.create_table(
        "directory_permission_set",
        sa.Column("arn", sa.String(2048), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("session_duration_minutes", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("arn", name="pk_directory_permission_set"),
    )
    op.create_table(
        "directory_user",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("username", sa.String(256), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("display_name", sa.String(256), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_directory_user"),
    )
    # People are looked up case-insensitively by user name or email.
    op.create_index("ix_directory_user_username", "directory_user", [sa.text("lower(username)")])
    op.create_index("ix_directory_user_email", "directory_user", [sa.text("lower(email)")])
    op.create_table(
        "directory_group",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_directory_group"),
    )
    op.create_index("ix_directory_group_name", "directory_group", ["name"])
    op.create_table(
        "directory_membership",
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "user_id", name="pk_directory_membership"),
    )
    op.create_index("ix_directory_membership_user_id", "directory_membership", ["user_id"])
    op.create_table(
        "directory_state",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("instance_arn", sa.String(2048), nullable=True),
        sa.Column("identity_store_id", sa.String(64), nullable=True),
        sa.Column("root_id", sa.String(128), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_ok", sa.Boolean, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_duration_ms", sa.Integer, nullable=True),
        sa.Column("counts", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.PrimaryKeyConstraint("id", name="pk_directory_state"),
        sa.CheckConstraint("id = 1", name="ck_directory_state_single_row"),
    )
    op.execute("INSERT INTO directory_state (id) VALUES (1)")

    op.create_table(
        "eligibility_policy",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("user_ids", JSONB, nullable=False),
        sa.Column("group_ids", JSONB, nullable=False),
        sa.Column("account_ids", JSONB, nullable=False),
        sa.Column("ou_ids", JSONB, nullable=False),
        sa.Column("direct_children_only", sa.Boolean, nullable=False),
        sa.Column("permission_set_arns", JSONB, nullable=False),
        sa.Column("max_duration_minutes", sa.Integer, nullable=False),
        sa.Column("approval_required", sa.Boolean, nullable=False),
        sa.Column("ticket_required", sa.Boolean, nullable=False),
        sa.Column("approvals_needed", sa.Integer, nullable=False),
        sa.Column("justification_pattern", sa.String(500), nullable=True),
        *_audit_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_eligibility_policy"),
        sa.CheckConstraint("max_duration_minutes > 0", name="ck_eligibility_policy_max_duration"),
        sa.CheckConstraint("approvals_needed >= 1", name="ck_eligibility_policy_quorum"),
    )
    op.create_table(
        "approver_policy",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("account_ids", JSONB, nullable=False),
        sa.Column("ou_ids", JSONB, nullable=False),
        sa.Column("permission_set_arns", JSONB, nullable=False),
        sa.Column("approver_user_ids", JSONB, nullable=False),
        sa.Column("approver_group_ids", JSONB, nullable=False),
        sa.Column("approvals_needed", sa.Integer, nullable=False),
        *_audit_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_approver_policy"),
        sa.CheckConstraint("approvals_needed >= 1", name="ck_approver_policy_quorum"),
    )
    op.create_table(
        "policy_settings",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("data", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by", sa.String(256), nullable=True),
        sa.Column("demo_seeded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_policy_settings"),
        sa.CheckConstraint("id = 1", name="ck_policy_settings_single_row"),
    )
    op.execute("INSERT INTO policy_settings (id) VALUES (1)")


def downgrade() -> None:
    for table in (
        "policy_settings",
        "approver_policy",
        "eligibility_policy",
        "directory_state",
        "directory_membership",
        "directory_group",
        "directory_user",
        "directory_permission_set",
        "directory_account",
        "directory_ou",
    ):
        op.drop_table(table)
