"""Version counters of the directory copy and the policy set, bumped by triggers.

Every statement that writes a directory table bumps `data_version('directory')`, every statement
that writes a policy or the settings bumps `data_version('policy')`, in the writer's own
transaction. Readers compare the counters with those of their in-memory copies (see
`policy_service.cache`): a change committed by any replica is seen by the next call of every
replica, whatever code path wrote it.

Revision ID: policy_0003
Revises: policy_0002
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "policy_0003"
down_revision: str | None = "policy_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WATCHED = {
    "directory": (
        "directory_ou",
        "directory_account",
        "directory_permission_set",
        "directory_user",
        "directory_group",
        "directory_membership",
    ),
    "policy": ("eligibility_policy", "approver_policy", "policy_settings"),
}


def upgrade() -> None:
    op.create_table(
        "data_version",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
        sa.PrimaryKeyConstraint("name", name="pk_data_version"),
    )
    op.execute("INSERT INTO data_version (name) VALUES ('directory'), ('policy')")
    op.execute(
        """
        CREATE FUNCTION bump_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE data_version SET version = version + 1 WHERE name = TG_ARGV[0];
            RETURN NULL;
        END
        $$
        """
    )
    for name, tables in _WATCHED.items():
        for table in tables:
            op.execute(
                f"CREATE TRIGGER trg_{table}_data_version "
                f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('{name}')"
            )


def downgrade() -> None:
    for tables in _WATCHED.values():
        for table in tables:
            op.execute(f"DROP TRIGGER trg_{table}_data_version ON {table}")
    op.execute("DROP FUNCTION bump_data_version()")
    op.drop_table("data_version")
