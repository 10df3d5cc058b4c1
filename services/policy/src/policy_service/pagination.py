"""Opaque keyset cursors: the sort key of the last item, base64url-encoded JSON."""

import base64
import binascii
import json
from collections.abc import Sequence

from policy_service.errors import BadCursor

MAX_CURSOR_CHARS = 2048


def encode_cursor(values: Sequence[str]) -> str:
    """The cursor after an item whose sort key is `values`."""
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[str, str] | None:
    """The (sort key, id) pair of a cursor, or None for the first page."""
    if cursor is None:
        return None
    if len(cursor) > MAX_CURSOR_CHARS:
        raise BadCursor("cursor is too long; pass the next_cursor of the previous page unchanged")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadCursor(
            "cursor is not valid; pass the next_cursor of the previous page unchanged"
        ) from None
    if not (
        isinstance(values, list) and len(values) == 2 and all(isinstance(v, str) for v in values)
    ):
        raise BadCursor("cursor is not valid; pass the next_cursor of the previous page unchanged")
    return values[0], values[1]
