"""The demo organization seeded into a real moto server over HTTP."""

import asyncio
import json
import sys
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

from devstack.demo_org import DEMO_ORG, DemoAccount, DemoOrg, DemoOu
from devstack.moto_server import MotoProcess, reset, sent_data, start_moto_process
from devstack.seed_aws import SeedResult, seed_demo_org
from teamkit.aws import AwsClients
from teamkit.settings import AwsSettings

if TYPE_CHECKING:
    from types_aiobotocore_identitystore.type_defs import MemberIdTypeDef


@pytest.fixture(scope="session")
def clients(aws_settings: AwsSettings) -> AwsClients:
    return AwsClients(aws_settings)


async def inventory(clients: AwsClients, seeded: SeedResult) -> dict[str, list[str]]:
    """Everything the seed creates, as sorted name lists, so duplicates show up as repeats."""
    async with (
        clients.organizations() as orgs,
        clients.sso_admin() as sso,
        clients.identitystore() as ids,
    ):
        ous: list[str] = []
        parents = [seeded.root_id]
        while parents:
            children: list[str] = []
            for parent in parents:
                answer = await orgs.list_organizational_units_for_parent(ParentId=parent)
                ous += [f"{parent}/{ou['Name']}" for ou in answer["OrganizationalUnits"]]
                children += [ou["Id"] for ou in answer["OrganizationalUnits"]]
            parents = children
        accounts = [
            account["Name"]
            async for page in orgs.get_paginator("list_accounts").paginate()
            for account in page["Accounts"]
        ]
        permission_sets = [
            (
                await sso.describe_permission_set(
                    InstanceArn=seeded.instance_arn, PermissionSetArn=arn
                )
            )["PermissionSet"]["Name"]
            for arn in (await sso.list_permission_sets(InstanceArn=seeded.instance_arn))[
                "PermissionSets"
            ]
        ]
        store = seeded.identity_store_id
        users = [u["UserName"] for u in (await ids.list_users(IdentityStoreId=store))["Users"]]
        groups = [
            g["DisplayName"] for g in (await ids.list_groups(IdentityStoreId=store))["Groups"]
        ]
        memberships = [
            f"{group_id}/{m['MemberId'].get('UserId')}"
            for group_id in seeded.group_ids.values()
            for m in (await ids.list_group_memberships(IdentityStoreId=store, GroupId=group_id))[
                "GroupMemberships"
            ]
        ]
    return {
        "ous": sorted(ous),
        "accounts": sorted(accounts),
        "permission_sets": sorted(permission_sets),
        "users": sorted(users),
        "groups": sorted(groups),
        "memberships": sorted(memberships),
    }


class TestSeedDemoOrg:
    async def test_ous_nest_under_their_parents(
        self, seeded_org: SeedResult, clients: AwsClients
    ) -> None:
        async with clients.organizations() as orgs:
            for ou in DEMO_ORG.ous:
                ou_id = seeded_org.ou_ids[ou.name]
                described = await orgs.describe_organizational_unit(OrganizationalUnitId=ou_id)
                assert described["OrganizationalUnit"]["Name"] == ou.name
                parents = (await orgs.list_parents(ChildId=ou_id))["Parents"]
                expected = seeded_org.ou_ids[ou.parent] if ou.parent else seeded_org.root_id
                assert [p["Id"] for p in parents] == [expected]

            # Walk up from a leaf: three OU levels below the root.
            chain: list[str] = []
            child = seeded_org.ou_ids["Team-A-Prod"]
            while child != seeded_org.root_id:
                chain.append(child)
                child = (await orgs.list_parents(ChildId=child))["Parents"][0]["Id"]
        assert len(chain) >= 3

    async def test_accounts_sit_in_their_ou(
        self, seeded_org: SeedResult, clients: AwsClients
    ) -> None:
        assert len(DEMO_ORG.accounts) >= 8
        async with clients.organizations() as orgs:
            listed = {
                account["Name"]: account
                async for page in orgs.get_paginator("list_accounts").paginate()
                for account in page["Accounts"]
            }
            for account in DEMO_ORG.accounts:
                account_id = seeded_org.account_ids[account.name]
                assert listed[account.name]["Id"] == account_id
                assert listed[account.name]["Email"] == account.email
                parents = (await orgs.list_parents(ChildId=account_id))["Parents"]
                assert [p["Id"] for p in parents] == [seeded_org.ou_ids[account.ou]]
            organization = (await orgs.describe_organization())["Organization"]
        assert organization["MasterAccountId"] == seeded_org.management_account_id

    async def test_permission_sets_carry_session_duration_and_policy(
        self, seeded_org: SeedResult, clients: AwsClients
    ) -> None:
        async with clients.sso_admin() as sso:
            instances = (await sso.list_instances())["Instances"]
            assert [i["InstanceArn"] for i in instances] == [seeded_org.instance_arn]
            assert instances[0]["IdentityStoreId"] == seeded_org.identity_store_id
            for wanted in DEMO_ORG.permission_sets:
                arn = seeded_org.permission_set_arns[wanted.name]
                described = await sso.describe_permission_set(
                    InstanceArn=seeded_org.instance_arn, PermissionSetArn=arn
                )
                assert described["PermissionSet"]["Name"] == wanted.name
                assert described["PermissionSet"]["SessionDuration"] == wanted.session_duration
                assert described["PermissionSet"]["Description"] == wanted.description
                policies = await sso.list_managed_policies_in_permission_set(
                    InstanceArn=seeded_org.instance_arn, PermissionSetArn=arn
                )
                attached = [p["Arn"] for p in policies["AttachedManagedPolicies"]]
                # moto rejects path-qualified AWS managed policies; the seed reports those.
                skipped = any(wanted.managed_policy_arn in s for s in seeded_org.skipped)
                assert attached == ([] if skipped else [wanted.managed_policy_arn])
        assert all("/job-function/" in s for s in seeded_org.skipped)

    async def test_users_have_names_and_primary_emails(
        self, seeded_org: SeedResult, clients: AwsClients
    ) -> None:
        store = seeded_org.identity_store_id
        assert {"alice", "frank", "bob", "carol", "dave", "erin"} <= set(seeded_org.user_ids)
        async with clients.identitystore() as ids:
            listed = {
                u["UserName"]: u["UserId"]
                for u in (await ids.list_users(IdentityStoreId=store))["Users"]
            }
            for user in DEMO_ORG.users:
                user_id = listed[user.username]
                assert user_id == seeded_org.user_ids[user.username]
                described = await ids.describe_user(IdentityStoreId=store, UserId=user_id)
                assert described["DisplayName"] == user.display_name
                assert described["Emails"] == [
                    {"Value": user.email, "Type": "work", "Primary": True}
                ]
                assert described["Name"]["GivenName"] == user.display_name.split()[0]

    async def test_groups_and_memberships(
        self, seeded_org: SeedResult, clients: AwsClients
    ) -> None:
        store = seeded_org.identity_store_id
        assert set(seeded_org.group_ids) == set(DEMO_ORG.groups)
        async with clients.identitystore() as ids:
            groups = (await ids.list_groups(IdentityStoreId=store))["Groups"]
            assert {g["DisplayName"]: g["GroupId"] for g in groups} == seeded_org.group_ids
            for user in DEMO_ORG.users:
                member: MemberIdTypeDef = {"UserId": seeded_org.user_ids[user.username]}
                listed = await ids.list_group_memberships_for_member(
                    IdentityStoreId=store, MemberId=member
                )
                group_ids = sorted(m["GroupId"] for m in listed["GroupMemberships"])
                assert group_ids == sorted(seeded_org.group_ids[g] for g in user.groups)
                checked = await ids.is_member_in_groups(
                    IdentityStoreId=store,
                    MemberId=member,
                    GroupIds=list(seeded_org.group_ids.values()),
                )
                names = {v: k for k, v in seeded_org.group_ids.items()}
                assert {
                    names[r["GroupId"]] for r in checked["Results"] if r["MembershipExists"]
                } == set(user.groups)

    async def test_ses_sender_can_send_mail(
        self, seeded_org: SeedResult, clients: AwsClients, aws_settings: AwsSettings
    ) -> None:
        subject = f"seed check {uuid.uuid4()}"
        async with clients.sesv2() as ses:
            await ses.send_email(
                FromEmailAddress=seeded_org.ses_sender,
                Destination={"ToAddresses": ["alice@example.com"]},
                Content={
                    "Simple": {"Subject": {"Data": subject}, "Body": {"Text": {"Data": "hi"}}}
                },
            )
            with pytest.raises(ClientError, match="not verified"):
                await ses.send_email(
                    FromEmailAddress="nobody@example.com",
                    Destination={"ToAddresses": ["alice@example.com"]},
                    Content={
                        "Simple": {"Subject": {"Data": subject}, "Body": {"Text": {"Data": "x"}}}
                    },
                )
        assert aws_settings.AWS_ENDPOINT_URL is not None
        data = await sent_data(aws_settings.AWS_ENDPOINT_URL)
        sent = [m for m in data["ses"]["Message"] if m["subject"] == subject]
        assert len(sent) == 1
        assert sent[0]["source"] == seeded_org.ses_sender
        assert sent[0]["destinations"]["ToAddresses"] == ["alice@example.com"]

    async def test_sns_topic_exists(self, seeded_org: SeedResult, clients: AwsClients) -> None:
        async with clients.sns() as sns:
            attributes = await sns.get_topic_attributes(TopicArn=seeded_org.sns_topic_arn)
            topics = (await sns.list_topics())["Topics"]
        assert attributes["Attributes"]["TopicArn"] == seeded_org.sns_topic_arn
        assert seeded_org.sns_topic_arn.endswith(f":{DEMO_ORG.sns_topic_name}")
        assert [t["TopicArn"] for t in topics].count(seeded_org.sns_topic_arn) == 1

    async def test_seeding_twice_duplicates_nothing(
        self, seeded_org: SeedResult, clients: AwsClients, aws_settings: AwsSettings
    ) -> None:
        before = await inventory(clients, seeded_org)
        again = await seed_demo_org(aws_settings)
        after = await inventory(clients, seeded_org)

        assert again == seeded_org
        assert after == before
        for names in after.values():
            assert len(names) == len(set(names))
        assert len(after["ous"]) == len(DEMO_ORG.ous)
        assert len(after["permission_sets"]) == len(DEMO_ORG.permission_sets)
        assert len(after["memberships"]) == sum(len(u.groups) for u in DEMO_ORG.users)

    async def test_refuses_real_aws(self) -> None:
        with pytest.raises(ValueError, match="real AWS"):
            await seed_demo_org(AwsSettings(AWS_ENDPOINT_URL=None))

    async def test_rejects_dangling_references(self, aws_settings: AwsSettings) -> None:
        org = DemoOrg(
            ous=(DemoOu("A", None), DemoOu("B", "Missing")),
            accounts=(DemoAccount("x", "x@example.com", "Nowhere"),),
        )
        with pytest.raises(ValueError, match="unknown parent Missing") as raised:
            await seed_demo_org(aws_settings, org)
        assert "unknown OU Nowhere" in str(raised.value)


@pytest.fixture
def moto_process() -> Iterator[MotoProcess]:
    process = start_moto_process()
    try:
        yield process
    finally:
        process.stop()


class TestSeedCliOnMotoProcess:
    async def test_cli_seeds_a_fresh_server(self, moto_process: MotoProcess) -> None:
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "devstack.seed_aws",
            "--endpoint-url",
            moto_process.endpoint_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(cli.communicate(), timeout=60)
        assert cli.returncode == 0, stderr.decode()
        printed = json.loads(stdout)

        settings = AwsSettings(AWS_ENDPOINT_URL=moto_process.endpoint_url, AWS_MAX_ATTEMPTS=1)
        again = await seed_demo_org(settings)
        assert json.loads(json.dumps(again.to_dict())) == printed
        assert set(printed["account_ids"]) == {a.name for a in DEMO_ORG.accounts}

        await reset(moto_process.endpoint_url)
        async with AwsClients(settings).organizations() as orgs:
            with pytest.raises(orgs.exceptions.AWSOrganizationsNotInUseException):
                await orgs.describe_organization()

    def test_stop_ends_the_process(self) -> None:
        process = start_moto_process()
        process.stop()
        assert process.process.returncode is not None
        process.stop()
