"""Operations API and the reconciler: grants, timelines, retry, drift repair both ways."""

from collections.abc import Iterator
from typing import Any

from lifecycle_service.repository import Tuple
from tests.harness.oidc import RunningIssuer
from tests.harness.wait import eventually
from tests.lifecycle.conftest import moto_assigned, moto_create, moto_delete, window


def _auth(issuer: RunningIssuer, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.token_for(user)}"}


class TestReconciler:
    async def test_repairs_drift_both_ways(
        self, lifecycle_factory: Any, tuples: Iterator[Tuple], oidc_issuer: RunningIssuer
    ) -> None:
        svc = await lifecycle_factory()
        active, expired = next(tuples), next(tuples)
        active_id = await svc.driver.approve(active, start=window(0, 0)[0], end=window(300, 0)[0])
        expired_id = await svc.driver.approve(expired, start=window(0, 0)[0], end=window(1.5, 0)[0])
        await svc.driver.wait_event(active_id, "access.granted")
        await svc.driver.wait_event(expired_id, "access.ended")
        await moto_delete(svc.moto_url, active)  # someone removed a live grant's access
        await moto_create(svc.moto_url, expired)  # and someone put back an expired one

        denied = await svc.http.post("/v1/reconciliations", headers=_auth(oidc_issuer, "alice"))
        assert denied.status_code == 403
        assert denied.headers["content-type"] == "application/problem+json"
        started = await svc.http.post("/v1/reconciliations", headers=_auth(oidc_issuer, "dave"))
        assert started.status_code == 202, started.text

        async def finished() -> dict[str, Any]:
            answer = await svc.http.get(
                "/v1/reconciliations/latest", headers=_auth(oidc_issuer, "erin")
            )
            assert answer.status_code == 200, answer.text
            report: dict[str, Any] = answer.json()
            assert report["status"] == "finished"
            return report

        report = await eventually(finished, timeout=30)
        actions = {(r["principal_id"], r["account_id"], r["action"]) for r in report["repairs"]}
        assert actions == {
            (active.principal_id, active.account_id, "recreated"),
            (expired.principal_id, expired.account_id, "removed"),
        }
        assert report["tuples_checked"] == 2
        assert await moto_assigned(svc.moto_url, active) == 1
        assert await moto_assigned(svc.moto_url, expired) == 0
        recreated = await svc.driver.wait_event(active_id, "drift.repaired")
        assert recreated["data"]["action"] == "recreated"
        removed = await svc.driver.events(expired.key())
        assert [e["data"]["action"] for e in removed] == ["removed"]

        # A second run finds nothing left to repair.
        await svc.http.post("/v1/reconciliations", headers=_auth(oidc_issuer, "dave"))
        report = await eventually(finished, timeout=30)
        assert report["repairs"] == []


class TestGrantsApi:
    async def test_list_filter_paginate_timeline_and_retry(
        self, lifecycle_factory: Any, tuples: Iterator[Tuple], oidc_issuer: RunningIssuer
    ) -> None:
        svc = await lifecycle_factory()
        targets = [next(tuples) for _ in range(3)]
        start, end = window(0, 300)
        ok_ids = [await svc.driver.approve(t, start=start, end=end) for t in targets[:2]]
        for request_id in ok_ids:
            await svc.driver.wait_event(request_id, "access.granted")
        svc.proxy.fail("CreateAccountAssignment", "AccessDeniedException", times=1)
        bad_id = await svc.driver.approve(targets[2], start=start, end=end)
        await svc.driver.wait_event(bad_id, "grant.failed")

        assert (await svc.http.get("/v1/grants")).status_code == 401
        assert (
            await svc.http.get("/v1/grants", headers=_auth(oidc_issuer, "alice"))
        ).status_code == 403
        auditor = _auth(oidc_issuer, "erin")
        first = (await svc.http.get("/v1/grants?limit=2", headers=auditor)).json()
        assert len(first["items"]) == 2
        assert first["next_cursor"]
        second = (
            await svc.http.get(
                "/v1/grants", params={"limit": 2, "cursor": first["next_cursor"]}, headers=auditor
            )
        ).json()
        assert second["next_cursor"] is None
        seen = {g["request_id"] for g in first["items"] + second["items"]}
        assert seen == {str(i) for i in [*ok_ids, bad_id]}
        errors = (await svc.http.get("/v1/grants?state=error", headers=auditor)).json()
        assert [g["request_id"] for g in errors["items"]] == [str(bad_id)]
        assert errors["items"][0]["error_code"] == "AccessDeniedException"
        by_user = await svc.http.get(
            "/v1/grants",
            params={"user_id": targets[0].principal_id, "account_id": targets[0].account_id},
            headers=auditor,
        )
        assert str(ok_ids[0]) in {g["request_id"] for g in by_user.json()["items"]}
        bad_cursor = await svc.http.get("/v1/grants?cursor=nope", headers=auditor)
        assert bad_cursor.status_code == 422
        assert "next_cursor" in bad_cursor.json()["detail"]

        detail = (await svc.http.get(f"/v1/grants/{ok_ids[0]}", headers=auditor)).json()
        assert [t["kind"] for t in detail["timers"]] == ["start", "end"]
        assert detail["aws_calls"][0]["operation"] == "create"
        assert detail["aws_calls"][0]["aws_request_id"]
        assert detail["aws_calls"][0]["status"] == "succeeded"

        admin = _auth(oidc_issuer, "dave")
        assert (
            await svc.http.post(f"/v1/grants/{ok_ids[0]}/retry", headers=admin)
        ).status_code == 409
        assert (
            await svc.http.post(f"/v1/grants/{bad_id}/retry", headers=auditor)
        ).status_code == 403
        retried = await svc.http.post(f"/v1/grants/{bad_id}/retry", headers=admin)
        assert retried.status_code == 202, retried.text
        assert retried.json()["state"] == "scheduled"

        async def active() -> None:
            assert await svc.driver.state(bad_id) == "active"

        await eventually(active)
        assert await moto_assigned(svc.moto_url, targets[2]) == 1
        missing = await svc.http.get(
            "/v1/grants/00000000-0000-0000-0000-000000000000", headers=auditor
        )
        assert missing.status_code == 404
