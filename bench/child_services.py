"""Services under benchmark as child processes: started with env vars, waited on, stopped by pid.

Load generators and measuring proxies stay in the benchmark's process; the services they measure
run in their own processes (issue 9), so neither competes for the other's event loop.
"""

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import httpx

from devstack.processes import ManagedProcess

ROOT = Path(__file__).resolve().parents[1]

#: Environment every service child gets (dev mode, quiet logs, moto credentials).
BASE_ENV: dict[str, str] = {
    "TEAM_DEV_MODE": "1",
    "LOG_FORMAT": "console",
    "LOG_LEVEL": "WARNING",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "PYTHONUNBUFFERED": "1",
}


async def wait_http(
    url: str, process: ManagedProcess, *, timeout: float = 90.0, ok: int = 200
) -> None:
    """Poll `url` until it answers `ok`; fail early with the log tail if the child died."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited during start-up:\n{process.tail()}")
            try:
                answer = await http.get(url)
                if answer.status_code == ok:
                    return
                last = f"HTTP {answer.status_code} {answer.text[:300]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{process.name} not ready at {url} in {timeout:.0f} s ({last})")


@contextlib.asynccontextmanager
async def child(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    ready_url: str,
    logs: Path | None = None,
) -> AsyncIterator[ManagedProcess]:
    """Run `argv` (cwd = repository root) until the block exits; ready when `ready_url` is 200."""
    log_dir = logs or Path(tempfile.gettempdir()) / "team-bench-logs"
    process = ManagedProcess(name, list(argv), log_dir / f"{name}-{os.getpid()}.log", dict(env))
    previous = Path.cwd()
    os.chdir(ROOT)  # `python -m bench....` / `tests.harness...` resolve from the repository root
    try:
        process.start()
    finally:
        os.chdir(previous)
    try:
        await wait_http(ready_url, process)
        yield process
    finally:
        await asyncio.to_thread(process.stop)


def python_module(module: str, *args: str) -> list[str]:
    """Argv running `python -m module args...` with this interpreter."""
    return [sys.executable, "-m", module, *args]
