"""The provider on production-shaped Airflow: PostgreSQL, Redis, CeleryExecutor, two workers, two triggerers.

One stack for the module (``cluster_stack`` in conftest.py). Every Airplane run is held in progress until
the fault under test has struck (``EmulatorClient.end_runs``), so the faults always hit waiting tasks.
Measurements go to ``cluster_stack.METRICS`` and are printed at the end of the run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import re
import signal
import socket
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow_stack import wait_until
from cluster_stack import METRICS, ClusterStack, ComponentDown, alive

from airflow_provider_airplane.models import RunStatus
from airflow_provider_airplane.testing import EmulatorClient

pytestmark = [pytest.mark.cluster, pytest.mark.integration, pytest.mark.slow]


def _dag_module() -> Any:
    path = Path(__file__).resolve().parent / "cluster_dags" / "airplane_cluster.py"
    spec = importlib.util.spec_from_file_location("airplane_cluster_dags", path)
    assert spec is not None
    assert spec.loader is not None
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
    stack: ClusterStack, dag_id: str, dag_run_id: str, wanted: dict[TI, frozenset[str]], timeout: float
) -> dict[TI, dict[str, Any]]:
    """Wait until every TI in ``wanted`` is in one of its states; fail early when one ends elsewhere."""

    def probe() -> dict[TI, dict[str, Any]] | None:
        stack.check_alive()
        tis = task_instances(stack, dag_id, dag_run_id)
        for key, states in wanted.items():
            state = tis.get(key, {}).get("state")
            if state not in states and state in ("success", "failed", "upstream_failed", "skipped"):
                raise AssertionError(f"{dag_id} {key} ended {state}, expected {sorted(states)}")
        return tis if all(tis.get(k, {}).get("state") in s for k, s in wanted.items()) else None

    return wait_until(probe, timeout=timeout, interval=2.0, what=f"{dag_id}: {len(wanted)} task instances")


def want(tis: list[TI], *states: str) -> dict[TI, frozenset[str]]:
    return dict.fromkeys(tis, frozenset(states))


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


@pytest.fixture(autouse=True)
def leave_nothing_waiting(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each scenario, end the Airplane runs still in progress and wait until no task of the stack
    runs, waits or is queued: a scenario that failed halfway must not starve the next of worker slots."""
    if "cluster_stack" not in request.fixturenames:
        yield
        return
    stack: ClusterStack = request.getfixturevalue("cluster_stack")
    emulator: EmulatorClient = request.getfixturevalue("cluster_emulator")
    yield
    busy = (
        "select dag_id, task_id, map_index, state from task_instance "
        "where state in ('scheduled', 'queued', 'running', 'deferred', 'up_for_retry', 'restarting')"
    )

    def idle() -> bool | None:
        # Again on every look: a task that was waiting for a slot starts a run after the first round.
        for slug in {run["taskSlug"] for run in emulator.runs() if not RunStatus(run["status"]).is_terminal}:
            emulator.end_runs(slug)
        return None if stack.sql(busy) else True

    try:
        wait_until(idle, timeout=300, interval=2.0, what="an idle stack")
    except TimeoutError:
        raise AssertionError(f"task instances still busy after the scenario: {stack.sql(busy)}") from None


# ---- a component that does not come up --------------------------------------------------------------


def test_a_service_that_does_not_come_up_fails_fast_naming_its_log_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """Redis cannot bind its port (taken): the start fails at once, names Redis and its log, and stops
    the PostgreSQL it had already started, data directory included."""
    home, dags = tmp_path / "home", tmp_path / "dags"
    home.mkdir()
    dags.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = ClusterStack(home=home, dags_source=dags, api_key="tkn_x", emulator_tasks={}, redis_port=port)
        with pytest.raises(ComponentDown, match=r"Redis exited .*; log .*redis\.log"):
            stack.start()
    assert stack.pg_dir is not None
    assert not stack.pg_dir.exists()
    assert stack.postmaster_pid is not None
    assert not alive(stack.postmaster_pid)
    assert "Address already in use" in (home / "logs" / "redis.log").read_text()
    assert stack.components == {}


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
    dag_run_id = cluster_stack.trigger_dag(dag_id)

    tis = wait_states(
        cluster_stack,
        dag_id,
        dag_run_id,
        {**want([("big", -1), ("digest", -1)], "success"), **want([("too_big", -1)], "failed")},
        timeout=300,
    )

    read_back = xcom(cluster_stack, dag_id, dag_run_id, ("digest", -1))
    assert read_back == {"bytes": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    assert xcom(cluster_stack, dag_id, dag_run_id, ("too_big", -1)) is None  # nothing partial
    log = task_log(cluster_stack, dag_id, ("too_big", -1), tis[("too_big", -1)]["try_number"])
    assert f"more than output_max_bytes={DAGS.BIG_OUTPUT_LIMIT}" in log
    assert "Raise output_max_bytes" in log


def run_counts(runs: dict[str, list[dict[str, Any]]], tasks: int) -> str:
    total = sum(len(group) for group in runs.values())
    return f"{total} runs for {tasks} tasks, {len(cancelled(runs))} cancelled"


def wait_held(
    stack: ClusterStack, dag_id: str, deferred: list[TI], *, min_each: int, timeout: float
) -> dict[str | None, list[TI]]:
    """Wait until every TI in ``deferred`` is deferred with its trigger on a triggerer, and every live
    triggerer holds at least ``min_each`` of them."""
    wanted = set(deferred)

    def probe() -> dict[str | None, list[TI]] | None:
        stack.check_alive()
        held = stack.triggers_by_triggerer(dag_id)
        placed = {ti for host, tis in held.items() if host is not None for ti in tis}
        if not wanted <= placed:
            return None
        counts = [len(set(held.get(name, [])) & wanted) for name in stack.triggerer_names]
        return held if min(counts) >= min_each else None

    try:
        return wait_until(probe, timeout=timeout, interval=2.0, what=f"{dag_id}: triggers on both triggerers")
    except TimeoutError:
        held = stack.triggers_by_triggerer(dag_id)
        raise AssertionError(
            f"{dag_id}: wanted {len(wanted)} triggers, >= {min_each} on each triggerer; have "
            f"{ {host: len(tis) for host, tis in held.items()} }"
        ) from None


def requests_since(emulator: EmulatorClient, first: int) -> list[dict[str, Any]]:
    return emulator.request_log()[first:]


def held_by(stack: ClusterStack, dag_id: str, triggerer: str) -> list[TI]:
    return stack.triggers_by_triggerer(dag_id).get(triggerer, [])


def start_in_halves(stack: ClusterStack, dag_id: str, n_def: int, *, min_second: int) -> str:
    """Start ``dag_id`` so that its ``n_def`` deferred tasks' triggers land on both triggerers: half on the
    first, the other half (at least ``min_second`` of it) on the second. Returns the DAG run's id.

    Airflow gives a new trigger to whichever triggerer looks first, so a burst of deferrals can land on
    one of them (13 of 14 did in one CI run). The DAG's gate pool lets the first half start while the
    second triggerer is paused; it grows for the second half while the first triggerer is paused. No
    pause outlasts the health-check threshold (30 s), so no trigger moves: when the second half is slow
    to defer, the first triggerer is let heartbeat and paused again.
    """
    first, second = stack.triggerer_names
    half, pool = n_def // 2, DAGS.gate(dag_id)
    stack.api("POST", "/pools", json={"name": pool, "slots": half, "include_deferred": True})
    with stack.paused(second):
        dag_run_id = stack.trigger_dag(dag_id)
        wait_until(
            lambda: True if len(held_by(stack, dag_id, first)) == half else None,
            timeout=600,
            interval=1.0,
            what=f"the first {half} triggers on {first} while {second} is paused",
        )
    stack.wait_heartbeat(second)

    pool_grown = False
    deadline = time.monotonic() + 300
    while len(held_by(stack, dag_id, second)) < min_second:
        if time.monotonic() > deadline:
            raise AssertionError(f"{dag_id}: {second} holds {held_by(stack, dag_id, second)} after 300 s")
        with stack.paused(first):
            if not pool_grown:
                grown = {"pool": pool, "slots": n_def, "include_deferred": True}  # 3.3 wants every field
                stack.api("PATCH", f"/pools/{pool}", json=grown)
                pool_grown = True
            wait_until(
                lambda: (
                    True
                    if len(held_by(stack, dag_id, second)) == n_def - half or stack.heartbeat_age(first) > 20
                    else None
                ),
                timeout=60,
                interval=0.5,
                what=f"the second half on {second}, or {first}'s heartbeat 20 s old",
            )
        stack.wait_heartbeat(first)
    return dag_run_id


def start_on_both_triggerers(
    stack: ClusterStack, dag_id: str, n_def: int, n_wrk: int, *, min_each: int
) -> tuple[str, dict[str | None, list[TI]]]:
    """Start ``dag_id`` and wait until its ``n_def`` deferred tasks are held by the triggerers, at least
    ``min_each`` by each, and its ``n_wrk`` worker tasks run. Returns the DAG run's id and who holds what."""
    dag_run_id = start_in_halves(stack, dag_id, n_def, min_second=min_each)
    wait_states(
        stack,
        dag_id,
        dag_run_id,
        {**want(mapped("deferred", n_def), "deferred"), **want(mapped("in_worker", n_wrk), "running")},
        timeout=600,
    )
    return dag_run_id, wait_held(stack, dag_id, mapped("deferred", n_def), min_each=min_each, timeout=120)


# ---- (a) a triggerer is lost ---------------------------------------------------------------------------


def test_lost_triggerer_hands_its_triggers_over_and_every_task_resumes_once(
    cluster_stack: ClusterStack, cluster_emulator: EmulatorClient
) -> None:
    dag_id, n_def, n_wrk = "cluster_failover", DAGS.FAILOVER_DEFERRED, DAGS.FAILOVER_IN_WORKER
    deferred_outputs = register(cluster_emulator, "fo_def", n_def)
    worker_outputs = register(cluster_emulator, "fo_wrk", n_wrk)
    first_request = len(cluster_emulator.request_log())
    cluster_emulator.inject_fault(status=503, rate=0.1)  # every /v0 path, until cleared
    victim = None
    try:
        dag_run_id, held = start_on_both_triggerers(cluster_stack, dag_id, n_def, n_wrk, min_each=n_def // 4)
        victim = max(cluster_stack.triggerer_names, key=lambda name: len(held.get(name, [])))
        (survivor,) = set(cluster_stack.triggerer_names) - {victim}
        killed_at = time.monotonic()
        cluster_stack.kill(victim, signal.SIGKILL)

        # The survivor takes every trigger over once the victim's heartbeat is older than the threshold.
        wait_until(
            lambda: (
                True if len(cluster_stack.triggers_by_triggerer(dag_id).get(survivor, [])) == n_def else None
            ),
            timeout=240,
            interval=1.0,
            what=f"{survivor} holding all {n_def} triggers",
        )
        takeover = time.monotonic() - killed_at
        assert set(cluster_stack.triggers_by_triggerer(dag_id)) == {survivor}
        end_all(cluster_emulator, {**deferred_outputs, **worker_outputs})
        wait_states(
            cluster_stack,
            dag_id,
            dag_run_id,
            want(mapped("deferred", n_def) + mapped("in_worker", n_wrk), "success"),
            timeout=600,
        )
    finally:
        cluster_emulator.clear_faults()
        if victim is not None and victim not in cluster_stack.components:
            cluster_stack.respawn_triggerer(victim)
    served = requests_since(cluster_emulator, first_request)

    runs = runs_by_slug(cluster_emulator, "fo_def") | runs_by_slug(cluster_emulator, "fo_wrk")
    assert_one_succeeded_run_each(runs, {**deferred_outputs, **worker_outputs})
    assert cancelled(runs) == []
    assert_outputs(cluster_stack, dag_id, dag_run_id, "deferred", deferred_outputs)
    assert_outputs(cluster_stack, dag_id, dag_run_id, "in_worker", worker_outputs)
    assert resumes(cluster_stack, dag_id) == Counter({("deferred", i, 1): 1 for i in range(n_def)})
    assert not any(entry["path"] == "/v0/runs/cancel" for entry in served)

    METRICS["(a) takeover after SIGKILL of the triggerer holding the most"] = (
        f"{takeover:.0f} s ({len(held.get(victim, []))} of {n_def} triggers moved to {survivor})"
    )
    METRICS["(a) runs"] = run_counts(runs, n_def + n_wrk)
    METRICS["(a) requests"] = request_ratio(served, runs, n_def)


def request_ratio(served: list[dict[str, Any]], runs: dict[str, list[dict[str, Any]]], n_def: int) -> str:
    """What the emulator served for the deferred runs during (a), against per-run polling of the same runs.

    Per-run polling: a ``runs/get`` every poll interval for each run's duration, plus what both ways
    cost anyway: the worker's look before deferring and ``execute_complete``'s ``runs/get`` + outputs.
    """
    deferred_ids = {run["id"] for slug, group in runs.items() if slug.startswith("fo_def_") for run in group}
    by_path = Counter(entry["path"] for entry in served)
    faulted = sum(1 for entry in served if entry["status"] == 503)
    for_deferred = sum(
        1
        for entry in served
        if entry["path"] == "/v0/runs/list"
        or (
            entry["path"] in ("/v0/runs/get", "/v0/runs/getOutputs")
            and entry["query"].get("id") in deferred_ids
        )
    )
    polls = 0
    for slug, group in runs.items():
        if slug.startswith("fo_def_"):
            seconds = _epoch(group[0]["succeededAt"]) - _epoch(group[0]["createdAt"])
            polls += math.ceil(seconds / DAGS.POLL)
    per_run = polls + 3 * n_def
    paths = ", ".join(f"{path.removeprefix('/v0/')} {count}" for path, count in sorted(by_path.items()))
    return (
        f"{len(served)} served in all ({paths}; {faulted} answered 503). For the {n_def} deferred runs: "
        f"{for_deferred} served (runs/list, their runs/get and getOutputs, retries of 503s included) "
        f"against {per_run} with per-run polling every {DAGS.POLL:g} s ({polls} polls + 3 per run): "
        f"ratio {for_deferred / per_run:.2f}"
    )


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# ---- (b) rolling restart of a triggerer ----------------------------------------------------------------


def test_rolling_restart_of_a_triggerer_cancels_nothing(
    cluster_stack: ClusterStack, cluster_emulator: EmulatorClient
) -> None:
    dag_id, n_def = "cluster_rolling", DAGS.ROLLING_DEFERRED
    outputs = register(cluster_emulator, "ro_def", n_def)
    dag_run_id = cluster_stack.trigger_dag(dag_id)
    wait_states(cluster_stack, dag_id, dag_run_id, want(mapped("deferred", n_def), "deferred"), 600)
    held = wait_held(cluster_stack, dag_id, mapped("deferred", n_def), min_each=0, timeout=120)
    victim = max(cluster_stack.triggerer_names, key=lambda name: len(held.get(name, [])))

    cluster_stack.kill(victim, signal.SIGTERM)  # a clean stop, as a rolling deploy does
    cluster_stack.respawn_triggerer(victim)
    wait_held(cluster_stack, dag_id, mapped("deferred", n_def), min_each=0, timeout=240)
    end_all(cluster_emulator, outputs)
    wait_states(cluster_stack, dag_id, dag_run_id, want(mapped("deferred", n_def), "success"), 600)

    runs = runs_by_slug(cluster_emulator, "ro_def")
    assert_one_succeeded_run_each(runs, outputs)
    assert cancelled(runs) == []
    assert_outputs(cluster_stack, dag_id, dag_run_id, "deferred", outputs)
    assert resumes(cluster_stack, dag_id) == Counter({("deferred", i, 1): 1 for i in range(n_def)})
    METRICS["(b) rolling restart"] = f"{len(held.get(victim, []))} triggers on {victim}; " + run_counts(
        runs, n_def
    )


# ---- (c) mark failed across triggerers -----------------------------------------------------------------


def test_marking_tasks_failed_cancels_their_runs_on_both_triggerers_and_in_workers(
    cluster_stack: ClusterStack, cluster_emulator: EmulatorClient
) -> None:
    dag_id, n_def, n_wrk = "cluster_mark_failed", DAGS.MARK_DEFERRED, DAGS.MARK_IN_WORKER
    outputs = register(cluster_emulator, "mf_def", n_def) | register(cluster_emulator, "mf_wrk", n_wrk)
    dag_run_id, held = start_on_both_triggerers(cluster_stack, dag_id, n_def, n_wrk, min_each=3)
    marked = [ti for name in cluster_stack.triggerer_names for ti in sorted(held[name])[:3]]
    marked += mapped("in_worker", 2)
    slug_of = {ti: f"{'mf_def' if ti[0] == 'deferred' else 'mf_wrk'}_{ti[1]}" for ti in marked}
    wait_until(
        lambda: True if all(runs_by_slug(cluster_emulator, "mf_def").get(s) for s in slug_of.values()
                            if s.startswith("mf_def")) else None,
        timeout=30,
        what="runs of the deferred tasks",
    )  # fmt: skip

    quoted = urllib.parse.quote(dag_run_id, safe="")
    marked_at = time.monotonic()
    for task_id, map_index in marked:
        cluster_stack.api(
            "PATCH",
            f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/{map_index}",
            json={"new_state": "failed"},
        )

    def all_cancelled() -> bool | None:
        runs = runs_by_slug(cluster_emulator, "mf_def") | runs_by_slug(cluster_emulator, "mf_wrk")
        return True if all(runs[s][0]["status"] == "Cancelled" for s in slug_of.values()) else None

    wait_until(all_cancelled, timeout=30, what="the 8 marked tasks' runs Cancelled (promised within 30 s)")
    cancel_seconds = time.monotonic() - marked_at
    end_all(cluster_emulator, outputs)
    others = [ti for ti in mapped("deferred", n_def) + mapped("in_worker", n_wrk) if ti not in marked]
    wait_states(cluster_stack, dag_id, dag_run_id, want(others, "success"), timeout=600)

    runs = runs_by_slug(cluster_emulator, "mf_def") | runs_by_slug(cluster_emulator, "mf_wrk")
    assert sorted(cancelled(runs)) == sorted(runs[s][0]["id"] for s in slug_of.values())
    assert all(len(group) == 1 for group in runs.values()), runs
    tis = task_instances(cluster_stack, dag_id, dag_run_id)
    assert all(tis[ti]["state"] == "failed" for ti in marked)
    for ti in others:
        slug = f"{'mf_def' if ti[0] == 'deferred' else 'mf_wrk'}_{ti[1]}"
        assert runs[slug][0]["status"] == "Succeeded"
        assert xcom(cluster_stack, dag_id, dag_run_id, ti) == outputs[slug]
    spread = ", ".join(f"{len(held.get(name, []))} on {name}" for name in cluster_stack.triggerer_names)
    METRICS["(c) mark failed"] = (
        f"{n_def} deferred ({spread}); {len(marked)} marked (3 on each triggerer, 2 in workers), "
        f"all Cancelled {cancel_seconds:.0f} s after the last PATCH; " + run_counts(runs, n_def + n_wrk)
    )


# ---- (d, d2) a Celery worker is lost ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker_loss(cluster_stack: ClusterStack, cluster_emulator: EmulatorClient) -> dict[str, Any]:
    """SIGKILL worker-1's whole session while 10 tasks (retries=1) wait in it; their retries run on worker-2.

    ``reattach`` runs are still in progress when the retries start; ``ended`` runs succeed right after
    the kill, a minute before Airflow notices the lost worker. Both tests read the one outcome.
    """
    dag_id = "cluster_worker_lost"
    stack, emulator = cluster_stack, cluster_emulator
    reattach = register(emulator, "wl_re", DAGS.LOST_REATTACH)
    ended = register(emulator, "wl_end", DAGS.LOST_SUCCEEDED)
    tis = mapped("reattach", DAGS.LOST_REATTACH) + mapped("ended", DAGS.LOST_SUCCEEDED)
    other = stack.celery_name("worker-2")
    stack.celery_control("cancel_consumer", "default", "-d", other)  # every first try lands on worker-1
    try:
        dag_run_id = stack.trigger_dag(dag_id)
        wait_states(stack, dag_id, dag_run_id, want(tis, "running"), timeout=600)
        wait_until(
            lambda: (
                True
                if len(runs_by_slug(emulator, "wl_re")) + len(runs_by_slug(emulator, "wl_end")) == len(tis)
                else None
            ),
            timeout=60,
            what="a run for every task",
        )
    finally:
        stack.celery_control("add_consumer", "default", "-d", other)
    first = task_instances(stack, dag_id, dag_run_id)
    first_runs = {slug: group[0]["id"] for slug, group in
                  (runs_by_slug(emulator, "wl_re") | runs_by_slug(emulator, "wl_end")).items()}  # fmt: skip
    killed = stack.kill("worker-1", signal.SIGKILL)
    killed_at = time.monotonic()
    try:
        for slug in ended:
            emulator.end_runs(slug)  # succeeded while nobody watched
            # A second run (the bug d2 guards against) would end quickly instead of waiting an hour.
            emulator.add_task(slug, output={"second run of": slug}, duration=2)
        wait_until(
            lambda: (
                True
                if all(t["try_number"] == 2 for t in task_instances(stack, dag_id, dag_run_id).values())
                else None
            ),
            timeout=300,
            interval=2.0,
            what="retries of the lost worker's tasks",
        )
        noticed = time.monotonic() - killed_at
        wait_until(
            lambda: (
                True
                if all("Re-attached" in _log_or_empty(stack, dag_id, ti, 2) for ti in mapped("reattach", 5))
                else None
            ),
            timeout=300,
            interval=2.0,
            what="the reattach tasks' retries past their start",
        )
        end_all(emulator, reattach)
        final = wait_states(stack, dag_id, dag_run_id, want(tis, "success", "failed"), timeout=300)
    finally:
        stack.respawn(killed)
        stack.wait_worker("worker-1", timeout=300)
    METRICS["(d) worker loss noticed (all retries started) after the SIGKILL"] = f"{noticed:.0f} s"
    return {
        "dag_id": dag_id,
        "dag_run_id": dag_run_id,
        "first": first,
        "final": final,
        "first_runs": first_runs,
        "reattach": reattach,
        "ended": ended,
    }


def _log_or_empty(stack: ClusterStack, dag_id: str, ti: TI, try_number: int) -> str:
    try:
        return task_log(stack, dag_id, ti, try_number)
    except AssertionError:
        return ""


def test_lost_worker_retries_reattach_to_the_runs_in_progress(
    cluster_stack: ClusterStack, cluster_emulator: EmulatorClient, worker_loss: dict[str, Any]
) -> None:
    dag_id, dag_run_id = worker_loss["dag_id"], worker_loss["dag_run_id"]
    outputs = worker_loss["reattach"]
    tis = mapped("reattach", DAGS.LOST_REATTACH)
    assert {worker_loss["first"][ti]["hostname"] for ti in tis} == {"worker-1"}
    assert all(worker_loss["final"][ti]["state"] == "success" for ti in tis)
    assert {worker_loss["final"][ti]["hostname"] for ti in tis} == {"worker-2"}
    runs = runs_by_slug(cluster_emulator, "wl_re")
    assert_one_succeeded_run_each(runs, outputs)
    assert_outputs(cluster_stack, dag_id, dag_run_id, "reattach", outputs)
    for ti in tis:
        slug = f"wl_re_{ti[1]}"
        assert f"Re-attached to Airplane run {worker_loss['first_runs'][slug]}" in task_log(
            cluster_stack, dag_id, ti, 2
        )
    METRICS["(d) worker lost, runs in progress"] = run_counts(runs, len(tis))


def test_lost_worker_retry_adopts_a_run_that_already_succeeded(
    cluster_stack: ClusterStack, cluster_emulator: EmulatorClient, worker_loss: dict[str, Any]
) -> None:
    """d2: the run ended Succeeded before Airflow noticed the lost worker; the retry must not run it again."""
    dag_id, dag_run_id = worker_loss["dag_id"], worker_loss["dag_run_id"]
    outputs = worker_loss["ended"]
    tis = mapped("ended", DAGS.LOST_SUCCEEDED)
    runs = runs_by_slug(cluster_emulator, "wl_end")
    METRICS["(d2) worker lost, runs already succeeded"] = run_counts(runs, len(tis))
    assert all(worker_loss["final"][ti]["state"] == "success" for ti in tis)
    assert_one_succeeded_run_each(runs, outputs)
    assert_outputs(cluster_stack, dag_id, dag_run_id, "ended", outputs)
    for ti in tis:
        run_id = worker_loss["first_runs"][f"wl_end_{ti[1]}"]
        assert xcom(cluster_stack, dag_id, dag_run_id, ti, "airplane_run_id") == run_id
        log = task_log(cluster_stack, dag_id, ti, 2)
        adopted = [
            line for line in log.splitlines() if run_id in line and re.search(r"(?i)re-attach|adopt", line)
        ]
        assert adopted, f"{ti}: the retry's log does not say it adopted run {run_id}:\n{log[-3000:]}"
