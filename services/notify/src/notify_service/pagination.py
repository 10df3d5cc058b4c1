"""Cursors of the notify lists, through `teamkit.pagination`."""

from collections.abc import Sequence

from teamkit.pagination import CursorValue
from teamkit.pagination import decode_cursor as _decode
from teamkit.pagination import encode_cursor as _encode


def encode_cursor(values: Sequence[CursorValue]) -> str:
    """Encode the sort key of the last item of a page."""
    return _encode(values)


def decode_cursor(cursor: str | None, names: Sequence[str]) -> list[str] | None:
    """Decode a cursor into as many string values as `names`; None for the first page."""
    if cursor is None:
        return None
    return [str(v) for v in _decode(cursor, arity=len(names))]
