"""Session activity from both CloudTrail backends, through aiobotocore, over real HTTP."""

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from teamkit.settings import AwsSettings, KafkaSettings, OidcSettings
from tests.audit.conftest import audit_settings, bearer, record, running_audit
from tests.audit.factories import RequestStory
from tests.harness.cloudtrail import RunningCloudTrail
from tests.harness.oidc import RunningIssuer

ACCOUNT = "111111111111"


def seed_activity(trail: RunningCloudTrail, story: RequestStory) -> set[str]:
    """CloudTrail records around the request; returns the eventIDs the window must show."""
    s = story.start
    add = trail.state.add
    expected = {
        add(
            username="alice",
            account_id=ACCOUNT,
            event_name="RunInstances",
            event_time=s + timedelta(minutes=5),
            read_only=False,
        ),
        add(
            username="alice",
            account_id=ACCOUNT,
            event_name="ListBuckets",
            event_time=s + timedelta(minutes=70),
            event_source="s3.amazonaws.com",
        ),
        add(
            username="alice",
            account_id=ACCOUNT,
            event_name="DeleteBucket",
            event_time=s + timedelta(minutes=20),
            error_code="=1+1",
            read_only=False,
        ),
    }
    # Enough in the window for LookupEvents (50 a page) and Lake (2 a page here) to page.
    expected |= {
        add(
            username="alice",
            account_id=ACCOUNT,
            event_name="DescribeInstances",
            event_time=s + timedelta(minutes=6, seconds=i),
        )
        for i in range(55)
    }
    # Outside: after end + grace, before the start, another account, another user.
    add(
        username="alice",
        account_id=ACCOUNT,
        event_name="Late",
        event_time=s + timedelta(minutes=90),
    )
    add(
        username="alice",
        account_id=ACCOUNT,
        event_name="Early",
        event_time=s - timedelta(minutes=10),
    )
    add(
        username="alice",
        account_id="999999999999",
        event_name="Elsewhere",
        event_time=s + timedelta(minutes=5),
    )
    add(
        username="bob",
        account_id=ACCOUNT,
        event_name="NotHers",
        event_time=s + timedelta(minutes=5),
    )
    return expected


@pytest.mark.parametrize("backend", ["lookup_events", "lake"])
async def test_activity_of_the_window(
    backend: str,
    audit_url: str,
    audit_engine: AsyncEngine,
    kafka_settings: KafkaSettings,
    oidc_settings: OidcSettings,
    oidc_issuer: RunningIssuer,
    cloudtrail: RunningCloudTrail,
) -> None:
    story = RequestStory(account_id=ACCOUNT)
    await record(audit_engine, story.happy_path_revoked())
    expected = seed_activity(cloudtrail, story)
    extra: dict[str, Any] = {"CLOUDTRAIL_ENDPOINT_URL": cloudtrail.url, "ACTIVITY_BACKEND": backend}
    if backend == "lake":
        extra.update(
            CLOUDTRAIL_LAKE_EVENT_DATA_STORE="arn:aws:cloudtrail:us-east-1:123456789012:eventdatastore/eds-audit-0001",
            CLOUDTRAIL_LAKE_POLL_SECONDS=0.05,
        )
    settings = audit_settings(audit_url, kafka_settings, oidc_settings, **extra)
    async with running_audit(settings) as client:
        path = f"/v1/audit/requests/{story.request_id}/activity"
        response = await client.get(path, headers=bearer(oidc_issuer.token_for("alice")))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["backend"] == backend
        assert (body["username"], body["account_id"]) == ("alice", ACCOUNT)
        # Granted at the start, revoked 21 minutes in, plus the default 60-minute grace.
        assert body["window_end"].startswith((story.start + timedelta(minutes=81)).isoformat()[:16])
        assert {item["event_id"] for item in body["items"]} == expected
        assert body["truncated"] is False
        times = [item["event_time"] for item in body["items"]]
        assert times == sorted(times)
        run = next(item for item in body["items"] if item["event_name"] == "RunInstances")
        assert run["event_source"] == "ec2.amazonaws.com"
        assert run["read_only"] is False
        assert run["account_id"] == ACCOUNT

        export = await client.get(path + ".csv", headers=bearer(oidc_issuer.token_for("bob")))
        assert export.status_code == 200
        rows = list(csv.DictReader(io.StringIO(export.text)))
        assert {row["eventID"] for row in rows} == expected
        assert {"eventID", "eventName", "eventSource", "eventTime", "username", "accountId"} <= set(
            rows[0]
        )
        failed = next(row for row in rows if row["eventName"] == "DeleteBucket")
        assert failed["errorCode"] == "'=1+1"

    operations = [name for name, _ in cloudtrail.state.calls]
    if backend == "lookup_events":
        assert set(operations) == {"LookupEvents"}
        assert operations.count("LookupEvents") >= 4  # two requests, two pages each
        _, first = cloudtrail.state.calls[0]
        assert first["LookupAttributes"] == [
            {"AttributeKey": "Username", "AttributeValue": "alice"}
        ]
    else:
        assert operations[0] == "StartQuery"
        assert "GetQueryResults" in operations
        _, started = cloudtrail.state.calls[0]
        assert "FROM eds-audit-0001" in started["QueryStatement"]
        assert "recipientAccountId = '111111111111'" in started["QueryStatement"]


async def test_activity_is_bounded(
    audit_url: str,
    audit_engine: AsyncEngine,
    kafka_settings: KafkaSettings,
    oidc_settings: OidcSettings,
    oidc_issuer: RunningIssuer,
    cloudtrail: RunningCloudTrail,
) -> None:
    story = RequestStory(account_id=ACCOUNT)
    await record(audit_engine, story.happy_path_revoked())
    seed_activity(cloudtrail, story)
    settings = audit_settings(
        audit_url,
        kafka_settings,
        oidc_settings,
        CLOUDTRAIL_ENDPOINT_URL=cloudtrail.url,
        ACTIVITY_MAX_EVENTS=10,
    )
    async with running_audit(settings) as client:
        body = (
            await client.get(
                f"/v1/audit/requests/{story.request_id}/activity",
                headers=bearer(oidc_issuer.token_for("erin")),
            )
        ).json()
    assert len(body["items"]) == 10
    assert body["truncated"] is True


async def test_cloudtrail_failure_is_503(
    audit_url: str,
    audit_engine: AsyncEngine,
    kafka_settings: KafkaSettings,
    oidc_settings: OidcSettings,
    oidc_issuer: RunningIssuer,
    cloudtrail: RunningCloudTrail,
) -> None:
    story = RequestStory(account_id=ACCOUNT)
    await record(audit_engine, story.happy_path_revoked())
    settings = audit_settings(
        audit_url,
        kafka_settings,
        oidc_settings,
        CLOUDTRAIL_ENDPOINT_URL=cloudtrail.url,
        ACTIVITY_BACKEND="lake",
        CLOUDTRAIL_LAKE_EVENT_DATA_STORE="eds-does-not-exist",
    )
    async with running_audit(settings) as client:
        response = await client.get(
            f"/v1/audit/requests/{story.request_id}/activity",
            headers=bearer(oidc_issuer.token_for("erin")),
        )
    assert response.status_code == 503
    assert "EventDataStoreNotFoundException" in response.json()["detail"]


async def test_lookup_events_with_a_role_assumed_in_the_account(
    audit_url: str,
    audit_engine: AsyncEngine,
    kafka_settings: KafkaSettings,
    oidc_settings: OidcSettings,
    oidc_issuer: RunningIssuer,
    cloudtrail: RunningCloudTrail,
    aws_settings: AwsSettings,
) -> None:
    story = RequestStory(account_id=ACCOUNT)
    await record(audit_engine, story.happy_path_revoked())
    expected = seed_activity(cloudtrail, story)
    settings = audit_settings(
        audit_url,
        kafka_settings,
        oidc_settings,
        aws=aws_settings,  # STS is moto's
        CLOUDTRAIL_ENDPOINT_URL=cloudtrail.url,
        CLOUDTRAIL_ROLE_NAME="TeamAuditActivity",
    )
    async with running_audit(settings) as client:
        response = await client.get(
            f"/v1/audit/requests/{story.request_id}/activity",
            headers=bearer(oidc_issuer.token_for("erin")),
        )
    assert response.status_code == 200, response.text
    assert {item["event_id"] for item in response.json()["items"]} == expected
    # Every LookupEvents call was signed with the temporary credentials STS issued for the role.
    assert cloudtrail.state.access_keys
    assert all(key.startswith("ASIA") for key in cloudtrail.state.access_keys)
