"""Seed the demo organization into moto through aiobotocore, idempotently.

Everything is looked up by name before it is created, because moto (unlike AWS) happily stores
duplicate OUs, accounts and permission sets. Independent calls run concurrently, bounded by a
semaphore. Run `python -m devstack.seed_aws --endpoint-url URL` to seed and print the ids as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterable, Awaitable, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from devstack.demo_org import DEMO_ORG, DemoAccount, DemoOrg, DemoPermissionSet, DemoUser
from teamkit.aws import AwsClients
from teamkit.settings import AwsSettings

if TYPE_CHECKING:
    from types_aiobotocore_identitystore.client import IdentityStoreClient
    from types_aiobotocore_organizations.client import OrganizationsClient
    from types_aiobotocore_sesv2.client import SESV2Client
    from types_aiobotocore_sns.client import SNSClient
    from types_aiobotocore_sso_admin.client import SSOAdminClient

T = TypeVar("T")

CREATE_ACCOUNT_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class SeedResult:
    """The ids of the seeded organization, keyed by the names used in `DemoOrg`."""

    instance_arn: str
    identity_store_id: str
    management_account_id: str
    root_id: str
    ou_ids: dict[str, str]
    account_ids: dict[str, str]
    permission_set_arns: dict[str, str]
    user_ids: dict[str, str]
    group_ids: dict[str, str]
    ses_sender: str
    sns_topic_arn: str
    # What the server refused although AWS accepts it (see `_ensure_permission_sets`).
    skipped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-serialisable form."""
        return asdict(self)


class _OrgIds(NamedTuple):
    management_account_id: str
    root_id: str
    ou_ids: dict[str, str]
    account_ids: dict[str, str]


class _IdentityCenterIds(NamedTuple):
    instance_arn: str
    identity_store_id: str
    permission_set_arns: dict[str, str]
    user_ids: dict[str, str]
    group_ids: dict[str, str]


async def seed_demo_org(
    settings: AwsSettings, org: DemoOrg = DEMO_ORG, *, concurrency: int = 8
) -> SeedResult:
    """Create whatever of `org` is missing in moto at `settings.AWS_ENDPOINT_URL`; return all ids.

    Raises ValueError without an endpoint URL: this never seeds real AWS.
    """
    if settings.AWS_ENDPOINT_URL is None:
        raise ValueError("refusing to seed real AWS: set AWS_ENDPOINT_URL to a moto server")
    _check_references(org)
    clients = AwsClients(settings, max_pool_connections=concurrency)
    async with AsyncExitStack() as stack:
        seeder = _Seeder(
            org,
            limit=asyncio.Semaphore(concurrency),
            organizations=await stack.enter_async_context(clients.organizations()),
            sso=await stack.enter_async_context(clients.sso_admin()),
            identitystore=await stack.enter_async_context(clients.identitystore()),
            ses=await stack.enter_async_context(clients.sesv2()),
            sns=await stack.enter_async_context(clients.sns()),
        )
        org_ids, ic_ids, _, topic_arn = await asyncio.gather(
            seeder.organization(),
            seeder.identity_center(),
            seeder.ses_sender(),
            seeder.sns_topic(),
        )
    return SeedResult(
        instance_arn=ic_ids.instance_arn,
        identity_store_id=ic_ids.identity_store_id,
        management_account_id=org_ids.management_account_id,
        root_id=org_ids.root_id,
        ou_ids=org_ids.ou_ids,
        account_ids=org_ids.account_ids,
        permission_set_arns=ic_ids.permission_set_arns,
        user_ids=ic_ids.user_ids,
        group_ids=ic_ids.group_ids,
        ses_sender=org.ses_sender,
        sns_topic_arn=topic_arn,
        skipped=tuple(sorted(seeder.skipped)),
    )


def _check_references(org: DemoOrg) -> None:
    """Names are the keys of the result, so they must be unique and every reference must resolve."""
    ou_names = [ou.name for ou in org.ous]
    problems = [f"duplicate OU {name}" for name in ou_names if ou_names.count(name) > 1]
    problems += [
        f"OU {ou.name}: unknown parent {ou.parent}"
        for ou in org.ous
        if ou.parent is not None and ou.parent not in ou_names
    ]
    problems += [
        f"account {a.name}: unknown OU {a.ou}" for a in org.accounts if a.ou not in ou_names
    ]
    problems += [
        f"user {u.username}: unknown group {g}"
        for u in org.users
        for g in u.groups
        if g not in org.groups
    ]
    if problems:
        raise ValueError("; ".join(sorted(set(problems))))


class _Seeder:
    def __init__(
        self,
        org: DemoOrg,
        *,
        limit: asyncio.Semaphore,
        organizations: OrganizationsClient,
        sso: SSOAdminClient,
        identitystore: IdentityStoreClient,
        ses: SESV2Client,
        sns: SNSClient,
    ) -> None:
        self._org = org
        self._limit = limit
        self._orgs = organizations
        self._sso = sso
        self._ids = identitystore
        self._ses = ses
        self._sns = sns
        self.skipped: list[str] = []

    async def _call(self, call: Awaitable[T]) -> T:
        async with self._limit:
            return await call

    async def _pages(self, pages: AsyncIterable[T]) -> list[T]:
        async with self._limit:
            return [page async for page in pages]

    # Organizations ---------------------------------------------------------------------------

    async def organization(self) -> _OrgIds:
        orgs = self._orgs
        try:
            described = await self._call(orgs.describe_organization())
            management_account_id = described["Organization"]["MasterAccountId"]
        except orgs.exceptions.AWSOrganizationsNotInUseException:
            created = await self._call(orgs.create_organization(FeatureSet="ALL"))
            management_account_id = created["Organization"]["MasterAccountId"]
        root_id = (await self._call(orgs.list_roots()))["Roots"][0]["Id"]
        ou_ids: dict[str, str] = {}
        await self._ensure_child_ous(None, root_id, ou_ids, fresh=False)
        account_ids = await self._ensure_accounts(root_id, ou_ids)
        return _OrgIds(management_account_id, root_id, ou_ids, account_ids)

    async def _ensure_child_ous(
        self, parent_name: str | None, parent_id: str, ou_ids: dict[str, str], *, fresh: bool
    ) -> None:
        """Create the OUs declared under `parent_name`, then recurse; `fresh` parents are empty."""
        wanted = [ou.name for ou in self._org.ous if ou.parent == parent_name]
        if not wanted:
            return
        existing: dict[str, str] = {}
        if not fresh:
            paginator = self._orgs.get_paginator("list_organizational_units_for_parent")
            for page in await self._pages(paginator.paginate(ParentId=parent_id)):
                existing.update({ou["Name"]: ou["Id"] for ou in page["OrganizationalUnits"]})
        missing = [name for name in wanted if name not in existing]
        created = await asyncio.gather(*(self._create_ou(parent_id, name) for name in missing))
        ou_ids.update({name: existing[name] for name in wanted if name in existing})
        ou_ids.update(zip(missing, created, strict=True))
        await asyncio.gather(
            *(
                self._ensure_child_ous(name, ou_ids[name], ou_ids, fresh=name in missing)
                for name in wanted
            )
        )

    async def _create_ou(self, parent_id: str, name: str) -> str:
        answer = await self._call(
            self._orgs.create_organizational_unit(ParentId=parent_id, Name=name)
        )
        return answer["OrganizationalUnit"]["Id"]

    async def _ensure_accounts(self, root_id: str, ou_ids: dict[str, str]) -> dict[str, str]:
        paginator = self._orgs.get_paginator("list_accounts")
        existing = {
            account["Name"]: account["Id"]
            for page in await self._pages(paginator.paginate())
            for account in page["Accounts"]
        }

        async def ensure(account: DemoAccount) -> tuple[str, str]:
            if account.name in existing:
                account_id = existing[account.name]
                parents = await self._call(self._orgs.list_parents(ChildId=account_id))
                parent_id = parents["Parents"][0]["Id"]
            else:
                account_id = await self._create_account(account)
                parent_id = root_id
            target_id = ou_ids[account.ou]
            if parent_id != target_id:
                await self._call(
                    self._orgs.move_account(
                        AccountId=account_id,
                        SourceParentId=parent_id,
                        DestinationParentId=target_id,
                    )
                )
            return account.name, account_id

        return dict(await asyncio.gather(*(ensure(a) for a in self._org.accounts)))

    async def _create_account(self, account: DemoAccount) -> str:
        answer = await self._call(
            self._orgs.create_account(Email=account.email, AccountName=account.name)
        )
        status = answer["CreateAccountStatus"]
        # moto answers SUCCEEDED at once; AWS (or a proxy imitating it) starts IN_PROGRESS.
        while status["State"] == "IN_PROGRESS":
            await asyncio.sleep(CREATE_ACCOUNT_POLL_SECONDS)
            polled = await self._call(
                self._orgs.describe_create_account_status(CreateAccountRequestId=status["Id"])
            )
            status = polled["CreateAccountStatus"]
        if status["State"] != "SUCCEEDED":
            reason = status.get("FailureReason", "unknown")
            raise RuntimeError(f"create_account {account.name} failed: {reason}")
        return status["AccountId"]

    # Identity Center -------------------------------------------------------------------------

    async def identity_center(self) -> _IdentityCenterIds:
        # moto auto-creates one instance per account and region (and cannot create_instance).
        instances = (await self._call(self._sso.list_instances()))["Instances"]
        if not instances:
            raise RuntimeError("no IAM Identity Center instance to seed")
        instance_arn = instances[0]["InstanceArn"]
        store_id = instances[0]["IdentityStoreId"]
        permission_set_arns, (user_ids, group_ids) = await asyncio.gather(
            self._ensure_permission_sets(instance_arn), self._ensure_directory(store_id)
        )
        return _IdentityCenterIds(instance_arn, store_id, permission_set_arns, user_ids, group_ids)

    async def _ensure_permission_sets(self, instance_arn: str) -> dict[str, str]:
        sso = self._sso
        pages = await self._pages(
            sso.get_paginator("list_permission_sets").paginate(InstanceArn=instance_arn)
        )
        described = await asyncio.gather(
            *(
                self._call(
                    sso.describe_permission_set(InstanceArn=instance_arn, PermissionSetArn=arn)
                )
                for page in pages
                for arn in page["PermissionSets"]
            )
        )
        existing = {
            d["PermissionSet"]["Name"]: d["PermissionSet"]["PermissionSetArn"] for d in described
        }

        async def ensure(wanted: DemoPermissionSet) -> tuple[str, str]:
            attached: set[str] = set()
            if wanted.name in existing:
                arn = existing[wanted.name]
                paginator = sso.get_paginator("list_managed_policies_in_permission_set")
                for page in await self._pages(
                    paginator.paginate(InstanceArn=instance_arn, PermissionSetArn=arn)
                ):
                    attached.update(p["Arn"] for p in page["AttachedManagedPolicies"])
            else:
                created = await self._call(
                    sso.create_permission_set(
                        InstanceArn=instance_arn,
                        Name=wanted.name,
                        Description=wanted.description,
                        SessionDuration=wanted.session_duration,
                    )
                )
                arn = created["PermissionSet"]["PermissionSetArn"]
            if wanted.managed_policy_arn not in attached:
                try:
                    await self._call(
                        sso.attach_managed_policy_to_permission_set(
                            InstanceArn=instance_arn,
                            PermissionSetArn=arn,
                            ManagedPolicyArn=wanted.managed_policy_arn,
                        )
                    )
                except sso.exceptions.ResourceNotFoundException:
                    # moto (5.2) checks AWS managed policies as if their path were always "/",
                    # so it rejects valid path-qualified ones such as job-function/Billing.
                    if wanted.managed_policy_arn.count("/") < 2:
                        raise
                    self.skipped.append(
                        f"permission set {wanted.name}: the server rejected managed policy "
                        f"{wanted.managed_policy_arn}"
                    )
            return wanted.name, arn

        return dict(await asyncio.gather(*(ensure(p) for p in self._org.permission_sets)))

    async def _ensure_directory(self, store_id: str) -> tuple[dict[str, str], dict[str, str]]:
        ids = self._ids
        user_pages, group_pages = await asyncio.gather(
            self._pages(ids.get_paginator("list_users").paginate(IdentityStoreId=store_id)),
            self._pages(ids.get_paginator("list_groups").paginate(IdentityStoreId=store_id)),
        )
        existing_users = {u["UserName"]: u["UserId"] for p in user_pages for u in p["Users"]}
        existing_groups = {g["DisplayName"]: g["GroupId"] for p in group_pages for g in p["Groups"]}

        async def ensure_group(name: str) -> tuple[str, str]:
            if name in existing_groups:
                return name, existing_groups[name]
            created = await self._call(ids.create_group(IdentityStoreId=store_id, DisplayName=name))
            return name, created["GroupId"]

        async def ensure_user(user: DemoUser) -> tuple[str, str]:
            if user.username in existing_users:
                return user.username, existing_users[user.username]
            given, _, family = user.display_name.partition(" ")
            created = await self._call(
                ids.create_user(
                    IdentityStoreId=store_id,
                    UserName=user.username,
                    DisplayName=user.display_name,
                    Name={
                        "Formatted": user.display_name,
                        "GivenName": given,
                        "FamilyName": family or given,
                    },
                    Emails=[{"Value": user.email, "Type": "work", "Primary": True}],
                    Timezone=user.time_zone,
                )
            )
            return user.username, created["UserId"]

        group_ids = dict(await asyncio.gather(*(ensure_group(g) for g in self._org.groups)))
        user_ids = dict(await asyncio.gather(*(ensure_user(u) for u in self._org.users)))

        async def ensure_memberships(user: DemoUser) -> None:
            user_id = user_ids[user.username]
            current: set[str] = set()
            if user.username in existing_users:
                paginator = ids.get_paginator("list_group_memberships_for_member")
                for page in await self._pages(
                    paginator.paginate(IdentityStoreId=store_id, MemberId={"UserId": user_id})
                ):
                    current.update(m["GroupId"] for m in page["GroupMemberships"])
            await asyncio.gather(
                *(
                    self._call(
                        ids.create_group_membership(
                            IdentityStoreId=store_id,
                            GroupId=group_ids[group],
                            MemberId={"UserId": user_id},
                        )
                    )
                    for group in user.groups
                    if group_ids[group] not in current
                )
            )

        await asyncio.gather(*(ensure_memberships(u) for u in self._org.users))
        return user_ids, group_ids

    # Notifications ---------------------------------------------------------------------------

    async def ses_sender(self) -> None:
        # moto lets an identity created through sesv2 send at once (AWS would mail a link first).
        try:
            await self._call(self._ses.get_email_identity(EmailIdentity=self._org.ses_sender))
        except self._ses.exceptions.NotFoundException:
            await self._call(self._ses.create_email_identity(EmailIdentity=self._org.ses_sender))

    async def sns_topic(self) -> str:
        # create_topic is idempotent by name and returns the existing ARN.
        answer = await self._call(self._sns.create_topic(Name=self._org.sns_topic_name))
        return answer["TopicArn"]


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: seed the demo organization and print the `SeedResult` as JSON."""
    parser = argparse.ArgumentParser(prog="python -m devstack.seed_aws", description=__doc__)
    parser.add_argument("--endpoint-url", help="moto base URL (default: $AWS_ENDPOINT_URL)")
    parser.add_argument("--region", help="AWS region (default: $AWS_REGION or us-east-1)")
    args = parser.parse_args(argv)
    updates = {"AWS_ENDPOINT_URL": args.endpoint_url, "AWS_REGION": args.region}
    settings = AwsSettings().model_copy(update={k: v for k, v in updates.items() if v})
    result = asyncio.run(seed_demo_org(settings))
    print(json.dumps(result.to_dict(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
