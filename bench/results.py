"""Figures, machine facts, the printed table and `bench/results.json`."""

import json
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"


@dataclass
class Figure:
    """One measured figure; `ratio` = value / baseline when a baseline was measured beside it."""

    bench: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    goal: str = ""
    note: str = ""


def percentile(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) of `samples`, by linear interpolation."""
    if not samples:
        return float("nan")
    if len(samples) == 1:
        return samples[0]
    cuts = statistics.quantiles(samples, n=1000, method="inclusive")
    index = min(len(cuts) - 1, max(0, round(q * 1000) - 1))
    return cuts[index]


def machine_facts(pg_version: str | None = None) -> dict[str, Any]:
    """Cores, memory, Python and PostgreSQL versions: what a figure depends on."""
    memory_gib = None
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
            memory_gib = round(kib / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "postgresql": pg_version,
        "platform": platform.platform(),
        "commit": commit or None,
    }


def print_table(figures: list[Figure]) -> None:
    """One aligned table of every figure."""
    header = ("bench", "figure", "value", "unit", "baseline", "ratio", "goal")
    rows = [header] + [
        (
            f.bench,
            f.name,
            f"{f.value:,.3f}".rstrip("0").rstrip("."),
            f.unit,
            "" if f.baseline is None else f"{f.baseline:,.3f}".rstrip("0").rstrip("."),
            "" if f.ratio is None else f"{f.ratio:.2f}",
            f.goal,
        )
        for f in figures
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


def write_results(figures: list[Figure], machine: dict[str, Any], *, quick: bool) -> None:
    """Write `bench/results.json`."""
    RESULTS.write_text(
        json.dumps(
            {"quick": quick, "machine": machine, "figures": [asdict(f) for f in figures]}, indent=2
        )
        + "\n"
    )
