"""A small CloudTrail endpoint over real HTTP, speaking the CloudTrail JSON 1.1 protocol.

moto implements neither `LookupEvents` nor CloudTrail Lake (FIELD-NOTES 1f), so this serves the
calls the audit service makes, with AWS's semantics, to an unmodified aiobotocore client:

- `LookupEvents`: at most one `LookupAttributes` entry (Username, EventName, EventSource,
  EventId, ReadOnly, AccessKeyId), `StartTime`/`EndTime` inclusive, newest first, `MaxResults`
  (1..50, default 50) and an opaque `NextToken`.
- CloudTrail Lake `StartQuery`, `GetQueryResults` (reports `RUNNING` on the first poll, so the
  caller's polling is exercised; then pages of `QueryResultRows`), `DescribeQuery`. The SQL
  subset understood is what Lake queries of session activity use: `SELECT expr [AS alias], ...
  FROM <event data store id> WHERE <cond> AND ... [ORDER BY eventTime ASC|DESC] [LIMIT n]`, each
  condition `path = 'v'`, `path LIKE 'p'`, `path >= 'v'` or `path <= 'v'`.

A test seeds CloudTrail records (the JSON documents CloudTrail logs) with `add(...)`.
"""

import asyncio
import base64
import contextlib
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
LAKE_TIME = "%Y-%m-%d %H:%M:%S"
Record = dict[str, Any]
LOOKUP_KEYS: dict[str, Callable[[Record], Any]] = {
    "Username": lambda r: _username(r),
    "EventName": lambda r: r.get("eventName"),
    "EventSource": lambda r: r.get("eventSource"),
    "EventId": lambda r: r.get("eventID"),
    "ReadOnly": lambda r: str(r.get("readOnly", "")).lower(),
    "AccessKeyId": lambda r: (r.get("userIdentity") or {}).get("accessKeyId"),
}


def _username(record: dict[str, Any]) -> str | None:
    identity = record.get("userIdentity") or {}
    if identity.get("userName"):
        return str(identity["userName"])
    principal = str(identity.get("principalId") or "")
    # An assumed role (Identity Center sessions) is named after the session: the user name.
    return principal.rsplit(":", 1)[-1] if ":" in principal else None


def _parse_time(value: Any) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class CloudTrailError(Exception):
    """An AWS-style error answer."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class _Query:
    statement: str
    rows: list[list[dict[str, str]]]
    polls: int = 0
    status: str = "QUEUED"
    error: str | None = None


@dataclass
class FakeCloudTrail:
    """The state behind the endpoint: seeded records, Lake stores and every call received."""

    event_data_stores: set[str] = field(default_factory=lambda: {"eds-audit-0001"})
    records: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    access_keys: list[str] = field(default_factory=list)
    """The SigV4 access key id of every call, in order (who signed it)."""
    queries: dict[str, _Query] = field(default_factory=dict)
    page_rows: int = 2  # small Lake pages so the caller's NextToken loop runs

    def add(
        self,
        *,
        username: str,
        account_id: str,
        event_name: str,
        event_time: datetime,
        event_source: str = "ec2.amazonaws.com",
        read_only: bool = True,
        error_code: str | None = None,
        region: str = "us-east-1",
    ) -> str:
        """Seed one CloudTrail record of an Identity Center session; returns its eventID."""
        event_id = str(uuid.uuid4())
        record: dict[str, Any] = {
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": f"AROAEXAMPLEROLEID:{username}",
                "arn": f"arn:aws:sts::{account_id}:assumed-role/AWSReservedSSO_X/{username}",
                "accountId": account_id,
                "accessKeyId": "ASIAEXAMPLE",
            },
            "eventTime": event_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": event_source,
            "eventName": event_name,
            "awsRegion": region,
            "sourceIPAddress": "203.0.113.7",
            "readOnly": read_only,
            "eventID": event_id,
            "recipientAccountId": account_id,
        }
        if error_code is not None:
            record["errorCode"] = error_code
        self.records.append(record)
        return event_id

    # -- LookupEvents --------------------------------------------------------------------------

    def lookup_events(self, body: dict[str, Any]) -> dict[str, Any]:
        """LookupEvents with AWS's filters, order and paging."""
        attributes = body.get("LookupAttributes") or []
        if len(attributes) > 1:
            raise CloudTrailError(
                "InvalidLookupAttributesException", "Only one lookup attribute is allowed."
            )
        max_results = int(body.get("MaxResults", 50))
        if not 1 <= max_results <= 50:
            raise CloudTrailError("InvalidMaxResultsException", "MaxResults must be 1..50.")
        start = _parse_time(body["StartTime"]) if "StartTime" in body else None
        end = _parse_time(body["EndTime"]) if "EndTime" in body else None
        if start and end and start > end:
            raise CloudTrailError("InvalidTimeRangeException", "StartTime is after EndTime.")
        matches = []
        for record in self.records:
            when = _parse_time(record["eventTime"])
            if (start and when < start) or (end and when > end):
                continue
            if attributes:
                key, value = attributes[0]["AttributeKey"], attributes[0]["AttributeValue"]
                if key not in LOOKUP_KEYS:
                    raise CloudTrailError(
                        "InvalidLookupAttributesException", f"Unknown AttributeKey {key}."
                    )
                if LOOKUP_KEYS[key](record) != value:
                    continue
            matches.append(record)
        matches.sort(key=lambda r: (r["eventTime"], r["eventID"]), reverse=True)
        offset = 0
        if body.get("NextToken"):
            try:
                offset = int(base64.b64decode(body["NextToken"]).decode())
            except ValueError:
                raise CloudTrailError("InvalidNextTokenException", "Invalid NextToken.") from None
        page = matches[offset : offset + max_results]
        answer: dict[str, Any] = {
            "Events": [
                {
                    "EventId": r["eventID"],
                    "EventName": r["eventName"],
                    "ReadOnly": str(r.get("readOnly", "")).lower(),
                    "AccessKeyId": (r.get("userIdentity") or {}).get("accessKeyId"),
                    "EventTime": _parse_time(r["eventTime"]).timestamp(),
                    "EventSource": r["eventSource"],
                    "Username": _username(r),
                    "Resources": [],
                    "CloudTrailEvent": json.dumps(r),
                }
                for r in page
            ]
        }
        if offset + max_results < len(matches):
            answer["NextToken"] = base64.b64encode(str(offset + max_results).encode()).decode()
        return answer

    # -- CloudTrail Lake -----------------------------------------------------------------------

    def start_query(self, body: dict[str, Any]) -> dict[str, Any]:
        """Run the statement now; its status reads RUNNING until the first poll has passed."""
        statement = str(body.get("QueryStatement", ""))
        query_id = str(uuid.uuid4())
        query = _Query(statement=statement, rows=[])
        try:
            query.rows = self._run_sql(statement)
        except CloudTrailError as exc:
            if exc.code != "InvalidQueryStatementException":
                raise
            query.error = exc.message
        self.queries[query_id] = query
        return {"QueryId": query_id}

    def get_query_results(self, body: dict[str, Any]) -> dict[str, Any]:
        """RUNNING on the first poll, then FINISHED (or FAILED) with paged rows."""
        query = self._query(body)
        query.polls += 1
        if query.polls == 1:
            query.status = "RUNNING"
            return {"QueryStatus": "RUNNING", "QueryResultRows": []}
        if query.error is not None:
            query.status = "FAILED"
            return {"QueryStatus": "FAILED", "ErrorMessage": query.error}
        query.status = "FINISHED"
        offset = 0
        if body.get("NextToken"):
            offset = int(base64.b64decode(body["NextToken"]).decode().removeprefix("rows:"))
        page = query.rows[offset : offset + self.page_rows]
        answer: dict[str, Any] = {
            "QueryStatus": "FINISHED",
            "QueryStatistics": {"ResultsCount": len(page), "TotalResultsCount": len(query.rows)},
            "QueryResultRows": page,
        }
        if offset + self.page_rows < len(query.rows):
            answer["NextToken"] = base64.b64encode(
                f"rows:{offset + self.page_rows}".encode()
            ).decode()
        return answer

    def describe_query(self, body: dict[str, Any]) -> dict[str, Any]:
        """The query's statement and status."""
        query = self._query(body)
        answer: dict[str, Any] = {
            "QueryId": body["QueryId"],
            "QueryString": query.statement,
            "QueryStatus": query.status,
        }
        if query.error is not None:
            answer["ErrorMessage"] = query.error
        return answer

    def _query(self, body: dict[str, Any]) -> _Query:
        query = self.queries.get(str(body.get("QueryId")))
        if query is None:
            raise CloudTrailError("QueryIdNotFoundException", "No such QueryId.")
        return query

    def _run_sql(self, statement: str) -> list[list[dict[str, str]]]:
        match = re.fullmatch(
            r"\s*SELECT\s+(?P<cols>.+?)\s+FROM\s+(?P<store>[\w-]+)\s+WHERE\s+(?P<where>.+?)"
            r"(?:\s+ORDER\s+BY\s+(?P<order>\w+)(?:\s+(?P<dir>ASC|DESC))?)?"
            r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*",
            statement,
            flags=re.IGNORECASE | re.DOTALL,
        )
        if match is None:
            raise CloudTrailError("InvalidQueryStatementException", "Unsupported statement.")
        if match["store"] not in self.event_data_stores:
            raise CloudTrailError(
                "EventDataStoreNotFoundException", f"No event data store {match['store']}."
            )
        columns = []
        for item in match["cols"].split(","):
            expr, _, alias = item.strip().partition(" AS ")
            columns.append((expr.strip(), (alias or expr).strip().split(".")[-1]))
        conditions = [_condition(c) for c in re.split(r"\s+AND\s+", match["where"], flags=re.I)]
        selected = [r for r in self.records if all(cond(r) for cond in conditions)]
        if match["order"]:
            selected.sort(
                key=lambda r: str(_path(r, match["order"])),
                reverse=(match["dir"] or "ASC").upper() == "DESC",
            )
        if match["limit"]:
            selected = selected[: int(match["limit"])]
        return [
            [{alias: _lake_value(expr, _path(r, expr))} for expr, alias in columns]
            for r in selected
        ]


def _path(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _lake_value(path: str, value: Any) -> str:
    if value is None:
        return ""
    if path == "eventTime":
        return _parse_time(value).strftime(LAKE_TIME) + ".000"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _condition(text: str) -> Callable[[Record], bool]:
    match = re.fullmatch(r"\s*([\w.]+)\s*(=|LIKE|>=|<=)\s*'((?:[^']|'')*)'\s*", text, flags=re.I)
    if match is None:
        raise CloudTrailError("InvalidQueryStatementException", f"Unsupported condition {text}")
    path, op, literal = match[1], match[2].upper(), match[3].replace("''", "'")

    def value_of(record: dict[str, Any]) -> str:
        raw = _path(record, path)
        if path == "eventTime" and raw is not None:
            return _parse_time(raw).strftime(LAKE_TIME)
        return "" if raw is None else str(raw)

    if op == "=":
        return lambda r: value_of(r) == literal
    if op == "LIKE":
        pattern = re.compile(
            "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in literal),
            flags=re.DOTALL,
        )
        return lambda r: pattern.fullmatch(value_of(r)) is not None
    if op == ">=":
        return lambda r: value_of(r) >= literal
    return lambda r: value_of(r) <= literal


def build_cloudtrail_app(state: FakeCloudTrail) -> Starlette:
    """The ASGI app: one POST route dispatching on `X-Amz-Target`."""
    operations = {
        "LookupEvents": state.lookup_events,
        "StartQuery": state.start_query,
        "GetQueryResults": state.get_query_results,
        "DescribeQuery": state.describe_query,
    }

    async def dispatch(request: Request) -> Response:
        target = request.headers.get("x-amz-target", "")
        operation = target.removeprefix(TARGET_PREFIX)
        headers = {"x-amzn-RequestId": str(uuid.uuid4())}
        media = "application/x-amz-json-1.1"
        try:
            if not target.startswith(TARGET_PREFIX) or operation not in operations:
                raise CloudTrailError("UnknownOperationException", f"Unknown target {target!r}")
            body = json.loads(await request.body() or b"{}")
            state.calls.append((operation, body))
            credential = re.search(
                r"Credential=([^/,\s]+)/", request.headers.get("authorization", "")
            )
            state.access_keys.append(credential[1] if credential else "")
            answer = operations[operation](body)
        except CloudTrailError as exc:
            return JSONResponse(
                {"__type": exc.code, "message": exc.message},
                status_code=exc.status,
                headers=headers,
                media_type=media,
            )
        return JSONResponse(answer, headers=headers, media_type=media)

    return Starlette(routes=[Route("/", dispatch, methods=["POST"])])


@dataclass(frozen=True)
class RunningCloudTrail:
    """The endpoint's URL and its state."""

    url: str
    state: FakeCloudTrail


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # pytest owns the signals


@contextlib.asynccontextmanager
async def serve_cloudtrail() -> AsyncIterator[RunningCloudTrail]:
    """Serve a fresh FakeCloudTrail on a free loopback port until the block exits."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    state = FakeCloudTrail()
    config = uvicorn.Config(
        build_cloudtrail_app(state), lifespan="off", log_level="warning", access_log=False
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"cloudtrail-{port}")
    try:
        async with asyncio.timeout(20):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the CloudTrail endpoint stopped before it started")
                await asyncio.sleep(0.01)
        yield RunningCloudTrail(f"http://127.0.0.1:{port}", state)
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest_asyncio.fixture(loop_scope="session")
async def cloudtrail() -> AsyncIterator[RunningCloudTrail]:
    """A CloudTrail endpoint of this test alone."""
    async with serve_cloudtrail() as running:
        yield running
