"""`python -m bench.policy_stub_server --port P --issuer URL`: the policy contract stub alone.

Serves `tests/harness/policy_stub.py` (a real HTTP server that verifies tokens against the
issuer and answers the policy contract) in a process of its own, so the request service's
policy call costs what an HTTP hop to another service costs, without sharing the load
generator's event loop. `--auto` answers "no approval required".
"""

import argparse

import uvicorn

from teamkit.auth import TokenVerifier
from teamkit.settings import OidcSettings
from tests.harness.policy_stub import PolicyStub


def main() -> None:
    """Serve the stub on 127.0.0.1:PORT until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.policy_stub_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--auto", action="store_true", help="no approval required")
    args = parser.parse_args()
    stub = PolicyStub(OidcSettings(OIDC_ISSUER=args.issuer))
    stub.approval_required = not args.auto
    app = stub.app(TokenVerifier(stub.oidc))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
