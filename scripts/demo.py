"""`make demo`: run the example DAG with real Airflow against a local Airplane emulator.

Starts the emulator, prepares an AIRFLOW_HOME with SQLite inside the repo (.airflow/demo, git-ignored),
runs `airflow dags test example_airplane_execute`, prints what landed in XCom, stops the emulator.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from airflow_provider_airplane.testing import start_standalone

REPO = Path(__file__).resolve().parent.parent
HOME = REPO / ".airflow" / "demo"
DAG_ID = "example_airplane_execute"
API_KEY = "tkn_demo_local_key"


def airflow(env: dict[str, str], *args: str, log: Path) -> None:
    with log.open("a") as out:
        result = subprocess.run(
            ["airflow", *args], env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        print(log.read_text()[-6000:])
        sys.exit(f"`airflow {' '.join(args)}` failed (exit {result.returncode}); full log: {log}")


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
    for task_id, key, value in xcoms:
        shown = value.decode() if isinstance(value, bytes) else value
        print(f"  {task_id}.{key} = {json.dumps(json.loads(shown)) if shown else shown}")
    return 0 if state == "success" else 1


def main() -> int:
    HOME.mkdir(parents=True, exist_ok=True)
    log = HOME / "demo.log"
    log.write_text("")
    emulator, url = start_standalone(api_key=API_KEY, tasks=REPO / "example_dags" / "airplane_tasks.json")
    print(f"Airplane emulator serving {url}")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
        "AIRFLOW_CONN_AIRPLANE_DEFAULT": json.dumps(
            {"conn_type": "airplane", "host": url, "password": API_KEY, "extra": {"env_slug": "prod"}}
        ),
    }
    try:
        print("Preparing Airflow's SQLite database in .airflow/demo ...")
        airflow(env, "db", "migrate", log=log)
        print(f"Running DAG {DAG_ID} with `airflow dags test` ...")
        airflow(env, "dags", "test", DAG_ID, log=log)
        return show_xcoms(HOME / "airflow.db")
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
        print("Emulator stopped.")


if __name__ == "__main__":
    sys.exit(main())
