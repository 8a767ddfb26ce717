"""What a DAG file pays to import the provider's DAG-facing modules, over what it imports from
``airflow.sdk`` anyway.

    .venv/bin/python benchmarks/import_time.py            # 5 runs per module (~1 min)
    .venv/bin/python benchmarks/import_time.py --runs 9

Each run is a fresh ``python -X importtime`` that first imports
``from airflow.sdk import DAG, BaseOperator, BaseSensorOperator, task`` (the baseline), then the module.
The number is the sum of the cumulative times of the top-level imports after the baseline (so the
provider package itself and every new dependency count); the median run is reported, with the heavy HTTP
clients that ended up loaded. On a busy machine the minimum (also printed) is the steadier number.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

MODULES = (
    "airflow_provider_airplane.operators.airplane",
    "airflow_provider_airplane.sensors.airplane",
    "airflow_provider_airplane.triggers.airplane",
    "airflow_provider_airplane.links.airplane",
)
HEAVY = ("aiohttp", "requests")
MARK = "--- baseline imported ---"
TARGET_MS = 100.0

_PROBE = """
import json, sys
from airflow.sdk import DAG, BaseOperator, BaseSensorOperator, task
print({mark!r}, file=sys.stderr, flush=True)
import {module}
print(json.dumps(sorted(name for name in {heavy!r} if name in sys.modules)))
"""


def measure(module: str) -> tuple[float, list[str]]:
    """Milliseconds of cumulative import time after the baseline, and the heavy modules loaded."""
    probe = _PROBE.format(mark=MARK, module=module, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", probe], capture_output=True, text=True, check=True
    )
    after = done.stderr.split(MARK, 1)[1]
    total_us = 0
    for line in after.splitlines():
        if not line.startswith("import time:"):
            continue
        _, cumulative, name = line.split("|")
        if not name.startswith(" ") or name.startswith("  "):  # nested imports are inside their parent's
            continue
        total_us += int(cumulative)
    return total_us / 1000, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per module (the median is reported)")
    args = parser.parse_args()
    print(f"Import time over the airflow.sdk baseline, median of {args.runs} runs (target {TARGET_MS:g} ms)")
    worst = 0.0
    for module in MODULES:
        results = [measure(module) for _ in range(args.runs)]
        times = [ms for ms, _ in results]
        median = statistics.median(times)
        heavy = sorted({name for _, loaded in results for name in loaded})
        worst = max(worst, median)
        print(
            f"  {module:<48} {median:7.1f} ms (min {min(times):6.1f})"
            f"   heavy loaded: {', '.join(heavy) or 'none'}"
        )
    print(f"worst: {worst:.1f} ms ({'meets' if worst <= TARGET_MS else 'misses'} the target)")


if __name__ == "__main__":
    main()
