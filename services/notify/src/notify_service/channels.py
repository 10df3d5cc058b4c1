"""The four delivery channels: SES v2, SNS, Slack Web API and signed outbound webhooks.

Each `send_*` returns the provider's reference for the message (SES/SNS message id, Slack
timestamp, webhook HTTP status) or raises `SendError`, which says whether another attempt may
succeed and, when the provider said so, how long to wait first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from teamkit.clock import utc_now

if TYPE_CHECKING:
    from types_aiobotocore_sesv2.client import SESV2Client
    from types_aiobotocore_sns.client import SNSClient

#: AWS error codes worth another attempt (throttling, quotas per second, AWS-side faults).
RETRYABLE_AWS_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "LimitExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "KMSThrottlingException",
    }
)
#: Slack `error` values worth another attempt; every other error is permanent.
RETRYABLE_SLACK_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SendError(Exception):
    """A failed send: the reason (no secrets), whether to retry, and the provider's wait."""

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason[:2000]
        self.retryable = retryable
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utc_now()).total_seconds())


def classify_aws_error(exc: Exception) -> SendError:
    """Map an aiobotocore failure to a SendError (throttling and faults retry, the rest not)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        retryable = code in RETRYABLE_AWS_CODES or status >= 500 or status == 429
        return SendError(f"{code}: {message}", retryable=retryable)
    # Connection refused, timeouts, DNS: the endpoint may come back.
    return SendError(f"{type(exc).__name__}: {exc}", retryable=True)


def sign(secret: str, timestamp: str, body: str) -> str:
    """`X-Team-Signature`: `sha256=` + hex HMAC-SHA256(secret, f"{timestamp}.{body}")."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return "sha256=" + digest.hexdigest()


@dataclass(frozen=True)
class Job:
    """One claimed delivery, as the senders need it."""

    id: int
    event_id: str
    event_type: str
    channel: str
    recipient: str
    audience: str
    payload: dict[str, Any]
    attempts: int


async def send_email(
    ses: SESV2Client, job: Job, *, sender: str, configuration_set: str | None
) -> str:
    """Send the rendered email (HTML and text) through SES v2."""
    content: Any = {
        "Simple": {
            "Subject": {"Data": job.payload["subject"], "Charset": "UTF-8"},
            "Body": {
                "Text": {"Data": job.payload["text"], "Charset": "UTF-8"},
                "Html": {"Data": job.payload["html"], "Charset": "UTF-8"},
            },
        }
    }
    try:
        if configuration_set:
            answer = await ses.send_email(
                FromEmailAddress=sender,
                Destination={"ToAddresses": [job.recipient]},
                Content=content,
                ConfigurationSetName=configuration_set,
            )
        else:
            answer = await ses.send_email(
                FromEmailAddress=sender,
                Destination={"ToAddresses": [job.recipient]},
                Content=content,
            )
    except (ClientError, BotoCoreError) as exc:
        raise classify_aws_error(exc) from None
    return str(answer.get("MessageId", ""))


async def send_sns(sns: SNSClient, job: Job) -> str:
    """Publish the event JSON with filterable message attributes."""
    attributes: Any = {
        name: {"DataType": "String", "StringValue": value}
        for name, value in job.payload["attributes"].items()
        if value
    }
    try:
        answer = await sns.publish(
            TopicArn=job.recipient,
            Message=job.payload["message"],
            Subject=job.payload["subject"],
            MessageAttributes=attributes,
        )
    except (ClientError, BotoCoreError) as exc:
        raise classify_aws_error(exc) from None
    return str(answer.get("MessageId", ""))


class SlackClient:
    """The two Slack Web API methods we use, with Slack's error and rate-limit conventions."""

    def __init__(
        self, http: httpx.AsyncClient, *, base_url: str, token: str | None, timeout: float
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        if not self._token:
            raise SendError(
                "NOTIFY_SLACK_BOT_TOKEN is not set: give the service a bot token", retryable=False
            )
        try:
            response = await self._http.post(
                f"{self._base}/{method}",
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self._timeout,
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise SendError(f"Slack {method}: {type(exc).__name__}", retryable=True) from None
        if response.status_code == 429:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            raise SendError(
                f"Slack {method}: rate limited (HTTP 429, Retry-After {wait})",
                retryable=True,
                retry_after=wait if wait is not None else 1.0,
            )
        if response.status_code >= 500:
            raise SendError(f"Slack {method}: HTTP {response.status_code}", retryable=True)
        try:
            answer = response.json()
        except ValueError:
            raise SendError(
                f"Slack {method}: HTTP {response.status_code}, not JSON", retryable=True
            ) from None
        if not isinstance(answer, dict) or not answer.get("ok"):
            error = str(answer.get("error", "unknown")) if isinstance(answer, dict) else "unknown"
            raise SendError(f"Slack {method}: {error}", retryable=error in RETRYABLE_SLACK_ERRORS)
        return answer

    async def user_id(self, email: str) -> str:
        """The Slack user id of the person with this email (`users.lookupByEmail`)."""
        answer = await self._call("users.lookupByEmail", data={"email": email})
        user = answer.get("user")
        if not isinstance(user, dict) or not user.get("id"):
            raise SendError("Slack users.lookupByEmail: no user id in the answer", retryable=False)
        return str(user["id"])

    async def post(self, channel: str, payload: dict[str, Any]) -> str:
        """`chat.postMessage` with the rendered Block Kit message; returns the message `ts`."""
        answer = await self._call(
            "chat.postMessage",
            json={
                "channel": channel,
                "text": payload["text"],
                "blocks": payload["blocks"],
                "unfurl_links": False,
            },
        )
        return str(answer.get("ts", ""))

    async def send(self, job: Job) -> str:
        """DM a person (looked up by email) or post to the audit channel."""
        channel = job.recipient if job.audience == "audit" else await self.user_id(job.recipient)
        return await self.post(channel, job.payload)


async def send_webhook(
    http: httpx.AsyncClient, job: Job, *, url: str, secret: str, timeout: float
) -> str:
    """POST the signed event to a subscriber; 2xx is delivered."""
    body = str(job.payload["body"])
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "TEAM-Notify/1",
        "X-Team-Event": job.event_type,
        "X-Team-Event-Id": job.event_id,
        "X-Team-Delivery": str(job.id),
        "X-Team-Timestamp": timestamp,
        "X-Team-Signature": sign(secret, timestamp, body),
    }
    try:
        response = await http.post(
            url, content=body.encode(), headers=headers, timeout=timeout, follow_redirects=False
        )
    except httpx.HTTPError as exc:
        raise SendError(f"webhook: {type(exc).__name__}", retryable=True) from None
    status = response.status_code
    if 200 <= status < 300:
        return f"HTTP {status}"
    wait = parse_retry_after(response.headers.get("Retry-After"))
    retryable = status in (408, 425, 429) or status >= 500
    raise SendError(f"webhook: HTTP {status}", retryable=retryable, retry_after=wait)


def json_body(document: Any) -> str:
    """Compact JSON, the exact text that is signed and sent."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
