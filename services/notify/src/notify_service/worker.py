"""The delivery worker: claims pending deliveries, sends them, and settles each one.

Claims are short transactions (`FOR UPDATE SKIP LOCKED`, then commit) that move rows to
`sending` under a lease; sending happens outside any transaction; each outcome is settled in
its own short transaction together with its `notification.*` outbox event. A failing or slow
channel only delays its own rows: each row carries its own back-off, sends run concurrently
with a timeout, and a Slack `Retry-After` pauses only Slack.
"""

import asyncio
import contextlib
import random
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx
import structlog
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from notify_service import repository, service
from notify_service.channel_config import ChannelConfig
from notify_service.channels import (
    Job,
    SendError,
    SlackClient,
    classify_aws_error,
    send_email,
    send_sns,
    send_webhook,
)
from notify_service.config import Settings
from notify_service.models import DELIVERY_CHANNEL
from teamkit.clock import utc_now

if TYPE_CHECKING:
    from types_aiobotocore_sesv2.client import SESV2Client
    from types_aiobotocore_sns.client import SNSClient

log = structlog.get_logger(__name__)


class Skip(Exception):
    """The delivery must not be sent any more (its webhook was deleted or disabled)."""


def backoff_seconds(
    attempts: int, *, base: float, cap: float, retry_after: float | None = None
) -> float:
    """Delay before the next attempt: the provider's `Retry-After` if given, else exponential.

    Exponential delays get +-20 % jitter so rows failing together do not retry in lockstep.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    delay: float = min(cap, base * 2.0 ** max(attempts - 1, 0))
    jitter: float = random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography
    return delay * jitter


class DeliveryWorker:
    """Sends what the consumer recorded; one per process, safe to run on every replica."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        ses: "SESV2Client",
        sns: "SNSClient",
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._sessionmaker = sessionmaker
        self._http = http
        self._ses = ses
        self._sns = sns
        token = settings.SLACK_BOT_TOKEN.get_secret_value() if settings.SLACK_BOT_TOKEN else None
        self._slack = SlackClient(
            http,
            base_url=settings.SLACK_BASE_URL,
            token=token,
            timeout=settings.SEND_TIMEOUT_SECONDS,
        )
        self._paused_until: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.running = False
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self.last_error: str | None = None

    def stop(self) -> None:
        """Finish the sends in flight, then return from `run`."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Deliver until stopped; reconnect after database errors."""
        while not self._stopping.is_set():
            try:
                await self._listen_and_deliver()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any one failure
                self.running = False
                self.last_error = repr(exc)
                log.warning("delivery.worker_failed", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stopping.wait(), self._settings.WORKER_POLL_SECONDS
                    )
        self.running = False

    async def _listen_and_deliver(self) -> None:
        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection

            def on_notify(*_: object) -> None:
                self._wake.set()

            await driver.add_listener(DELIVERY_CHANNEL, on_notify)
            self.running = True
            try:
                while not self._stopping.is_set():
                    self._wake.clear()
                    while not self._stopping.is_set() and await self.run_once():
                        pass
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._wake.wait(), self._settings.WORKER_POLL_SECONDS
                        )
            finally:
                with contextlib.suppress(Exception):
                    await driver.remove_listener(DELIVERY_CHANNEL, on_notify)

    async def run_once(self) -> int:
        """Claim one batch of due deliveries and send it; returns how many were claimed."""
        now = time.monotonic()
        paused = [channel for channel, until in self._paused_until.items() if until > now]
        async with self._sessionmaker() as session, session.begin():
            rows = await repository.claim_due(
                session,
                limit=self._settings.WORKER_BATCH_SIZE,
                lease=timedelta(seconds=self._settings.DELIVERY_LEASE_SECONDS),
                paused_channels=paused,
            )
            config = await service.current_config(session, self._settings)
        if rows:
            await asyncio.gather(*(self._deliver(row, config) for row in rows))
        return len(rows)

    async def _deliver(self, row: Row[Any], config: ChannelConfig) -> None:
        job = Job(
            id=row.id,
            event_id=str(row.event_id),
            event_type=row.event_type,
            channel=row.channel,
            recipient=row.recipient,
            audience=row.audience,
            payload=dict(row.payload),
            attempts=row.attempts,
        )
        if not config.enabled(job.channel):
            await service.mark_skipped(
                self._sessionmaker, row=row, reason=f"channel {job.channel} is switched off"
            )
            return
        try:
            async with asyncio.timeout(self._settings.SEND_TIMEOUT_SECONDS + 5):
                provider_ref = await self._send(job, config)
        except Skip as exc:
            await service.mark_skipped(self._sessionmaker, row=row, reason=str(exc))
            return
        except SendError as exc:
            error = exc
        except TimeoutError:
            error = SendError(f"{job.channel}: timed out", retryable=True)
        except (ClientError, BotoCoreError) as exc:
            error = classify_aws_error(exc)
        except Exception as exc:  # an unexpected failure is retried, then recorded
            log.exception("delivery.unexpected_error", delivery_id=job.id)
            error = SendError(f"{job.channel}: {type(exc).__name__}", retryable=True)
        else:
            self.sent += 1
            await service.mark_delivered(self._sessionmaker, row=row, provider_ref=provider_ref)
            log.info(
                "delivery.sent", delivery_id=job.id, channel=job.channel, attempts=job.attempts
            )
            return

        self.last_error = error.reason
        if error.retry_after is not None and job.channel == "slack":
            # Slack's limits are per workspace and method: every Slack row waits, no others.
            self._paused_until["slack"] = time.monotonic() + error.retry_after
        if not error.retryable or job.attempts >= self._settings.MAX_ATTEMPTS:
            self.failed += 1
            await service.mark_failed(self._sessionmaker, row=row, error=error.reason)
            return
        self.retried += 1
        delay = backoff_seconds(
            job.attempts,
            base=self._settings.RETRY_BASE_SECONDS,
            cap=self._settings.RETRY_MAX_SECONDS,
            retry_after=error.retry_after,
        )
        await service.retry_later(
            self._sessionmaker, row=row, at=utc_now() + timedelta(seconds=delay), error=error.reason
        )
        log.info(
            "delivery.retry_scheduled",
            delivery_id=job.id,
            channel=job.channel,
            attempts=job.attempts,
            delay=round(delay, 3),
            error=error.reason[:300],
        )

    async def _send(self, job: Job, config: ChannelConfig) -> str | None:
        if job.channel == "email":
            return await send_email(
                self._ses,
                job,
                sender=config.ses_sender,
                configuration_set=config.ses_configuration_set,
            )
        if job.channel == "sns":
            return await send_sns(self._sns, job)
        if job.channel == "slack":
            return await self._slack.send(job)
        if job.channel == "webhook":
            async with self._sessionmaker() as session:
                hook = await repository.get_webhook(session, UUID(job.recipient))
            if hook is None:
                raise Skip("the webhook was deleted")
            if not hook.enabled:
                raise Skip("the webhook is disabled")
            return await send_webhook(
                self._http,
                job,
                url=hook.url,
                secret=hook.secret,
                timeout=self._settings.SEND_TIMEOUT_SECONDS,
            )
        raise SendError(f"unknown channel {job.channel}", retryable=False)

    def status(self) -> dict[str, Any]:
        """Worker facts for `/readyz`."""
        return {
            "running": self.running,
            "sent": self.sent,
            "failed": self.failed,
            "retried": self.retried,
            "last_error": self.last_error,
        }


class SesReadiness:
    """Whether SES will accept mail from the configured sender; cached per sender."""

    def __init__(self, ses: "SESV2Client", *, probe_recipient: str) -> None:
        self._ses = ses
        self._probe_recipient = probe_recipient
        self._sender: str | None = None
        self._result: dict[str, Any] = {"ok": False, "error": "not checked yet"}
        self._checked_at = 0.0

    async def check(self, sender: str, *, recheck_after: float = 15.0) -> dict[str, Any]:
        """Check `sender` (at most every `recheck_after` s while failing; once when it works)."""
        fresh = time.monotonic() - self._checked_at < recheck_after
        if sender == self._sender and (self._result["ok"] or fresh):
            return self._result
        self._sender = sender
        self._checked_at = time.monotonic()
        self._result = await self._verify(sender)
        if not self._result["ok"]:
            log.error("ses.sender_not_ready", sender=sender, error=self._result["error"])
        return self._result

    async def _identity(self, name: str) -> dict[str, Any] | None:
        try:
            answer = await self._ses.get_email_identity(EmailIdentity=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NotFoundException":
                return None
            raise
        return dict(answer)

    async def _verify(self, sender: str) -> dict[str, Any]:
        try:
            identity = await self._identity(sender)
            if identity is None and "@" in sender:
                identity = await self._identity(sender.rsplit("@", 1)[1])
            if identity is None:
                return {
                    "ok": False,
                    "sender": sender,
                    "error": f"SES has no identity for sender {sender} or its domain: create and "
                    "verify it (sesv2 create-email-identity), or set NOTIFY_SES_SENDER",
                }
            if identity.get("VerifiedForSendingStatus"):
                return {"ok": True, "sender": sender}
            # Not reported verified (or an emulator that never reports it): let SES decide by
            # sending to its mailbox simulator, which accepts mail without delivering it.
            await self._ses.send_email(
                FromEmailAddress=sender,
                Destination={"ToAddresses": [self._probe_recipient]},
                Content={
                    "Simple": {
                        "Subject": {"Data": "TEAM notify readiness probe"},
                        "Body": {"Text": {"Data": "Readiness probe; no action needed."}},
                    }
                },
            )
        except (ClientError, BotoCoreError) as exc:
            reason = classify_aws_error(exc).reason
            return {
                "ok": False,
                "sender": sender,
                "error": f"SES refuses sender {sender}: {reason}. Verify the identity in SES "
                "or set NOTIFY_SES_SENDER to a verified one",
            }
        return {"ok": True, "sender": sender}
