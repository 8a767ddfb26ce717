"""What showing an Airplane run's log costs: requests and wall time of one run that writes 1,000 lines,
with ``show_logs=True`` and ``False``, waiting in a worker and deferred.

    .venv/bin/python benchmarks/run_logs.py                       # 1,000 lines over 20 s, poll 5 s, 3 rounds
    .venv/bin/python benchmarks/run_logs.py --lines 10000 --duration 30 --rounds 1

One standalone emulator process serves every round. Each mode runs ``AirplaneExecuteTaskOperator`` in a
fresh child process (its task log, the lines included, goes to a file): ``execute`` in the worker; or
``execute`` until it defers, the trigger's ``run()`` until its event, then ``execute_complete``, as the
triggerer and a worker would. Airflow's scheduling around the task is the same in both settings and is
left out. Printed per mode, median of the rounds: API requests by path (counted by the emulator), the
wall time of the task (start to return), and the lines that reached the task log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_provider_airplane.testing import EmulatorClient, start_standalone

API_KEY = "tkn_benchmark"
SLUG = "chatty"
MODES = ("worker", "worker, show_logs=False", "deferred", "deferred, show_logs=False")
PATHS = ("/v0/tasks/execute", "/v0/runs/get", "/v0/runs/getLogs", "/v0/runs/getOutputs")


class _TI:
    """The slice of a task instance the operator touches outside Airflow's task runner."""

    dag_id, task_id, run_id, map_index, try_number = "bench", "chatty", "manual__bench", -1, 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def _child(mode: str, poll_interval: float, result: Path) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator

    deferred = mode.startswith("deferred")
    task = AirplaneExecuteTaskOperator(
        task_id=f"bench_{int(time.time() * 1000)}",
        slug=SLUG,
        poll_interval=poll_interval,
        deferrable=deferred,
        show_logs="show_logs=False" not in mode,
        idempotency_key=f"bench-{time.time_ns()}",
    )
    ti = _TI()
    context: Any = {"ti": ti, "task_instance": ti}
    started = time.perf_counter()
    try:
        task.execute(context)
    except TaskDeferred as defer:
        event = asyncio.run(_first_event(defer.trigger))
        task.execute_complete(context, event)
    result.write_text(json.dumps({"seconds": time.perf_counter() - started}))


async def _first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise RuntimeError("the trigger ended without an event")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Requests and wall time of showing a run's log.")
    parser.add_argument("--lines", type=int, default=1000, help="lines the run writes (1000)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds the run lasts (20)")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="operator poll interval (5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (3)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.poll_interval, args.result)
        return 0

    emulator, url = start_standalone(api_key=API_KEY)
    client = EmulatorClient(url)
    client.add_task(SLUG, logs=args.lines, duration=args.duration, output={"ok": True})
    home = tempfile.TemporaryDirectory(prefix="airplane-bench-")
    env = {
        **os.environ,
        "AIRFLOW_HOME": home.name,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_AIRPLANE_DEFAULT": json.dumps(
            {"conn_type": "airplane", "host": url, "password": API_KEY}
        ),
    }
    print(
        f"One run writing {args.lines} lines over {args.duration:g} s, "
        f"poll interval {args.poll_interval:g} s, median of {args.rounds} rounds"
    )
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    try:
        for _ in range(args.rounds):
            for mode in MODES:
                client.reset()
                result = Path(home.name) / "result.json"
                log = Path(home.name) / "task.log"
                with log.open("w") as out:
                    subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--child",
                            mode,
                            "--result",
                            str(result),
                            "--poll-interval",
                            str(args.poll_interval),
                        ],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        check=True,
                    )
                counts = client.request_counts()
                rows[mode].append(
                    {
                        "seconds": json.loads(result.read_text())["seconds"],
                        "lines": log.read_text().count("[airplane] chatty: line"),
                        **{path: counts.get(path, 0) for path in PATHS},
                    }
                )
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
        home.cleanup()

    print("| mode | execute | runs/get | runs/getLogs | getOutputs | requests | wall s | lines in task log |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode, runs in rows.items():
        med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        total = sum(med[path] for path in PATHS)
        cells = " | ".join(f"{med[path]:g}" for path in PATHS)
        print(f"| {mode} | {cells} | {total:g} | {med['seconds']:.2f} | {med['lines']:g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
