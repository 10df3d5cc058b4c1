"""Policy service at organization scale: directory refresh, entitlements latency, evaluations.

A private moto (its own process) is seeded with an organization of `accounts` accounts in a
4-level OU tree, `permission_sets` permission sets, `users` users and `groups` groups; the target
user sits in 20 groups, each granted by an eligibility policy over a level-2 OU. Then, against a
policy service served in this process: `POST /v1/directory/refresh` wall time, `GET
/v1/me/entitlements` latency (sequential), and `POST /v1/evaluations` throughput (8 concurrent
clients). Full size is the issue's (2,000 accounts, 500 sets, 10,000 users, 500 groups);
`--quick` is a tenth. Run alone: `uv run python -m bench.policy_directory [--quick]`.
"""

import argparse
import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.environment import BenchEnv, bench_env
from bench.results import Figure, percentile, print_table
from devstack.demo_org import DemoOrg, DemoUser
from devstack.moto_server import start_moto_process
from policy_service.app import create_app
from policy_service.config import Settings
from policy_service.schemas import PolicySettings
from teamkit.aws import AwsClients
from teamkit.logging import configure_logging
from teamkit.settings import AwsSettings, RuntimeSettings
from tests.harness.oidc import serve_issuer
from tests.harness.servers import serving

BENCH = "policy_directory"
TARGET = "bench-target"
ADMIN = "bench-admin"


@dataclass(frozen=True)
class Scale:
    accounts: int
    permission_sets: int
    users: int
    groups: int
    fanout: tuple[int, int, int, int] = (4, 4, 4, 2)  # OUs per parent, level 1..4


FULL = Scale(accounts=2000, permission_sets=500, users=10_000, groups=500)
QUICK = Scale(accounts=200, permission_sets=50, users=1000, groups=50)


@dataclass
class Seeded:
    level2_ous: list[str]
    permission_set_arns: list[str]
    target_groups: list[str]
    account_ids: list[str]
    seconds: float


async def _gather_bounded(limit: asyncio.Semaphore, calls: list[Any]) -> list[Any]:
    async def one(call: Any) -> Any:
        async with limit:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


async def seed(aws: AwsSettings, scale: Scale) -> Seeded:
    """Create the organization in moto, bounded concurrency."""
    started = time.perf_counter()
    limit = asyncio.Semaphore(8)
    # moto answers the odd 500 under concurrent writes: let botocore retry those.
    clients = AwsClients(aws.model_copy(update={"AWS_MAX_ATTEMPTS": 5}), max_pool_connections=8)
    rng = random.Random(7)
    async with (
        clients.organizations() as orgs,
        clients.sso_admin() as sso,
        clients.identitystore() as ids,
    ):
        await orgs.create_organization(FeatureSet="ALL")
        root = (await orgs.list_roots())["Roots"][0]["Id"]
        levels: list[list[str]] = [[root]]
        for depth, fanout in enumerate(scale.fanout, start=1):
            made = await _gather_bounded(
                limit,
                [
                    orgs.create_organizational_unit(ParentId=parent, Name=f"L{depth}-{i}-{n}")
                    for i, parent in enumerate(levels[-1])
                    for n in range(fanout)
                ],
            )
            levels.append([m["OrganizationalUnit"]["Id"] for m in made])
        leaves = levels[-1]

        async def account(n: int) -> str:
            created = await orgs.create_account(
                Email=f"acct-{n}@bench.example", AccountName=f"acct-{n:05d}"
            )
            account_id: str = created["CreateAccountStatus"]["AccountId"]
            await orgs.move_account(
                AccountId=account_id,
                SourceParentId=root,
                DestinationParentId=leaves[n % len(leaves)],
            )
            return account_id

        account_ids = await _gather_bounded(limit, [account(n) for n in range(scale.accounts)])

        instance = (await sso.list_instances())["Instances"][0]
        instance_arn, store = instance["InstanceArn"], instance["IdentityStoreId"]
        made_sets = await _gather_bounded(
            limit,
            [
                sso.create_permission_set(
                    InstanceArn=instance_arn, Name=f"PS-{n:04d}", SessionDuration="PT1H"
                )
                for n in range(scale.permission_sets)
            ],
        )
        set_arns = [m["PermissionSet"]["PermissionSetArn"] for m in made_sets]
        made_groups = await _gather_bounded(
            limit,
            [
                ids.create_group(IdentityStoreId=store, DisplayName=f"G-{n:04d}")
                for n in range(scale.groups)
            ],
        )
        group_ids = [g["GroupId"] for g in made_groups]

        def user(name: str) -> Any:
            return ids.create_user(
                IdentityStoreId=store,
                UserName=name,
                DisplayName=name,
                Name={"GivenName": name, "FamilyName": "Bench"},
                Emails=[{"Value": f"{name}@bench.example", "Primary": True}],
            )

        names = [TARGET, ADMIN] + [f"user-{n:05d}" for n in range(scale.users - 2)]
        made_users = await _gather_bounded(limit, [user(n) for n in names])
        user_ids = [u["UserId"] for u in made_users]
        target_groups = group_ids[:20]
        memberships = [(g, user_ids[0]) for g in target_groups] + [
            (rng.choice(group_ids), uid) for uid in user_ids[2:]
        ]
        await _gather_bounded(
            limit,
            [
                ids.create_group_membership(
                    IdentityStoreId=store, GroupId=g, MemberId={"UserId": u}
                )
                for g, u in memberships
            ],
        )
    return Seeded(
        level2_ous=levels[2],
        permission_set_arns=set_arns,
        target_groups=target_groups,
        account_ids=account_ids,
        seconds=time.perf_counter() - started,
    )


async def run(env: BenchEnv, *, quick: bool) -> list[Figure]:
    """Seed, serve, measure; figures are printed, never asserted."""
    scale = QUICK if quick else FULL
    moto = await asyncio.to_thread(start_moto_process)
    try:
        aws = AwsSettings(AWS_ENDPOINT_URL=moto.endpoint_url, AWS_MAX_ATTEMPTS=1)
        seeded = await seed(aws, scale)
        org = DemoOrg(
            users=(
                DemoUser(TARGET, "Bench Target", f"{TARGET}@bench.example", ("TEAM-Users",)),
                DemoUser(ADMIN, "Bench Admin", f"{ADMIN}@bench.example", ("TEAM-Admins",)),
            )
        )
        async with serve_issuer(org=org) as issuer:
            settings = Settings(
                DATABASE_URL=env.new_database("bench_policy"),
                DIRECTORY_REFRESH_SECONDS=0,
                DIRECTORY_CONCURRENCY=16,
                kafka=env.kafka_settings(),
                oidc=issuer.settings(),
                aws=aws,
                runtime=RuntimeSettings(
                    TEAM_DEV_MODE=True, LOG_FORMAT="console", LOG_LEVEL="WARNING"
                ),
            )
            async with (
                serving(create_app(settings)) as base,
                httpx.AsyncClient(base_url=base, timeout=120.0) as http,
            ):
                return await _measure(http, issuer, seeded, scale)
    finally:
        await asyncio.to_thread(moto.stop)


async def _measure(
    http: httpx.AsyncClient, issuer: Any, seeded: Seeded, scale: Scale
) -> list[Figure]:
    admin = {"Authorization": f"Bearer {issuer.token_for(ADMIN)}"}
    target = {"Authorization": f"Bearer {issuer.token_for(TARGET)}"}
    service = {"Authorization": f"Bearer {issuer.client_token('request-service')}"}

    refreshes = []
    for _ in range(2):
        started = time.perf_counter()
        result = (await http.post("/v1/directory/refresh", headers=admin)).json()
        refreshes.append(time.perf_counter() - started)
        assert result["ok"], result
    counts = result["counts"]

    rng = random.Random(11)
    for n, group in enumerate(seeded.target_groups):
        body = {
            "name": f"bench-{n}",
            "group_ids": [group],
            "ou_ids": [seeded.level2_ous[n % len(seeded.level2_ous)]],
            "permission_set_arns": rng.sample(seeded.permission_set_arns, 5),
            "max_duration_minutes": 60 + n,
            "approval_required": n % 2 == 0,
        }
        answer = await http.post("/v1/eligibility-policies", json=body, headers=admin)
        assert answer.status_code == 201, answer.text
    approvers = {
        "name": "bench-approvers",
        "ou_ids": seeded.level2_ous,
        "approver_group_ids": seeded.target_groups[-1:],
    }
    assert (
        await http.post("/v1/approver-policies", json=approvers, headers=admin)
    ).status_code == 201

    latencies = []
    items = 0
    for _ in range(30 if scale is QUICK else 200):
        started = time.perf_counter()
        answer = await http.get("/v1/me/entitlements", headers=target)
        latencies.append((time.perf_counter() - started) * 1000)
        items = len(answer.json()["items"])
    floor = []
    for _ in range(30):
        started = time.perf_counter()
        assert (await http.get("/v1/settings", headers=target)).status_code == 200
        floor.append((time.perf_counter() - started) * 1000)
    # The first call loaded the directory and policy copies (policy_service.cache): the rest
    # are repeats. Each settings change invalidates the policy copy and the cached answers.
    cold = []
    for n in range(10):
        current = (await http.get("/v1/settings", headers=admin)).json()
        changed = {
            k: v for k, v in current.items() if k in {*PolicySettings.model_fields, "version"}
        }
        changed["default_duration_minutes"] = 60 + n % 2
        assert (await http.put("/v1/settings", json=changed, headers=admin)).status_code == 200
        started = time.perf_counter()
        answer = await http.get("/v1/me/entitlements", headers=target)
        cold.append((time.perf_counter() - started) * 1000)

    deadline = time.perf_counter() + (5 if scale is QUICK else 15)
    done = 0
    eval_latencies: list[float] = []

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            body = {
                "user": TARGET,
                "account_id": rng.choice(seeded.account_ids),
                "permission_set": rng.choice(seeded.permission_set_arns),
                "duration_minutes": 60,
                "ticket": "T-1",
            }
            started = time.perf_counter()
            answer = await http.post("/v1/evaluations", json=body, headers=service)
            eval_latencies.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(8)))
    elapsed = time.perf_counter() - started
    size = (
        f"{counts['accounts']} accounts, {counts['ous']} OUs, {counts['permission_sets']} sets, "
        f"{counts['users']} users, {counts['groups']} groups, {counts['memberships']} memberships"
    )
    return [
        Figure(BENCH, "moto seed", seeded.seconds, "s", note=size),
        Figure(BENCH, "directory refresh (best of 2)", sorted(refreshes)[0], "s", note=size),
        Figure(
            BENCH,
            "entitlements p50",
            percentile(latencies, 0.5),
            "ms",
            note=f"user in 20 groups, {items} groups of accounts",
        ),
        Figure(BENCH, "entitlements p95", percentile(latencies, 0.95), "ms", goal="< 50 ms"),
        Figure(
            BENCH,
            "GET /v1/settings p50",
            percentile(floor, 0.5),
            "ms",
            note="the floor: HTTP, token check, one small query",
        ),
        Figure(
            BENCH,
            "entitlements first call",
            latencies[0],
            "ms",
            note="loads the directory and policy copies",
        ),
        Figure(
            BENCH,
            "entitlements after a settings change p50",
            percentile(cold, 0.5),
            "ms",
            note="policy copy reloaded, answer recomputed",
        ),
        Figure(
            BENCH, "evaluations throughput", done / elapsed, "req/s", note="8 concurrent clients"
        ),
        Figure(BENCH, "evaluations p95", percentile(eval_latencies, 0.95), "ms"),
    ]


def main() -> None:
    """Run this benchmark alone and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    configure_logging(service="bench", fmt="console", level="WARNING")
    with bench_env() as env:
        figures = asyncio.run(run(env, quick=args.quick))
    print_table(figures)
    for figure in figures:
        if figure.note:
            print(f"{figure.name}: {figure.note}")


if __name__ == "__main__":
    main()
