"""Evaluations, approver checks and entitlements over HTTP, on the real directory from moto."""

from typing import Any

from tests.policy.conftest import Api


def codes(decision: dict[str, Any]) -> set[str]:
    return {reason["code"] for reason in decision["reasons"]}


def usernames(decision: dict[str, Any]) -> list[str]:
    return [approver["username"] for approver in decision["approvers"]]


class TestOuCoverage:
    async def test_policy_on_top_ou_covers_a_leaf_account_three_levels_down(self, api: Api) -> None:
        s = api.seed
        policy = await api.eligibility(
            group_ids=[s.group_ids["TEAM-Users"]],
            ou_ids=[s.ou_ids["Workloads"]],
            permission_set_arns=[s.permission_set_arns["ReadOnly"]],
            approval_required=False,
        )
        decision = await api.evaluate(
            user="alice", account_id=s.account_ids["team-a-prod"], permission_set="ReadOnly"
        )
        assert decision["allowed"], decision["reasons"]
        assert decision["matched_policy_ids"] == [policy["id"]]
        assert decision["account"]["ou_path"] == [
            s.root_id,
            s.ou_ids["Workloads"],
            s.ou_ids["Prod"],
            s.ou_ids["Team-A-Prod"],
        ]
        assert decision["permission_set"] == {
            "arn": s.permission_set_arns["ReadOnly"],
            "name": "ReadOnly",
            "session_duration_minutes": 60,
        }
        assert decision["requester"]["user_id"] == s.user_ids["alice"]
        assert decision["approval_required"] is False
        assert decision["approvals_needed"] == 0

    async def test_direct_children_only_covers_only_accounts_placed_in_the_ou(
        self, api: Api
    ) -> None:
        s = api.seed
        await api.eligibility(
            group_ids=[s.group_ids["TEAM-Users"]],
            ou_ids=[s.ou_ids["Prod"]],
            direct_children_only=True,
            permission_set_arns=[s.permission_set_arns["ReadOnly"]],
            approval_required=False,
        )
        direct = await api.evaluate(
            user="alice", account_id=s.account_ids["shared-prod"], permission_set="ReadOnly"
        )
        nested = await api.evaluate(
            user="alice", account_id=s.account_ids["team-a-prod"], permission_set="ReadOnly"
        )
        assert direct["allowed"], direct["reasons"]
        assert not nested["allowed"]
        assert codes(nested) == {"not_eligible"}


class TestMergeRules:
    async def test_several_policies_for_one_group_merge_to_the_most_generous(
        self, api: Api
    ) -> None:
        s = api.seed
        users = [s.group_ids["TEAM-Users"]]
        read_only = s.permission_set_arns["ReadOnly"]
        strict = await api.eligibility(
            group_ids=users,
            ou_ids=[s.ou_ids["Workloads"]],
            permission_set_arns=[read_only],
            max_duration_minutes=60,
            ticket_required=True,
        )
        generous = await api.eligibility(
            group_ids=users,
            ou_ids=[s.ou_ids["Prod"]],
            permission_set_arns=[read_only],
            max_duration_minutes=240,
            approval_required=False,
        )
        other_set = await api.eligibility(
            group_ids=users,
            ou_ids=[s.ou_ids["Team-A-Prod"]],
            permission_set_arns=[s.permission_set_arns["PowerUser"]],
            max_duration_minutes=480,
        )
        await api.set_settings(ticket_required=False)
        account = s.account_ids["team-a-prod"]

        decision = await api.evaluate(
            user="alice",
            account_id=account,
            permission_set="ReadOnly",
            duration_minutes=200,
            ticket=None,
        )
        assert decision["allowed"], decision["reasons"]
        assert sorted(decision["matched_policy_ids"]) == sorted([strict["id"], generous["id"]])
        assert other_set["id"] not in decision["matched_policy_ids"]
        assert decision["max_duration_minutes"] == 240  # the largest max
        assert decision["approval_required"] is False  # one matching policy waives it

        # Outside Prod only the strict policy matches: its limits and its ticket rule apply.
        nonprod = await api.evaluate(
            user="alice",
            account_id=s.account_ids["team-a-dev"],
            permission_set="ReadOnly",
            duration_minutes=61,
            ticket=None,
        )
        assert codes(nonprod) == {"duration_above_max", "ticket_missing", "no_approver"}
        assert nonprod["max_duration_minutes"] == 60

        # The global max caps the merged max; the waiver needs the global switch.
        await api.set_settings(max_duration_minutes=120, approval_waiver_allowed=False)
        capped = await api.evaluate(
            user="alice",
            account_id=account,
            permission_set="ReadOnly",
            duration_minutes=200,
            ticket=None,
        )
        assert capped["max_duration_minutes"] == 120
        assert capped["approval_required"] is True
        assert codes(capped) == {"duration_above_max", "no_approver"}

        # With the workflow off nothing needs approval.
        await api.set_settings(approval_workflow_enabled=False)
        off = await api.evaluate(
            user="alice",
            account_id=account,
            permission_set="ReadOnly",
            duration_minutes=100,
            ticket=None,
        )
        assert off["allowed"], off["reasons"]
        assert off["approval_required"] is False
        assert off["settings"]["approval_workflow_enabled"] is False

    async def test_ticket_justification_and_concurrency_rules(self, api: Api) -> None:
        s = api.seed
        await api.eligibility(
            user_ids=[s.user_ids["alice"]],
            account_ids=[s.account_ids["sandbox-1"]],
            permission_set_arns=[s.permission_set_arns["ReadOnly"]],
            approval_required=False,
            justification_pattern=r"INC-\d+",
        )
        await api.set_settings(ticket_pattern=r"T-\d+", max_concurrent_grants=2)
        base = {
            "user": "alice",
            "account_id": s.account_ids["sandbox-1"],
            "permission_set": "ReadOnly",
        }
        good = await api.evaluate(**base, justification="fix INC-42", ticket="T-9")
        assert good["allowed"], good["reasons"]
        assert good["settings"]["max_concurrent_grants"] == 2
        bad = await api.evaluate(**base, justification="because", ticket="nope", active_grants=2)
        assert codes(bad) == {
            "ticket_malformed",
            "justification_malformed",
            "too_many_active_grants",
        }
        missing = await api.evaluate(**base, justification="INC-1", ticket=None)
        assert codes(missing) == {"ticket_missing"}
        assert all(reason["detail"] for reason in bad["reasons"])

    async def test_unknown_user_account_and_permission_set_are_all_reasons(self, api: Api) -> None:
        decision = await api.evaluate(
            user="nobody-here", account_id="000000000000", permission_set="NoSuchSet"
        )
        assert decision["allowed"] is False
        assert {"unknown_user", "unknown_account", "unknown_permission_set"} <= codes(decision)
        assert decision["requester"] is None
        assert decision["account"] is None


class TestApprovers:
    async def test_approvers_are_the_union_over_the_account_and_every_ancestor_ou(
        self, api: Api
    ) -> None:
        s = api.seed
        await api.eligibility(
            group_ids=[s.group_ids["TEAM-Users"]],
            ou_ids=[s.root_id],
            permission_set_arns=[s.permission_set_arns["Admin"]],
        )
        await api.approvers(
            account_ids=[s.account_ids["team-a-prod"]], approver_user_ids=[s.user_ids["frank"]]
        )
        await api.approvers(
            ou_ids=[s.ou_ids["Team-A-Prod"]],
            approver_group_ids=[s.group_ids["TEAM-Approvers-NonProduction"]],  # bob
        )
        await api.approvers(
            ou_ids=[s.ou_ids["Prod"]],
            approver_group_ids=[s.group_ids["TEAM-Approvers-Production"]],  # bob, carol
            approvals_needed=2,
        )
        await api.approvers(ou_ids=[s.ou_ids["Workloads"]], approver_user_ids=[s.user_ids["dave"]])
        await api.approvers(ou_ids=[s.root_id], approver_user_ids=[s.user_ids["erin"]])
        # Neither an ancestor nor the account: must not contribute.
        await api.approvers(ou_ids=[s.ou_ids["NonProd"]], approver_user_ids=[s.user_ids["alice"]])

        decision = await api.evaluate(
            user="alice", account_id=s.account_ids["team-a-prod"], permission_set="Admin"
        )
        assert decision["allowed"], decision["reasons"]
        assert usernames(decision) == ["bob", "carol", "dave", "erin", "frank"]
        assert decision["approval_required"] is True
        assert decision["approvals_needed"] == 2  # the largest quorum among matching policies
        emails = {a["username"]: a["email"] for a in decision["approvers"]}
        assert emails["carol"] == "carol@example.com"

    async def test_approver_policy_scoped_to_a_permission_set(self, api: Api) -> None:
        s = api.seed
        await api.eligibility(
            group_ids=[s.group_ids["TEAM-Users"]],
            ou_ids=[s.ou_ids["Prod"]],
            permission_set_arns=[s.permission_set_arns["ReadOnly"], s.permission_set_arns["Admin"]],
        )
        await api.approvers(ou_ids=[s.ou_ids["Prod"]], approver_user_ids=[s.user_ids["frank"]])
        await api.approvers(
            ou_ids=[s.ou_ids["Prod"]],
            permission_set_arns=[s.permission_set_arns["Admin"]],
            approver_user_ids=[s.user_ids["carol"]],
        )
        account = s.account_ids["team-a-prod"]
        read_only = await api.evaluate(user="alice", account_id=account, permission_set="ReadOnly")
        admin = await api.evaluate(
            user="alice", account_id=account, permission_set=s.permission_set_arns["Admin"]
        )
        assert usernames(read_only) == ["frank"]
        assert usernames(admin) == ["carol", "frank"]

    async def test_requester_is_never_an_approver_and_no_approver_is_a_denial(
        self, api: Api
    ) -> None:
        s = api.seed
        await api.eligibility(
            group_ids=[s.group_ids["TEAM-Users"]],
            account_ids=[s.account_ids["team-b-prod"]],
            permission_set_arns=[s.permission_set_arns["Admin"]],
        )
        await api.approvers(
            account_ids=[s.account_ids["team-b-prod"]], approver_user_ids=[s.user_ids["alice"]]
        )
        account = s.account_ids["team-b-prod"]
        own = await api.evaluate(user="alice", account_id=account, permission_set="Admin")
        assert own["allowed"] is False
        assert codes(own) == {"no_approver"}
        assert own["approvers"] == []
        other = await api.evaluate(user="frank", account_id=account, permission_set="Admin")
        assert other["allowed"], other["reasons"]
        assert usernames(other) == ["alice"]

        # A quorum larger than the approvers available is a denial too.
        await api.approvers(
            account_ids=[account], approver_user_ids=[s.user_ids["bob"]], approvals_needed=3
        )
        short = await api.evaluate(user="frank", account_id=account, permission_set="Admin")
        assert codes(short) == {"no_approver"}
        assert "3 distinct approvals" in short["reasons"][0]["detail"]

    async def test_approver_checks(self, api: Api) -> None:
        s = api.seed
        await api.approvers(
            ou_ids=[s.ou_ids["Prod"]],
            approver_group_ids=[s.group_ids["TEAM-Approvers-Production"]],
        )
        base = {
            "account_id": s.account_ids["team-a-prod"],
            "permission_set_arn": s.permission_set_arns["Admin"],
        }

        async def check(approver: str, requester: str) -> dict[str, Any]:
            result: dict[str, Any] = await api.ok(
                "POST",
                "/v1/approver-checks",
                who="client:request-service",
                json={**base, "approver": approver, "requester": requester},
            )
            return result

        carol = await check("carol", "alice")
        assert carol["allowed"], carol
        assert carol["approver"]["user_id"] == s.user_ids["carol"]
        assert "Identity Center" in carol["detail"]  # groups read live
        assert (await check(s.user_ids["carol"], "carol"))["allowed"] is False  # own request
        assert (await check("frank", "alice"))["allowed"] is False
        elsewhere = {**base, "account_id": s.account_ids["team-a-dev"]}
        answer = await api.ok(
            "POST",
            "/v1/approver-checks",
            who="client:request-service",
            json={**elsewhere, "approver": "carol", "requester": "alice"},
        )
        assert answer["allowed"] is False


class TestEntitlements:
    async def test_entitlements_list_every_pair_with_limits(self, api: Api) -> None:
        s = api.seed
        prod = await api.eligibility(
            group_ids=[s.group_ids["TEAM-Users"]],
            ou_ids=[s.ou_ids["Team-A-Prod"]],
            permission_set_arns=[s.permission_set_arns["ReadOnly"], s.permission_set_arns["Admin"]],
            max_duration_minutes=240,
        )
        await api.eligibility(
            user_ids=[s.user_ids["frank"]],
            account_ids=[s.account_ids["sandbox-1"]],
            permission_set_arns=[s.permission_set_arns["Admin"]],
        )
        mine = await api.ok("GET", "/v1/me/entitlements", who="alice")
        pairs = {
            (account["name"], option["permission_set"]["name"])
            for item in mine["items"]
            for account in item["accounts"]
            for option in item["permission_sets"]
        }
        assert pairs == {
            ("team-a-prod", "ReadOnly"),
            ("team-a-prod", "Admin"),
            ("team-a-prod-data", "ReadOnly"),
            ("team-a-prod-data", "Admin"),
        }
        # Both accounts are covered by the same policy: one group, each account once.
        [group] = mine["items"]
        assert sorted(a["name"] for a in group["accounts"]) == ["team-a-prod", "team-a-prod-data"]
        option = group["permission_sets"][0]
        assert option["policy_ids"] == [prod["id"]]
        assert option["max_duration_minutes"] == 240
        assert option["approval_required"] is True
        assert group["accounts"][0]["ou_path"][-1] == s.ou_ids["Team-A-Prod"]
        assert mine["user"]["username"] == "alice"
        assert mine["default_duration_minutes"] == 60
        assert (await api.ok("GET", "/v1/me/entitlements", who="erin"))["items"] == []
        client = await api.call("GET", "/v1/me/entitlements", who="client:request-service")
        assert client.status_code == 403
