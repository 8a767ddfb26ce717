"""CPU per ``airplane.*`` metric: Airflow's statsd (``[metrics] statsd_on``) to a local UDP listener vs off.

    .venv/bin/python benchmarks/metrics.py              # 5 rounds x 20000 metrics each way (~10 s)
    .venv/bin/python benchmarks/metrics.py --calls 5000 --rounds 3

Each way runs in a fresh process (``[metrics]`` is read once), which sends ``airplane.run.started``
through the provider's ``_metrics`` (the path every metric takes) and reports the median round's CPU
microseconds per metric. The listener only receives; its CPU is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time


def _child(calls: int, rounds: int) -> list[float]:
    from airflow_provider_airplane import _metrics

    _metrics.run_started("started")  # the first one sets the backend up
    per_metric = []
    for _ in range(rounds):
        cpu = time.process_time()
        for _ in range(calls):
            _metrics.run_started("started")
        per_metric.append((time.process_time() - cpu) / calls * 1e6)
    return per_metric


def _measure(args: argparse.Namespace, statsd: bool) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__METRICS__")}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        if statsd:
            env.update(
                {
                    "AIRFLOW__METRICS__STATSD_ON": "True",
                    "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                    "AIRFLOW__METRICS__STATSD_PORT": str(sink.getsockname()[1]),
                }
            )
        command = [
            sys.executable,
            __file__,
            "--child",
            "--calls",
            str(args.calls),
            "--rounds",
            str(args.rounds),
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return float(statistics.median(json.loads(done.stdout.strip().splitlines()[-1])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.calls, args.rounds)), flush=True)
        return 0
    off, on = _measure(args, statsd=False), _measure(args, statsd=True)
    print(f"CPU per airplane.* metric, median of {args.rounds} rounds x {args.calls:,}:")
    print(f"  metrics off   {off:6.1f} us")
    print(f"  statsd (UDP)  {on:6.1f} us  (+{on - off:.1f} us per metric)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
