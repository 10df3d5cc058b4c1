"""Opaque keyset cursors: `?limit=&cursor=` → `{"items": [...], "next_cursor": ...}`."""

import base64
import binascii
import json
from datetime import datetime
from uuid import UUID

from request_service.repository import Position
from teamkit.problems import Unprocessable

MAX_LIMIT = 100
DEFAULT_LIMIT = 50


def encode_cursor(position: Position) -> str:
    """An opaque cursor pointing after `position` (created_at, id)."""
    created_at, request_id = position
    raw = json.dumps([created_at.isoformat(), str(request_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Position | None:
    """The position a cursor from `encode_cursor` points after; 422 when it is not one."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, request_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        position = (datetime.fromisoformat(created_at), UUID(request_id))
    except (binascii.Error, ValueError, TypeError, UnicodeError):
        raise Unprocessable(
            "cursor is not a cursor this API returned; pass the `next_cursor` of the previous "
            "page unchanged, or omit it for the first page",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
        ) from None
    if position[0].tzinfo is None:
        raise Unprocessable(
            "cursor is not a cursor this API returned; omit it for the first page",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
        )
    return position
