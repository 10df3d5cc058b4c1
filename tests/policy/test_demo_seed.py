"""`POLICY_SEED_DEMO`: the seed guide's example policies appear in an empty database, once."""

from devstack.seed_aws import SeedResult
from teamkit.settings import AwsSettings
from tests.harness.oidc import RunningIssuer
from tests.harness.postgres import PostgresForTests
from tests.harness.wait import eventually
from tests.policy.conftest import running_policy


async def test_demo_policies_are_seeded_into_an_empty_database(
    postgres: PostgresForTests,
    kafka_bootstrap: str,
    oidc_issuer: RunningIssuer,
    aws_settings: AwsSettings,
    seeded_org: SeedResult,
) -> None:
    s = seeded_org
    async with running_policy(
        postgres, kafka_bootstrap, oidc_issuer, aws_settings, s, SEED_DEMO=True
    ) as api:

        async def seeded() -> dict[str, list[dict[str, object]]]:
            document: dict[str, list[dict[str, object]]] = await api.ok(
                "GET", "/v1/policies/export"
            )
            assert len(document["eligibility_policies"]) == 2
            return document

        document = await eventually(seeded, timeout=30)
        assert len(document["approver_policies"]) == 2
        base = {"ticket": "T-1", "justification": "demo"}

        dev = await api.evaluate(
            user="alice",
            account_id=s.account_ids["team-a-dev"],
            permission_set="PowerUser",
            duration_minutes=480,
            **base,
        )
        assert dev["allowed"], dev["reasons"]
        assert dev["approval_required"] is False
        assert dev["max_duration_minutes"] == 480

        prod = await api.evaluate(
            user="alice",
            account_id=s.account_ids["team-a-prod"],
            permission_set="Admin",
            duration_minutes=240,
            **base,
        )
        assert prod["allowed"], prod["reasons"]
        assert prod["approval_required"] is True
        assert prod["max_duration_minutes"] == 240
        assert [a["username"] for a in prod["approvers"]] == ["bob", "carol"]

        too_long = await api.evaluate(
            user="alice",
            account_id=s.account_ids["team-a-prod"],
            permission_set="ReadOnly",
            duration_minutes=241,
            **base,
        )
        assert {r["code"] for r in too_long["reasons"]} == {"duration_above_max"}
        not_offered = await api.evaluate(
            user="alice",
            account_id=s.account_ids["team-a-prod"],
            permission_set="PowerUser",
            **base,
        )
        assert {r["code"] for r in not_offered["reasons"]} == {"not_eligible"}

        # Emptied by an admin, the set stays empty after the next refresh: seeding happens once.
        await api.ok("PUT", "/v1/policies/export", json={"format_version": 1})
        await api.ok("POST", "/v1/directory/refresh")
        assert (await api.ok("GET", "/v1/policies/export"))["eligibility_policies"] == []
        rows = await api.rows(
            "SELECT count(*) AS n FROM outbox_message WHERE payload->>'type' LIKE '%policy.created'"
        )
        assert rows[0]["n"] == 4
