"""Opaque keyset cursors: the last item's sort key, as URL-safe base64 JSON."""

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from notify_service.errors import InvalidCursor

MAX_CURSOR_CHARS = 500


def encode_cursor(values: Sequence[Any]) -> str:
    """Encode the sort key of the last item of a page."""
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, names: Sequence[str]) -> list[str] | None:
    """Decode a cursor into as many string values as `names`; None for the first page."""
    if cursor is None:
        return None
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidCursor() from None
    if not isinstance(values, list) or len(values) != len(names):
        raise InvalidCursor()
    if not all(isinstance(v, str | int) for v in values):
        raise InvalidCursor()
    return [str(v) for v in values]
