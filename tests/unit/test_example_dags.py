"""The example DAGs parse, and each runs unchanged with ``dag.test()`` against the emulator."""

from __future__ import annotations

import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_airplane.testing import AirplaneEmulator

EXAMPLES = {
    "example_airplane_execute",
    "example_airplane_sensor",
    "example_airplane_mapped",
    "example_airplane_failure",
    "example_airplane_timeout",
    "example_airplane_deferrable",
    "example_airplane_event_driven",
}
CANCEL = "/v0/runs/cancel"
RunDag = Callable[..., Any]
REPO = Path(__file__).resolve().parents[2]


def url(run_id: str) -> str:
    return f"https://app.example.test/runs/{run_id}"


def test_examples_parse_without_import_errors(dags_folder_bag: Any) -> None:
    bag = dags_folder_bag
    assert bag.import_errors == {}
    assert set(bag.dag_ids) >= EXAMPLES
    shipped = {p.stem for p in (REPO / "example_dags").glob("*.py")}
    assert shipped == EXAMPLES


def assert_run_xcoms(result: Any, task_id: str, map_index: int = -1) -> str:
    """The run id/URL XComs and the link XCom agree; returns the run id."""
    run_id = result.xcom(task_id, "airplane_run_id", map_index)
    assert run_id
    assert result.xcom(task_id, "airplane_run_url", map_index) == url(run_id)
    assert result.xcom(task_id, "_link_AirplaneRunLink", map_index) == url(run_id)
    return str(run_id)


@pytest.mark.slow
def test_execute_example(example_emulator: AirplaneEmulator, run_dag: RunDag) -> None:
    result = run_dag("example_airplane_execute", conf={"segment": "smb"})
    assert result.state == "success"
    run_id = assert_run_xcoms(result, "refresh_customers")
    assert result.xcom("refresh_customers") == {"rows": 3, "table": "customers"}
    assert result.xcom("report") == "refreshed 3 rows of customers"
    (run,) = example_emulator.runs()
    assert run["id"] == run_id
    assert run["paramValues"] == {"segment": "smb", "limit": 100}  # rendered from params, JSON types kept


@pytest.mark.slow
def test_sensor_example(example_emulator: AirplaneEmulator, run_dag: RunDag) -> None:
    result = run_dag("example_airplane_sensor")
    assert result.state == "success"
    run_id = assert_run_xcoms(result, "start_refresh")
    assert result.xcom("start_refresh") == run_id  # wait_for_completion=False returns the run id
    assert assert_run_xcoms(result, "wait_for_refresh") == run_id
    assert assert_run_xcoms(result, "get_outputs") == run_id
    assert result.xcom("get_outputs") == {"rows": 3, "table": "customers"}
    assert result.xcom("use") == 3
    assert example_emulator.request_counts().get(CANCEL, 0) == 0


@pytest.mark.slow
def test_mapped_example(example_emulator: AirplaneEmulator, run_dag: RunDag) -> None:
    result = run_dag("example_airplane_mapped")
    assert result.state == "success"
    run_ids = {assert_run_xcoms(result, "score_customer", i) for i in range(3)}
    assert all(result.state_of("score_customer", i) == "success" for i in range(3))
    assert len(run_ids) == 3
    assert sorted(r["paramValues"]["customer"] for r in example_emulator.runs()) == [
        "acme",
        "globex",
        "initech",
    ]
    assert result.xcom("average") == pytest.approx(0.87)


@pytest.mark.slow
def test_failure_example(example_emulator: AirplaneEmulator, run_dag: RunDag) -> None:
    result = run_dag("example_airplane_failure")
    assert result.state_of("nightly_report") == "failed"
    assert result.xcom("nightly_report") is None
    run_id = assert_run_xcoms(result, "nightly_report")
    assert result.state_of("alert") == "success"
    assert result.xcom("alert") == f"nightly_report failed, see {url(run_id)}"
    (run,) = example_emulator.runs()
    assert run["status"] == "Failed"
    assert example_emulator.request_counts().get(CANCEL, 0) == 0


@pytest.mark.slow
def test_timeout_example_cancels(example_emulator: AirplaneEmulator, run_dag: RunDag) -> None:
    result = run_dag("example_airplane_timeout")
    assert result.state == "failed"
    assert result.state_of("export_with_timeout") == "failed"
    timed_out = assert_run_xcoms(result, "export_with_timeout")
    assert result.state_of("cancel_export") == "success"
    assert result.xcom("cancel_export") == "Cancelled"
    explicit = assert_run_xcoms(result, "cancel_export")
    assert explicit == result.xcom("start_export")
    statuses = {r["id"]: r["status"] for r in example_emulator.runs()}
    assert statuses == {timed_out: "Cancelled", explicit: "Cancelled"}
    assert example_emulator.request_counts()[CANCEL] == 2


@pytest.mark.slow
def test_deferrable_example(example_emulator: AirplaneEmulator, run_dag: RunDag) -> None:
    result = run_dag("example_airplane_deferrable")
    assert result.state == "success"
    assert_run_xcoms(result, "refresh_customers")
    assert result.xcom("refresh_customers") == {"rows": 3, "table": "customers"}
    assert result.xcom("rows") == 3
    score_run = assert_run_xcoms(result, "start_score")
    assert assert_run_xcoms(result, "watch_score") == score_run
    assert result.state_of("watch_score") == "success"
    assert example_emulator.request_counts().get(CANCEL, 0) == 0


def test_event_driven_example_is_scheduled_on_the_watched_asset(dags_folder_bag: Any) -> None:
    """Its run against the emulator is in tests/integration/test_events_in_airflow.py (needs a triggerer)."""
    assert "example_airplane_event_driven" in dags_folder_bag.dag_ids
    module = runpy.run_path(str(REPO / "example_dags" / "example_airplane_event_driven.py"))
    asset = module["customers_refreshed"]
    assert module["dag"].schedule == [asset]
    (watcher,) = asset.watchers
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath.endswith("AirplaneRunEventTrigger")
    assert kwargs["slug"] == "refresh_customers"
    assert kwargs["statuses"] == ["Succeeded"]
