"""teamkit.aws against a real moto server, and the client it builds for real AWS."""

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ClientError

from devstack.moto_server import MotoServer
from teamkit.aws import DUMMY_CREDENTIAL, AwsClients
from teamkit.settings import AwsSettings

CREDENTIAL_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)

Factory = Callable[[AwsClients], AbstractAsyncContextManager[Any]]

FACTORIES: dict[str, Factory] = {
    "sso-admin": AwsClients.sso_admin,
    "identitystore": AwsClients.identitystore,
    "organizations": AwsClients.organizations,
    "sesv2": AwsClients.sesv2,
    "sns": AwsClients.sns,
    "sts": AwsClients.sts,
}


async def authorization_of_one_call(clients: AwsClients) -> str:
    """The Authorization header of a real STS call."""
    seen: list[str] = []

    def capture(request: AWSPreparedRequest, **_: object) -> None:
        seen.append(str(request.headers["Authorization"]))

    async with clients.sts() as sts:
        sts.meta.events.register("before-send.sts.GetCallerIdentity", capture)
        await sts.get_caller_identity()
    assert len(seen) == 1
    return seen[0]


class TestAwsClientsWithEndpointUrl:
    @pytest.mark.parametrize("service", sorted(FACTORIES))
    async def test_every_client_targets_the_endpoint(
        self, service: str, aws_settings: AwsSettings, moto_server: MotoServer
    ) -> None:
        async with FACTORIES[service](AwsClients(aws_settings)) as client:
            assert client.meta.service_model.service_name == service
            assert client.meta.endpoint_url == moto_server.endpoint_url
            assert client.meta.region_name == "us-east-1"

    async def test_talks_to_moto(self, aws_settings: AwsSettings) -> None:
        clients = AwsClients(aws_settings)
        async with clients.sts() as sts, clients.sso_admin() as sso:
            identity = await sts.get_caller_identity()
            instances = (await sso.list_instances())["Instances"]
        assert identity["Account"] == "123456789012"
        assert instances[0]["InstanceArn"].startswith("arn:aws:sso:::instance/ssoins-")

    async def test_dummy_credentials_when_environment_has_none(
        self, aws_settings: AwsSettings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in CREDENTIAL_ENV:
            monkeypatch.delenv(name, raising=False)
        authorization = await authorization_of_one_call(AwsClients(aws_settings))
        assert f"Credential={DUMMY_CREDENTIAL}/" in authorization

    async def test_environment_credentials_win(
        self, aws_settings: AwsSettings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in CREDENTIAL_ENV:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRONMENT")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-environment")
        authorization = await authorization_of_one_call(AwsClients(aws_settings))
        assert "Credential=AKIDFROMENVIRONMENT/" in authorization

    async def test_retries_and_timeouts_come_from_settings(self, aws_settings: AwsSettings) -> None:
        settings = aws_settings.model_copy(
            update={
                "AWS_MAX_ATTEMPTS": 4,
                "AWS_CONNECT_TIMEOUT_SECONDS": 1.5,
                "AWS_READ_TIMEOUT_SECONDS": 7.0,
            }
        )
        async with AwsClients(settings, max_pool_connections=3).sso_admin() as sso:
            config = vars(sso.meta.config)  # botocore's stubs declare no Config attributes
        assert config["retries"] == {"total_max_attempts": 4, "mode": "standard"}
        assert config["connect_timeout"] == 1.5
        assert config["read_timeout"] == 7.0
        assert config["max_pool_connections"] == 3

    async def test_single_attempt_fails_fast_on_unimplemented_calls(
        self, aws_settings: AwsSettings
    ) -> None:
        # moto answers HTTP 500 here; with botocore's default retries this costs seconds.
        started = time.monotonic()
        async with AwsClients(aws_settings).sso_admin() as sso:
            with pytest.raises(ClientError) as raised:
                await sso.create_instance()
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0
        assert time.monotonic() - started < 2.0


class TestAwsClientsWithoutEndpointUrl:
    @pytest.mark.parametrize("service", sorted(FACTORIES))
    async def test_clients_resolve_real_aws_endpoints(
        self, service: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # botocore would honour this variable itself; the settings object must win.
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        # Credentials in the environment keep botocore from probing the instance metadata
        # service: building these clients makes no network call.
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
        settings = AwsSettings(AWS_ENDPOINT_URL=None, AWS_REGION="eu-west-1")
        async with FACTORIES[service](AwsClients(settings)) as client:
            endpoint = client.meta.endpoint_url
        assert endpoint.startswith("https://")
        assert endpoint.endswith(".amazonaws.com")
        if service != "organizations":  # a global service, served from us-east-1
            assert ".eu-west-1." in endpoint
