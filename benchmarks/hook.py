"""``AirplaneHook.get_run`` throughput: connection reuse vs a new connection per call, and the hook's
overhead over a bare ``requests.Session``, against a standalone emulator process.

    .venv/bin/python benchmarks/hook.py                # 3 rounds x 2000 calls per variant (~1 min)
    .venv/bin/python benchmarks/hook.py --calls 500 --rounds 1

Variants, interleaved round by round (the median round is reported):

- ``session``: a bare ``requests.Session`` GET of ``/v0/runs/get``, ``response.json()``;
- ``session+parse``: the same plus ``AirplaneRun.from_api`` (what the hook returns), to show where the
  hook's cost goes;
- ``hook``: one ``AirplaneHook``, ``get_run`` on its keep-alive session;
- ``hook, new conn``: ``get_run`` with the hook's session closed after each call (a new TCP connection
  per call, as a hook built per call would have).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from airflow_provider_airplane.testing import start_standalone

API_KEY = "tkn_benchmark"


def _rate(call: Callable[[], object], calls: int) -> float:
    """Calls per second over ``calls`` calls."""
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return calls / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="AirplaneHook.get_run throughput against the emulator.")
    parser.add_argument("--calls", type=int, default=2000, help="calls per variant per round (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (3)")
    args = parser.parse_args(argv)

    emulator, url = start_standalone(api_key=API_KEY)
    home = tempfile.TemporaryDirectory(prefix="airplane-bench-")
    os.environ.update(
        {
            "AIRFLOW_HOME": home.name,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
            "AIRFLOW_CONN_AIRPLANE_DEFAULT": json.dumps(
                {"conn_type": "airplane", "host": url, "password": API_KEY}
            ),
        }
    )
    try:
        import requests

        from airflow_provider_airplane.hooks.airplane import AirplaneHook
        from airflow_provider_airplane.models import AirplaneRun
        from airflow_provider_airplane.testing import EmulatorClient

        EmulatorClient(url).add_task("hello", output={"rows": 3})
        hook = AirplaneHook()
        run_id = hook.execute_task("hello")
        fresh = AirplaneHook()
        session = requests.Session()
        headers = {"X-Airplane-API-Key": API_KEY, "Accept": "application/json"}

        def bare() -> object:
            answer = session.get(f"{url}/v0/runs/get", params={"id": run_id}, headers=headers, timeout=30)
            answer.raise_for_status()
            return answer.json()

        def bare_parse() -> object:
            return AirplaneRun.from_api(bare())  # type: ignore[arg-type]

        def new_connection() -> object:
            run = fresh.get_run(run_id)
            fresh.close()
            return run

        variants: dict[str, Callable[[], object]] = {
            "session": bare,
            "session+parse": bare_parse,
            "hook": lambda: hook.get_run(run_id),
            "hook, new conn": new_connection,
        }
        for call in variants.values():  # warm up: connections, the connection lookup, code paths
            for _ in range(50):
                call()
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, call in variants.items():
                rates[name].append(_rate(call, args.calls))
    finally:
        emulator.send_signal(signal.SIGINT)
        emulator.wait(timeout=30)
        home.cleanup()

    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"get_run against a standalone emulator: {args.rounds} rounds x {args.calls} calls, median round")
    print(f"{'variant':<15} {'calls/s':>8} {'ms/call':>8}")
    for name, rate in median.items():
        print(f"{name:<15} {rate:>8.0f} {1000 / rate:>8.3f}")
    reuse = median["hook"] / median["hook, new conn"]
    print(f"connection reuse: {reuse:.2f}x the calls/s of a new connection per call")
    overhead, parsing = median["session"] / median["hook"], median["session"] / median["session+parse"]
    print(
        f"hook overhead: {overhead:.2f}x the time per call of a bare requests.Session "
        f"({parsing:.2f}x for the session plus the same AirplaneRun parsing)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
