"""moto for tests: ThreadedMotoServer in this process, or the server named by AWS_ENDPOINT_URL.

Clients reach it over HTTP through `teamkit.aws`, never through in-process mocks. State lives for
the whole session: `seeded_org` seeds the demo organization once, so tests must not reset moto
(a reset changes the instance ARN and identity store id); create what you need with unique names.
"""

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from devstack.moto_server import MotoServer, start_moto_thread
from devstack.seed_aws import SeedResult, seed_demo_org
from teamkit.settings import AwsSettings


@dataclass(frozen=True)
class ExternalMoto:
    """A moto server started by someone else; not ours to stop."""

    endpoint_url: str

    def stop(self) -> None:
        """Leave the external server running."""


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """The test moto server (its `endpoint_url`)."""
    external = os.environ.get("AWS_ENDPOINT_URL")
    if external:
        yield ExternalMoto(external)
        return
    # The threaded server logs every request through werkzeug at INFO.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = start_moto_thread()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def aws_settings(moto_server: MotoServer) -> AwsSettings:
    """Settings pointing at the test moto, retries off so unimplemented calls fail at once."""
    return AwsSettings(
        AWS_ENDPOINT_URL=moto_server.endpoint_url, AWS_REGION="us-east-1", AWS_MAX_ATTEMPTS=1
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def seeded_org(aws_settings: AwsSettings) -> SeedResult:
    """The demo organization, seeded once per session (idempotent if it already exists)."""
    return await seed_demo_org(aws_settings)
