"""Tables of the notify service (SQLAlchemy Core, like `teamkit.messaging_schema`).

Core tables rather than SQLModel classes: every statement here is a bulk insert with
`ON CONFLICT`, a `FOR UPDATE SKIP LOCKED` claim or a keyset page, which Core states directly.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    SmallInteger,
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

#: Channel NOTIFYed by the insert trigger on `delivery`, so the worker wakes at once.
DELIVERY_CHANNEL = "notify_delivery"

DELIVERY_STATUSES = ("pending", "sending", "sent", "failed", "skipped")

request_snapshot = Table(
    "request_snapshot",
    metadata,
    Column("request_id", UUID(as_uuid=True), primary_key=True),
    Column("submitted_event_id", UUID(as_uuid=True), nullable=False),
    # RequestSubmittedData as JSON: who, what, when, why, and the approvers with emails.
    Column("snapshot", JSONB, nullable=False),
    # From request.revoke_requested, so access.ended can say who revoked and why.
    Column("revoke", JSONB, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Events for a request whose request.submitted has not arrived yet (they travel on another
# topic and may overtake it); replayed for the people once the snapshot is stored.
deferred_event = Table(
    "deferred_event",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("request_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("payload", JSONB, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

delivery = Table(
    "delivery",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("request_id", UUID(as_uuid=True), nullable=True),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("audience", String(16), nullable=False),
    # The rendered message, ready to send (rendered once, in the consumer's transaction).
    Column("payload", JSONB, nullable=False),
    Column("status", String(16), nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("provider_ref", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    # The exactly-once key: one message per (event, channel, recipient), recorded before sending.
    UniqueConstraint(
        "event_id", "channel", "recipient", name="uq_delivery_event_channel_recipient"
    ),
    CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'skipped')", name="status"),
)
Index(
    "ix_delivery_due",
    delivery.c.next_attempt_at,
    postgresql_where=delivery.c.status.in_(("pending", "sending")),
)
Index("ix_delivery_request_id_id", delivery.c.request_id, delivery.c.id)

webhook = Table(
    "webhook",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("url", String(2000), nullable=False),
    Column("event_types", JSONB, nullable=False),
    Column("description", String(200), nullable=True),
    Column("secret", String(200), nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_by", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

channel_settings = Table(
    "channel_settings",
    metadata,
    # One row (id = 1): the latest non-secret notification settings from settings.updated.
    Column("id", SmallInteger, primary_key=True),
    Column("values", JSONB, nullable=False),
    Column("source_event_id", UUID(as_uuid=True), nullable=False),
    Column("source_time", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("id = 1", name="single_row"),
)
