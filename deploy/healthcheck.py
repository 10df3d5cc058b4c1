"""Container HEALTHCHECK: exit 0 when this container's service answers 200 on /healthz.

The port is the service's own `<SERVICE>_PORT` (8000 in the image), so it follows overrides.
"""

import os
import sys
import urllib.request


def main() -> int:
    """Probe http://127.0.0.1:<port>/healthz once."""
    service = os.environ.get("SERVICE", "")
    port = os.environ.get(f"{service.upper()}_PORT", "8000")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck failed: {exc}", file=sys.stderr)  # noqa: T201
        return 1


if __name__ == "__main__":
    sys.exit(main())
