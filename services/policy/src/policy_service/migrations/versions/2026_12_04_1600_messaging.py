"""Create the outbox, inbox and dead-letter tables.

Revision ID: policy_0001
Revises:
Create Date: 2026-12-04 16:00:00
"""

from collections.abc import Sequence

from alembic import op

from teamkit.messaging_schema import create_messaging_schema, drop_messaging_schema

revision: str = "policy_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_messaging_schema(op)


def downgrade() -> None:
    drop_messaging_schema(op)
