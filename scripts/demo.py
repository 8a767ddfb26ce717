"""`make demo`: run the example DAG with real Airflow against a local Airplane emulator.

Starts the emulator, prepares an AIRFLOW_HOME with SQLite inside the repo (.airflow/demo, git-ignored),
runs `airflow dags test example_airplane_execute`, prints the Airplane run's log lines the task streamed
and what landed in XCom, stops the emulator. The connection's `app_url` is the emulator itself, so the
run link it prints opens the emulator's run page; with `--keep-serving` (the default when run from a
terminal) the emulator serves it until you press Enter.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from airflow_provider_airplane.testing import start_standalone

REPO = Path(__file__).resolve().parent.parent
HOME = REPO / ".airflow" / "demo"
DAG_ID = "example_airplane_execute"
API_KEY = "tkn_demo_local_key"
# A run's line in the task log: "<time> [info ] [airplane] <text> [airflow.task.operators...] loc=..."
RUN_LINE = re.compile(r"\[airplane\] (.*?)(?: +\[airflow\.task\.[^\]]*\].*)?$")


def airflow(env: dict[str, str], *args: str, log: Path) -> None:
    with log.open("a") as out:
        result = subprocess.run(
            ["airflow", *args], env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        print(log.read_text()[-6000:])
        sys.exit(f"`airflow {' '.join(args)}` failed (exit {result.returncode}); full log: {log}")


def show_run_logs(log: Path) -> None:
    lines = [match.group(1) for line in log.read_text().splitlines() if (match := RUN_LINE.search(line))]
    print(f"\nThe Airplane run's log, as the task wrote it ({len(lines)} lines):")
    for text in lines:
        print(f"  [airplane] {text}")


def show_xcoms(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        run_id, state = conn.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
        ).fetchone()
        tis = conn.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ? ORDER BY task_id",
            (DAG_ID, run_id),
        ).fetchall()
        xcoms = conn.execute(
            "SELECT task_id, key, value FROM xcom WHERE dag_id = ? AND run_id = ? ORDER BY task_id, key",
            (DAG_ID, run_id),
        ).fetchall()
    print(f"\nDAG run {run_id}: {state}")
    for task_id, ti_state in tis:
        print(f"  task {task_id}: {ti_state}")
    print("XCom:")
    run_url = None
    for task_id, key, value in xcoms:
        shown = value.decode() if isinstance(value, bytes) else value
        print(f"  {task_id}.{key} = {json.dumps(json.loads(shown)) if shown else shown}")
        if key == "airplane_run_url" and shown:
            run_url = json.loads(shown)
    if run_url:
        print(f"\nRun page (served by the emulator): {run_url}", flush=True)
    return 0 if state == "success" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--keep-serving",
        action=argparse.BooleanOptionalAction,
        default=sys.stdin.isatty(),
        help="keep the emulator (and the run page) up until Enter or end of input (default: on a terminal)",
    )
    parser.add_argument(
        "--home", type=Path, default=HOME, help=f"AIRFLOW_HOME to use (default {HOME.relative_to(REPO)})"
    )
    args = parser.parse_args(argv)
    home: Path = args.home
    home.mkdir(parents=True, exist_ok=True)
    log = home / "demo.log"
    log.write_text("")
    emulator, url = start_standalone(api_key=API_KEY, tasks=REPO / "example_dags" / "airplane_tasks.json")
    print(f"Airplane emulator serving {url}")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
        "AIRFLOW_CONN_AIRPLANE_DEFAULT": json.dumps(
            {
                "conn_type": "airplane",
                "host": url,
                "password": API_KEY,
                # Run links ("Airplane Run", airplane_run_url) open the emulator's run page.
                "extra": {"env_slug": "prod", "app_url": url},
            }
        ),
    }
    try:
        print(f"Preparing Airflow's SQLite database in {home} ...")
        airflow(env, "db", "migrate", log=log)
        print(f"Running DAG {DAG_ID} with `airflow dags test` ...")
        airflow(env, "dags", "test", DAG_ID, log=log)
        show_run_logs(log)
        status = show_xcoms(home / "airflow.db")
        if args.keep_serving:
            print("The emulator keeps serving the run page; press Enter to stop it.", flush=True)
            sys.stdin.readline()
        return status
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
        print("Emulator stopped.")


if __name__ == "__main__":
    sys.exit(main())
