"""Idempotent consumption: an event id is claimed in the same transaction as its effects."""

from typing import Any
from uuid import UUID

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from teamkit.messaging_schema import dead_letter_message, inbox_message


async def claim(session: AsyncSession, *, consumer: str, event_id: UUID, event_type: str) -> bool:
    """Record `event_id` for `consumer`; False when it was already applied (a redelivery)."""
    result = await session.execute(
        insert(inbox_message)
        .values(consumer=consumer, event_id=event_id, event_type=event_type)
        .on_conflict_do_nothing()
        .returning(inbox_message.c.event_id)
    )
    return result.first() is not None


async def record_dead_letter(
    session: AsyncSession,
    *,
    consumer: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    payload: bytes,
    error: str,
    attempts: int,
    event_id: UUID | None = None,
    event_type: str | None = None,
) -> bool:
    """Store a message the consumer gave up on; False when this position was stored before."""
    values: dict[str, Any] = {
        "consumer": consumer,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key.decode(errors="replace") if key is not None else None,
        "payload": payload,
        "error": error[:4000],
        "attempts": attempts,
        "event_id": event_id,
        "event_type": event_type,
    }
    result = await session.execute(
        insert(dead_letter_message)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_dead_letter_message_position")
        .returning(dead_letter_message.c.id)
    )
    return result.first() is not None
