"""`make bench [QUICK=1]`: every benchmark against the real embedded stack, one table."""

import argparse
import asyncio
import importlib
import sys
import time

from bench.environment import bench_env
from bench.results import Figure, machine_facts, print_table, write_results
from teamkit.logging import configure_logging

#: Modules exposing `async def run(env: BenchEnv, *, quick: bool) -> list[Figure]`.
BENCHES: tuple[str, ...] = (
    "bench.policy_directory",
    "bench.pipeline_hop",
    "bench.lifecycle_revoke_lag",
    "bench.request_api",
    "bench.audit_export",
    "bench.pipeline_lifecycles",
)


def main() -> int:
    """Run the selected benchmarks, print the table, write bench/results.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (< 3 minutes)")
    parser.add_argument("--only", default=None, help="comma-separated module names")
    args = parser.parse_args()
    selected = [m for m in BENCHES if not args.only or m.split(".")[-1] in args.only.split(",")]
    configure_logging(service="bench", fmt="console", level="WARNING")
    figures: list[Figure] = []
    with bench_env() as env:
        for module_name in selected:
            module = importlib.import_module(module_name)
            print(f"== {module_name} ...", flush=True)
            started = time.perf_counter()
            result: list[Figure] = asyncio.run(module.run(env, quick=args.quick))
            figures.extend(result)
            print(f"   done in {time.perf_counter() - started:.1f} s", flush=True)
        machine = machine_facts(env.pg_version())
    print()
    print_table(figures)
    write_results(figures, machine, quick=args.quick)
    print("\nwrote bench/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
