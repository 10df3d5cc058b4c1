"""Keyset pagination cursors, one format for every service.

`?limit=&cursor=` → `{"items": [...], "next_cursor": ...}`. A cursor is the sort key of the last
item of a page, as URL-safe base64 JSON: opaque to clients, checked strictly when it comes back.
"""

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from teamkit.problems import TYPE_BASE, Unprocessable

CursorValue = str | int

#: Far above any cursor this API issues; bounds what a client can make us decode.
MAX_CURSOR_CHARS = 2048


class InvalidCursor(Unprocessable):
    """The `cursor` query parameter is not one this API handed out."""

    type = TYPE_BASE + "invalid-cursor"
    title = "Invalid cursor"

    def __init__(self) -> None:
        super().__init__(
            "cursor is not one this API returned; pass the `next_cursor` of the previous page "
            "unchanged, or omit it for the first page",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
        )


def encode_cursor(values: Sequence[CursorValue]) -> str:
    """The cursor after an item whose sort key is `values`."""
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, arity: int) -> list[CursorValue]:
    """The `arity` sort-key values of a cursor from `encode_cursor`; InvalidCursor otherwise."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursor
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeError):
        raise InvalidCursor from None
    if not (isinstance(values, list) and len(values) == arity):
        raise InvalidCursor
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
        raise InvalidCursor
    return values


def encode_time_id(at: datetime, id_: UUID) -> str:
    """The cursor of the usual keyset: (creation time, id)."""
    return encode_cursor([at.isoformat(), str(id_)])


def decode_time_id(cursor: str) -> tuple[datetime, UUID]:
    """The (aware creation time, id) of a cursor from `encode_time_id`."""
    at, id_ = decode_cursor(cursor, arity=2)
    try:
        position = datetime.fromisoformat(str(at)), UUID(str(id_))
    except ValueError:
        raise InvalidCursor from None
    if position[0].tzinfo is None:
        raise InvalidCursor
    return position
