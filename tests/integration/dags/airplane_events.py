"""An asset watched by AirplaneRunEventTrigger and a DAG scheduled on it (test_events_in_airflow.py).

The emulator task ``events_job`` is registered by ``tests/integration/conftest.py``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_airplane.triggers.airplane import AirplaneRunEventTrigger

events_asset = Asset(
    "it_airplane_events",
    watchers=[
        AssetWatcher(
            name="it_airplane_events_runs",
            trigger=AirplaneRunEventTrigger(slug="events_job", statuses=["Succeeded"], poll_interval=3),
        )
    ],
)

with DAG(
    "it_events_consumer",
    schedule=[events_asset],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["integration"],
):

    @task(retries=0)
    def seen(triggering_asset_events: Any = None) -> list[str]:
        """The Airplane run ids this DAG run was started for."""
        events = triggering_asset_events[events_asset]
        return sorted(run["run_id"] for event in events for run in event.extra["payload"]["runs"])

    seen()
