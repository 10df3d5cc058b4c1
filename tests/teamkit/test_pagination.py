import base64
import json
import uuid
from datetime import UTC, datetime

import pytest

from teamkit.pagination import (
    InvalidCursor,
    decode_cursor,
    decode_time_id,
    encode_cursor,
    encode_time_id,
)


def test_round_trips() -> None:
    assert decode_cursor(encode_cursor(["b", 7]), arity=2) == ["b", 7]
    at, id_ = datetime(2026, 12, 4, 16, 0, tzinfo=UTC), uuid.uuid4()
    assert decode_time_id(encode_time_id(at, id_)) == (at, id_)


def forge(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor!",
        "x" * 3000,
        forge({"a": 1}),
        forge(["only-one"]),
        forge(["a", None]),
        forge(["a", True]),
        forge(["2026-12-04T16:00:00", str(uuid.uuid4())]),  # naive time
        forge(["yesterday", str(uuid.uuid4())]),
        forge(["2026-12-04T16:00:00+00:00", "not-a-uuid"]),
    ],
)
def test_anything_else_is_a_422_naming_the_parameter(cursor: str) -> None:
    with pytest.raises(InvalidCursor) as caught:
        decode_time_id(cursor)
    assert caught.value.status == 422
    assert caught.value.extensions["errors"][0]["loc"] == ["query", "cursor"]
