"""Messages from templates: one Jinja2 file per (event type, audience), one layout per channel.

Each message template (`templates/<event type>/<audience>.j2`) extends the `layout` it is given
and fills the blocks `subject`, `intro` and `details`. It is rendered in three environments
that differ only in how a value (`{{ ... }}`) is escaped: HTML autoescape for the email's HTML
part, nothing for its plain-text part, and Slack mrkdwn escaping (`&`, `<`, `>`) for Slack.
Template text itself is never escaped, so layouts may use markup; user-supplied values always are.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape
from markupsafe import Markup

from teamkit.events.envelope import Event
from teamkit.events.request import RequestSubmittedData

_MAX_SUBJECT = 200
_MAX_SLACK_SECTION = 3000


def slack_escape(value: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control (`&` first)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(value: Any) -> Any:
    return "" if value is None else value


def _slack(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Markup):
        return value
    return slack_escape(str(value))


def zone(name: str | None) -> ZoneInfo:
    """The IANA zone `name`, or UTC when it is unset or unknown."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo("UTC")


def format_time(moment: datetime, time_zone: str | None) -> str:
    """`2026-12-10 10:00 CET (Europe/Berlin)`; `... 09:00 UTC` without a known zone."""
    tz = zone(time_zone)
    local = moment.astimezone(tz)
    text = local.strftime("%Y-%m-%d %H:%M %Z")
    return text if tz.key == "UTC" else f"{text} ({tz.key})"


def format_duration(minutes: int) -> str:
    """`1 h 30 min`, `45 min`, `2 h`."""
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return f"{hours} h {rest} min"
    return f"{hours} h" if hours else f"{rest} min"


@dataclass(frozen=True)
class EmailMessage:
    """A rendered email: subject (plain text), HTML and plain-text bodies."""

    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class SlackMessage:
    """A rendered Slack message: fallback text and Block Kit blocks."""

    text: str
    blocks: list[dict[str, Any]]


def _environment(**kwargs: Any) -> Environment:
    return Environment(  # noqa: S701 - autoescape is chosen per environment on purpose
        loader=PackageLoader("notify_service", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        **kwargs,
    )


class Renderer:
    """Renders message templates for each channel; one instance per process (templates cache)."""

    def __init__(self) -> None:
        self._html = _environment(autoescape=select_autoescape(default=True), finalize=_plain)
        self._text = _environment(autoescape=False, finalize=_plain)
        self._slack = _environment(autoescape=False, finalize=_slack)

    @staticmethod
    def template_name(event_type: str, audience: str) -> str:
        """The message template of one (event type, audience)."""
        return f"{event_type}/{audience}.j2"

    def has_template(self, event_type: str, audience: str) -> bool:
        """True when a template exists for this (event type, audience)."""
        return self.template_name(event_type, audience) in self._text.list_templates()

    def _subject(self, template: Template, context: dict[str, Any]) -> str:
        block = template.blocks["subject"]
        subject = "".join(block(template.new_context(context))).strip()
        return " ".join(subject.split())[:_MAX_SUBJECT]

    def email(self, name: str, context: dict[str, Any]) -> EmailMessage:
        """Render the email of template `name` (HTML and text parts)."""
        text_template = self._text.get_template(name)
        html = self._html.get_template(name).render(context, layout="_layouts/email.html.j2")
        text = text_template.render(context, layout="_layouts/email.txt.j2")
        return EmailMessage(subject=self._subject(text_template, context), html=html, text=text)

    def slack(self, name: str, context: dict[str, Any]) -> SlackMessage:
        """Render the Slack message of template `name` as Block Kit."""
        template = self._slack.get_template(name)
        body = template.render(context, layout="_layouts/slack.j2").strip()
        subject = self._subject(self._text.get_template(name), context)
        blocks: list[dict[str, Any]] = [
            # plain_text is never parsed by Slack, so the unescaped subject is safe here.
            {"type": "header", "text": {"type": "plain_text", "text": subject[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body[:_MAX_SLACK_SECTION]}},
        ]
        link = context.get("link")
        if link:
            blocks.append(
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Open the request"},
                            "url": link,
                        }
                    ],
                }
            )
        return SlackMessage(text=slack_escape(subject), blocks=blocks)


def message_context(
    *,
    event: Event,
    snapshot: RequestSubmittedData | None,
    revoke: dict[str, Any] | None,
    audience: str,
    recipient_name: str,
    time_zone: str | None,
    app_base_url: str,
) -> dict[str, Any]:
    """Everything a template may use, with times already in the recipient's zone."""
    request_id = getattr(event.data, "request_id", None)
    context: dict[str, Any] = {
        "event_type": event.type,
        "event_time": format_time(event.time, time_zone),
        "data": event.data,
        "audience": audience,
        "recipient_name": recipient_name,
        "time_zone": zone(time_zone).key,
        "request_id": str(request_id) if request_id else None,
        "link": f"{app_base_url.rstrip('/')}/requests/{request_id}" if request_id else None,
        "revoke": revoke,
        "has_request": snapshot is not None,
        "requester": None,
        "account": getattr(event.data, "account_id", None),
        "permission_set": getattr(event.data, "permission_set_arn", None),
        "start": None,
        "end": None,
        "duration": None,
        "justification": None,
        "ticket": None,
        "approvers": None,
        "approval_deadline": None,
    }
    if snapshot is not None:
        context.update(
            requester=snapshot.requester.username,
            account=f"{snapshot.account.name} ({snapshot.account.id})",
            permission_set=snapshot.permission_set.name,
            start=format_time(snapshot.start, time_zone),
            end=format_time(snapshot.end, time_zone),
            duration=format_duration(snapshot.duration_minutes),
            justification=snapshot.justification,
            ticket=snapshot.ticket,
            approvers=", ".join(a.username for a in snapshot.approvers) or None,
            approval_deadline=format_time(snapshot.approval_deadline, time_zone)
            if snapshot.approval_deadline
            else None,
        )
    return context
