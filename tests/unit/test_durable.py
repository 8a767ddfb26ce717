"""Idempotent start and re-attach on retry (``durable``, ``idempotency_key``) of AirplaneExecuteTaskOperator.

Each try is an ``execute`` call with the task instance's ``try_number``, against the emulator over real
HTTP. A try that "died" after starting its run is one stopped while it waited (``died_after_start``): the
emulator and the task state store see exactly what a SIGKILLed worker leaves behind. The same under a
real scheduler with a real SIGKILL is in tests/integration/test_reliability_in_airflow.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_airplane.exceptions import (
    AirplaneAuthError,
    AirplaneError,
    AirplaneOutageError,
    AirplaneRunCancelledError,
    AirplaneRunFailedError,
    AirplaneRunTimeoutError,
)
from airflow_provider_airplane.hooks.airplane import AirplaneHook
from airflow_provider_airplane.models import AirplaneRun, RunStatus
from airflow_provider_airplane.operators import airplane as operator_module
from airflow_provider_airplane.operators._reattach import STATE_STORE_KEY, idempotency_key, verdict
from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator
from airflow_provider_airplane.testing import AirplaneEmulator

EXECUTE = "/v0/tasks/execute"
ContextFactory = Callable[..., Any]  # an execution context (a dict; typed loosely, as Context is a TypedDict)


@pytest.fixture
def emu(airplane_conn: AirplaneEmulator) -> AirplaneEmulator:
    airplane_conn.add_task("work", output={"rows": 7}, duration=1.5)
    airplane_conn.add_task("instant", output={"rows": 1})
    airplane_conn.add_task("forever", duration=100_000)
    return airplane_conn


def op(**kwargs: Any) -> AirplaneExecuteTaskOperator:
    kwargs.setdefault("slug", "work")
    kwargs.setdefault("poll_interval", 0.1)
    return AirplaneExecuteTaskOperator(task_id="run_it", **kwargs)


class Killed(BaseException):
    """SIGKILL: the try stops where it is, and nothing of it runs after that."""


def died_after_start(ctx: Any, **kwargs: Any) -> str:
    """A try killed while it waited for its run: the run goes on, and on Airflow 3.3 the task state store
    still says the try was waiting for it. ``cancel_on_kill=False`` stands for the cancel a killed process
    never sends."""
    with mock.patch.object(AirplaneHook, "wait_for_run", side_effect=Killed), pytest.raises(Killed):
        op(cancel_on_kill=False, **kwargs).execute(ctx)
    run_id: str = ctx["ti"].xcoms["airplane_run_id"]
    return run_id


def sent_keys(emu: AirplaneEmulator) -> list[str]:
    return [e["headers"].get("Idempotency-Key") for e in emu.request_log() if e["path"] == EXECUTE]


def logged(capfd: pytest.CaptureFixture[str]) -> str:
    out, err = capfd.readouterr()
    return out + err


class FakeStateStore:
    """Airflow 3.3's ``task_state_store`` as the operator uses it (``get``/``set``), kept in a dict."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        assert value is not None  # the real store refuses None
        self.values[key] = value


def with_store(ctx: Any, store: FakeStateStore) -> Any:
    """``ctx`` as Airflow 3.3 builds it: with a ``task_state_store``."""
    return {**ctx, "task_state_store": store}


def test_retry_reattaches_to_the_run_in_progress(
    task_ctx: ContextFactory, emu: AirplaneEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    first = died_after_start(task_ctx(try_number=1))
    ctx = task_ctx(try_number=2)

    assert op().execute(ctx) == {"rows": 7}

    assert [run["id"] for run in emu.runs()] == [first]
    assert ctx["ti"].xcoms["airplane_run_id"] == first
    assert ctx["ti"].xcoms["airplane_run_url"].endswith(f"/runs/{first}")
    assert sent_keys(emu) == [idempotency_key(ctx)] * 2  # type: ignore[arg-type]
    assert f"Re-attached to Airplane run {first} started by an earlier try" in logged(capfd)


def test_deferred_retry_reattaches_to_the_run_in_progress(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    first = died_after_start(task_ctx(try_number=1))
    ctx = task_ctx(try_number=2)

    with pytest.raises(TaskDeferred) as deferred:
        op(deferrable=True).execute(ctx)

    assert deferred.value.trigger.run_id == first  # type: ignore[attr-defined]
    assert len(emu.runs()) == 1
    assert ctx["ti"].xcoms["airplane_run_id"] == first


def test_retry_after_a_failed_run_starts_exactly_one_new_run(
    task_ctx: ContextFactory, emu: AirplaneEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    emu.add_task("flaky", fail=True, error="first run breaks", duration=0.3)
    with pytest.raises(AirplaneRunFailedError):
        op(slug="flaky").execute(task_ctx(try_number=1))
    failed = emu.runs()[0]["id"]
    emu.add_task("flaky", output={"ok": True}, duration=0.3)  # the next run of it succeeds
    ctx = task_ctx(try_number=2)

    assert op(slug="flaky").execute(ctx) == {"ok": True}

    runs = emu.runs()
    assert [run["status"] for run in runs] == ["Failed", "Succeeded"]
    assert runs[0]["id"] == failed
    assert ctx["ti"].xcoms["airplane_run_id"] == runs[1]["id"]
    base = idempotency_key(ctx)  # type: ignore[arg-type]
    assert sent_keys(emu) == [base, base, base + "-try2"]
    assert f"Airplane run {failed} of an earlier try already ended Failed" in logged(capfd)


def test_clearing_a_succeeded_task_runs_it_again(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    """Airflow 3.3: the store shows try 1 returned the run's outputs, so a cleared task runs again."""
    store = FakeStateStore()
    assert op(slug="instant").execute(with_store(task_ctx(try_number=1), store)) == {"rows": 1}
    first = emu.runs()[0]["id"]
    assert store.values[STATE_STORE_KEY] == {"run_id": first, "phase": "consumed"}

    assert op(slug="instant").execute(with_store(task_ctx(try_number=2), store)) == {"rows": 1}

    assert len(emu.runs()) == 2


def test_clearing_a_succeeded_task_with_an_expired_store_record_runs_it_again(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    """Airflow 3.3 with ``[state_store] clear_on_success``: a store that no longer knows the run means a try
    consumed it (a try that died would have left its record)."""
    assert op(slug="instant").execute(with_store(task_ctx(try_number=1), FakeStateStore())) == {"rows": 1}
    assert op(slug="instant").execute(with_store(task_ctx(try_number=2), FakeStateStore())) == {"rows": 1}
    assert len(emu.runs()) == 2


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("has_store", [True, False], ids=["airflow-3.3-store", "no-store"])
def test_retry_adopts_a_run_that_succeeded_after_its_try_died(
    task_ctx: ContextFactory,
    emu: AirplaneEmulator,
    capfd: pytest.CaptureFixture[str],
    deferrable: bool,
    has_store: bool,
) -> None:
    """Issue 9 d2: the worker died, the run Succeeded before the retry: its outputs, and no second run."""
    store = FakeStateStore()

    def ctx_of(number: int) -> Any:
        ctx = task_ctx(try_number=number)
        return with_store(ctx, store) if has_store else ctx

    first = died_after_start(ctx_of(1), slug="instant")
    ctx = ctx_of(2)

    assert op(slug="instant", deferrable=deferrable).execute(ctx) == {"rows": 1}  # no deferral either

    assert [run["id"] for run in emu.runs()] == [first]
    assert emu.request_counts()[EXECUTE] == (1 if has_store else 2)  # the store needs no replay
    assert ctx["ti"].xcoms["airplane_run_id"] == first
    assert f"Adopted Airplane run {first} of an earlier try, which already ended Succeeded" in logged(capfd)
    if has_store:
        assert store.values[STATE_STORE_KEY] == {"run_id": first, "phase": "consumed"}


def test_without_store_clearing_a_succeeded_task_adopts_its_run(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    """Below Airflow 3.3 a cleared task cannot be told from a retry whose worker died: within the key's
    hour both get the run that Succeeded, never a second one (docs/retries.md says why)."""
    assert op(slug="instant").execute(task_ctx(try_number=1)) == {"rows": 1}
    assert op(slug="instant").execute(task_ctx(try_number=2)) == {"rows": 1}
    assert len(emu.runs()) == 1


@pytest.mark.parametrize("has_store", [True, False], ids=["airflow-3.3-store", "no-store"])
def test_retry_after_a_cancelled_run_starts_a_new_run(
    task_ctx: ContextFactory, emu: AirplaneEmulator, has_store: bool
) -> None:
    store = FakeStateStore()

    def ctx_of(number: int) -> Any:
        ctx = task_ctx(try_number=number)
        return with_store(ctx, store) if has_store else ctx

    first = died_after_start(ctx_of(1), slug="forever")
    AirplaneHook().cancel_run(first)  # somebody cancelled it in Airplane

    second = died_after_start(ctx_of(2), slug="forever")

    assert second != first
    assert [run["id"] for run in emu.runs()] == [first, second]
    assert [RunStatus(run["status"]).is_terminal for run in emu.runs()] == [True, False]
    assert emu.runs()[0]["status"] == "Cancelled"


@pytest.fixture
def slow_cancels(emu: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch) -> AirplaneEmulator:
    """Cancels that take effect long after the request (the API cancels asynchronously, reference 4.5)."""
    emu.cancel_delay = 600
    monkeypatch.setattr(operator_module, "CANCEL_CONFIRM_SECONDS", 0.3)
    return emu


def test_retry_never_reattaches_to_a_run_its_earlier_try_was_cancelling(
    task_ctx: ContextFactory, slow_cancels: AirplaneEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    """Issue 13.4 (Airflow 3.3): try 1's timeout asked to cancel its run, which still reads Active."""
    store = FakeStateStore()
    with pytest.raises(AirplaneRunTimeoutError):
        op(slug="forever", timeout=0.5).execute(with_store(task_ctx(try_number=1), store))
    first = slow_cancels.runs()[0]["id"]
    assert store.values[STATE_STORE_KEY] == {"run_id": first, "phase": "cancelling"}
    assert slow_cancels.runs()[0]["status"] == "Active"

    second = died_after_start(with_store(task_ctx(try_number=2), store), slug="forever")

    assert second != first
    assert len(slow_cancels.runs()) == 2
    assert f"Airplane run {first} of an earlier try is Active but an earlier try was cancelling it" in (
        logged(capfd)
    )


def test_cleared_while_deferred_retry_starts_a_new_run(
    task_ctx: ContextFactory, slow_cancels: AirplaneEmulator
) -> None:
    """Issue 13.4 on Airflow 3.3: clearing a deferred task starts the next try at once, while the trigger's
    on_kill cancel has not landed; the triggerer cannot write the store, so the deferral itself is noted."""
    store = FakeStateStore()
    with pytest.raises(TaskDeferred):
        op(slug="forever", deferrable=True).execute(with_store(task_ctx(try_number=1), store))
    first = slow_cancels.runs()[0]["id"]
    assert store.values[STATE_STORE_KEY] == {"run_id": first, "phase": "deferred"}
    AirplaneHook().cancel_run(first)  # what the trigger's on_kill does when the user clears the task

    second = died_after_start(with_store(task_ctx(try_number=2), store), slug="forever")

    assert second != first
    runs = slow_cancels.runs()
    assert len(runs) == 2
    assert runs[0]["status"] != "Cancelled"  # the retry did not wait for the cancel to land


def test_resumed_deferral_that_lost_its_run_is_reattached(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    """A deferred try that resumed (execute_complete) and failed without cancelling leaves a run nobody is
    cancelling: the next try re-attaches."""
    store = FakeStateStore()
    ctx = with_store(task_ctx(try_number=1), store)
    with pytest.raises(TaskDeferred):
        op(slug="forever", deferrable=True).execute(ctx)
    first = emu.runs()[0]["id"]
    with pytest.raises(AirplaneError, match="Lost track"):
        op(slug="forever", deferrable=True).execute_complete(
            ctx, {"status": "error", "run_id": first, "message": "API down"}
        )

    assert died_after_start(with_store(task_ctx(try_number=2), store), slug="forever") == first


def test_without_store_a_run_being_cancelled_is_reattached(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    """Below Airflow 3.3 nothing records the earlier try's cancel: the retry re-attaches, and the run's end
    (Cancelled) fails the try without a retry. Documented in the table in docs/retries.md."""
    emu.cancel_delay = 1.0
    first = died_after_start(task_ctx(try_number=1), slug="forever")
    AirplaneHook().cancel_run(first)

    with pytest.raises(AirplaneRunCancelledError):
        op(slug="forever").execute(task_ctx(try_number=2))

    assert len(emu.runs()) == 1


def test_a_run_that_finishes_at_once_is_the_tries_own(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    """A retry whose earlier try never started a run: its own instant run is not taken for an old one."""
    assert op(slug="instant").execute(task_ctx(try_number=3)) == {"rows": 1}
    assert len(emu.runs()) == 1


def test_without_durable_every_try_starts_a_run(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    first = died_after_start(task_ctx(try_number=1), durable=False)
    ctx = task_ctx(try_number=2)

    assert op(durable=False).execute(ctx) == {"rows": 7}

    runs = emu.runs()
    assert len(runs) == 2
    assert ctx["ti"].xcoms["airplane_run_id"] == runs[1]["id"] != first
    base = idempotency_key(ctx)  # type: ignore[arg-type]
    assert sent_keys(emu) == [base + "-try1", base + "-try2"]


def test_user_key_is_sent_as_given_and_names_one_run(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    first = died_after_start(task_ctx(try_number=1), idempotency_key="nightly-2026-01-01")
    # Another task instance with the same key gets the same run: the key, not the TI, names it.
    other = task_ctx(task_id="other_task", try_number=1)

    assert op(idempotency_key="nightly-2026-01-01").execute(other) == {"rows": 7}

    assert [run["id"] for run in emu.runs()] == [first]
    assert sent_keys(emu) == ["nightly-2026-01-01"] * 2


def test_user_key_retry_after_a_failed_run(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    emu.add_task("broken", fail=True, error="boom", duration=0.2)
    with pytest.raises(AirplaneRunFailedError):
        op(slug="broken", idempotency_key="k-1").execute(task_ctx(try_number=1))
    with pytest.raises(AirplaneRunFailedError):
        op(slug="broken", idempotency_key="k-1").execute(task_ctx(try_number=2))
    assert len(emu.runs()) == 2
    assert sent_keys(emu) == ["k-1", "k-1", "k-1-try2"]


@pytest.mark.parametrize("key", ["", "   ", "{{ ds }}"])
def test_bad_user_key_fails_before_any_run(task_ctx: ContextFactory, emu: AirplaneEmulator, key: str) -> None:
    with pytest.raises(Exception, match="idempotency_key"):
        op(idempotency_key=key).execute(task_ctx())
    assert emu.request_counts().get(EXECUTE, 0) == 0


def test_state_store_reattaches_after_the_key_expired(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    """Airflow 3.3's task_state_store remembers the run past the API's one-hour key window."""
    store = FakeStateStore()
    first = died_after_start(with_store(task_ctx(try_number=1), store), slug="forever")
    assert store.values[STATE_STORE_KEY] == {"run_id": first, "phase": "started"}
    emu.clock_offset = 2 * 3600  # the Idempotency-Key is forgotten; the run is still Active
    ctx = with_store(task_ctx(try_number=2), store)

    assert died_after_start(ctx, slug="forever") == first

    assert emu.request_counts()[EXECUTE] == 1  # no POST at all
    assert len(emu.runs()) == 1


def test_without_state_store_an_expired_key_starts_a_new_run(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    """The limit below Airflow 3.3: re-attach by key only works within the API's hour."""
    first = died_after_start(task_ctx(try_number=1), slug="forever")
    emu.clock_offset = 2 * 3600

    assert died_after_start(task_ctx(try_number=2), slug="forever") != first
    assert len(emu.runs()) == 2


def test_state_store_run_that_ended_is_replaced_once(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    store = FakeStateStore()
    emu.add_task("broken", fail=True, error="boom", duration=0.2)
    with pytest.raises(AirplaneRunFailedError):
        op(slug="broken").execute(with_store(task_ctx(try_number=1), store))
    failed = store.values[STATE_STORE_KEY]
    ctx = with_store(task_ctx(try_number=2), store)

    with pytest.raises(AirplaneRunFailedError):
        op(slug="broken").execute(ctx)

    runs = emu.runs()
    assert len(runs) == 2
    assert store.values[STATE_STORE_KEY]["run_id"] == runs[1]["id"] != failed
    assert sent_keys(emu)[-1] == idempotency_key(ctx, try_number=2)  # type: ignore[arg-type]


# The re-attach table of docs/retries.md, row by row: (run status, store record, has a store) -> decision.
TABLE = [
    ("Active", "started", True, "re-attach"),
    ("Queued", None, True, "re-attach"),
    ("NotStarted", None, False, "re-attach"),
    ("Succeeded", "started", True, "adopt"),
    ("Succeeded", "deferred", True, "adopt"),
    ("Succeeded", "cancelling", True, "adopt"),  # the cancel lost the race to the run's end
    ("Succeeded", None, False, "adopt"),
    ("Succeeded", "consumed", True, "new run"),
    ("Active", "consumed", True, "new run"),  # wait_for_completion=False handed it downstream
    ("Succeeded", None, True, "new run"),  # clear_on_success removed the record: it was consumed
    ("Failed", "started", True, "new run"),
    ("Failed", None, False, "new run"),
    ("Cancelled", "started", True, "new run"),
    ("Cancelled", None, False, "new run"),
    ("Active", "cancelling", True, "new run"),
    ("Active", "deferred", True, "new run"),
]


@pytest.mark.parametrize(("status", "phase", "has_store", "decision"), TABLE)
def test_the_reattach_table(status: str, phase: str | None, has_store: bool, decision: str) -> None:
    run = AirplaneRun(id="run1", status=RunStatus(status))
    assert verdict(run, phase, has_store=has_store) == decision


# Issue 16 §2.1: a try that hands its run id downstream has consumed the run.
@pytest.mark.parametrize("slug", ["instant", "forever"], ids=["run-ended", "run-in-progress"])
def test_clearing_a_no_wait_task_starts_a_new_run(
    task_ctx: ContextFactory, emu: AirplaneEmulator, slug: str
) -> None:
    """Airflow 3.3: try 1 returned the run id (a downstream task owns the run); a clear runs the task again,
    and leaves the handed-over run alone."""
    store = FakeStateStore()
    first = op(slug=slug, wait_for_completion=False).execute(with_store(task_ctx(try_number=1), store))
    assert store.values[STATE_STORE_KEY] == {"run_id": first, "phase": "consumed"}

    second = op(slug=slug, wait_for_completion=False).execute(with_store(task_ctx(try_number=2), store))

    assert second != first
    assert [run["id"] for run in emu.runs()] == [first, second]
    assert emu.request_counts().get("/v0/runs/cancel", 0) == 0
    assert store.values[STATE_STORE_KEY] == {"run_id": second, "phase": "consumed"}


# Issue 16 §2.7: "an earlier try's run or mine" is decided without comparing Airplane's clock with ours.
CLOCK_OFFSETS = [-30.0, -2.0, 2.0, 30.0]


@pytest.mark.parametrize("offset", CLOCK_OFFSETS)
def test_snapshot_reads_the_servers_time(emu: AirplaneEmulator, offset: float) -> None:
    import time

    emu.clock_offset = offset
    AirplaneHook().execute_task("forever")

    snapshot = AirplaneHook().runs_snapshot(task_slug="forever")

    assert [run.id for run in snapshot.runs] == [emu.runs()[0]["id"]]
    assert snapshot.server_time is not None
    assert abs(snapshot.server_time.timestamp() - (time.time() + offset)) < 2.0
    assert AirplaneHook().runs_snapshot(task_slug="instant").runs == []


@pytest.mark.parametrize("has_store", [True, False], ids=["airflow-3.3-store", "no-store"])
@pytest.mark.parametrize("offset", CLOCK_OFFSETS)
def test_retry_whose_earlier_try_started_nothing_keeps_its_own_run(
    task_ctx: ContextFactory, emu: AirplaneEmulator, offset: float, has_store: bool
) -> None:
    """Try 1 never started a run (its execute answered 5xx): try 2's run, ended at once, is its own."""
    emu.clock_offset = offset
    ctx = task_ctx(try_number=2)

    assert op(slug="instant").execute(with_store(ctx, FakeStateStore()) if has_store else ctx) == {"rows": 1}

    assert len(emu.runs()) == 1
    assert sent_keys(emu) == [idempotency_key(ctx)]  # type: ignore[arg-type]


@pytest.mark.parametrize("offset", CLOCK_OFFSETS)
def test_retry_after_a_failed_run_starts_one_new_run_whatever_the_servers_clock(
    task_ctx: ContextFactory, emu: AirplaneEmulator, offset: float
) -> None:
    """Below 3.3 (no store): the key hands try 2 the earlier try's Failed run, not taken for its own."""
    emu.add_task("flaky", fail=True, error="first run breaks")
    emu.clock_offset = offset
    with pytest.raises(AirplaneRunFailedError):
        op(slug="flaky").execute(task_ctx(try_number=1))
    emu.add_task("flaky", output={"ok": True})  # the next run of it succeeds

    assert op(slug="flaky").execute(task_ctx(try_number=2)) == {"ok": True}

    assert [run["status"] for run in emu.runs()] == ["Failed", "Succeeded"]


@pytest.mark.parametrize("offset", [-30.0, 30.0])
def test_a_listing_that_lags_behind_is_covered_by_the_servers_date(
    task_ctx: ContextFactory, emu: AirplaneEmulator, offset: float
) -> None:
    """runs/list does not show the earlier try's Failed run yet (an API server behind the others): the
    answer's Date, later than the run's createdAt on the same clock, still tells it is not this try's."""
    import time

    emu.add_task("flaky", fail=True, error="first run breaks")
    emu.configure(clock_offset=offset, list_lag=60.0)
    with pytest.raises(AirplaneRunFailedError):
        op(slug="flaky").execute(task_ctx(try_number=1))
    time.sleep(1.1)  # the Date header counts whole seconds
    emu.add_task("flaky", output={"ok": True})
    assert AirplaneHook().runs_snapshot(task_slug="flaky").runs == []

    assert op(slug="flaky").execute(task_ctx(try_number=2)) == {"ok": True}

    assert [run["status"] for run in emu.runs()] == ["Failed", "Succeeded"]


@pytest.mark.parametrize("offset", CLOCK_OFFSETS)
def test_retry_reattaches_whatever_the_servers_clock(
    task_ctx: ContextFactory, emu: AirplaneEmulator, offset: float
) -> None:
    emu.clock_offset = offset
    first = died_after_start(task_ctx(try_number=1), slug="forever")

    assert died_after_start(task_ctx(try_number=2), slug="forever") == first

    assert len(emu.runs()) == 1


# Issue 16 §2.8: the run is the try's from the moment execute answers.
def test_retry_that_fails_right_after_starting_its_run_cancels_it(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    """The read-back of a retry's new run fails: the run is already the try's (XCom, store), so it is
    cancelled like after any other error, not left running unrecorded."""
    emu.inject_fault("/v0/runs/get", status=403, count=1)
    store = FakeStateStore()
    ctx = with_store(task_ctx(try_number=2), store)

    with pytest.raises(AirplaneAuthError):
        op(slug="forever").execute(ctx)

    (run,) = emu.runs()
    assert run["status"] == "Cancelled"
    assert ctx["ti"].xcoms["airplane_run_id"] == run["id"]
    assert store.values[STATE_STORE_KEY] == {"run_id": run["id"], "phase": "cancelling"}


@pytest.mark.parametrize("try_number", [1, 2], ids=["while-waiting", "reading-back-a-retrys-run"])
def test_an_outage_past_max_outage_keeps_the_run_for_the_retry(
    task_ctx: ContextFactory,
    emu: AirplaneEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    try_number: int,
) -> None:
    """AirplaneOutageError after the run started: its state is unknown, so it is neither cancelled nor
    forgotten, and the next try re-attaches to it."""
    monkeypatch.setattr(AirplaneHook, "backoff_cap", 0.05)
    store = FakeStateStore()
    emu.inject_fault("/v0/runs/get", status=503, count=100_000)
    with pytest.raises(AirplaneOutageError):
        op(slug="forever", max_outage=0.3).execute(with_store(task_ctx(try_number=try_number), store))
    emu.clear_faults()
    (run,) = emu.runs()
    assert run["status"] == "Active"
    assert emu.request_counts().get("/v0/runs/cancel", 0) == 0
    assert store.values[STATE_STORE_KEY] == {"run_id": run["id"], "phase": "started"}
    assert f"Leaving Airplane run {run['id']} as it is" in logged(capfd)

    next_try = with_store(task_ctx(try_number=try_number + 1), store)
    assert died_after_start(next_try, slug="forever") == run["id"]
    assert len(emu.runs()) == 1


# Issue 16 §3: a user's idempotency_key on a mapped operator.
def test_user_key_names_one_run_per_map_index(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    emu.add_task("broken", fail=True, error="boom")
    for index in (0, 1):
        assert op(slug="instant", idempotency_key="k").execute(task_ctx(map_index=index)) == {"rows": 1}
    with pytest.raises(AirplaneRunFailedError):
        op(slug="broken", idempotency_key="k").execute(task_ctx(map_index=2))
    with pytest.raises(AirplaneRunFailedError):
        op(slug="broken", idempotency_key="k").execute(task_ctx(map_index=2, try_number=2))

    assert len(emu.runs()) == 4
    assert sent_keys(emu) == ["k-map0", "k-map1", "k-map2", "k-map2", "k-map2-try2"]


@pytest.mark.slow
def test_mapped_operator_with_a_user_key_starts_one_run_per_map_index(
    airplane_conn: AirplaneEmulator, run_dag: Callable[..., Any]
) -> None:
    """dag.test() of tests/dags/airplane_mapped_key_dags.py: 3 map indexes, one key, 3 runs."""
    airplane_conn.add_task("score", output={"ok": True})

    result = run_dag("test_airplane_mapped_key")

    assert result.state == "success"
    runs = airplane_conn.runs()
    assert sorted(run["paramValues"]["n"] for run in runs) == [0, 1, 2]
    assert {result.xcom("score", "airplane_run_id", index) for index in range(3)} == {
        run["id"] for run in runs
    }
    assert sorted(sent_keys(airplane_conn)) == [f"nightly-scores-map{index}" for index in range(3)]
