"""Policy CRUD, optimistic concurrency, validation, events and the export/import round trip."""

import asyncio
import json
from typing import Any

from tests.harness.wait import eventually
from tests.policy.conftest import Api


def eligibility_body(api: Api, **fields: Any) -> dict[str, Any]:
    s = api.seed
    return {
        "name": "prod read-only",
        "group_ids": [s.group_ids["TEAM-Users"]],
        "ou_ids": [s.ou_ids["Prod"]],
        "permission_set_arns": [s.permission_set_arns["ReadOnly"]],
        "max_duration_minutes": 120,
        **fields,
    }


class TestCrud:
    async def test_create_read_update_delete_with_versions_and_events(self, api: Api) -> None:
        created = await api.call("POST", "/v1/eligibility-policies", json=eligibility_body(api))
        assert created.status_code == 201, created.text
        policy = created.json()
        assert created.headers["ETag"] == '"1"'
        assert policy["version"] == 1
        assert policy["created_by"] == "dave"
        path = f"/v1/eligibility-policies/{policy['id']}"

        fetched = await api.call("GET", path)
        assert fetched.json() == policy
        assert fetched.headers["ETag"] == '"1"'

        changed = eligibility_body(api, max_duration_minutes=90)
        updated = await api.call("PUT", path, json=changed, headers={"If-Match": '"1"'})
        assert updated.status_code == 200, updated.text
        assert updated.json()["version"] == 2
        assert updated.json()["max_duration_minutes"] == 90

        # A writer still holding version 1 loses: 409, nothing overwritten.
        stale = await api.call(
            "PUT",
            path,
            json=eligibility_body(api, max_duration_minutes=30),
            headers={"If-Match": '"1"'},
        )
        assert stale.status_code == 409
        assert stale.headers["content-type"].startswith("application/problem+json")
        assert stale.json()["current_version"] == 2
        also_stale = await api.call("PUT", path, json={**changed, "version": 1})
        assert also_stale.status_code == 409
        blind = await api.call("PUT", path, json=changed)
        assert blind.status_code == 428
        assert (await api.ok("GET", path))["max_duration_minutes"] == 90

        listed = await api.ok("GET", "/v1/eligibility-policies")
        assert [p["id"] for p in listed["items"]] == [policy["id"]]
        assert listed["next_cursor"] is None

        assert (await api.call("DELETE", path, headers={"If-Match": '"1"'})).status_code == 409
        assert (await api.call("DELETE", path, headers={"If-Match": '"2"'})).status_code == 204
        assert (await api.call("GET", path)).status_code == 404

        rows = await api.rows(
            "SELECT payload FROM outbox_message WHERE key = $1 ORDER BY id", policy["id"]
        )
        events = [
            json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"]
            for r in rows
        ]
        assert [e["type"] for e in events] == [
            "eligibility_policy.created",
            "eligibility_policy.updated",
            "eligibility_policy.deleted",
        ]
        assert events[0]["data"]["before"] is None
        assert events[1]["data"]["before"]["max_duration_minutes"] == 120
        assert events[1]["data"]["after"]["max_duration_minutes"] == 90
        assert events[2]["data"]["after"] is None
        assert events[1]["data"]["actor"]["username"] == "dave"
        assert events[1]["data"]["actor"]["user_id"] == api.seed.user_ids["dave"]

        async def published() -> None:
            rows = await api.rows(
                "SELECT count(*) AS n FROM outbox_message WHERE key = $1 AND published_at IS NULL",
                policy["id"],
            )
            assert rows[0]["n"] == 0

        await eventually(published, timeout=30)

    async def test_approver_policy_crud_and_pagination(self, api: Api) -> None:
        s = api.seed
        ids = []
        for name in ("a", "b", "c"):
            created = await api.approvers(
                name=name, ou_ids=[s.ou_ids["Prod"]], approver_user_ids=[s.user_ids["bob"]]
            )
            ids.append(created["id"])
        first = await api.ok("GET", "/v1/approver-policies", params={"limit": 2})
        assert [p["name"] for p in first["items"]] == ["a", "b"]
        second = await api.ok(
            "GET", "/v1/approver-policies", params={"limit": 2, "cursor": first["next_cursor"]}
        )
        assert [p["name"] for p in second["items"]] == ["c"]
        assert second["next_cursor"] is None
        bad = await api.call("GET", "/v1/approver-policies", params={"cursor": "!!"})
        assert bad.status_code == 422

        path = f"/v1/approver-policies/{ids[0]}"
        body = {
            "name": "a2",
            "ou_ids": [s.ou_ids["NonProd"]],
            "approver_group_ids": [s.group_ids["TEAM-Admins"]],
            "version": 1,
        }
        updated = await api.ok("PUT", path, json=body)
        assert updated["version"] == 2
        assert updated["approver_group_ids"] == [s.group_ids["TEAM-Admins"]]
        rows = await api.rows(
            "SELECT payload->>'type' AS type FROM outbox_message WHERE key = $1 ORDER BY id", ids[0]
        )
        assert [r["type"] for r in rows] == ["approver_policy.created", "approver_policy.updated"]

    async def test_concurrent_updates_of_one_version_one_wins_one_gets_409(self, api: Api) -> None:
        policy = await api.eligibility(**eligibility_body(api))
        path = f"/v1/eligibility-policies/{policy['id']}"
        answers = await asyncio.gather(
            *(
                api.call(
                    "PUT",
                    path,
                    json=eligibility_body(api, max_duration_minutes=minutes),
                    headers={"If-Match": '"1"'},
                )
                for minutes in (10, 20, 30, 40)
            )
        )
        assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
        winner = next(a.json() for a in answers if a.status_code == 200)
        assert await api.ok("GET", path) == winner


class TestValidation:
    async def test_unknown_directory_ids_are_named_in_a_422(self, api: Api) -> None:
        body = eligibility_body(
            api,
            user_ids=["u-does-not-exist"],
            group_ids=["g-nope"],
            account_ids=["999999999999"],
            ou_ids=["ou-zzzz-00000000"],
            permission_set_arns=["arn:aws:sso:::permissionSet/ssoins-x/ps-missing"],
        )
        answer = await api.call("POST", "/v1/eligibility-policies", json=body)
        assert answer.status_code == 422
        problem = answer.json()
        assert "u-does-not-exist" in problem["detail"]
        values = {e["value"] for e in problem["errors"]}
        assert values == {
            "u-does-not-exist",
            "g-nope",
            "999999999999",
            "ou-zzzz-00000000",
            "arn:aws:sso:::permissionSet/ssoins-x/ps-missing",
        }
        assert (await api.ok("GET", "/v1/eligibility-policies"))["items"] == []

    async def test_bad_values_are_422(self, api: Api) -> None:
        bad: dict[str, Any]
        for bad in (
            {"max_duration_minutes": 0},
            {"max_duration_minutes": -5},
            {"max_duration_minutes": 600},  # above the global max of 540
            {"permission_set_arns": []},
            {"group_ids": [], "user_ids": []},
            {"justification_pattern": "(unclosed"},
            {"group_ids": ["g"] * 201},
            {"unexpected": True},
        ):
            answer = await api.call(
                "POST", "/v1/eligibility-policies", json=eligibility_body(api, **bad)
            )
            assert answer.status_code == 422, (bad, answer.text)
            assert answer.json()["detail"]
        too_long = await api.call(
            "POST",
            "/v1/approver-policies",
            json={"name": "x", "ou_ids": ["r"], "approver_user_ids": []},
        )
        assert too_long.status_code == 422


class TestSettings:
    async def test_settings_read_by_anyone_changed_by_admins_with_versions(self, api: Api) -> None:
        current = await api.call("GET", "/v1/settings", who="alice")
        assert current.status_code == 200
        settings = current.json()
        assert settings["max_duration_minutes"] == 540
        assert settings["pending_expiry_minutes"] == 180
        assert settings["comments_required"]
        assert settings["ticket_required"]
        assert settings["approval_workflow_enabled"]
        assert settings["admin_group"] == "TEAM-Admins"
        version = settings["version"]
        body = {
            k: v for k, v in settings.items() if k not in {"version", "updated_at", "updated_by"}
        }

        secret = await api.call(
            "PUT", "/v1/settings", json={**body, "slack_token": "xoxb-1", "version": version}
        )
        assert secret.status_code == 422
        updated = await api.call(
            "PUT",
            "/v1/settings",
            json={**body, "max_duration_minutes": 300},
            headers={"If-Match": current.headers["ETag"]},
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["version"] == version + 1
        stale = await api.call(
            "PUT",
            "/v1/settings",
            json={**body, "max_duration_minutes": 200},
            headers={"If-Match": f'"{version}"'},
        )
        assert stale.status_code == 409
        rows = await api.rows(
            "SELECT payload FROM outbox_message WHERE payload->>'type' = 'settings.updated' "
            "ORDER BY id DESC LIMIT 1"
        )
        event = (
            json.loads(rows[0]["payload"])
            if isinstance(rows[0]["payload"], str)
            else rows[0]["payload"]
        )
        assert event["subject"] == "settings"
        assert event["data"]["before"]["max_duration_minutes"] == 540
        assert event["data"]["after"]["max_duration_minutes"] == 300


class TestExportImport:
    async def test_export_then_import_round_trips(self, api: Api) -> None:
        s = api.seed
        one = await api.eligibility(**eligibility_body(api, name="one"))
        await api.eligibility(**eligibility_body(api, name="two", approval_required=False))
        await api.approvers(
            name="appr",
            ou_ids=[s.ou_ids["Prod"]],
            approver_user_ids=[s.user_ids["bob"]],
            permission_set_arns=[s.permission_set_arns["Admin"]],
            approvals_needed=2,
        )
        exported = await api.ok("GET", "/v1/policies/export")
        assert len(exported["eligibility_policies"]) == 2
        assert len(exported["approver_policies"]) == 1

        # Re-importing the same document changes nothing.
        same = await api.ok("PUT", "/v1/policies/export", json=exported)
        assert same == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 3}

        # Wipe, then import the export: the same policies (ids included) come back.
        await api.ok("PUT", "/v1/policies/export", json={"format_version": 1})
        assert (await api.ok("GET", "/v1/policies/export"))["eligibility_policies"] == []
        restored = await api.ok("PUT", "/v1/policies/export", json=exported)
        assert restored == {"created": 3, "updated": 0, "deleted": 0, "unchanged": 0}
        assert await api.ok("GET", "/v1/policies/export") == exported

        # Change one, drop one, add one.
        edited = json.loads(json.dumps(exported))
        edited["eligibility_policies"] = [
            {**p, "max_duration_minutes": 30}
            for p in edited["eligibility_policies"]
            if p["id"] == one["id"]
        ]
        edited["approver_policies"].append(
            {
                "name": "new",
                "account_ids": [s.account_ids["audit"]],
                "approver_user_ids": [s.user_ids["erin"]],
            }
        )
        changed = await api.ok("PUT", "/v1/policies/export", json=edited)
        assert changed == {"created": 1, "updated": 1, "deleted": 1, "unchanged": 1}
        assert (await api.ok("GET", f"/v1/eligibility-policies/{one['id']}"))["version"] == 2

    async def test_a_bad_document_writes_nothing(self, api: Api) -> None:
        s = api.seed
        await api.eligibility(**eligibility_body(api, name="keep"))
        before = await api.ok("GET", "/v1/policies/export")
        outbox_before = len(await api.rows("SELECT id FROM outbox_message"))
        document = {
            "format_version": 1,
            "eligibility_policies": [
                eligibility_body(api, name="fine"),
                eligibility_body(api, name="bad", group_ids=["no-such-group"]),
            ],
            "approver_policies": [
                {"name": "bad too", "ou_ids": [s.ou_ids["Prod"]], "approver_user_ids": ["ghost"]}
            ],
        }
        answer = await api.call("PUT", "/v1/policies/export", json=document)
        assert answer.status_code == 422
        locs = {tuple(e["loc"]) for e in answer.json()["errors"]}
        assert locs == {
            ("eligibility_policies", "1", "group_ids"),
            ("approver_policies", "0", "approver_user_ids"),
        }
        assert await api.ok("GET", "/v1/policies/export") == before
        assert len(await api.rows("SELECT id FROM outbox_message")) == outbox_before

        duplicate_ids = {
            "eligibility_policies": [
                {**before["eligibility_policies"][0]},
                {**before["eligibility_policies"][0], "name": "dup"},
            ]
        }
        assert (await api.call("PUT", "/v1/policies/export", json=duplicate_ids)).status_code == 422
