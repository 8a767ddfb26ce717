"""Real Airflow stacks and their emulators, started once for the tests that use them.

``airflow_stack``: api-server, scheduler (LocalExecutor), dag-processor, triggerer on SQLite.
``cluster_stack``: the production shape, PostgreSQL + Redis + CeleryExecutor, two workers, two triggerers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_stack import AirflowStack
from cluster_stack import METRICS, ClusterStack
from hostile_report import SUMMARY

from airflow_provider_airplane.testing import EmulatorClient
from tests.statsd_listener import StatsdListener

HERE = Path(__file__).resolve().parent
DAGS = HERE / "dags"
CLUSTER_DAGS = HERE / "cluster_dags"
EXAMPLE_EVENT_DAG = HERE.parents[1] / "example_dags" / "example_airplane_event_driven.py"
API_KEY = "tkn_integration_5ecret"

# The Airplane tasks the integration DAGs run, as the standalone emulator's --tasks file.
EMULATOR_TASKS: dict[str, dict[str, Any]] = {
    # Runs until the test ends it (EmulatorClient.end_runs), so it is still active however slow the stack.
    "held": {"output": {"rows": 3, "source": "emulator"}, "duration": 900},
    "medium": {"output": {"survived": "triggerer restart"}, "duration": 25},
    "endless": {"duration": 900},
    # Watched by an asset (dags/airplane_events.py) and by the shipped event-driven example DAG.
    "events_job": {"output": {"ok": True}, "duration": 1},
    "refresh_customers": {"output": {"rows": 3, "table": "customers"}, "duration": 1},
}


@pytest.fixture(scope="session")
def statsd_listener() -> Iterator[StatsdListener]:
    """Where the stack's statsd metrics go (only the provider's ``airplane.`` lines are kept)."""
    listener = StatsdListener(keep=".airplane.")
    yield listener
    listener.close()


@pytest.fixture(scope="session")
def airflow_stack(
    tmp_path_factory: pytest.TempPathFactory, statsd_listener: StatsdListener
) -> Iterator[AirflowStack]:
    stack = AirflowStack(
        home=tmp_path_factory.mktemp("airflow-stack"),
        dags_source=DAGS,
        api_key=API_KEY,
        emulator_tasks=EMULATOR_TASKS,
        extra_dags=(EXAMPLE_EVENT_DAG,),
        extra_env=statsd_listener.env(),
        # Its own prefix, so a test tells the triggerer's metrics from the workers' ("airflow.").
        component_env={"triggerer": {"AIRFLOW__METRICS__STATSD_PREFIX": "triggerer"}},
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


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterStack]:
    """One production-shaped stack for all cluster scenarios (one module), gone before other stacks start."""
    home = tmp_path_factory.mktemp("cluster-stack")
    stack = ClusterStack(
        home=home,
        dags_source=CLUSTER_DAGS,
        api_key=API_KEY,
        emulator_tasks={},
        extra_env={"CLUSTER_RESUME_LOG": str(home / "resumes.jsonl")},
    )
    began = time.monotonic()
    stack.start()
    METRICS["stack start-up"] = f"{time.monotonic() - began:.0f} s"
    try:
        yield stack
    finally:
        METRICS["peak RSS of the stack (sampled every 2 s)"] = f"{stack.peak_rss_bytes / 2**30:.2f} GiB"
        stack.stop()
        METRICS["suite wall time (start-up to teardown)"] = f"{time.monotonic() - began:.0f} s"
        METRICS["logs"] = str(home / "logs")


@pytest.fixture(scope="module")
def cluster_emulator(cluster_stack: ClusterStack) -> EmulatorClient:
    return EmulatorClient(cluster_stack.emulator_url)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from airflow import __version__

    if SUMMARY:
        terminalreporter.section(f"hostile suite (Airflow {__version__})")
        for name, value in SUMMARY.items():
            terminalreporter.write_line(f"HOSTILE {name}: {value}")
    if METRICS:
        terminalreporter.section(f"cluster stack metrics (Airflow {__version__})")
        for name, value in METRICS.items():
            terminalreporter.write_line(f"CLUSTER {name}: {value}")
