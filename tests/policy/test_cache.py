"""The in-memory copies: every change is visible on the very next call, on every replica."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from devstack.moto_server import MotoProcess
from devstack.seed_aws import SeedResult
from policy_service.app import create_app
from policy_service.cache import AnswerCache, VersionedCopy
from policy_service.schemas import EligibilityPolicyIn
from teamkit.aws import AwsClients
from teamkit.settings import AwsSettings
from tests.harness.oidc import RunningIssuer
from tests.harness.postgres import PostgresForTests
from tests.harness.servers import serving
from tests.harness.wait import eventually
from tests.policy.conftest import Api, policy_settings, running_policy


def pairs(answer: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {
        (account["name"], option["permission_set"]["name"], option["max_duration_minutes"])
        for item in answer["items"]
        for account in item["accounts"]
        for option in item["permission_sets"]
    }


async def test_policy_and_settings_changes_show_on_the_next_call(api: Api) -> None:
    s = api.seed
    team_a_prod = {("team-a-prod", "Admin"), ("team-a-prod-data", "Admin")}
    policy = await api.eligibility(
        group_ids=[s.group_ids["TEAM-Users"]],
        ou_ids=[s.ou_ids["Team-A-Prod"]],
        permission_set_arns=[s.permission_set_arns["Admin"]],
        max_duration_minutes=60,
    )
    first = await api.ok("GET", "/v1/me/entitlements", who="alice")
    assert pairs(first) == {(a, p, 60) for a, p in team_a_prod}
    assert await api.ok("GET", "/v1/me/entitlements", who="alice") == first  # from the cache

    body = {k: v for k, v in policy.items() if k in {*EligibilityPolicyIn.model_fields, "version"}}
    await api.ok(
        "PUT",
        f"/v1/eligibility-policies/{policy['id']}",
        json={**body, "max_duration_minutes": 120},
    )
    assert pairs(await api.ok("GET", "/v1/me/entitlements", who="alice")) == {
        (a, p, 120) for a, p in team_a_prod
    }
    decision = await api.evaluate(
        user="alice", account_id=s.account_ids["team-a-prod"], permission_set="Admin"
    )
    assert decision["max_duration_minutes"] == 120

    await api.set_settings(max_duration_minutes=90)  # the global cap applies at once
    assert pairs(await api.ok("GET", "/v1/me/entitlements", who="alice")) == {
        (a, p, 90) for a, p in team_a_prod
    }

    await api.ok("DELETE", f"/v1/eligibility-policies/{policy['id']}")
    assert (await api.ok("GET", "/v1/me/entitlements", who="alice"))["items"] == []
    decision = await api.evaluate(
        user="alice", account_id=s.account_ids["team-a-prod"], permission_set="Admin"
    )
    assert decision["allowed"] is False

    imported = {
        "format_version": 1,
        "eligibility_policies": [
            {
                "name": "imported",
                "user_ids": [s.user_ids["alice"]],
                "account_ids": [s.account_ids["sandbox-1"]],
                "permission_set_arns": [s.permission_set_arns["ReadOnly"]],
                "max_duration_minutes": 30,
            }
        ],
    }
    await api.ok("PUT", "/v1/policies/export", json=imported)
    assert pairs(await api.ok("GET", "/v1/me/entitlements", who="alice")) == {
        ("sandbox-1", "ReadOnly", 30)
    }


async def test_a_write_outside_the_service_shows_on_the_next_call(api: Api) -> None:
    """The counters are bumped by triggers, so even a manual SQL fix invalidates the copies."""
    s = api.seed
    await api.eligibility(
        user_ids=[s.user_ids["alice"]],
        account_ids=[s.account_ids["sandbox-1"]],
        permission_set_arns=[s.permission_set_arns["ReadOnly"]],
        max_duration_minutes=45,
    )
    assert pairs(await api.ok("GET", "/v1/me/entitlements", who="alice")) == {
        ("sandbox-1", "ReadOnly", 45)
    }
    await api.rows("UPDATE eligibility_policy SET max_duration_minutes = 50")
    assert pairs(await api.ok("GET", "/v1/me/entitlements", who="alice")) == {
        ("sandbox-1", "ReadOnly", 50)
    }
    await api.rows("UPDATE directory_account SET name = 'renamed' WHERE name = 'sandbox-1'")
    assert pairs(await api.ok("GET", "/v1/me/entitlements", who="alice")) == {
        ("renamed", "ReadOnly", 50)
    }


async def test_a_directory_refresh_shows_on_the_next_call(
    private_moto: tuple[MotoProcess, AwsSettings, SeedResult],
    postgres: PostgresForTests,
    kafka_bootstrap: str,
    oidc_issuer: RunningIssuer,
) -> None:
    _, aws, seed = private_moto
    async with running_policy(postgres, kafka_bootstrap, oidc_issuer, aws, seed) as api:
        await api.eligibility(
            group_ids=[seed.group_ids["TEAM-Users"]],
            account_ids=[seed.account_ids["sandbox-1"]],
            permission_set_arns=[seed.permission_set_arns["ReadOnly"]],
            approval_required=False,
        )
        assert (await api.ok("GET", "/v1/me/entitlements", who="erin"))["items"] == []
        evaluation = {"user": "erin", "account_id": seed.account_ids["sandbox-1"]}
        before = await api.evaluate(**evaluation, permission_set="ReadOnly")
        assert before["allowed"] is False

        async with AwsClients(aws).identitystore() as ids:
            await ids.create_group_membership(
                IdentityStoreId=seed.identity_store_id,
                GroupId=seed.group_ids["TEAM-Users"],
                MemberId={"UserId": seed.user_ids["erin"]},
            )
        # Cached until the directory copy changes ...
        assert (await api.ok("GET", "/v1/me/entitlements", who="erin"))["items"] == []
        # ... and current on the first call after the refresh.
        assert (await api.ok("POST", "/v1/directory/refresh"))["ok"]
        assert pairs(await api.ok("GET", "/v1/me/entitlements", who="erin")) == {
            ("sandbox-1", "ReadOnly", 60)
        }
        after = await api.evaluate(**evaluation, permission_set="ReadOnly")
        assert after["allowed"] is True, after


@asynccontextmanager
async def two_replicas(
    postgres: PostgresForTests, kafka_bootstrap: str, issuer: RunningIssuer, seeded: Any
) -> AsyncIterator[tuple[Api, Api]]:
    """Two policy services on one database, as two replicas behind a load balancer."""
    name = await postgres.create("policy")
    try:
        apis: list[Api] = []
        async with (
            serving(
                create_app(policy_settings(postgres.url(name), kafka_bootstrap, issuer, seeded[0]))
            ) as first_url,
            httpx.AsyncClient(base_url=first_url, timeout=30.0) as first,
        ):
            apis.append(Api(first, issuer, seeded[1], postgres.dsn(name)))
            await eventually(lambda: _ready(first), timeout=60)
            async with (
                serving(
                    create_app(
                        policy_settings(
                            postgres.url(name),
                            kafka_bootstrap,
                            issuer,
                            seeded[0],
                            DIRECTORY_REFRESH_ON_START=False,
                        )
                    )
                ) as second_url,
                httpx.AsyncClient(base_url=second_url, timeout=30.0) as second,
            ):
                apis.append(Api(second, issuer, seeded[1], postgres.dsn(name)))
                await eventually(lambda: _ready(second), timeout=60)
                yield apis[0], apis[1]
    finally:
        await postgres.drop(name)


async def _ready(http: httpx.AsyncClient) -> None:
    answer = await http.get("/readyz")
    assert answer.status_code == 200, answer.text


async def test_a_change_through_one_replica_shows_on_the_other(
    postgres: PostgresForTests,
    kafka_bootstrap: str,
    oidc_issuer: RunningIssuer,
    aws_settings: AwsSettings,
    seeded_org: SeedResult,
) -> None:
    async with two_replicas(postgres, kafka_bootstrap, oidc_issuer, (aws_settings, seeded_org)) as (
        one,
        two,
    ):
        s = seeded_org
        policy = await one.eligibility(
            user_ids=[s.user_ids["alice"]],
            account_ids=[s.account_ids["sandbox-1"]],
            permission_set_arns=[s.permission_set_arns["ReadOnly"]],
            max_duration_minutes=30,
        )
        request = {
            "user": "alice",
            "account_id": s.account_ids["sandbox-1"],
            "permission_set": "ReadOnly",
            "duration_minutes": 40,
        }
        for replica in (one, two):  # warm both caches
            assert pairs(await replica.ok("GET", "/v1/me/entitlements", who="alice")) == {
                ("sandbox-1", "ReadOnly", 30)
            }
            assert (await replica.evaluate(**request))["max_duration_minutes"] == 30

        body = {
            k: v for k, v in policy.items() if k in {*EligibilityPolicyIn.model_fields, "version"}
        }
        await one.ok(
            "PUT",
            f"/v1/eligibility-policies/{policy['id']}",
            json={**body, "max_duration_minutes": 60},
        )
        assert pairs(await two.ok("GET", "/v1/me/entitlements", who="alice")) == {
            ("sandbox-1", "ReadOnly", 60)
        }
        assert (await two.evaluate(**request))["max_duration_minutes"] == 60

        # A refresh through the second replica reaches the first one too.
        await one.rows("UPDATE directory_account SET name = 'stale' WHERE name = 'sandbox-1'")
        assert pairs(await one.ok("GET", "/v1/me/entitlements", who="alice")) == {
            ("stale", "ReadOnly", 60)
        }
        assert (await two.ok("POST", "/v1/directory/refresh"))["ok"]
        assert pairs(await one.ok("GET", "/v1/me/entitlements", who="alice")) == {
            ("sandbox-1", "ReadOnly", 60)
        }


async def test_one_load_per_version_however_many_callers() -> None:
    copy: VersionedCopy[str] = VersionedCopy()
    calls = 0

    async def load() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return f"v{calls}"

    assert set(await asyncio.gather(*(copy.get(1, load) for _ in range(10)))) == {"v1"}
    assert calls == 1
    assert await copy.get(2, load) == "v2"
    assert await copy.get(2, load) == "v2"
    assert await copy.get(1, load) == "v3"  # any other version reloads, even an older one
    assert copy.loads == 3


def test_answers_stay_within_budget_and_drop_other_versions() -> None:
    answers = AnswerCache(budget_bytes=10)
    answers.put(("a", 1, 1), b"1234")
    answers.put(("b", 1, 1), b"5678")
    assert answers.get(("a", 1, 1)) == b"1234"  # now the most recently used
    answers.put(("c", 1, 1), b"9abc")  # over budget: the least recently used goes
    assert answers.get(("b", 1, 1)) is None
    assert answers.get(("a", 1, 1)) == b"1234"
    answers.put(("a", 1, 2), b"new")  # a newer policy version: older answers are unreachable
    assert answers.get(("c", 1, 1)) is None
    assert answers.get(("a", 1, 2)) == b"new"
    answers.put(("huge", 1, 2), b"x" * 11)  # larger than the budget: not kept
    assert answers.get(("huge", 1, 2)) is None
