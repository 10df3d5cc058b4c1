"""The production realm import must describe the same people, groups and clients as the demo org."""

import json
from pathlib import Path

from devstack.demo_org import DEMO_ORG

REALM = json.loads(
    (Path(__file__).resolve().parents[2] / "deploy/keycloak/team-realm.json").read_text()
)


def test_users_emails_and_groups_match_the_demo_org() -> None:
    realm_users = {u["username"]: u for u in REALM["users"]}
    assert set(realm_users) == {u.username for u in DEMO_ORG.users}
    for user in DEMO_ORG.users:
        imported = realm_users[user.username]
        assert imported["email"] == user.email
        assert sorted(g.lstrip("/") for g in imported["groups"]) == sorted(user.groups)


def test_groups_match() -> None:
    assert {g["name"] for g in REALM["groups"]} == set(DEMO_ORG.groups)


def test_every_demo_client_exists_with_its_scopes() -> None:
    clients = {c["clientId"]: c for c in REALM["clients"]}
    for client in DEMO_ORG.clients:
        imported = clients[client.client_id]
        assert imported["secret"] == client.secret
        assert set(client.scopes) <= set(imported["defaultClientScopes"])
