"""Notify tables: request snapshots, deliveries, webhooks, channel settings.

Revision ID: notify_0002
Revises: notify_0001
Create Date: 2026-12-04 18:00:00
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "notify_0002"
down_revision: str | None = "notify_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_updated() -> list[sa.Column[datetime]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "request_snapshot",
        sa.Column("request_id", UUID(as_uuid=True)),
        sa.Column("submitted_event_id", UUID(as_uuid=True), nullable=False),
        sa.Column("snapshot", JSONB, nullable=False),
        sa.Column("revoke", JSONB, nullable=True),
        *_created_updated(),
        sa.PrimaryKeyConstraint("request_id", name="pk_request_snapshot"),
    )
    op.create_table(
        "delivery",
        sa.Column("id", sa.BigInteger, autoincrement=True),
        sa.Column("event_id", UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("request_id", UUID(as_uuid=True), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'pending'")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("provider_ref", sa.String(255), nullable=True),
        *_created_updated(),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_delivery"),
        sa.UniqueConstraint(
            "event_id", "channel", "recipient", name="uq_delivery_event_channel_recipient"
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'skipped')",
            name="ck_delivery_status",
        ),
    )
    op.create_index(
        "ix_delivery_due",
        "delivery",
        ["next_attempt_at"],
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
    )
    op.create_index("ix_delivery_request_id_id", "delivery", ["request_id", "id"])
    op.execute(
        """
        CREATE OR REPLACE FUNCTION delivery_notify() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('notify_delivery', '');
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER delivery_notify AFTER INSERT ON delivery "
        "FOR EACH STATEMENT EXECUTE FUNCTION delivery_notify()"
    )
    op.create_table(
        "webhook",
        sa.Column("id", UUID(as_uuid=True)),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("event_types", JSONB, nullable=False),
        sa.Column("description", sa.String(200), nullable=True),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("created_by", sa.String(255), nullable=False),
        *_created_updated(),
        sa.PrimaryKeyConstraint("id", name="pk_webhook"),
    )
    op.create_table(
        "channel_settings",
        sa.Column("id", sa.SmallInteger),
        sa.Column("values", JSONB, nullable=False),
        sa.Column("source_event_id", UUID(as_uuid=True), nullable=False),
        sa.Column("source_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("id", name="pk_channel_settings"),
        sa.CheckConstraint("id = 1", name="ck_channel_settings_single_row"),
    )


def downgrade() -> None:
    op.drop_table("channel_settings")
    op.drop_table("webhook")
    op.execute("DROP TRIGGER IF EXISTS delivery_notify ON delivery")
    op.execute("DROP FUNCTION IF EXISTS delivery_notify()")
    op.drop_table("delivery")
    op.drop_table("request_snapshot")
