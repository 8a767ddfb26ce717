"""One real Airflow stack (api-server, scheduler, dag-processor, triggerer) and emulator for the module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_stack import AirflowStack

from airflow_provider_airplane.testing import EmulatorClient

DAGS = Path(__file__).resolve().parent / "dags"
EXAMPLE_EVENT_DAG = Path(__file__).resolve().parents[2] / "example_dags" / "example_airplane_event_driven.py"
API_KEY = "tkn_integration_5ecret"

# The Airplane tasks the integration DAGs run, as the standalone emulator's --tasks file.
EMULATOR_TASKS: dict[str, dict[str, Any]] = {
    "quick": {"output": {"rows": 3, "source": "emulator"}, "duration": 8},
    "medium": {"output": {"survived": "triggerer restart"}, "duration": 25},
    "endless": {"duration": 900},
    # Watched by an asset (dags/airplane_events.py) and by the shipped event-driven example DAG.
    "events_job": {"output": {"ok": True}, "duration": 1},
    "refresh_customers": {"output": {"rows": 3, "table": "customers"}, "duration": 1},
}


@pytest.fixture(scope="session")
def airflow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    stack = AirflowStack(
        home=tmp_path_factory.mktemp("airflow-stack"),
        dags_source=DAGS,
        api_key=API_KEY,
        emulator_tasks=EMULATOR_TASKS,
        extra_dags=(EXAMPLE_EVENT_DAG,),
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def emulator_client(airflow_stack: AirflowStack) -> EmulatorClient:
    """Admin client of the standalone emulator the Airflow components talk to."""
    return EmulatorClient(airflow_stack.emulator_url)
