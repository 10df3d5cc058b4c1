"""moto in server mode: a child process for `make run`, a thread for tests, and its admin API.

Both handles expose `endpoint_url` and `stop()`; point `AWS_ENDPOINT_URL` at the URL.
`/moto-api/reset` clears all state (the Identity Center instance ARN and identity store id change
afterwards) and `/moto-api/data.json` shows what was sent through SES and SNS.
"""

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol, Self

import httpx

from devstack.net import free_port

_READY_PATH = "/moto-api/data.json"


class MotoServer(Protocol):
    """A running moto server."""

    @property
    def endpoint_url(self) -> str:
        """Base URL for `AWS_ENDPOINT_URL`, e.g. `http://127.0.0.1:5000`."""
        ...

    def stop(self) -> None:
        """Stop serving; idempotent for process handles."""
        ...


class MotoProcess:
    """moto running as a child process (`python -m moto.server`); also a context manager."""

    def __init__(self, process: subprocess.Popen[bytes], endpoint_url: str) -> None:
        self.process = process
        self.endpoint_url = endpoint_url

    @property
    def pid(self) -> int:
        """Process id of the server."""
        return self.process.pid

    def stop(self, *, timeout: float = 5.0) -> None:
        """Terminate the server, wait up to `timeout` seconds, then kill it."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class MotoThread:
    """moto serving from a daemon thread of this process; state is shared with in-process moto."""

    def __init__(self, server: Any, endpoint_url: str) -> None:
        self._server = server
        self.endpoint_url = endpoint_url

    def stop(self) -> None:
        """Shut the server down, join its thread and close the listening socket."""
        # ThreadedMotoServer.stop() leaves the socket of its werkzeug server open.
        wsgi_server = getattr(self._server, "_server", None)
        self._server.stop()
        if wsgi_server is not None:
            wsgi_server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_moto_process(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    log_path: Path | None = None,
    ready_timeout: float = 30.0,
) -> MotoProcess:
    """Start `python -m moto.server` on `host:port` (a free port if None) and wait until it answers.

    Its request log goes to `log_path` (discarded if None). Raises RuntimeError if the process
    exits early and TimeoutError if it does not answer within `ready_timeout` seconds.
    """
    port = free_port() if port is None else port
    endpoint_url = f"http://{host}:{port}"
    command = [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]
    if log_path is None:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
    else:
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
    handle = MotoProcess(process, endpoint_url)
    try:
        _wait_ready(handle, timeout=ready_timeout)
    except BaseException:
        handle.stop()
        raise
    return handle


def _wait_ready(handle: MotoProcess, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        code = handle.process.poll()
        if code is not None:
            raise RuntimeError(f"moto server exited with code {code} before it was ready")
        try:
            if httpx.get(handle.endpoint_url + _READY_PATH, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.05)
    raise TimeoutError(f"moto at {handle.endpoint_url} not ready in {timeout}s ({last})")


def start_moto_thread(*, host: str = "127.0.0.1", port: int = 0) -> MotoThread:
    """Start `ThreadedMotoServer` on `host:port` (port 0 picks a free one); ready on return."""
    # Imported here: it loads Flask and every moto backend, which the process mode never needs.
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return MotoThread(server, f"http://{bound_host}:{bound_port}")


async def reset(endpoint_url: str, *, seed: int | None = None) -> None:
    """Clear all moto state; with `seed`, generated ids are deterministic from here on."""
    async with httpx.AsyncClient(base_url=endpoint_url, timeout=10.0) as http:
        (await http.post("/moto-api/reset")).raise_for_status()
        if seed is not None:
            (await http.post("/moto-api/seed", params={"a": seed})).raise_for_status()


async def sent_data(endpoint_url: str) -> dict[str, Any]:
    """Return moto's state dump: `["ses"]["Message"]` holds sent mail, `["sns"]["Topic"]` topics."""
    async with httpx.AsyncClient(base_url=endpoint_url, timeout=10.0) as http:
        answer = await http.get(_READY_PATH)
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()
        return data
