"""Cursors of the policy lists: (sort key, id) through `teamkit.pagination`."""

from collections.abc import Sequence

from teamkit.pagination import decode_cursor as _decode
from teamkit.pagination import encode_cursor as _encode


def encode_cursor(values: Sequence[str]) -> str:
    """The cursor after an item whose sort key is `values`."""
    return _encode(values)


def decode_cursor(cursor: str | None) -> tuple[str, str] | None:
    """The (sort key, id) pair of a cursor, or None for the first page."""
    if cursor is None:
        return None
    key, id_ = _decode(cursor, arity=2)
    return str(key), str(id_)
