"""OpenLineage events and ``airplane.`` metrics of a real ``airflow dags test`` against the emulator.

One DAG run (a succeeded, a failed and a deferred task) in a subprocess, with the OpenLineage provider's
file transport and Airflow's statsd backend pointed at a UDP listener of the test: the events and the
packets are what a Marquez or a statsd server would receive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_airplane._openlineage import PRODUCER, SCHEMA_URL
from airflow_provider_airplane.testing import AirplaneEmulator
from tests.statsd_listener import StatsdListener

pytestmark = pytest.mark.slow

DAG_ID = "test_airplane_observability"


@pytest.fixture
def statsd() -> Iterator[StatsdListener]:
    listener = StatsdListener()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def dag_run(
    tmp_path_factory: pytest.TempPathFactory, airflow_db_module: None
) -> tuple[list[dict[str, Any]], StatsdListener]:
    """Run the DAG once for every test of the module: (OpenLineage events, statsd listener)."""
    from tests.conftest import API_KEY, connection_json

    events_file = tmp_path_factory.mktemp("openlineage") / "events.jsonl"
    listener = StatsdListener()
    with AirplaneEmulator(api_key=API_KEY) as emu:
        emu.add_task("obs_ok", duration=1.0, output={"rows": 3})
        emu.add_task("obs_fails", duration=0.5, fail=True, error="disk full")
        env = {
            **os.environ,
            "AIRFLOW_CONN_AIRPLANE_DEFAULT": connection_json(emu),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(events_file), "append": True}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "obs_test",
            **listener.env(),
        }
        done = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", DAG_ID],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    listener.close()
    output = done.stdout + done.stderr
    assert API_KEY not in output
    assert events_file.exists(), output[-5000:]
    text = events_file.read_text()
    assert API_KEY not in text
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    return events, listener


@pytest.fixture(scope="module")
def airflow_db_module() -> None:
    from airflow.utils import db

    db.resetdb()


def task_events(events: list[dict[str, Any]], task: str, state: str) -> list[dict[str, Any]]:
    return [e for e in events if e["job"]["name"] == f"{DAG_ID}.{task}" and e["eventType"] == state]


def airplane_events(events: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
    return [e for e in events if e["job"]["name"].startswith("airplane.") and e["eventType"] == state]


@pytest.mark.parametrize("task", ["succeeds", "deferred"])
def test_complete_event_carries_the_airplane_run(
    dag_run: tuple[list[dict[str, Any]], StatsdListener], task: str
) -> None:
    events, _ = dag_run
    [complete] = task_events(events, task, "COMPLETE")
    facets = complete["run"]["facets"]
    run = facets["airplane_run"]
    assert run["_producer"] == PRODUCER
    assert run["_schemaURL"] == SCHEMA_URL
    assert run["runId"].startswith("run")
    assert run["runUrl"] == f"https://app.example.test/runs/{run['runId']}"  # the task's link
    assert run["taskSlug"] == "obs_ok"
    assert run["environment"] == "prod"
    assert run["status"] == "Succeeded"
    assert run["createdAt"] < run["endedAt"]
    assert run["taskId"]
    assert facets["externalQuery"]["externalQueryId"] == run["runId"]
    assert facets["externalQuery"]["source"].startswith("127.0.0.1:")
    assert "errorMessage" not in facets
    assert "unknownSourceAttribute" not in facets


def test_fail_event_carries_the_run_error(dag_run: tuple[list[dict[str, Any]], StatsdListener]) -> None:
    events, _ = dag_run
    [fail] = task_events(events, "fails", "FAIL")
    facets = fail["run"]["facets"]
    assert facets["airplane_run"]["status"] == "Failed"
    message = facets["errorMessage"]["message"]
    assert f"Airplane run {facets['airplane_run']['runId']} failed: disk full" in message
    assert facets["airplane_run"]["runUrl"] in message


def test_airplane_run_is_a_child_job_of_type_airplane_task(
    dag_run: tuple[list[dict[str, Any]], StatsdListener],
) -> None:
    """Each Airplane run: START at its creation and COMPLETE/FAIL at its end, parent = the Airflow task."""
    events, _ = dag_run
    ends = airplane_events(events, "COMPLETE") + airplane_events(events, "FAIL")
    assert sorted(e["eventType"] for e in ends) == ["COMPLETE", "COMPLETE", "FAIL"]
    assert len(airplane_events(events, "START")) == 3
    parents = set()
    for event in ends:
        job_type = event["job"]["facets"]["jobType"]
        assert (job_type["integration"], job_type["jobType"], job_type["processingType"]) == (
            "AIRPLANE",
            "TASK",
            "BATCH",
        )
        assert (
            event["job"]["name"] == "airplane.prod.obs_ok"
            or event["job"]["name"] == "airplane.prod.obs_fails"
        )
        facets = event["run"]["facets"]
        assert event["eventTime"] == facets["airplane_run"]["endedAt"]
        parents.add(facets["parent"]["job"]["name"])
        if event["eventType"] == "FAIL":
            assert "disk full" in facets["errorMessage"]["message"]
    assert parents == {f"{DAG_ID}.succeeds", f"{DAG_ID}.fails", f"{DAG_ID}.deferred"}


def test_facet_matches_its_shipped_schema(dag_run: tuple[list[dict[str, Any]], StatsdListener]) -> None:
    import jsonschema

    events, _ = dag_run
    schema = json.loads(
        (Path(__file__).parents[2] / "airflow_provider_airplane/facets/AirplaneRunFacet.json").read_text()
    )
    facet_schema = schema["$defs"]["AirplaneRunFacet"]["allOf"][1]
    for event in task_events(events, "succeeds", "COMPLETE") + task_events(events, "fails", "FAIL"):
        jsonschema.validate(event["run"]["facets"]["airplane_run"], facet_schema)


def test_worker_metrics(dag_run: tuple[list[dict[str, Any]], StatsdListener]) -> None:
    _, statsd = dag_run
    names = statsd.names()
    expected = {
        "airflow.airplane.run.started",
        "airflow.airplane.run.ended.succeeded",
        "airflow.airplane.run.ended.failed",
        "airflow.airplane.run.queue_time",
        "airflow.airplane.run.duration.succeeded",
        "airflow.airplane.api.request.tasks_execute.2xx",
        "airflow.airplane.api.request.runs_get.2xx",
    }
    assert expected <= names, sorted(names)
    started = [line for line in statsd.lines if line.startswith("airflow.airplane.run.started:")]
    assert started == ["airflow.airplane.run.started:1|c"] * 3
    # dags test runs the trigger inline: the shared watcher's waits gauge goes up and back to 0.
    waits = [line for line in statsd.lines if line.startswith("airflow.airplane.watcher.waits:")]
    assert waits[0] == "airflow.airplane.watcher.waits:1|g"
    assert waits[-1] == "airflow.airplane.watcher.waits:0|g"
