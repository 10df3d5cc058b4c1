"""The command line every service shares: `serve` (default) or `migrate`."""

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from teamkit.app import ServiceSpec
from teamkit.logging import configure_logging
from teamkit.migrations import upgrade_to_head
from teamkit.service_settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)

USAGE = "usage: python -m <service> [serve|migrate]"


def run_service(
    spec: ServiceSpec, settings: S, create_app: Callable[[S], FastAPI], argv: Sequence[str]
) -> None:
    """Serve the app under uvicorn (SIGINT/SIGTERM stop it gracefully) or apply migrations."""
    command = argv[0] if argv else "serve"
    if command == "migrate":
        configure_logging(
            service=spec.name, fmt=settings.runtime.LOG_FORMAT, level=settings.runtime.LOG_LEVEL
        )
        upgrade_to_head(spec.migrations, settings.DATABASE_URL)
        return
    if command != "serve":
        raise SystemExit(USAGE)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.HOST,
        port=settings.PORT,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    asyncio.run(uvicorn.Server(config).serve())
