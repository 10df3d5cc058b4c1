"""Page sizes of this service's lists; cursors are `teamkit.pagination`'s (created_at, id)."""

from request_service.repository import Position
from teamkit.pagination import decode_time_id, encode_time_id

MAX_LIMIT = 100
DEFAULT_LIMIT = 50


def encode_cursor(position: Position) -> str:
    """An opaque cursor pointing after `position` (created_at, id)."""
    return encode_time_id(*position)


def decode_cursor(cursor: str | None) -> Position | None:
    """The position a cursor points after; None for the first page, 422 when it is not one."""
    return None if cursor is None else decode_time_id(cursor)
