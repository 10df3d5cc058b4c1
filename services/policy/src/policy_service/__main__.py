"""`python -m policy_service [serve|migrate]`: run the policy service or apply its migrations."""

import sys

from policy_service.app import SPEC, create_app
from policy_service.config import Settings
from teamkit.entrypoint import run_service


def main() -> None:
    """Entry point: settings come from the environment, nowhere else."""
    run_service(SPEC, Settings(), create_app, sys.argv[1:])


if __name__ == "__main__":
    main()
