"""Write `openapi/<service>.json` for the five services and `openapi/events.json`.

`--check` compares instead of writing and exits 1 when a committed file is stale.
"""

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from teamkit.events.catalogue import events_document
from teamkit.settings import OidcSettings

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "openapi"
SERVICES = ("request", "policy", "lifecycle", "notify", "audit")
DEFAULT_ISSUER: str = OidcSettings.model_fields["OIDC_ISSUER"].default


def service_document(service: str) -> dict[str, Any]:
    """The OpenAPI document of one service, built without starting it."""
    app_module = importlib.import_module(f"{service}_service.app")
    config_module = importlib.import_module(f"{service}_service.config")
    # The committed document must not depend on the caller's environment: pin the issuer
    # (it names the openIdConnect discovery URL) to the default, the `make run` issuer.
    settings = config_module.Settings(oidc=OidcSettings(OIDC_ISSUER=DEFAULT_ISSUER))
    app = app_module.create_app(settings)
    document: dict[str, Any] = app.openapi()
    return document


def documents() -> dict[str, dict[str, Any]]:
    """File name → document, for every generated file."""
    result = {f"{service}.json": service_document(service) for service in SERVICES}
    result["events.json"] = events_document()
    return result


def render(document: dict[str, Any]) -> str:
    """Stable text form: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    """Write (or with --check, compare) every document; the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    stale = []
    for name, document in documents().items():
        path = OUT / name
        text = render(document)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print(f"stale: {', '.join(stale)}; run `make openapi` and commit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
