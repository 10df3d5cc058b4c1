from datetime import UTC, datetime

import pytest

from audit_service import csv_export, repository
from audit_service.schemas import ActivityEvent


@pytest.mark.parametrize(
    ("raw", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2", "'-2"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_neutralise(raw: str, cell: str) -> None:
    assert csv_export.neutralise(raw) == cell


def test_export_columns_start_with_teams() -> None:
    assert repository.CSV_COLUMNS == csv_export.COLUMNS
    assert csv_export.COLUMNS[:20] == csv_export.TEAM_COLUMNS


def test_activity_cells_are_neutralised() -> None:
    event = ActivityEvent(
        event_id="e1",
        event_name="=HYPERLINK(1)",
        event_source="ec2.amazonaws.com",
        event_time=datetime(2026, 11, 2, 9, tzinfo=UTC),
        username="alice",
        account_id="111111111111",
        aws_region="us-east-1",
        source_ip="@1.2.3.4",
        read_only=True,
        error_code=None,
    )
    cells = csv_export.activity_cells(event)
    assert cells[1] == "'=HYPERLINK(1)"
    assert cells[7] == "'@1.2.3.4"
    assert cells[8] == "true"
