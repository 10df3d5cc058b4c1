"""A local HTTP server that speaks enough of the Slack Web API and of webhook receivers.

It records every request (method, path, headers, body) and answers like the real thing:
`POST /api/users.lookupByEmail` and `POST /api/chat.postMessage` answer `{"ok": true, ...}` (or
`{"ok": false, "error": ...}` as Slack does, e.g. `users_not_found`, `invalid_auth`), and any
other path is a webhook receiver answering 200. `fail_next(path, count, status, retry_after)`
makes the next `count` calls to a path answer `status` (429 with `Retry-After`, 500, ...).
"""

import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.harness.servers import serving


@dataclass(frozen=True)
class Recorded:
    """One request the recorder received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """The body parsed as a url-encoded form (first value of each field)."""
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class _Fault:
    remaining: int
    status: int
    retry_after: int | None


@dataclass
class HttpRecorder:
    """The recorder's state; `base_url` is set while it serves."""

    slack_token: str = "xoxb-test-token"
    slack_users: dict[str, str] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    base_url: str = ""
    _faults: dict[str, _Fault] = field(default_factory=dict)
    _ts: int = 0

    @property
    def slack_api_url(self) -> str:
        """What to configure as the Slack base URL."""
        return f"{self.base_url}/api"

    def webhook_url(self, name: str) -> str:
        """A receiver URL of its own for one subscription."""
        return f"{self.base_url}/hooks/{name}"

    def fail_next(
        self, path: str, count: int, *, status: int = 500, retry_after: int | None = None
    ) -> None:
        """Answer the next `count` requests to `path` with `status` (and `Retry-After`)."""
        self._faults[path] = _Fault(count, status, retry_after)

    def calls(self, path: str, *, ok_only: bool = False) -> list[Recorded]:
        """Requests received at `path` (only the ones answered 2xx with `ok_only`)."""
        return [
            r for r in self.requests if r.path == path and (not ok_only or 200 <= r.status < 300)
        ]

    def add_slack_user(self, email: str, user_id: str) -> None:
        """Make `users.lookupByEmail` find `email`."""
        self.slack_users[email.lower()] = user_id

    def app(self) -> FastAPI:
        """The ASGI app serving this recorder."""
        app = FastAPI()

        @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        async def anything(request: Request, path: str) -> Response:
            body = await request.body()
            response = self._answer(request, "/" + path, body)
            self.requests.append(
                Recorded(
                    method=request.method,
                    path="/" + path,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                    status=response.status_code,
                )
            )
            return response

        return app

    def _answer(self, request: Request, path: str, body: bytes) -> Response:
        fault = self._faults.get(path)
        if fault is not None and fault.remaining > 0:
            fault.remaining -= 1
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
            return JSONResponse({"ok": False, "error": "injected"}, fault.status, headers=headers)
        if path.startswith("/api/"):
            return self._slack(request, path.removeprefix("/api/"), body)
        return JSONResponse({"received": True})

    def _slack(self, request: Request, method: str, body: bytes) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.slack_token}":
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        if method == "users.lookupByEmail":
            fields = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            email = fields.get("email") or request.query_params.get("email", "")
            user_id = self.slack_users.get(email.lower())
            if user_id is None:
                return JSONResponse({"ok": False, "error": "users_not_found"})
            return JSONResponse({"ok": True, "user": {"id": user_id, "profile": {"email": email}}})
        if method == "chat.postMessage":
            try:
                payload = json.loads(body)
            except ValueError:
                return JSONResponse({"ok": False, "error": "invalid_json"})
            if not payload.get("channel"):
                return JSONResponse({"ok": False, "error": "channel_not_found"})
            if not payload.get("text") and not payload.get("blocks"):
                return JSONResponse({"ok": False, "error": "no_text"})
            self._ts += 1
            return JSONResponse(
                {"ok": True, "channel": payload["channel"], "ts": f"1700000000.{self._ts:06d}"}
            )
        return JSONResponse({"ok": False, "error": "unknown_method"})


@contextlib.asynccontextmanager
async def recording_server(recorder: HttpRecorder | None = None) -> AsyncIterator[HttpRecorder]:
    """Serve a recorder on a free loopback port until the block exits."""
    recorder = recorder or HttpRecorder()
    async with serving(recorder.app()) as base_url:
        recorder.base_url = base_url
        yield recorder
