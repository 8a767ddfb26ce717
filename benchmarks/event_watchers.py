"""Requests per poll interval for N ``AirplaneRunEventTrigger`` watchers on one environment.

    .venv/bin/python benchmarks/event_watchers.py             # N = 1, 10, 50; 10 intervals of 2 s each
    .venv/bin/python benchmarks/event_watchers.py --quick     # 4 intervals each
    .venv/bin/python benchmarks/event_watchers.py --n 100 --poll-interval 5

A standalone emulator process serves 50+ tasks; each watcher watches its own task. While they run, one
run of every watched task is started per interval (so every watcher has something to report). Modes:

- per-watcher: each trigger's ``run()`` polls ``runs/list`` for its task (every Airflow version, and what
  3.3 does for a trigger without a shared stream);
- shared (Airflow 3.3 only): the triggers subscribe to Airflow's ``SharedStreamManager`` as the triggerer
  does, so one env-wide listing per interval feeds them all.

Printed per N and mode: ``runs/list`` requests per interval and listings per interval (a listing pages
through every run that changed in its window, so one listing may take several requests), counted by the
emulator over the measured intervals after one interval of warm-up; and runs reported / runs started, to
show nothing was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from airflow_provider_airplane.testing import EmulatorClient, start_standalone

API_KEY = "tkn_benchmark"
LIST = "/v0/runs/list"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10, 50], help="watchers (1 10 50)")
    parser.add_argument("--poll-interval", type=float, default=2.0, help="seconds between polls (2)")
    parser.add_argument("--intervals", type=int, default=10, help="measured intervals per case (10)")
    parser.add_argument("--quick", action="store_true", help="4 measured intervals per case")
    args = parser.parse_args(argv)
    if args.quick:
        args.intervals = 4
    return args


def _start_runs(url: str, slugs: list[str]) -> list[str]:
    ids = []
    with requests.Session() as session:
        for slug in slugs:
            response = session.post(
                f"{url}/v0/tasks/execute",
                headers={"X-Airplane-API-Key": API_KEY},
                json={"slug": slug},
                timeout=10,
            )
            response.raise_for_status()
            ids.append(response.json()["runID"])
    return ids


def _listings(client: EmulatorClient) -> tuple[int, int]:
    """``runs/list`` requests so far, and how many of them were first pages (one per listing)."""
    log = [entry for entry in client.request_log() if entry["path"] == LIST]
    return len(log), sum(1 for entry in log if entry["query"].get("page", "0") == "0")


async def _case(url: str, n: int, mode: str, args: argparse.Namespace) -> tuple[float, float, int, int]:
    """Requests and listings per interval, runs reported, runs started."""
    from airflow_provider_airplane.triggers.airplane import AirplaneRunEventTrigger

    client = EmulatorClient(url)
    client.reset()
    slugs = [f"job{i}" for i in range(n)]
    triggers = [AirplaneRunEventTrigger(slug=slug, poll_interval=args.poll_interval) for slug in slugs]
    reported: set[str] = set()
    manager: Any = None

    async def drain(stream: Any) -> None:
        async for event in stream:
            reported.update(run["run_id"] for run in event.payload["runs"])

    if mode == "shared":
        from airflow.triggers.shared_stream import SharedStreamManager

        manager = SharedStreamManager()
        streams = [
            t.filter_shared_stream(manager.subscribe(trigger_id=i, trigger=t, key=t.shared_stream_key()))
            for i, t in enumerate(triggers)
        ]
    else:
        streams = [t.run() for t in triggers]
    tasks = [asyncio.ensure_future(drain(stream)) for stream in streams]
    started: list[str] = []
    await asyncio.sleep(args.poll_interval)  # warm-up: every watcher has polled once
    requests_before, listings_before = _listings(client)
    begin = time.monotonic()
    for _ in range(args.intervals):
        started += await asyncio.to_thread(_start_runs, url, slugs)
        await asyncio.sleep(args.poll_interval)
    intervals = (time.monotonic() - begin) / args.poll_interval
    requests_after, listings_after = _listings(client)
    deadline = time.monotonic() + 6 * args.poll_interval + 10  # let the last runs be reported
    while not set(started) <= reported and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if manager is not None:
        await manager.stop_all()
    return (
        (requests_after - requests_before) / intervals,
        (listings_after - listings_before) / intervals,
        len(set(started) & reported),
        len(started),
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    home = Path(tempfile.mkdtemp(prefix="airplane-bench-events-"))
    tasks = home / "tasks.json"
    tasks.write_text(json.dumps({f"job{i}": {"duration": 0.5} for i in range(max(args.n))}))
    emulator, url = start_standalone(api_key=API_KEY, tasks=tasks)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
            "AIRFLOW_CONN_AIRPLANE_DEFAULT": json.dumps(
                {"conn_type": "airplane", "host": url, "password": API_KEY}
            ),
        }
    )
    from airflow_provider_airplane.version_compat import AIRFLOW_V_3_3_PLUS

    modes = ["per-watcher", "shared"] if AIRFLOW_V_3_3_PLUS else ["per-watcher"]
    import airflow

    print(
        f"Airflow {airflow.__version__}; poll interval {args.poll_interval:g} s; "
        f"{args.intervals} measured intervals per case; one run per watched task per interval"
    )
    print(f"{'watchers':>8}  {'mode':<12} {'requests/interval':>18} {'listings/interval':>18}  runs reported")
    try:
        for n in args.n:
            for mode in modes:
                per_interval, listings, got, total = asyncio.run(_case(url, n, mode, args))
                print(
                    f"{n:>8}  {mode:<12} {per_interval:>18.1f} {listings:>18.1f}  {got} / {total}", flush=True
                )
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    if not AIRFLOW_V_3_3_PLUS:
        print("(shared streams need Airflow 3.3: below it every watcher polls on its own)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
