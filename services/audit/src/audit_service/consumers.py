"""Event handlers of the audit service.

One catch-all handler sees every record of the four topics, known type or not, so nothing that
reaches the trail's consumer is dropped: unknown types and payloads that do not match their class
are stored raw and flagged. (Records that are not a JSON envelope at all never reach a handler;
the consumer runner dead-letters them into `dead_letter_message`.)
"""

from sqlalchemy.ext.asyncio import AsyncSession

from audit_service import service
from teamkit.kafka import Delivery, HandlerRegistry

registry = HandlerRegistry()


async def record(session: AsyncSession, delivery: Delivery) -> None:
    """Append the record to the trail and refresh the projection of its request."""
    await service.record_delivery(session, delivery)


registry.on_any(record)
