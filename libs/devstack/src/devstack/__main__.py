"""`python -m devstack [--local-dir .local] [--free-ports]`: what `make run` runs."""

import argparse
import sys
from pathlib import Path

from devstack.stack import StackConfig, run


def main() -> None:
    """Parse the few options and run the stack until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument(
        "--local-dir",
        type=Path,
        default=Path(".local"),
        help="state folder (PostgreSQL data, logs, stack.json); git-ignored",
    )
    parser.add_argument(
        "--free-ports",
        action="store_true",
        help="listen on free ports instead of the fixed defaults (8001-8005, ...)",
    )
    parser.add_argument("--log-format", choices=["console", "json"], default="console")
    args = parser.parse_args()
    local = args.local_dir.absolute()
    config = StackConfig.with_free_ports(local) if args.free_ports else StackConfig(local_dir=local)
    config.log_format = args.log_format
    sys.exit(run(config))


if __name__ == "__main__":
    main()
