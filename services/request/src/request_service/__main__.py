"""`python -m request_service [serve|migrate]`: run the request service or apply its migrations."""

import sys

from request_service.app import SPEC, create_app
from request_service.config import Settings
from teamkit.entrypoint import run_service


def main() -> None:
    """Entry point: settings come from the environment, nowhere else."""
    run_service(SPEC, Settings(), create_app, sys.argv[1:])


if __name__ == "__main__":
    main()
