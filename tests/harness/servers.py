"""Serve an ASGI app under a real uvicorn on a free loopback port, inside the test's event loop."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI

from devstack.net import free_port


@contextlib.asynccontextmanager
async def serving(app: FastAPI, *, startup_timeout: float = 60.0) -> AsyncIterator[str]:
    """Run `app` (lifespan included) and yield its base URL; shut it down afterwards."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + startup_timeout
    while not server.started:
        if task.done():
            task.result()  # re-raises the start-up failure
            raise RuntimeError("uvicorn exited during start-up")
        if loop.time() > deadline:
            server.should_exit = True
            raise TimeoutError("app did not start in time")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
