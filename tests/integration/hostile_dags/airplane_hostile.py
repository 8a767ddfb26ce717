"""DAGs of the hostile suite (tests/integration/test_hostile.py): what a user runs, against two realistic
emulators whose clocks are 30 s ahead of the machine's (``airplane_default``) and 30 s behind it
(``airplane_behind``). Every scenario runs on both; the emulator tasks are registered by the test.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_airplane.operators.airplane import (
    AirplaneCancelRunOperator,
    AirplaneExecuteTaskOperator,
    AirplaneGetRunOutputsOperator,
)
from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor
from airflow_provider_airplane.triggers.airplane import AirplaneRunEventTrigger
from airflow_provider_airplane.version_compat import AIRFLOW_V_3_3_PLUS

START = pendulum.datetime(2024, 1, 1, tz="UTC")
CONNS = ("airplane_default", "airplane_behind")
MAPPED = 20
POLL = 2.0
# Below 3.3 a watcher's cursor lives in the triggerer's memory: a lookback covers the SIGKILL's downtime
# (documented: the runs inside it are reported again). On 3.3 the cursor is in the asset state store.
EVENT_LOOKBACK = 0.0 if AIRFLOW_V_3_3_PLUS else 90.0


def mapped(prefix: str) -> list[dict[str, Any]]:
    """One slug per map index, half on each clock: each run's outputs name it, so a mix-up shows."""
    return [
        {"slug": f"{prefix}{i}", "airplane_conn_id": CONNS[i % 2], "param_values": {"index": i}}
        for i in range(MAPPED)
    ]


with DAG("hostile_execute", schedule=None, start_date=START, catchup=False, tags=["hostile"]):
    AirplaneExecuteTaskOperator.partial(
        task_id="worker", deferrable=False, poll_interval=POLL, show_logs=False, retries=0
    ).expand_kwargs(mapped("hostile_w"))
    AirplaneExecuteTaskOperator.partial(
        task_id="deferred", deferrable=True, poll_interval=POLL, show_logs=False, retries=0
    ).expand_kwargs(mapped("hostile_d"))

with DAG("hostile_sensors", schedule=None, start_date=START, catchup=False, tags=["hostile"]):
    for conn in CONNS:
        for mode in ("poke", "reschedule", "deferrable"):
            AirplaneRunSensor(
                task_id=f"{mode}_{conn}",
                run_id=f"{{{{ dag_run.conf['{mode}_{conn}'] }}}}",
                airplane_conn_id=conn,
                mode="reschedule" if mode == "reschedule" else "poke",
                deferrable=mode == "deferrable",
                # 6 s between reschedules: LocalExecutor fails a task whose poke's "success" arrives after
                # the next poke started, which a loaded 2-core machine does at 2 s.
                poke_interval=6.0 if mode == "reschedule" else POLL,
                timeout=900,
                retries=0,
            )

with DAG("hostile_operators", schedule=None, start_date=START, catchup=False, tags=["hostile"]):
    for conn in CONNS:
        AirplaneGetRunOutputsOperator(
            task_id=f"outputs_{conn}",
            run_id=f"{{{{ dag_run.conf['outputs_{conn}'] }}}}",
            airplane_conn_id=conn,
            retries=0,
        )
        AirplaneCancelRunOperator(
            task_id=f"cancel_{conn}",
            run_id=f"{{{{ dag_run.conf['cancel_{conn}'] }}}}",
            airplane_conn_id=conn,
            retries=0,
        )

with DAG("hostile_logs", schedule=None, start_date=START, catchup=False, tags=["hostile"]):
    for conn in CONNS:
        # In a worker the lines are streamed while the run goes on; deferred they are read once at the end.
        for name, deferrable in (("streamed", False), ("deferred", True)):
            AirplaneExecuteTaskOperator(
                task_id=f"{name}_{conn}",
                slug=f"hostile_chatty_{name}_{conn}",
                airplane_conn_id=conn,
                deferrable=deferrable,
                poll_interval=POLL,
                retries=0,
            )


def watcher(name: str, slug: str, conn: str) -> AssetWatcher:
    trigger = AirplaneRunEventTrigger(
        slug=slug, airplane_conn_id=conn, statuses=["Succeeded"], poll_interval=3, lookback=EVENT_LOOKBACK
    )
    return AssetWatcher(name=name, trigger=trigger)


# One watcher on one asset (the clock behind), and two watchers of two tasks on one asset (the clock ahead).
solo = Asset("hostile_solo", watchers=[watcher("hostile_solo_runs", "hostile_ev_solo", CONNS[1])])
pair = Asset(
    "hostile_pair",
    watchers=[
        watcher("hostile_pair_a_runs", "hostile_ev_a", CONNS[0]),
        watcher("hostile_pair_b_runs", "hostile_ev_b", CONNS[0]),
    ],
)


def consumer(watched: Asset) -> None:
    """A DAG scheduled on ``watched`` that hands on the run ids it was started for."""
    with DAG(
        f"{watched.name}_consumer",
        schedule=[watched],
        start_date=START,
        catchup=False,
        max_active_runs=16,
        tags=["hostile"],
    ):

        @task(retries=0)
        def seen(triggering_asset_events: Any = None) -> list[str]:
            events = triggering_asset_events[watched]
            return sorted(run["run_id"] for event in events for run in event.extra["payload"]["runs"])

        seen()


consumer(solo)
consumer(pair)
