"""Loopback ports and readiness waits for the embedded peers."""

import socket
import time

import httpx


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_tcp(host: str, port: int, *, timeout: float = 20.0) -> None:
    """Block until `host:port` accepts TCP connections, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{host}:{port} did not accept connections in {timeout}s"
                ) from None
            time.sleep(0.05)


def wait_http(url: str, *, timeout: float = 30.0, status: int = 200) -> None:
    """Block until GET `url` answers `status`, or raise TimeoutError with the last answer."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(url, timeout=2.0)
            if answer.status_code == status:
                return
            last = f"HTTP {answer.status_code}: {answer.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready in {timeout}s ({last})")
