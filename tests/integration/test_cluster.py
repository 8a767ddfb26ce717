"""The provider on production-shaped Airflow: PostgreSQL, Redis, CeleryExecutor, two workers, two triggerers.

One stack per session (``cluster_stack`` in conftest.py). Every Airplane run is held in progress until
the fault under test has struck (``EmulatorClient.end_runs``), so the faults always hit waiting tasks.
Measurements go to ``CLUSTER_METRICS`` and are printed at the end of the run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import signal
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from airflow_stack import wait_until
from cluster_stack import METRICS, ClusterStack

from airflow_provider_airplane.testing import EmulatorClient

pytestmark = [pytest.mark.cluster, pytest.mark.integration, pytest.mark.slow]


def _dag_module() -> Any:
    path = Path(__file__).resolve().parent / "cluster_dags" / "airplane_cluster.py"
    spec = importlib.util.spec_from_file_location("airplane_cluster_dags", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DAGS = _dag_module()
TI = tuple[str, int]  # (task_id, map_index)


# ---- helpers -------------------------------------------------------------------------------------


def register(emulator: EmulatorClient, prefix: str, count: int) -> dict[str, dict[str, Any]]:
    """One Airplane task per mapped task, each with its own output; runs last until ``end_runs``."""
    outputs = {}
    for i in range(count):
        slug = f"{prefix}_{i}"
        outputs[slug] = {"slug": slug, "index": i}
        emulator.add_task(slug, output=outputs[slug], duration=3600)
    return outputs


def end_all(emulator: EmulatorClient, slugs: list[str] | dict[str, Any]) -> None:
    for slug in slugs:
        emulator.end_runs(slug)


def runs_by_slug(emulator: EmulatorClient, prefix: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for run in emulator.runs():
        if run["taskSlug"].startswith(f"{prefix}_"):
            found.setdefault(run["taskSlug"], []).append(run)
    return found


def task_instances(stack: ClusterStack, dag_id: str, dag_run_id: str) -> dict[TI, dict[str, Any]]:
    quoted = urllib.parse.quote(dag_run_id, safe="")
    body = stack.api("GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances", params={"limit": 1000})
    return {(ti["task_id"], ti["map_index"]): ti for ti in body["task_instances"]}


def wait_states(
    stack: ClusterStack, dag_id: str, dag_run_id: str, want: dict[TI, set[str]], timeout: float
) -> dict[TI, dict[str, Any]]:
    """Wait until every TI in ``want`` is in one of its states; fail early when one ends elsewhere."""

    def probe() -> dict[TI, dict[str, Any]] | None:
        stack.check_alive()
        tis = task_instances(stack, dag_id, dag_run_id)
        for key, states in want.items():
            state = tis.get(key, {}).get("state")
            if state not in states and state in ("success", "failed", "upstream_failed", "skipped"):
                raise AssertionError(f"{dag_id} {key} ended {state}, expected {sorted(states)}")
        return tis if all(tis.get(k, {}).get("state") in s for k, s in want.items()) else None

    return wait_until(probe, timeout=timeout, interval=2.0, what=f"{dag_id}: {len(want)} task instances")


def mapped(task_id: str, count: int) -> list[TI]:
    return [(task_id, i) for i in range(count)]


def xcom(stack: ClusterStack, dag_id: str, dag_run_id: str, ti: TI, key: str = "return_value") -> Any:
    quoted = urllib.parse.quote(dag_run_id, safe="")
    path = f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{ti[0]}/xcomEntries/{key}"
    params: dict[str, Any] = {"deserialize": "true"}
    if ti[1] >= 0:
        params["map_index"] = ti[1]
    try:
        return stack.api("GET", path, params=params)["value"]
    except AssertionError as err:
        if "-> 404" in str(err):
            return None
        raise


def task_log(stack: ClusterStack, dag_id: str, ti: TI, try_number: int) -> str:
    """The task's log file on the shared disk (every worker of this stack writes to the same home)."""
    pattern = f"dag_id={dag_id}/run_id=*/task_id={ti[0]}/"
    pattern += f"map_index={ti[1]}/attempt={try_number}.log" if ti[1] >= 0 else f"attempt={try_number}.log"
    files = sorted((stack.home / "logs").glob(pattern))
    assert files, f"no log {pattern} under {stack.home / 'logs'}"
    return "\n".join(f.read_text(errors="replace") for f in files)


def resumes(stack: ClusterStack, dag_id: str) -> Counter[tuple[str, int, int]]:
    """(task_id, map_index, try) -> how many times execute_complete ran (ResumeCountingOperator)."""
    path = stack.home / "resumes.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(
        (r["task_id"], r["map_index"], r["try"]) for r in map(json.loads, lines) if r["dag_id"] == dag_id
    )


def cancelled(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    return [run["id"] for group in runs.values() for run in group if run["status"] == "Cancelled"]


def assert_one_succeeded_run_each(
    runs: dict[str, list[dict[str, Any]]], outputs: dict[str, dict[str, Any]]
) -> None:
    extra = {slug: [r["id"] for r in group] for slug, group in runs.items() if len(group) != 1}
    assert not extra, f"tasks with other than exactly one run: {extra}"
    assert set(runs) == set(outputs), sorted(set(outputs) ^ set(runs))
    not_ok = {slug: group[0]["status"] for slug, group in runs.items() if group[0]["status"] != "Succeeded"}
    assert not not_ok, not_ok


def assert_outputs(
    stack: ClusterStack, dag_id: str, dag_run_id: str, task_id: str, outputs: dict[str, dict[str, Any]]
) -> None:
    for i, (slug, expected) in enumerate(outputs.items()):
        assert slug.endswith(f"_{i}")
        assert xcom(stack, dag_id, dag_run_id, (task_id, i)) == expected, (task_id, i)


def trigger(stack: ClusterStack, dag_id: str) -> str:
    return stack.trigger_dag(dag_id)


# ---- (e) outputs on PostgreSQL ------------------------------------------------------------------------


def test_900kb_outputs_go_through_xcom_on_postgres_and_too_big_fails_cleanly(
    cluster_stack: ClusterStack, cluster_emulator: EmulatorClient
) -> None:
    rows = [{"i": i, "name": f"customer-{i:06d}", "note": "x" * 60} for i in range(9_000)]
    outputs = {"rows": rows}
    text = json.dumps(outputs, sort_keys=True, separators=(",", ":"))
    assert 850_000 < len(text) < 1_000_000
    cluster_emulator.add_task("out_big", output=outputs, duration=2)
    dag_id = "cluster_outputs"
    dag_run_id = trigger(cluster_stack, dag_id)

    tis = wait_states(
        cluster_stack,
        dag_id,
        dag_run_id,
        {("big", -1): {"success"}, ("digest", -1): {"success"}, ("too_big", -1): {"failed"}},
        timeout=300,
    )

    read_back = xcom(cluster_stack, dag_id, dag_run_id, ("digest", -1))
    assert read_back == {"bytes": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    assert xcom(cluster_stack, dag_id, dag_run_id, ("too_big", -1)) is None  # nothing partial
    log = task_log(cluster_stack, dag_id, ("too_big", -1), tis[("too_big", -1)]["try_number"])
    assert f"more than output_max_bytes={DAGS.BIG_OUTPUT_LIMIT}" in log
    assert "Raise output_max_bytes" in log
