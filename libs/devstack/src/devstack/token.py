"""`python -m devstack.token alice`: print an access token for a demo user or client."""

import argparse
import json
import sys
from pathlib import Path

import httpx

from devstack.demo_org import DEMO_ORG


def main() -> None:
    """Ask the running stack's dev issuer for a token and print it alone on stdout."""
    parser = argparse.ArgumentParser(prog="python -m devstack.token")
    parser.add_argument(
        "user",
        help="demo user (alice, frank, bob, carol, dave, erin) "
        "or client id (request-service, ticketing, ...)",
    )
    parser.add_argument("--local-dir", type=Path, default=Path(".local"))
    parser.add_argument("--scope", default=None, help="client scopes, space separated")
    args = parser.parse_args()
    stack_file = args.local_dir / "stack.json"
    if not stack_file.exists():
        sys.exit(f"{stack_file} not found: start the stack with `make run` first.")
    endpoint = json.loads(stack_file.read_text())["oidc"]["token_endpoint"]
    clients = {c.client_id: c for c in DEMO_ORG.clients}
    if args.user in clients:
        client = clients[args.user]
        form = {
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": client.secret,
        }
        if args.scope:
            form["scope"] = args.scope
    else:
        form = {"grant_type": "password", "username": args.user, "password": args.user}
    answer = httpx.post(endpoint, data=form, timeout=10)
    if answer.status_code != 200:
        sys.exit(f"the issuer refused: HTTP {answer.status_code} {answer.text}")
    print(answer.json()["access_token"])


if __name__ == "__main__":
    main()
