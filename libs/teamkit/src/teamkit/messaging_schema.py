"""The outbox, inbox and dead-letter tables: declared once, created by each service's migrations."""

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from teamkit.db import new_metadata

metadata = new_metadata()

#: The channel the insert trigger NOTIFYs so the relay wakes at once (poll is the fallback).
OUTBOX_CHANNEL = "outbox_message"

outbox_message = Table(
    "outbox_message",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("topic", String(255), nullable=False),
    Column("key", String(255), nullable=True),
    Column("payload", JSONB, nullable=False),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text, nullable=True),
)
# The relay only ever scans unpublished rows, in id order.
Index(
    "ix_outbox_message_unpublished",
    outbox_message.c.id,
    postgresql_where=outbox_message.c.published_at.is_(None),
)

inbox_message = Table(
    "inbox_message",
    metadata,
    Column("consumer", String(100), primary_key=True),
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("event_type", String(255), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

dead_letter_message = Table(
    "dead_letter_message",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("consumer", String(100), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("key", Text, nullable=True),
    Column("event_id", UUID(as_uuid=True), nullable=True),
    Column("event_type", String(255), nullable=True),
    Column("payload", LargeBinary, nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # One record per delivered message, however often a crash makes Kafka redeliver it.
    UniqueConstraint(
        "consumer", "topic", "partition", "offset", name="uq_dead_letter_message_position"
    ),
)

_NOTIFY_FUNCTION = f"""
CREATE OR REPLACE FUNCTION outbox_message_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{OUTBOX_CHANNEL}', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
_NOTIFY_TRIGGER = """
CREATE TRIGGER outbox_message_notify AFTER INSERT ON outbox_message
FOR EACH STATEMENT EXECUTE FUNCTION outbox_message_notify()
"""


def create_messaging_schema(op: Any) -> None:
    """Create the messaging tables and the outbox wake-up trigger (call from a migration)."""
    bind = op.get_bind()
    metadata.create_all(bind=bind)
    op.execute(_NOTIFY_FUNCTION)
    op.execute(_NOTIFY_TRIGGER)


def drop_messaging_schema(op: Any) -> None:
    """Drop what `create_messaging_schema` created (call from a migration's downgrade)."""
    op.execute("DROP TRIGGER IF EXISTS outbox_message_notify ON outbox_message")
    op.execute("DROP FUNCTION IF EXISTS outbox_message_notify()")
    metadata.drop_all(bind=op.get_bind())
