"""Event-driven scheduling in a real Airflow: an asset watched by AirplaneRunEventTrigger in the triggerer,
a DAG scheduled on it, runs started in the standalone emulator as someone in Airplane would.

Checks that every finished run lands in exactly one asset event and in the payload one DAG run saw, that
no DAG run is left waiting, and what a SIGKILL of the triggerer does: on Airflow 3.3 (cursor in the asset
state store) the runs that ended while it was down arrive once and nothing old fires again; below 3.3
(cursor in memory, lookback 0) they are missed, as documented, and nothing old fires again either.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import pytest
import requests
from airflow_stack import AirflowStack, wait_until

from airflow_provider_airplane.testing import EmulatorClient
from airflow_provider_airplane.version_compat import AIRFLOW_V_3_3_PLUS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ASSET = "it_airplane_events"
DAG_ID = "it_events_consumer"
SLUG = "events_job"
EXAMPLE_DAG = "example_airplane_event_driven"


def start_runs(stack: AirflowStack, slug: str, count: int, **params: Any) -> list[str]:
    """Start runs through the emulator's public API, as Airplane's UI or schedule would."""
    ids = []
    for _ in range(count):
        response = requests.post(
            f"{stack.emulator_url}/v0/tasks/execute",
            headers={"X-Airplane-API-Key": stack.api_key},
            json={"slug": slug, "paramValues": params},
            timeout=10,
        )
        response.raise_for_status()
        ids.append(response.json()["runID"])
    return ids


def wait_ended(emulator: EmulatorClient, run_ids: list[str]) -> None:
    def probe() -> bool | None:
        statuses = {run["id"]: run["status"] for run in emulator.runs()}
        return True if all(statuses[run_id] == "Succeeded" for run_id in run_ids) else None

    wait_until(probe, timeout=30, what=f"runs {run_ids} finished")


def asset_events(stack: AirflowStack) -> list[dict[str, Any]]:
    assets = stack.read("/assets", name_pattern=ASSET)["assets"]
    (asset_id,) = [asset["id"] for asset in assets if asset["name"] == ASSET]
    body = stack.read("/assets/events", asset_id=asset_id, limit=100)
    events: list[dict[str, Any]] = body["asset_events"]
    return events


def runs_in_events(stack: AirflowStack) -> list[str]:
    """Run ids over all asset events, repeats kept."""
    return [run["run_id"] for event in asset_events(stack) for run in event["extra"]["payload"]["runs"]]


def dag_runs(stack: AirflowStack, dag_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = stack.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 1000})[
        "dag_runs"
    ]
    return runs


def runs_seen_by_dag_runs(stack: AirflowStack) -> list[str]:
    """Run ids over the payloads every finished DAG run saw, repeats kept."""
    seen: list[str] = []
    for dag_run in dag_runs(stack, DAG_ID):
        if dag_run["state"] == "success":
            seen.extend(stack.xcom(DAG_ID, dag_run["dag_run_id"], "seen") or [])
    return seen


def own_listings(emulator: EmulatorClient) -> int:
    """``runs/list`` requests filtered by the watched task (every poll below 3.3; a catch-up on 3.3)."""
    return sum(
        1
        for entry in emulator.request_log()
        if entry["path"] == "/v0/runs/list" and entry["query"].get("taskSlug") == SLUG
    )


def wait_polls(emulator: EmulatorClient, count: int) -> None:
    """Until ``count`` more ``runs/list`` requests (of any watcher) reached the emulator."""
    target = emulator.request_counts().get("/v0/runs/list", 0) + count
    wait_until(
        lambda: True if emulator.request_counts().get("/v0/runs/list", 0) >= target else None,
        timeout=120,
        what=f"{count} more listings",
    )


def wait_delivered(stack: AirflowStack, run_ids: list[str], timeout: float = 120.0) -> None:
    """Until every run is in an asset event and in a successful DAG run's payload, all DAG runs done."""

    def probe() -> bool | None:
        if not set(run_ids) <= set(runs_in_events(stack)) or not set(run_ids) <= set(
            runs_seen_by_dag_runs(stack)
        ):
            return None
        return True if all(run["state"] == "success" for run in dag_runs(stack, DAG_ID)) else None

    wait_until(probe, timeout=timeout, interval=1.0, what=f"runs {run_ids} delivered to DAG runs")


def assert_exactly_once(stack: AirflowStack, run_ids: list[str]) -> None:
    in_events = collections.Counter(runs_in_events(stack))
    in_dag_runs = collections.Counter(runs_seen_by_dag_runs(stack))
    assert {run_id: in_events[run_id] for run_id in run_ids} == dict.fromkeys(run_ids, 1)
    assert {run_id: in_dag_runs[run_id] for run_id in run_ids} == dict.fromkeys(run_ids, 1)
    assert [run["state"] for run in dag_runs(stack, DAG_ID) if run["state"] != "success"] == []
    queued = stack.read(f"/dags/{DAG_ID}/assets/queuedEvents") or {}
    assert queued.get("queued_events", []) == []


def test_every_finished_run_starts_the_dag_once_across_a_triggerer_kill(
    airflow_stack: AirflowStack, emulator_client: EmulatorClient
) -> None:
    stack, emulator = airflow_stack, emulator_client
    stack.wait_for_dag(DAG_ID)
    # The watcher starts at "now" once the triggerer picks it up: probe until one run arrives.
    probe: list[str] = []

    def watcher_up() -> bool | None:
        probe.extend(start_runs(stack, SLUG, 1))
        try:
            wait_until(
                lambda: True if set(runs_in_events(stack)) & set(probe) else None,
                timeout=20,
                what="probe run",
            )
        except TimeoutError:
            return None
        return True

    wait_until(watcher_up, timeout=180, interval=0.1, what="the watcher reporting runs")
    delivered_probe = [run_id for run_id in probe if run_id in runs_in_events(stack)]
    wait_delivered(stack, delivered_probe)

    burst = start_runs(stack, SLUG, 3)
    wait_delivered(stack, burst)
    later = start_runs(stack, SLUG, 2)
    wait_delivered(stack, later)
    assert_exactly_once(stack, [*delivered_probe, *burst, *later])
    events_before = len(asset_events(stack))
    dag_runs_before = len(dag_runs(stack, DAG_ID))
    before = [*delivered_probe, *burst, *later]

    # The scenario, not a readiness wait: the cursor covering the last event is stored 5 s after it
    # (PERSIST_MARGIN); a kill inside that window would repeat the event, as documented.
    time.sleep(10)
    listings_before = own_listings(emulator)
    down: list[str] = []

    def finish_two_runs() -> None:
        down.extend(start_runs(stack, SLUG, 2))
        wait_ended(emulator, down)

    stack.restart_triggerer(while_down=finish_two_runs)
    wait_until(
        lambda: True if own_listings(emulator) > listings_before else None, timeout=120, what="watcher back"
    )
    if AIRFLOW_V_3_3_PLUS:
        wait_delivered(stack, down)  # the stored cursor predates them: the catch-up finds them
        expected_after = down
    else:
        # The cursor was in memory: the new watcher starts at now (lookback 0) and never sees them.
        wait_polls(emulator, 3)
        expected_after = start_runs(stack, SLUG, 1)
        wait_delivered(stack, expected_after)
        assert not set(down) & set(runs_in_events(stack))
    wait_polls(emulator, 6)  # anything old firing again would show by now
    assert_exactly_once(stack, [*before, *expected_after])
    refires = sum(count - 1 for count in collections.Counter(runs_in_events(stack)).values() if count > 1)
    started = len(probe) + len(burst) + len(later) + len(down) + (0 if AIRFLOW_V_3_3_PLUS else 1)
    print(
        f"\nEVENTS Airflow {'3.3' if AIRFLOW_V_3_3_PLUS else '< 3.3'}: runs started {started} "
        f"(probes {len(probe)}, burst 3, later 2, while the triggerer was down 2"
        f"{'' if AIRFLOW_V_3_3_PLUS else ', after the restart 1'}); before the kill {events_before} asset "
        f"events / {dag_runs_before} DAG runs; at the end {len(asset_events(stack))} asset events / "
        f"{len(dag_runs(stack, DAG_ID))} DAG runs; runs that ended while down delivered: "
        f"{len(set(down) & set(runs_in_events(stack)))} of 2; re-fires after restart: {refires}"
    )
    assert refires == 0


def test_example_dag_reports_params_and_outputs(
    airflow_stack: AirflowStack, emulator_client: EmulatorClient
) -> None:
    """The shipped example: a finished refresh_customers run starts it; its mapped task reads the outputs."""
    stack = airflow_stack
    stack.wait_for_dag(EXAMPLE_DAG)
    started: list[str] = []

    def reported() -> dict[str, Any] | None:
        started.extend(start_runs(stack, "refresh_customers", 1, segment="smb"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for dag_run in dag_runs(stack, EXAMPLE_DAG):
                if dag_run["state"] != "success":
                    continue
                value = stack.xcom(EXAMPLE_DAG, dag_run["dag_run_id"], "report", map_index=0)
                if value and value["run_id"] in started:
                    return dict(value)
            time.sleep(1)
        return None

    value = wait_until(reported, timeout=240, interval=0.1, what="the example DAG's report")
    assert value["param_values"] == {"segment": "smb"}
    assert value["outputs"] == {"rows": 3, "table": "customers"}
