"""aiobotocore clients built from `AwsSettings`: moto or a proxy when an endpoint URL is set.

One `AwsClients` per process holds one aiobotocore session; each method returns the client as an
async context manager, so a lifespan keeps them on its `AsyncExitStack`:

    clients = AwsClients(settings.aws)
    sso = await stack.enter_async_context(clients.sso_admin())
"""

from __future__ import annotations

import os
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, TypedDict

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from teamkit.settings import AwsSettings

if TYPE_CHECKING:
    from types_aiobotocore_identitystore.client import IdentityStoreClient
    from types_aiobotocore_organizations.client import OrganizationsClient
    from types_aiobotocore_sesv2.client import SESV2Client
    from types_aiobotocore_sns.client import SNSClient
    from types_aiobotocore_sso_admin.client import SSOAdminClient
    from types_aiobotocore_sts.client import STSClient

# Any of these means the default credential chain has something to find.
_CREDENTIAL_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)
DUMMY_CREDENTIAL = "testing"


class _ClientKwargs(TypedDict):
    region_name: str
    endpoint_url: str | None
    aws_access_key_id: str | None
    aws_secret_access_key: str | None
    config: AioConfig


class AwsClients:
    """Typed client factories over one aiobotocore session, configured once from `AwsSettings`.

    With `AWS_ENDPOINT_URL` set every client talks to it (and uses dummy credentials unless the
    environment provides some); unset, clients resolve real AWS endpoints and the default
    credential chain. Botocore's own `AWS_ENDPOINT_URL*` lookup is disabled so the settings
    object stays the single source of truth.
    """

    def __init__(self, settings: AwsSettings, *, max_pool_connections: int = 10) -> None:
        self.settings = settings
        self._session = get_session()
        endpoint = settings.AWS_ENDPOINT_URL
        dummy = endpoint is not None and not any(os.environ.get(name) for name in _CREDENTIAL_ENV)
        self._kwargs = _ClientKwargs(
            region_name=settings.AWS_REGION,
            endpoint_url=endpoint,
            aws_access_key_id=DUMMY_CREDENTIAL if dummy else None,
            aws_secret_access_key=DUMMY_CREDENTIAL if dummy else None,
            config=AioConfig(
                retries={"total_max_attempts": settings.AWS_MAX_ATTEMPTS, "mode": "standard"},
                connect_timeout=settings.AWS_CONNECT_TIMEOUT_SECONDS,
                read_timeout=settings.AWS_READ_TIMEOUT_SECONDS,
                max_pool_connections=max_pool_connections,
                ignore_configured_endpoint_urls=True,
            ),
        )

    def sso_admin(self) -> AbstractAsyncContextManager[SSOAdminClient]:
        """IAM Identity Center administration (instances, permission sets, assignments)."""
        return self._session.create_client("sso-admin", **self._kwargs)

    def identitystore(self) -> AbstractAsyncContextManager[IdentityStoreClient]:
        """Identity Center users, groups and memberships."""
        return self._session.create_client("identitystore", **self._kwargs)

    def organizations(self) -> AbstractAsyncContextManager[OrganizationsClient]:
        """AWS Organizations: accounts and the OU tree."""
        return self._session.create_client("organizations", **self._kwargs)

    def sesv2(self) -> AbstractAsyncContextManager[SESV2Client]:
        """SES v2 for notification mail."""
        return self._session.create_client("sesv2", **self._kwargs)

    def sns(self) -> AbstractAsyncContextManager[SNSClient]:
        """SNS for notification topics."""
        return self._session.create_client("sns", **self._kwargs)

    def sts(self) -> AbstractAsyncContextManager[STSClient]:
        """STS for caller identity and role assumption."""
        return self._session.create_client("sts", **self._kwargs)
