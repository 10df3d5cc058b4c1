"""structlog configured once: JSON in production, console in dev, correlation ids in context."""

import logging
import sys
import uuid
from contextvars import ContextVar
from typing import Literal

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CORRELATION_HEADER = "X-Correlation-ID"

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def configure_logging(
    *, service: str, fmt: Literal["json", "console"] = "json", level: str = "INFO"
) -> None:
    """Route stdlib and structlog records through one renderer with service and context."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every reconnect attempt at ERROR while a broker restarts; warn is plenty.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    structlog.contextvars.bind_contextvars(service=service)


def bind_correlation_id(value: str | None) -> str:
    """Set the correlation id for this task (a fresh one when none is given) and return it."""
    cid = value or str(uuid.uuid4())
    correlation_id.set(cid)
    structlog.contextvars.bind_contextvars(correlation_id=cid)
    return cid


class CorrelationIdMiddleware:
    """Carry `X-Correlation-ID` from the request into logs, events and the response.

    Pure ASGI (not `BaseHTTPMiddleware`): no extra task, stream or response object per call,
    and the context variable set here is the one the endpoint sees.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Bind the id for the call, echo it on the response, unbind it afterwards."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = Headers(scope=scope).get(CORRELATION_HEADER)
        # An id is echoed into logs and headers: accept only short, printable values.
        if supplied is not None and (len(supplied) > 128 or not supplied.isprintable()):
            supplied = None
        cid = bind_correlation_id(supplied)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[CORRELATION_HEADER] = cid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("correlation_id")
