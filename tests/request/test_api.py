"""The HTTP API against the real service, database, broker, issuer and the policy stub."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from teamkit.contracts.policy import DenialCode, DenialReason
from tests.harness.policy_stub import PolicyStub, permission_set_arn, user_id
from tests.harness.wait import eventually
from tests.request.conftest import ACCOUNT, RequestService, submit_body

PROBLEM = "application/problem+json"
NewPs = Callable[[], str]


async def submit(svc: RequestService, who: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    async with svc.client(who, client=kw.pop("client", False)) as http:
        answer = await http.post("/v1/requests", json=body, **kw)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def count_requests(svc: RequestService) -> int:
    import asyncpg

    conn = await asyncpg.connect(svc.dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM access_request"))
    finally:
        await conn.close()


class TestSubmit:
    async def test_pending_with_full_snapshot(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        policy_stub.approvers = {"bob", "carol", "dave"}
        policy_stub.approvals_needed = 2
        ps = new_ps()
        async with svc.client("alice") as alice:
            answer = await alice.post(
                "/v1/requests", json=submit_body(ps, ticket="INC-42", duration_minutes=90)
            )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert answer.headers["Location"] == f"/v1/requests/{body['id']}"
        assert body["status"] == "pending"
        assert body["requester"]["user_id"] == user_id("alice")
        assert body["permission_set"]["arn"] == permission_set_arn(ps)
        assert body["approvals_needed"] == 2
        assert sorted(body["pending_approvers"]) == ["bob", "carol", "dave"]
        assert body["approval_deadline"] is not None
        # The policy call was made by this service's client, with the active grant count.
        assert policy_stub.callers == ["request-service"]
        assert policy_stub.evaluations[0].user == "alice"
        assert policy_stub.evaluations[0].active_grants == 0

        events = await svc.outbox(body["id"])
        assert [e["type"] for e in events] == ["request.submitted", "request.status_changed"]
        data = events[0]["data"]
        assert data["requester"] == {
            "user_id": user_id("alice"),
            "username": "alice",
            "email": "alice@example.com",
            "time_zone": "Europe/Berlin",
        }
        assert data["account"]["id"] == ACCOUNT
        assert data["account"]["name"]
        assert data["permission_set"]["name"] == ps
        assert data["duration_minutes"] == 90
        assert data["ticket"] == "INC-42"
        assert data["approval_required"] is True
        assert data["approvals_needed"] == 2
        assert {a["username"] for a in data["approvers"]} == {"bob", "carol", "dave"}
        assert data["matched_policy_ids"] == ["elig-1", "appr-1"]
        start = datetime.fromisoformat(data["start"])
        assert datetime.fromisoformat(data["end"]) - start == timedelta(minutes=90)
        deadline = datetime.fromisoformat(data["approval_deadline"])
        assert timedelta(minutes=59) < deadline - datetime.now(UTC) <= timedelta(minutes=60)
        assert events[1]["data"]["from_status"] is None
        assert events[1]["data"]["to_status"] == "pending"

    async def test_auto_approved_when_no_approval_required(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        policy_stub.approval_required = False
        body = await submit(svc, "alice", submit_body(new_ps()))
        assert body["status"] == "approved"
        assert body["auto_approved"] is True
        events = await svc.outbox(body["id"])
        assert [e["type"] for e in events] == [
            "request.submitted",
            "request.status_changed",
            "request.status_changed",
            "request.approved",
        ]
        approved = events[-1]["data"]
        assert approved["auto"] is True
        assert approved["approved_by"] == []
        assert approved["principal_id"] == user_id("alice")
        assert approved["account_id"] == ACCOUNT
        assert approved["permission_set_arn"] == body["permission_set"]["arn"]
        assert approved["start"]
        assert approved["end"]
        assert events[2]["data"]["from_status"] == "pending"
        assert events[2]["data"]["to_status"] == "approved"

    async def test_denial_lists_every_reason_403(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        policy_stub.denial = [
            DenialReason(code=DenialCode.NOT_ELIGIBLE, detail="no policy lets you ask for this"),
            DenialReason(code=DenialCode.NO_APPROVER, detail="nobody can approve it"),
        ]
        before = await count_requests(svc)
        async with svc.client("alice") as alice:
            answer = await alice.post("/v1/requests", json=submit_body(new_ps()))
        assert answer.status_code == 403
        assert answer.headers["content-type"] == PROBLEM
        problem = answer.json()
        assert [r["code"] for r in problem["reasons"]] == ["not_eligible", "no_approver"]
        assert "nobody can approve it" in problem["detail"]
        assert await count_requests(svc) == before

    async def test_input_denial_is_422_with_fields(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        policy_stub.denial = [
            DenialReason(code=DenialCode.TICKET_MALFORMED, detail="ticket must match INC-\\d+"),
            DenialReason(code=DenialCode.DURATION_ABOVE_MAX, detail="at most 480 minutes"),
        ]
        async with svc.client("alice") as alice:
            answer = await alice.post("/v1/requests", json=submit_body(new_ps(), ticket="X"))
        assert answer.status_code == 422
        problem = answer.json()
        assert {(r["code"], r["field"]) for r in problem["reasons"]} == {
            ("ticket_malformed", "ticket"),
            ("duration_above_max", "duration_minutes"),
        }

    async def test_unknown_account_422(self, svc: RequestService, new_ps: NewPs) -> None:
        async with svc.client("alice") as alice:
            answer = await alice.post(
                "/v1/requests", json=submit_body(new_ps(), account_id="000000000000")
            )
        assert answer.status_code == 422
        assert answer.json()["reasons"][0]["field"] == "account_id"

    async def test_too_many_active_grants_403(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        policy_stub.approval_required = False
        policy_stub.settings = policy_stub.settings.model_copy(update={"max_concurrent_grants": 1})
        await submit(svc, "frank", submit_body(new_ps()))
        async with svc.client("frank") as frank:
            answer = await frank.post("/v1/requests", json=submit_body(new_ps()))
        assert answer.status_code == 403
        assert answer.json()["reasons"][0]["code"] == "too_many_active_grants"
        assert policy_stub.evaluations[-1].active_grants >= 1

    @pytest.mark.parametrize("mode", ["down", "hang", "unreachable"])
    async def test_policy_unavailable_503_nothing_stored(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs, mode: str
    ) -> None:
        before = await count_requests(svc)
        if mode == "down":
            policy_stub.down = True
        elif mode == "hang":
            policy_stub.hang_seconds = 3.0  # the service's timeout is 2 s
        async with svc.client("alice") as alice:
            if mode == "unreachable":
                svc_url = svc.settings.POLICY_URL
                assert svc_url  # the real URL; an unreachable one is tested via the client
                from request_service.policy_client import PolicyClient

                client = PolicyClient(
                    base_url="http://127.0.0.1:9",
                    issuer=svc.settings.oidc.OIDC_ISSUER,
                    client_id="request-service",
                    client_secret="dev-request-secret",
                    timeout=2.0,
                    token_http=alice,
                )
                from request_service.errors import PolicyUnavailable
                from teamkit.contracts.policy import EvaluationRequest

                with pytest.raises(PolicyUnavailable, match="could not be reached"):
                    await client.evaluate(
                        EvaluationRequest(
                            user="alice", account_id=ACCOUNT, permission_set="x", duration_minutes=5
                        )
                    )
                await client.aclose()
                return
            answer = await alice.post("/v1/requests", json=submit_body(new_ps()))
        assert answer.status_code == 503
        assert answer.headers["content-type"] == PROBLEM
        assert "Nothing was changed" in answer.json()["detail"]
        assert answer.headers["Retry-After"]
        assert await count_requests(svc) == before
        if mode == "hang":
            # The stub records the call when its hang ends, after the service gave up: wait for
            # it here, or it lands in whichever test runs next (and breaks `evaluations == []`).
            async def recorded() -> None:
                assert len(policy_stub.evaluations) == 1

            await eventually(recorded, timeout=10)

    async def test_duplicate_pending_409_points_to_it(
        self, svc: RequestService, new_ps: NewPs
    ) -> None:
        ps = new_ps()
        first = await submit(svc, "alice", submit_body(ps))
        async with svc.client("alice") as alice:
            again = await alice.post(
                "/v1/requests", json=submit_body(ps, justification="another reason")
            )
            assert again.status_code == 409
            assert again.json()["existing_request_id"] == first["id"]
            # Once the first is no longer pending, the same access may be asked again.
            assert (await alice.post(f"/v1/requests/{first['id']}/cancel")).status_code == 200
            assert (await alice.post("/v1/requests", json=submit_body(ps))).status_code == 201


class TestIdempotency:
    async def test_same_key_same_body_same_request(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        body = submit_body(new_ps())
        headers = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
        async with svc.client("alice") as alice:
            first = await alice.post("/v1/requests", json=body, headers=headers)
            second = await alice.post("/v1/requests", json=body, headers=headers)
            other = await alice.post(
                "/v1/requests", json={**body, "duration_minutes": 30}, headers=headers
            )
        assert first.status_code == 201
        assert second.status_code == 200
        assert first.json()["id"] == second.json()["id"]
        assert second.headers["Location"] == first.headers["Location"]
        assert other.status_code == 409
        assert other.json()["existing_request_id"] == first.json()["id"]
        assert len(policy_stub.evaluations) == 1  # the replay never asked the policy again

    async def test_keys_are_per_caller(self, svc: RequestService, new_ps: NewPs) -> None:
        key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
        ps = new_ps()
        a = await submit(svc, "alice", submit_body(ps), headers=key)
        f = await submit(svc, "frank", submit_body(ps), headers=key)
        assert a["id"] != f["id"]

    async def test_bad_key_422(self, svc: RequestService, new_ps: NewPs) -> None:
        async with svc.client("alice") as alice:
            answer = await alice.post(
                "/v1/requests", json=submit_body(new_ps()), headers={"Idempotency-Key": "x" * 300}
            )
        assert answer.status_code == 422


class TestBadInput:
    @pytest.mark.parametrize(
        ("override", "field"),
        [
            ({"duration_minutes": 0}, "duration_minutes"),
            ({"duration_minutes": 60 * 24 * 367}, "duration_minutes"),
            ({"justification": "x" * 2001}, "justification"),
            ({"justification": "bad\x07bell"}, "justification"),
            ({"justification": "   "}, "justification"),
            ({"ticket": "INC-1\x00"}, "ticket"),
            ({"permission_set": "Admin\u202e"}, "permission_set"),
            ({"account_id": "12345"}, "account_id"),
            ({"start": "2026-01-01T10:00:00"}, "start"),
            ({"surprise": 1}, "surprise"),
        ],
    )
    async def test_422_names_the_field(
        self,
        svc: RequestService,
        policy_stub: PolicyStub,
        new_ps: NewPs,
        override: dict[str, Any],
        field: str,
    ) -> None:
        async with svc.client("alice") as alice:
            answer = await alice.post("/v1/requests", json={**submit_body(new_ps()), **override})
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert any(field in e["loc"] for e in answer.json()["errors"])
        assert policy_stub.evaluations == []

    async def test_start_in_the_past_beyond_grace(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        old = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
        recent = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
        async with svc.client("alice") as alice:
            past = await alice.post("/v1/requests", json=submit_body(new_ps(), start=old))
            ok = await alice.post("/v1/requests", json=submit_body(new_ps(), start=recent))
            far = await alice.post(
                "/v1/requests",
                json=submit_body(
                    new_ps(), start=(datetime.now(UTC) + timedelta(days=400)).isoformat()
                ),
            )
        assert past.status_code == 422
        assert past.json()["errors"][0]["loc"] == ["body", "start"]
        assert "in the past" in past.json()["detail"]
        assert ok.status_code == 201
        assert far.status_code == 422

    async def test_newlines_allowed_in_justification(
        self, svc: RequestService, new_ps: NewPs
    ) -> None:
        body = await submit(svc, "alice", submit_body(new_ps(), justification="line 1\nline 2"))
        assert body["justification"] == "line 1\nline 2"


class TestOnBehalf:
    async def test_integration_submits_for_a_user_when_allowed(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        policy_stub.settings = policy_stub.settings.model_copy(
            update={"allow_requests_on_behalf": True}
        )
        body = await submit(
            svc, "ticketing", submit_body(new_ps(), requested_for="frank"), client=True
        )
        assert body["requester"]["username"] == "frank"
        assert body["requested_by_client_id"] == "ticketing"
        submitted = (await svc.outbox(body["id"]))[0]["data"]
        assert submitted["requester"]["username"] == "frank"
        assert submitted["requested_by"]["client_id"] == "ticketing"
        # frank sees it as his own; the integration lists what it submitted.
        async with svc.client("frank") as frank:
            assert (await frank.get(f"/v1/requests/{body['id']}")).status_code == 200
        async with svc.client("ticketing", client=True) as ticketing:
            page = (await ticketing.get("/v1/requests", params={"limit": 100})).json()
        assert body["id"] in [item["id"] for item in page["items"]]

    async def test_refused_when_settings_forbid(self, svc: RequestService, new_ps: NewPs) -> None:
        async with svc.client("ticketing", client=True) as ticketing:
            answer = await ticketing.post(
                "/v1/requests", json=submit_body(new_ps(), requested_for="frank")
            )
            missing = await ticketing.post("/v1/requests", json=submit_body(new_ps()))
        assert answer.status_code == 403
        assert "allow_requests_on_behalf" in answer.json()["detail"]
        assert missing.status_code == 422

    async def test_people_cannot_submit_for_others(
        self, svc: RequestService, new_ps: NewPs
    ) -> None:
        async with svc.client("alice") as alice:
            answer = await alice.post(
                "/v1/requests", json=submit_body(new_ps(), requested_for="frank")
            )
        assert answer.status_code == 403

    async def test_client_without_write_scope(self, svc: RequestService, new_ps: NewPs) -> None:
        async with svc.client("audit-service", client=True) as other:
            answer = await other.post(
                "/v1/requests", json=submit_body(new_ps(), requested_for="frank")
            )
        assert answer.status_code == 403


class TestReads:
    async def test_list_mine_filters_and_pages(self, svc: RequestService, new_ps: NewPs) -> None:
        ids = [(await submit(svc, "frank", submit_body(new_ps())))["id"] for _ in range(5)]
        async with svc.client("frank") as frank:
            await frank.post(f"/v1/requests/{ids[0]}/cancel")
            seen: list[str] = []
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {"limit": 2, "status": "pending"}
                if cursor:
                    params["cursor"] = cursor
                page = (await frank.get("/v1/requests", params=params)).json()
                assert len(page["items"]) <= 2
                seen += [item["id"] for item in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            cancelled = (await frank.get("/v1/requests", params={"status": "cancelled"})).json()
            other_account = (
                await frank.get("/v1/requests", params={"account_id": "222222222222"})
            ).json()
            future = (
                await frank.get(
                    "/v1/requests",
                    params={"created_after": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
                )
            ).json()
            bad = await frank.get("/v1/requests", params={"cursor": "not-a-cursor"})
        assert set(ids[1:]) <= set(seen)
        assert ids[0] not in seen
        assert len(seen) == len(set(seen))  # no row twice across pages
        assert ids[0] in [item["id"] for item in cancelled["items"]]
        assert other_account["items"] == []
        assert future["items"] == []
        assert bad.status_code == 422
        async with svc.client("alice") as alice:
            mine = (await alice.get("/v1/requests", params={"limit": 100})).json()
        assert not set(ids) & {item["id"] for item in mine["items"]}

    async def test_approval_inbox(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        policy_stub.approvals_needed = 2
        policy_stub.approvers = {"bob", "carol", "dave"}
        first = await submit(svc, "alice", submit_body(new_ps()))
        second = await submit(svc, "alice", submit_body(new_ps()))
        async with svc.client("bob") as bob, svc.client("erin") as erin:
            waiting = (await bob.get("/v1/approvals", params={"limit": 100})).json()
            assert {first["id"], second["id"]} <= {i["id"] for i in waiting["items"]}
            assert (await bob.post(f"/v1/requests/{first['id']}/approve")).status_code == 200
            waiting = (await bob.get("/v1/approvals", params={"limit": 100})).json()
            decided = (
                await bob.get("/v1/approvals", params={"decided": "true", "limit": 100})
            ).json()
            nothing = (await erin.get("/v1/approvals")).json()
        waiting_ids = {i["id"] for i in waiting["items"]}
        assert first["id"] not in waiting_ids
        assert second["id"] in waiting_ids
        assert first["id"] in {i["id"] for i in decided["items"]}
        assert not {first["id"], second["id"]} & {i["id"] for i in nothing["items"]}
        async with svc.client("alice") as alice:
            shown = (await alice.get(f"/v1/requests/{first['id']}")).json()
        assert [a["approver"] for a in shown["approvals"]] == ["bob"]
        assert sorted(shown["pending_approvers"]) == ["carol", "dave"]

    async def test_inbox_is_for_people(self, svc: RequestService) -> None:
        async with svc.client("ticketing", client=True) as ticketing:
            assert (await ticketing.get("/v1/approvals")).status_code == 403

    async def test_unknown_id_404(self, svc: RequestService) -> None:
        async with svc.client("dave") as dave:
            answer = await dave.get(f"/v1/requests/{uuid.uuid4()}")
        assert answer.status_code == 404
        assert answer.headers["content-type"] == PROBLEM

    async def test_unauthenticated_401(self, svc: RequestService) -> None:
        import httpx

        async with httpx.AsyncClient(base_url=svc.url) as anonymous:
            assert (await anonymous.get("/v1/requests")).status_code == 401
            assert (await anonymous.post("/v1/requests", json={})).status_code == 401
