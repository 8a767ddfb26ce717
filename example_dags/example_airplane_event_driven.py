"""Start a DAG whenever the Airplane task ``refresh_customers`` succeeds, however started.

Someone runs the task in Airplane (by hand, on Airplane's own schedule, from a runbook);
the asset's watcher sees the finished run in the triggerer and Airflow runs the DAGs
scheduled on the asset. One asset event carries every run a poll found, so the DAG maps
over all runs of all its triggering events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_airplane.hooks.airplane import AirplaneHook
from airflow_provider_airplane.triggers.airplane import AirplaneRunEventTrigger

customers_refreshed = Asset(
    "airplane_refresh_customers",
    watchers=[
        AssetWatcher(
            name="refresh_customers_runs",
            trigger=AirplaneRunEventTrigger(
                slug="refresh_customers", statuses=["Succeeded"], poll_interval=5
            ),
        )
    ],
)

with DAG(
    dag_id="example_airplane_event_driven",
    schedule=[customers_refreshed],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "airplane"],
) as dag:

    @task
    def finished_runs(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """Every run of every event that triggered this DAG run, oldest end first."""
        events = (
            triggering_asset_events[customers_refreshed]
            if triggering_asset_events
            else []
        )
        runs = [run for event in events for run in event.extra["payload"]["runs"]]
        return sorted(runs, key=lambda run: run["ended_at"])

    @task
    def report(run: dict[str, Any]) -> dict[str, Any]:
        outputs = AirplaneHook().get_run_outputs(run["run_id"])
        print(f"Airplane run {run['run_id']} ({run['run_url']})")
        print(f"params={run['param_values']} outputs={outputs}")
        return {
            "run_id": run["run_id"],
            "param_values": run["param_values"],
            "outputs": outputs,
        }

    report.expand(run=finished_runs())
