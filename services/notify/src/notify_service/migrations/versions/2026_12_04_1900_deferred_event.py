"""Keep events that overtake their request's snapshot.

Revision ID: notify_0003
Revises: notify_0002
Create Date: 2026-12-04 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "notify_0003"
down_revision: str | None = "notify_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deferred_event",
        sa.Column("event_id", UUID(as_uuid=True), nullable=False),
        sa.Column("request_id", UUID(as_uuid=True), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("event_id", name="pk_deferred_event"),
    )
    op.create_index("ix_deferred_event_request_id", "deferred_event", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_deferred_event_request_id", table_name="deferred_event")
    op.drop_table("deferred_event")
