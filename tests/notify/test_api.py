"""The admin API: webhook CRUD (secret shown once) and the deliveries listing."""

import uuid

from tests.notify import factories
from tests.notify.conftest import Stack

PROBLEM = "application/problem+json"


class TestWebhooks:
    async def test_crud_shows_the_secret_once(self, shared: Stack) -> None:
        async with shared.admin() as client:
            created = await client.post(
                "/v1/webhooks",
                json={
                    "url": "https://tickets.example.com/team",
                    "event_types": ["request.approved", "grant.failed", "request.approved"],
                    "description": "ticketing",
                },
            )
            assert created.status_code == 201, created.text
            body = created.json()
            assert body["secret"].startswith("whsec_")
            assert len(body["secret"]) > 40
            assert body["event_types"] == ["grant.failed", "request.approved"]
            assert body["created_by"] == "dave"
            hook_id = body["id"]

            shown = await client.get(f"/v1/webhooks/{hook_id}")
            assert shown.status_code == 200
            assert "secret" not in shown.json()
            listed = await client.get("/v1/webhooks")
            assert all("secret" not in item for item in listed.json()["items"])
            assert body["secret"] not in listed.text

            changed = await client.patch(
                f"/v1/webhooks/{hook_id}", json={"enabled": False, "url": None}
            )
            assert changed.status_code == 200, changed.text
            assert changed.json()["enabled"] is False
            assert changed.json()["url"] == "https://tickets.example.com/team"

            assert (await client.delete(f"/v1/webhooks/{hook_id}")).status_code == 204
            gone = await client.get(f"/v1/webhooks/{hook_id}")
            assert gone.status_code == 404
            assert gone.headers["content-type"].startswith(PROBLEM)
            assert "GET /v1/webhooks" in gone.json()["detail"]

    async def test_pagination_walks_every_webhook(self, shared: Stack) -> None:
        async with shared.admin() as client:
            made = set()
            for n in range(3):
                answer = await client.post(
                    "/v1/webhooks",
                    json={"url": f"https://h{n}.example.com/", "event_types": ["grant.failed"]},
                )
                made.add(answer.json()["id"])
            seen: list[str] = []
            cursor = None
            while True:
                params: dict[str, str | int] = {"limit": 2}
                if cursor:
                    params["cursor"] = cursor
                page = (await client.get("/v1/webhooks", params=params)).json()
                seen.extend(item["id"] for item in page["items"])
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert made <= set(seen)
            assert len(seen) == len(set(seen))
            for hook_id in made:
                await client.delete(f"/v1/webhooks/{hook_id}")

    async def test_bad_input_is_a_problem_that_says_what_to_fix(self, shared: Stack) -> None:
        async with shared.admin() as client:
            unknown = await client.post(
                "/v1/webhooks",
                json={"url": "https://x.example.com", "event_types": ["request.exploded"]},
            )
            assert unknown.status_code == 422
            assert "request.exploded" in unknown.json()["detail"]
            assert "request.approved" in unknown.json()["detail"]
            bad_url = await client.post(
                "/v1/webhooks", json={"url": "ftp://x.example.com", "event_types": ["grant.failed"]}
            )
            assert bad_url.status_code == 422
            cursor = await client.get("/v1/webhooks", params={"cursor": "not-a-cursor"})
            assert cursor.status_code == 422
            assert "next_cursor" in cursor.json()["detail"]

    async def test_only_admins(self, shared: Stack) -> None:
        token = shared.issuer.token_for("alice")
        headers = {"Authorization": f"Bearer {token}"}
        async with shared.admin() as client:
            for method, path in (("GET", "/v1/webhooks"), ("GET", "/v1/deliveries")):
                answer = await client.request(method, path, headers=headers)
                assert answer.status_code == 403, path
                anonymous = await client.request(method, path, headers={"Authorization": ""})
                assert anonymous.status_code == 401, path


class TestDeliveries:
    async def test_filters_and_keyset_pages(self, shared: Stack) -> None:
        event = factories.submitted(approvers=[("bob", f"bob-{uuid.uuid4().hex[:6]}@x.io")])
        await shared.producer.send(event)
        rid = str(event.data.request_id)
        items = await shared.settled(event.data.request_id, expected=6)
        assert [i["id"] for i in items] == sorted((i["id"] for i in items), reverse=True)

        emails = await shared.deliveries(request_id=rid, channel="email")
        assert {i["recipient"] for i in emails} == {
            event.data.requester.email,
            event.data.approvers[0].email,
        }
        assert all(i["status"] == "sent" and i["sent_at"] and i["provider_ref"] for i in emails)
        failed = await shared.deliveries(request_id=rid, status="failed")
        assert {i["channel"] for i in failed} == {"slack"}  # nobody has a Slack account here
        assert all("users_not_found" in i["last_error"] for i in failed)

        async with shared.admin() as client:
            seen: list[int] = []
            cursor = None
            while True:
                params: dict[str, str | int] = {"request_id": rid, "limit": 4}
                if cursor:
                    params["cursor"] = cursor
                page = (await client.get("/v1/deliveries", params=params)).json()
                seen.extend(item["id"] for item in page["items"])
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == [i["id"] for i in items]
            too_many = await client.get("/v1/deliveries", params={"limit": 1000})
            assert too_many.status_code == 422
            bad_channel = await client.get("/v1/deliveries", params={"channel": "pigeon"})
            assert bad_channel.status_code == 422
