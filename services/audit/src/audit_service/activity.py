"""Session activity: what a requester did in an account during a window, from CloudTrail.

Two backends behind one interface. `LookupEventsBackend` (the default) calls CloudTrail
`LookupEvents` filtered by `Username` = the requester's user name and keeps the events whose
`recipientAccountId` is the request's account; it works without CloudTrail Lake (closed to new
customers), within LookupEvents' 90-day history. `LakeBackend` runs a CloudTrail Lake SQL query
against a configured event data store, as TEAM does, and polls for its results.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from audit_service.errors import ActivityUnavailable
from audit_service.schemas import ActivityEvent
from teamkit.aws import AwsClients
from teamkit.settings import AwsSettings

log = structlog.get_logger(__name__)

_PAGE = 50  # LookupEvents' largest page


class CloudTrailClient(Protocol):
    """The CloudTrail calls the backends make (aiobotocore; no published stubs are installed)."""

    async def lookup_events(self, **kwargs: Any) -> dict[str, Any]:
        """CloudTrail LookupEvents."""

    async def start_query(self, **kwargs: Any) -> dict[str, Any]:
        """CloudTrail Lake StartQuery."""

    async def get_query_results(self, **kwargs: Any) -> dict[str, Any]:
        """CloudTrail Lake GetQueryResults."""

    async def describe_query(self, **kwargs: Any) -> dict[str, Any]:
        """CloudTrail Lake DescribeQuery."""


class CloudTrailClients(AwsClients):
    """teamkit's client factory plus a CloudTrail client (teamkit has no CloudTrail factory)."""

    def cloudtrail(
        self,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
    ) -> AbstractAsyncContextManager[CloudTrailClient]:
        """A CloudTrail client on this factory's session and configuration.

        Explicit credentials (an assumed role's) replace the configured ones.
        """
        kwargs: dict[str, Any] = dict(self._kwargs)
        if access_key_id is not None:
            kwargs.update(
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                aws_session_token=session_token,
            )
        client: AbstractAsyncContextManager[CloudTrailClient] = self._session.create_client(
            "cloudtrail", **kwargs
        )
        return client


def cloudtrail_aws_settings(
    aws: AwsSettings, *, endpoint_url: str | None, region: str | None
) -> AwsSettings:
    """The shared AWS settings with CloudTrail's own endpoint and region where configured."""
    update: dict[str, Any] = {}
    if endpoint_url is not None:
        update["AWS_ENDPOINT_URL"] = endpoint_url
    if region is not None:
        update["AWS_REGION"] = region
    return aws.model_copy(update=update)


@dataclass(frozen=True)
class ActivityQuery:
    """Whose activity, in which account, over which window, and how much at most."""

    username: str
    account_id: str
    start: datetime
    end: datetime
    max_events: int


_ACCOUNT = re.compile(r"^\d{12}$")


class ClientProvider(Protocol):
    """Hands out a CloudTrail client able to read one account's events."""

    def client(self, account_id: str) -> AbstractAsyncContextManager[CloudTrailClient]:
        """A client for `account_id` (entered per lookup)."""


class SharedClient:
    """The service's own CloudTrail client, whatever the account (single-account or Lake)."""

    def __init__(self, client: CloudTrailClient) -> None:
        self._client = client

    @asynccontextmanager
    async def client(self, account_id: str) -> AsyncIterator[CloudTrailClient]:
        """The one client; `account_id` is filtered on afterwards."""
        yield self._client


class AssumedRoleClients:
    """A CloudTrail client per lookup, with credentials of a role assumed in the account.

    CloudTrail event history (`LookupEvents`) is per account: reading a member account's needs
    credentials in it. The role `arn:aws:iam::<account>:role/<role name>` must trust the audit
    service's principal and allow `cloudtrail:LookupEvents`.
    """

    def __init__(
        self,
        *,
        sts: AwsClients,
        cloudtrail: "CloudTrailClients",
        role_name: str,
        session_seconds: int = 900,
    ) -> None:
        self._sts = sts
        self._cloudtrail = cloudtrail
        self._role_name = role_name
        self._seconds = session_seconds

    def role_arn(self, account_id: str) -> str:
        """The role assumed in `account_id`."""
        if not _ACCOUNT.match(account_id):
            raise ValueError(f"not an AWS account id: {account_id!r}")
        return f"arn:aws:iam::{account_id}:role/{self._role_name}"

    @asynccontextmanager
    async def client(self, account_id: str) -> AsyncIterator[CloudTrailClient]:
        """Assume the role in `account_id`, then a CloudTrail client with those credentials."""
        try:
            async with self._sts.sts() as sts:
                answer = await sts.assume_role(
                    RoleArn=self.role_arn(account_id),
                    RoleSessionName="team-audit-activity",
                    DurationSeconds=self._seconds,
                )
        except (ClientError, BotoCoreError) as exc:
            raise _aws_failure(exc) from None
        credentials = answer["Credentials"]
        async with self._cloudtrail.cloudtrail(
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
        ) as client:
            yield client


class ActivityBackend(Protocol):
    """Answers an ActivityQuery with events in time order, and whether the list was cut."""

    name: str

    async def fetch(self, query: ActivityQuery) -> tuple[list[ActivityEvent], bool]:
        """Events of `query`, oldest first, and True when `max_events` cut the list."""


def _aws_failure(exc: Exception) -> ActivityUnavailable:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        reason = f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    else:
        reason = type(exc).__name__
    log.warning("activity.cloudtrail_failed", reason=reason)
    return ActivityUnavailable(
        f"CloudTrail did not answer ({reason}). Retry shortly; if it persists, an operator should "
        "check the service's CloudTrail permissions and AUDIT_CLOUDTRAIL_* settings.",
        headers={"Retry-After": "10"},
    )


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


class LookupEventsBackend:
    """CloudTrail `LookupEvents` by user name, filtered to the account (the default)."""

    name = "lookup_events"

    def __init__(self, clients: ClientProvider) -> None:
        self._clients = clients

    async def fetch(self, query: ActivityQuery) -> tuple[list[ActivityEvent], bool]:
        """Page through LookupEvents until the window is exhausted or the bound is reached."""
        async with self._clients.client(query.account_id) as client:
            items, truncated = await self._pages(client, query)
        items.sort(key=lambda e: (e.event_time, e.event_id))
        return items, truncated

    async def _pages(
        self, client: CloudTrailClient, query: ActivityQuery
    ) -> tuple[list[ActivityEvent], bool]:
        items: list[ActivityEvent] = []
        token: str | None = None
        truncated = False
        while True:
            kwargs: dict[str, Any] = {
                "LookupAttributes": [
                    {"AttributeKey": "Username", "AttributeValue": query.username}
                ],
                "StartTime": query.start,
                "EndTime": query.end,
                "MaxResults": _PAGE,
            }
            if token is not None:
                kwargs["NextToken"] = token
            try:
                page = await client.lookup_events(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise _aws_failure(exc) from None
            for raw in page.get("Events", []):
                event = self._convert(raw, query)
                if event is None:
                    continue
                if len(items) >= query.max_events:
                    truncated = True
                    break
                items.append(event)
            token = page.get("NextToken")
            if truncated or not token:
                return items, truncated

    @staticmethod
    def _convert(raw: Mapping[str, Any], query: ActivityQuery) -> ActivityEvent | None:
        try:
            detail = json.loads(raw.get("CloudTrailEvent") or "{}")
        except ValueError:
            detail = {}
        identity = detail.get("userIdentity") or {}
        account = detail.get("recipientAccountId") or identity.get("accountId")
        # LookupEvents cannot filter by account: the requester may hold access elsewhere too.
        if account != query.account_id:
            return None
        return ActivityEvent(
            event_id=str(raw.get("EventId") or detail.get("eventID") or ""),
            event_name=str(raw.get("EventName") or detail.get("eventName") or ""),
            event_source=str(raw.get("EventSource") or detail.get("eventSource") or ""),
            event_time=_parse_time(raw.get("EventTime") or detail.get("eventTime")),
            username=raw.get("Username") or query.username,
            account_id=account,
            aws_region=detail.get("awsRegion"),
            source_ip=detail.get("sourceIPAddress"),
            read_only=_bool(raw.get("ReadOnly", detail.get("readOnly"))),
            error_code=detail.get("errorCode"),
        )


_LAKE_TIME = "%Y-%m-%d %H:%M:%S"
_LAKE_COLUMNS = (
    ("eventID", "eventID"),
    ("eventName", "eventName"),
    ("eventSource", "eventSource"),
    ("eventTime", "eventTime"),
    ("userIdentity.principalId", "principalId"),
    ("recipientAccountId", "recipientAccountId"),
    ("awsRegion", "awsRegion"),
    ("sourceIPAddress", "sourceIPAddress"),
    ("readOnly", "readOnly"),
    ("errorCode", "errorCode"),
)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def lake_statement(event_data_store: str, query: ActivityQuery) -> str:
    """The CloudTrail Lake SQL of `query`; values are quoted, the account id is validated."""
    if not _ACCOUNT.match(query.account_id):
        raise ValueError(f"not an AWS account id: {query.account_id!r}")
    store = event_data_store.rsplit("/", 1)[-1]
    if not re.fullmatch(r"[A-Za-z0-9-]+", store):
        raise ValueError(f"not an event data store id: {store!r}")
    columns = ", ".join(f"{expr} AS {alias}" for expr, alias in _LAKE_COLUMNS)
    # Identity Center sessions show as principalId '<role id>:<user name>'.
    like = _sql_string("%:" + query.username)
    return (
        f"SELECT {columns} FROM {store} "  # noqa: S608 - every value is quoted or validated above
        f"WHERE recipientAccountId = {_sql_string(query.account_id)} "
        f"AND userIdentity.principalId LIKE {like} "
        f"AND eventTime >= {_sql_string(query.start.astimezone(UTC).strftime(_LAKE_TIME))} "
        f"AND eventTime <= {_sql_string(query.end.astimezone(UTC).strftime(_LAKE_TIME))} "
        f"ORDER BY eventTime ASC LIMIT {query.max_events + 1}"
    )


class LakeBackend:
    """A CloudTrail Lake SQL query on one event data store, polled until it finishes."""

    name = "lake"

    def __init__(
        self,
        client: CloudTrailClient,
        *,
        event_data_store: str,
        poll_seconds: float,
        timeout_seconds: float,
    ) -> None:
        self._client = client
        self._store = event_data_store
        self._poll = poll_seconds
        self._timeout = timeout_seconds

    async def fetch(self, query: ActivityQuery) -> tuple[list[ActivityEvent], bool]:
        """Start the query, wait for it, and read every result page."""
        statement = lake_statement(self._store, query)
        try:
            started = await self._client.start_query(QueryStatement=statement)
            query_id = str(started["QueryId"])
            rows = await self._results(query_id)
        except (ClientError, BotoCoreError) as exc:
            raise _aws_failure(exc) from None
        items: list[ActivityEvent] = []
        for row in rows:
            event = self._convert(row, query)
            if event is not None:
                items.append(event)
        truncated = len(items) > query.max_events
        items = items[: query.max_events]
        items.sort(key=lambda e: (e.event_time, e.event_id))
        return items, truncated

    async def _results(self, query_id: str) -> list[dict[str, str]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        rows: list[dict[str, str]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"QueryId": query_id}
            if token is not None:
                kwargs["NextToken"] = token
            page = await self._client.get_query_results(**kwargs)
            status = page.get("QueryStatus")
            if status in ("QUEUED", "RUNNING"):
                if loop.time() > deadline:
                    raise ActivityUnavailable(
                        f"The CloudTrail Lake query {query_id} did not finish within "
                        f"{self._timeout:.0f} s; retry, or raise "
                        "AUDIT_CLOUDTRAIL_LAKE_TIMEOUT_SECONDS.",
                        headers={"Retry-After": "30"},
                    )
                await asyncio.sleep(self._poll)
                continue
            if status != "FINISHED":
                described = await self._client.describe_query(QueryId=query_id)
                reason = described.get("ErrorMessage") or status
                raise ActivityUnavailable(
                    f"The CloudTrail Lake query {query_id} ended {status}: {reason}. Check "
                    "AUDIT_CLOUDTRAIL_LAKE_EVENT_DATA_STORE and the service's Lake permissions."
                )
            for raw_row in page.get("QueryResultRows", []):
                merged: dict[str, str] = {}
                for cell in raw_row:
                    merged.update(cell)
                rows.append(merged)
            token = page.get("NextToken")
            if not token:
                return rows

    @staticmethod
    def _convert(row: Mapping[str, str], query: ActivityQuery) -> ActivityEvent | None:
        principal = row.get("principalId") or ""
        # LIKE treats '_' in a user name as a wildcard: keep exact matches only.
        if principal.rsplit(":", 1)[-1] != query.username:
            return None
        return ActivityEvent(
            event_id=row.get("eventID", ""),
            event_name=row.get("eventName", ""),
            event_source=row.get("eventSource", ""),
            event_time=_parse_time(row.get("eventTime", "")),
            username=query.username,
            account_id=row.get("recipientAccountId"),
            aws_region=row.get("awsRegion"),
            source_ip=row.get("sourceIPAddress"),
            read_only=_bool(row.get("readOnly")),
            error_code=row.get("errorCode") or None,
        )
