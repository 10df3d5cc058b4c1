"""`make run`'s code path, for real: every process up and ready, then nothing left behind."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def start_stack(local: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "--local-dir", str(local), "--free-ports"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stack_file = local / "stack.json"
    deadline = time.monotonic() + 150
    while not stack_file.exists():
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"the stack exited with {process.returncode}:\n{output}")
        if time.monotonic() > deadline:
            process.send_signal(signal.SIGTERM)
            pytest.fail("the stack did not come up in 150 s")
        time.sleep(0.2)
    return process, json.loads(stack_file.read_text())


def stop_stack(process: subprocess.Popen[str], description: dict[str, Any]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=90)
    assert process.returncode == 0, output
    pids = description["pids"]
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {name: pid for name, pid in pids.items() if alive(pid)}
    assert left == {}, f"processes left behind: {left}"
    return output


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_dev_stack_starts_ready_and_stops_clean_twice(tmp_path: Path) -> None:
    local = tmp_path / "local"
    process, description = start_stack(local)
    try:
        assert set(description["services"]) == {"request", "policy", "lifecycle", "notify", "audit"}
        for name, url in description["services"].items():
            answer = httpx.get(url + "/readyz", timeout=10)
            assert answer.status_code == 200, (name, answer.text)
            assert answer.json()["checks"]["database"]["ok"]
        discovery = httpx.get(
            description["oidc"]["issuer"] + "/.well-known/openid-configuration", timeout=10
        ).json()
        assert discovery["issuer"] == description["oidc"]["issuer"]
        assert description["aws"]["endpoint_url"].startswith("http://127.0.0.1:")
        assert description["kafka"]["bootstrap_servers"].startswith("127.0.0.1:")
        token = subprocess.run(
            [sys.executable, "-m", "devstack.token", "alice", "--local-dir", str(local)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        assert token.count(".") == 2
    except BaseException:
        process.kill()
        raise
    output = stop_stack(process, description)
    assert "stopped." in output
    assert not (local / "stack.json").exists()

    # A second run over the same state folder works again (PostgreSQL data is kept).
    process, description = start_stack(local)
    stop_stack(process, description)
