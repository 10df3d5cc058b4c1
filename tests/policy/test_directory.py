"""The directory cache: a full read from moto, search and pagination, failure, live re-checks."""

import asyncio
import json
from typing import Any

from devstack.moto_server import MotoProcess
from devstack.seed_aws import SeedResult
from policy_service.directory import session_minutes
from teamkit.aws import AwsClients
from teamkit.settings import AwsSettings
from tests.harness.oidc import RunningIssuer
from tests.harness.postgres import PostgresForTests
from tests.policy.conftest import Api, running_policy


async def walk(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = await api.ok("GET", path, params=query)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


class TestRefresh:
    async def test_refresh_reads_organizations_and_identity_center(self, api: Api) -> None:
        s = api.seed
        result = await api.ok("POST", "/v1/directory/refresh")
        assert result["ok"] is True
        assert result["error"] is None
        counts = result["counts"]
        assert counts["ous"] >= 10  # nine OUs and the root
        assert counts["accounts"] >= 12  # eleven members and the management account
        assert counts["permission_sets"] >= 4
        assert counts["users"] >= 6
        assert counts["groups"] >= 5

        ous = {ou["name"]: ou for ou in await walk(api, "/v1/directory/ous", limit=3)}
        assert ous["Team-A-Prod"]["path"] == [
            s.root_id,
            s.ou_ids["Workloads"],
            s.ou_ids["Prod"],
            s.ou_ids["Team-A-Prod"],
        ]
        assert ous["Workloads"]["parent_id"] == s.root_id

        accounts = await walk(api, "/v1/directory/accounts", limit=5)
        names = [a["name"] for a in accounts]
        assert names == sorted(names)
        assert len(names) == len({a["id"] for a in accounts})
        by_name = {a["name"]: a for a in accounts}
        assert by_name["team-a-staging"]["ou_path"] == [
            s.root_id,
            s.ou_ids["Workloads"],
            s.ou_ids["NonProd"],
            s.ou_ids["Team-A-NonProd"],
        ]
        assert by_name["team-a-staging"]["id"] == s.account_ids["team-a-staging"]

        sets = {p["name"]: p for p in await walk(api, "/v1/directory/permission-sets")}
        assert sets["PowerUser"]["session_duration_minutes"] == 240
        assert sets["Billing"]["arn"] == s.permission_set_arns["Billing"]

        carol = await api.ok("GET", "/v1/directory/users", params={"search": "CAR"})
        assert [u["username"] for u in carol["items"]] == ["carol"]
        assert carol["items"][0]["email"] == "carol@example.com"
        groups = await api.ok("GET", "/v1/directory/groups", params={"search": "approvers"})
        assert {g["name"] for g in groups["items"]} == {
            "TEAM-Approvers-Production",
            "TEAM-Approvers-NonProduction",
        }

        status = await api.ok("GET", "/v1/directory/status")
        assert status["ok"]
        assert status["counts"] == counts
        rows = await api.rows(
            "SELECT payload FROM outbox_message WHERE payload->>'type' = 'directory.refreshed' "
            "ORDER BY id DESC LIMIT 1"
        )
        event = rows[0]["payload"]
        event = json.loads(event) if isinstance(event, str) else event
        assert event["subject"] == "directory"
        assert event["data"]["ok"] is True
        assert event["data"]["requested_by"]["username"] == "dave"
        assert event["data"]["counts"] == counts


async def test_refresh_failure_keeps_the_last_good_copy(
    private_moto: tuple[MotoProcess, AwsSettings, SeedResult],
    postgres: PostgresForTests,
    kafka_bootstrap: str,
    oidc_issuer: RunningIssuer,
) -> None:
    moto, aws, seed = private_moto
    async with running_policy(postgres, kafka_bootstrap, oidc_issuer, aws, seed) as api:
        good = await api.ok("GET", "/v1/directory/status")
        assert good["ok"]
        assert good["counts"]["accounts"] == 12

        await asyncio.to_thread(moto.stop)  # AWS goes away
        failed = await api.ok("POST", "/v1/directory/refresh")
        assert failed["ok"] is False
        assert failed["error"]
        assert failed["counts"] == good["counts"]  # the previous copy is kept

        ready = await api.http.get("/readyz")
        assert ready.status_code == 503
        check = ready.json()["checks"]["directory"]
        assert check["ok"] is False
        assert check["last_error"]
        assert check["refreshed_at"] == good["refreshed_at"]

        # Decisions still work from the kept copy.
        account = seed.account_ids["team-a-dev"]
        decision = await api.evaluate(user="alice", account_id=account, permission_set="ReadOnly")
        assert decision["account"]["name"] == "team-a-dev"
        rows = await api.rows(
            "SELECT payload FROM outbox_message WHERE payload->>'type' = 'directory.refreshed' "
            "ORDER BY id"
        )
        events = [
            json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"]
            for r in rows
        ]
        assert [e["data"]["ok"] for e in events] == [True, False]
        assert events[-1]["data"]["error"]
        assert events[-1]["data"]["counts"] == good["counts"]


async def test_someone_removed_from_an_approver_group_can_no_longer_approve(
    private_moto: tuple[MotoProcess, AwsSettings, SeedResult],
    postgres: PostgresForTests,
    kafka_bootstrap: str,
    oidc_issuer: RunningIssuer,
) -> None:
    _, aws, seed = private_moto
    async with running_policy(postgres, kafka_bootstrap, oidc_issuer, aws, seed) as api:
        await api.eligibility(
            group_ids=[seed.group_ids["TEAM-Users"]],
            ou_ids=[seed.ou_ids["Prod"]],
            permission_set_arns=[seed.permission_set_arns["Admin"]],
        )
        await api.approvers(
            ou_ids=[seed.ou_ids["Prod"]],
            approver_group_ids=[seed.group_ids["TEAM-Approvers-Production"]],
        )
        check = {
            "approver": "bob",
            "requester": "alice",
            "account_id": seed.account_ids["team-a-prod"],
            "permission_set_arn": seed.permission_set_arns["Admin"],
        }
        before = await api.ok(
            "POST", "/v1/approver-checks", who="client:request-service", json=check
        )
        assert before["allowed"] is True

        async with AwsClients(aws).identitystore() as ids:
            memberships = await ids.list_group_memberships_for_member(
                IdentityStoreId=seed.identity_store_id, MemberId={"UserId": seed.user_ids["bob"]}
            )
            membership = next(
                m
                for m in memberships["GroupMemberships"]
                if m.get("GroupId") == seed.group_ids["TEAM-Approvers-Production"]
            )
            await ids.delete_group_membership(
                IdentityStoreId=seed.identity_store_id, MembershipId=membership["MembershipId"]
            )

        # No refresh in between: the check reads Identity Center live.
        after = await api.ok(
            "POST", "/v1/approver-checks", who="client:request-service", json=check
        )
        assert after["allowed"] is False, after
        # After a refresh, evaluations no longer list bob either.
        await api.ok("POST", "/v1/directory/refresh")
        decision = await api.evaluate(
            user="alice", account_id=seed.account_ids["team-a-prod"], permission_set="Admin"
        )
        assert [a["username"] for a in decision["approvers"]] == ["carol"]


def test_session_durations_are_read_as_minutes() -> None:
    assert session_minutes("PT1H") == 60
    assert session_minutes("PT1H30M") == 90
    assert session_minutes("PT12H") == 720
    assert session_minutes("PT90M") == 90
    assert session_minutes(None) is None
    assert session_minutes("P1D") is None  # not a permission set duration: left unknown
