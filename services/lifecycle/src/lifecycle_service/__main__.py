"""`python -m lifecycle_service [serve|migrate]`: serve the lifecycle service or migrate it."""

import sys

from lifecycle_service.app import SPEC, create_app
from lifecycle_service.config import Settings
from teamkit.entrypoint import run_service


def main() -> None:
    """Entry point: settings come from the environment, nowhere else."""
    run_service(SPEC, Settings(), create_app, sys.argv[1:])


if __name__ == "__main__":
    main()
