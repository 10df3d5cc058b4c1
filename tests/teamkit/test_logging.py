import json
import logging

import pytest
import structlog

from teamkit.logging import bind_correlation_id, configure_logging


def test_json_logs_carry_service_and_correlation_id(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(service="probe", fmt="json", level="INFO")
    try:
        bind_correlation_id("cid-7")
        structlog.get_logger("probe").info("probe.happened", answer=42)
        logging.getLogger("stdlib.probe").warning("plain %s", "record")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    ours = next(line for line in lines if line["event"] == "probe.happened")
    assert ours["service"] == "probe"
    assert ours["correlation_id"] == "cid-7"
    assert ours["answer"] == 42
    assert ours["level"] == "info"
    assert "timestamp" in ours
    plain = next(line for line in lines if line["event"] == "plain record")
    assert plain["level"] == "warning"
    assert plain["correlation_id"] == "cid-7"
