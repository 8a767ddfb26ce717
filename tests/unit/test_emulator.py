"""The Airplane API emulator over real HTTP: auth, the run lifecycle, idempotency, list, cancel, faults."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import requests

from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.testing import _state as emulator_state

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
RUN_FIELDS = {
    "id",
    "taskID",
    "teamID",
    "status",
    "paramValues",
    "params",
    "permissions",
    "isPrivate",
    "resources",
    "runtime",
    "sessionID",
    "constraints",
    "createdAt",
    "createdBy",
    "activeAt",
    "succeededAt",
    "failedAt",
    "cancelledAt",
    "cancelledBy",
    "timeout",
    "zoneID",
}


class Api:
    """A thin ``requests`` client of one emulator, so each test reads as the HTTP it sends."""

    def __init__(
        self, emu: AirplaneEmulator, key: str | None = None, header: str = "X-Airplane-API-Key"
    ) -> None:
        self.base = emu.url + "/v0"
        self.session = requests.Session()
        self.session.headers[header] = key or emu.api_key

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
        return self.session.post(self.base + path, json=body, headers=headers, timeout=10)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.base + path, params=params, timeout=10)

    def execute(
        self, slug: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> str:
        response = self.post("/tasks/execute", {"slug": slug, "paramValues": params or {}}, headers)
        assert response.status_code == 200, response.text
        return str(response.json()["runID"])

    def run(self, run_id: str) -> dict[str, Any]:
        response = self.get("/runs/get", id=run_id)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def outputs(self, run_id: str) -> Any:
        response = self.get("/runs/getOutputs", id=run_id)
        assert response.status_code == 200, response.text
        return response.json()["output"]

    def list(self, **params: Any) -> list[dict[str, Any]]:
        response = self.get("/runs/list", **params)
        assert response.status_code == 200, response.text
        runs: list[dict[str, Any]] = response.json()["runs"]
        return runs


@pytest.fixture
def api(emulator: AirplaneEmulator) -> Api:
    return Api(emulator)


def parse(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def set_clock(emu: AirplaneEmulator, moment: float) -> None:
    """Move the emulator's clock so that it now reads ``moment``."""
    emu.clock_offset = moment - time.time()


# Auth -------------------------------------------------------------------------------------------


def test_missing_key_is_401_json_error(emulator: AirplaneEmulator) -> None:
    response = requests.get(emulator.url + "/v0/runs/list", timeout=10)
    assert response.status_code == 401
    assert "error" in response.json()
    assert response.headers["X-Airplane-Retryable"] == "false"


def test_wrong_key_is_401(emulator: AirplaneEmulator) -> None:
    response = Api(emulator, key="tkn_wrong").get("/runs/list")
    assert response.status_code == 401
    assert response.json()["error"]


def test_key_without_permission_is_403(emulator: AirplaneEmulator) -> None:
    emulator.add_key("tkn_readonly", allowed=False)
    response = Api(emulator, key="tkn_readonly").get("/runs/list")
    assert response.status_code == 403
    assert response.json()["error"]
    assert response.headers["X-Airplane-Retryable"] == "false"


def test_token_header_and_second_key_are_accepted(emulator: AirplaneEmulator) -> None:
    emulator.add_task("hello")
    assert Api(emulator, header="X-Airplane-Token").execute("hello").startswith("run")
    emulator.add_key("tkn_second")
    assert Api(emulator, key="tkn_second").get("/runs/list").status_code == 200


# Execute, get, outputs --------------------------------------------------------------------------


def test_execute_by_slug_returns_the_public_run_object(emulator: AirplaneEmulator, api: Api) -> None:
    task_id = emulator.add_task("hello", output={"rows": 3})
    run_id = api.execute("hello", {"n": 1, "tags": ["a"]}, headers={"X-Airplane-Env-Slug": "prod"})
    run = api.run(run_id)
    assert set(run) == RUN_FIELDS  # reference section 5, nothing more (no taskSlug, no envSlug)
    assert run["id"] == run_id
    assert run["taskID"] == task_id
    assert run["status"] == "Succeeded"  # duration 0: finished on the first look
    assert run["paramValues"] == {"n": 1, "tags": ["a"]}
    assert emulator.runs()[0]["envSlug"] == "prod"  # kept, but only the test helper shows it
    assert run["zoneID"] is None
    for stamp in ("createdAt", "activeAt", "succeededAt"):
        assert RFC3339.match(run[stamp]), run[stamp]
    assert run["failedAt"] is None
    assert run["cancelledAt"] is None
    assert api.outputs(run_id) == {"rows": 3}


def test_execute_by_task_id_with_resources_and_env_query(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("hello", task_id="tsk_fixed", output="hi")
    response = api.session.post(
        api.base + "/tasks/execute",
        params={"envSlug": "staging"},
        json={"id": "tsk_fixed", "resources": {"db": "demo_db"}},
        headers={"X-Airplane-Env-ID": "env123"},
        timeout=10,
    )
    assert response.status_code == 200
    run = api.run(response.json()["runID"])
    (seen,) = emulator.runs()
    assert (run["taskID"], run["resources"], seen["envSlug"], seen["envID"]) == (
        "tsk_fixed",
        {"db": "demo_db"},
        "staging",
        "env123",
    )
    assert api.outputs(run["id"]) == "hi"


def test_output_is_computed_from_params_and_failures_carry_error(
    emulator: AirplaneEmulator, api: Api
) -> None:
    emulator.add_task("double", output=lambda params: {"twice": params["n"] * 2})
    emulator.add_task("broken", fail=True, error="quota exceeded")
    emulator.add_task("raises", output=lambda params: params["missing"])
    assert api.outputs(api.execute("double", {"n": 21})) == {"twice": 42}
    failed = api.run(api.execute("broken"))
    assert failed["status"] == "Failed"
    assert RFC3339.match(failed["failedAt"])
    assert failed["succeededAt"] is None
    assert api.outputs(failed["id"]) == {"error": "quota exceeded"}
    raised = api.execute("raises")
    assert api.run(raised)["status"] == "Failed"
    assert "missing" in api.outputs(raised)["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"slug": "nope"}, 'Task with slug "nope" not found'),
        ({"id": "tsk_nope"}, 'Task with id "tsk_nope" not found'),
    ],
)
def test_unknown_task_is_404(api: Api, body: dict[str, str], message: str) -> None:
    response = api.post("/tasks/execute", body)
    assert response.status_code == 404
    assert response.json()["error"] == message


@pytest.mark.parametrize("body", [{"paramValues": {}}, {"slug": "x", "paramValues": [1]}, "not an object"])
def test_bad_execute_bodies_are_400(emulator: AirplaneEmulator, api: Api, body: Any) -> None:
    emulator.add_task("x")
    response = api.post("/tasks/execute", body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert emulator.runs() == []


def test_unparseable_body_is_400(api: Api) -> None:
    response = api.session.post(api.base + "/tasks/execute", data="{trunc", timeout=10)
    assert response.status_code == 400


@pytest.mark.parametrize("path", ["/runs/get", "/runs/getOutputs"])
def test_unknown_run_is_404(api: Api, path: str) -> None:
    response = api.get(path, id="run_nope")
    assert response.status_code == 404
    assert response.json() == {"error": 'Run with id "run_nope" not found'}


def test_task_that_must_be_requested_answers_its_code(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("guarded", requires_request=True)
    response = api.post("/tasks/execute", {"slug": "guarded"})
    assert response.status_code == 403
    assert response.json()["code"] == "task_must_be_requested"
    assert emulator.runs() == []


def test_unknown_route_and_wrong_method_are_json_errors(api: Api) -> None:
    missing = api.get("/runs/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]
    wrong = api.get("/tasks/execute")
    assert wrong.status_code == 405
    assert wrong.json()["error"]


# Lifecycle --------------------------------------------------------------------------------------


def test_run_moves_through_every_status_on_the_clock(
    emulator: AirplaneEmulator, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wide steps (2 s, 4 s, 6 s) so the checks do not race the wall clock.
    monkeypatch.setattr(emulator_state, "QUEUE_DELAY", 2.0)
    monkeypatch.setattr(emulator_state, "START_DELAY", 4.0)
    emulator.add_task("slow", output=[1, 2], duration=6.0)
    run_id = api.execute("slow")
    created = parse(api.run(run_id)["createdAt"])
    seen = {}
    for at in (0.5, 3.0, 5.0, 7.0):
        set_clock(emulator, created + at)
        seen[at] = api.run(run_id)
    assert [seen[at]["status"] for at in seen] == ["NotStarted", "Queued", "Active", "Succeeded"]
    assert seen[3.0]["activeAt"] is None
    assert parse(seen[5.0]["activeAt"]) == pytest.approx(created + 4.0, abs=1e-5)
    assert parse(seen[7.0]["succeededAt"]) == pytest.approx(created + 6.0, abs=1e-5)
    set_clock(emulator, created + 5.0)
    assert api.outputs(run_id) is None  # not finished: no output yet


def test_run_finishes_after_its_duration_in_real_time(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("short", output="done", duration=1.0)
    run_id = api.execute("short")
    statuses = []
    while (status := api.run(run_id)["status"]) != "Succeeded":
        statuses.append(status)
        time.sleep(0.02)
    run = api.run(run_id)
    assert "Active" in statuses
    assert statuses == sorted(statuses, key=["NotStarted", "Queued", "Active"].index)
    assert parse(run["succeededAt"]) - parse(run["createdAt"]) == pytest.approx(1.0, abs=1e-5)


def test_clock_offset_shifts_every_timestamp() -> None:
    with AirplaneEmulator(clock_offset=-86400.0) as emu:
        assert emu.api_key.startswith("tkn_")
        emu.add_task("hello")
        run = Api(emu).run(Api(emu).execute("hello"))
    assert parse(run["createdAt"]) == pytest.approx(time.time() - 86400.0, abs=30)


# Idempotency ------------------------------------------------------------------------------------


def test_same_idempotency_key_returns_the_same_run_once(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("hello")
    first = api.post("/tasks/execute", {"slug": "hello"}, headers={"Idempotency-Key": "k1"})
    again = api.post("/tasks/execute", {"slug": "hello"}, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert first.headers["Idempotency-Key"] == again.headers["Idempotency-Key"] == "k1"
    assert len(emulator.runs()) == 1
    other = api.post("/tasks/execute", {"slug": "hello"}, headers={"Idempotency-Key": "k2"})
    assert other.json()["runID"] != first.json()["runID"]


def test_idempotency_key_is_per_api_key(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("hello")
    emulator.add_key("tkn_other")
    mine = api.post("/tasks/execute", {"slug": "hello"}, headers={"Idempotency-Key": "k"})
    theirs = Api(emulator, key="tkn_other").post(
        "/tasks/execute", {"slug": "hello"}, headers={"Idempotency-Key": "k"}
    )
    assert mine.json()["runID"] != theirs.json()["runID"]


def test_concurrent_retries_with_one_key_start_one_run(emulator: AirplaneEmulator) -> None:
    emulator.add_task("hello")
    answers: list[str] = []

    def post() -> None:
        answers.append(Api(emulator).execute("hello", headers={"Idempotency-Key": "same"}))

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(answers)) == 1
    assert len(answers) == 20
    assert len(emulator.runs()) == 1


def test_idempotency_key_expires_after_the_ttl() -> None:
    with AirplaneEmulator(idempotency_ttl=60.0) as emu:
        emu.add_task("hello")
        api = Api(emu)
        first = api.execute("hello", headers={"Idempotency-Key": "k"})
        emu.clock_offset = 59.0
        assert api.execute("hello", headers={"Idempotency-Key": "k"}) == first
        emu.clock_offset = 61.0
        assert api.execute("hello", headers={"Idempotency-Key": "k"}) != first
        assert len(emu.runs()) == 2


def test_error_answers_are_not_stored(emulator: AirplaneEmulator, api: Api) -> None:
    failed = api.post("/tasks/execute", {"slug": "later"}, headers={"Idempotency-Key": "k"})
    assert failed.status_code == 404
    emulator.add_task("later")
    retried = api.post("/tasks/execute", {"slug": "later"}, headers={"Idempotency-Key": "k"})
    assert retried.status_code == 200
    assert len(emulator.runs()) == 1


# List -------------------------------------------------------------------------------------------


def test_list_pages_are_zero_based_most_recent_first(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("many")
    emulator.add_task("other")
    created = [api.execute("many") for _ in range(120)]
    api.execute("other")
    pages = [api.list(taskSlug="many", limit=50, page=page) for page in range(4)]
    assert [len(page) for page in pages] == [50, 50, 20, 0]
    assert [run["id"] for page in pages for run in page] == created[::-1]
    assert len(api.list()) == 50  # default limit
    assert api.list(limit=0) == []


def test_list_filters_by_task_id(emulator: AirplaneEmulator, api: Api) -> None:
    wanted = emulator.add_task("a")
    emulator.add_task("b")
    run_a, _ = api.execute("a"), api.execute("b")
    assert [run["id"] for run in api.list(taskID=wanted)] == [run_a]


@pytest.mark.parametrize(
    "params", [{"limit": 51}, {"limit": -1}, {"limit": "x"}, {"page": -1}, {"since": "yesterday"}]
)
def test_list_rejects_bad_parameters(api: Api, params: dict[str, Any]) -> None:
    response = api.get("/runs/list", **params)
    assert response.status_code == 400
    assert response.json()["error"]


def test_since_and_until_filter_on_last_update(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("quick")
    emulator.add_task("long", duration=90.0)
    base = time.time()
    set_clock(emulator, base - 100)
    old, long_run = api.execute("quick"), api.execute("long")  # long ends (updates) at base - 10
    set_clock(emulator, base - 50)
    middle = api.execute("quick")
    set_clock(emulator, base)
    new = api.execute("quick")

    def ids(**params: Any) -> set[str]:
        return {run["id"] for run in api.list(**params)}

    assert ids(since=rfc3339(base - 75)) == {middle, long_run, new}
    assert ids(until=rfc3339(base - 25)) == {old, middle}
    assert ids(since=rfc3339(base - 75), until=rfc3339(base - 25)) == {middle}
    assert ids(since=rfc3339(base - 20).replace("+00:00", "Z")) == {long_run, new}
    unencoded = api.session.get(f"{api.base}/runs/list?since={rfc3339(base - 20)}", timeout=10)  # "+" as is
    assert {run["id"] for run in unencoded.json()["runs"]} == {long_run, new}


# Cancel -----------------------------------------------------------------------------------------


def test_cancel_in_progress_run(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("slow", output="never", duration=60.0)
    run_id = api.execute("slow")
    response = api.post("/runs/cancel", {"runID": run_id})
    assert response.status_code == 200
    assert response.json() == {}
    run = api.run(run_id)
    assert run["status"] == "Cancelled"
    assert RFC3339.match(run["cancelledAt"])
    assert run["cancelledBy"].startswith("usr")
    assert run["cancelledBy"] == run["createdBy"]
    assert api.outputs(run_id) is None
    emulator.clock_offset = 120.0  # past the duration: a cancelled run stays cancelled
    assert api.run(run_id)["status"] == "Cancelled"


def test_cancel_terminal_run_is_400_not_retryable(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("quick")
    run_id = api.execute("quick")
    response = api.post("/runs/cancel", {"runID": run_id})
    assert response.status_code == 400
    assert response.json()["error"] == f"cannot cancel run {run_id} (state is already terminal)"
    assert response.headers["X-Airplane-Retryable"] == "false"
    assert api.run(run_id)["status"] == "Succeeded"


def test_cancel_unknown_or_missing_run(api: Api) -> None:
    assert api.post("/runs/cancel", {"runID": "run_nope"}).status_code == 404
    assert api.post("/runs/cancel", {}).status_code == 400


# Faults -----------------------------------------------------------------------------------------


def test_status_fault_with_retry_after_then_recovers(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("hello")
    run_id = api.execute("hello")
    emulator.inject_fault("/v0/runs/get", status=429, count=2, headers={"Retry-After": "1"})
    answers = [api.get("/runs/get", id=run_id) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "1"
    assert answers[0].headers["X-Airplane-Retryable"] == "true"
    assert answers[0].json()["error"]
    assert api.get("/runs/list").status_code == 200  # other paths are untouched


def test_fault_headers_override_retryable(api: Api, emulator: AirplaneEmulator) -> None:
    emulator.inject_fault("/runs/list", status=500, headers={"X-Airplane-Retryable": "false"})
    emulator.inject_fault("/runs/list", status=409, headers={"X-Airplane-Retryable": "true"})
    first, second = api.get("/runs/list"), api.get("/runs/list")
    assert (first.status_code, first.headers["X-Airplane-Retryable"]) == (500, "false")
    assert (second.status_code, second.headers["X-Airplane-Retryable"]) == (409, "true")


def test_fault_body_is_sent_verbatim(api: Api, emulator: AirplaneEmulator) -> None:
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    emulator.inject_fault("/v0/runs/list", status=502, body=page)
    emulator.inject_fault("/v0/runs/list", body='{"runs": [')
    gateway = api.get("/runs/list")
    assert (gateway.status_code, gateway.text) == (502, page)
    assert gateway.headers["Content-Type"].startswith("text/html")
    truncated = api.get("/runs/list")
    assert (truncated.status_code, truncated.text) == (200, '{"runs": [')
    with pytest.raises(requests.JSONDecodeError):
        truncated.json()


def test_dropped_connection_gets_no_answer(api: Api, emulator: AirplaneEmulator) -> None:
    emulator.inject_fault("/v0/runs/list", drop=True)
    with pytest.raises(requests.ConnectionError):
        api.get("/runs/list")
    assert api.get("/runs/list").status_code == 200
    assert [entry["status"] for entry in emulator.request_log()] == [None, 200]


def test_delay_fault_answers_normally_late(api: Api, emulator: AirplaneEmulator) -> None:
    emulator.inject_fault("/v0/runs/list", delay=0.5)
    emulator.inject_fault("/v0/runs/list", delay=0.3, status=503)
    started = time.monotonic()
    slow = api.get("/runs/list")
    middle = time.monotonic()
    slow_error = api.get("/runs/list")
    ended = time.monotonic()
    assert (slow.status_code, slow.json()) == (200, {"runs": []})
    assert middle - started >= 0.5
    assert slow_error.status_code == 503
    assert ended - middle >= 0.3


def test_rate_fault_stays_until_cleared(api: Api, emulator: AirplaneEmulator) -> None:
    emulator.inject_fault(status=503, rate=0.5)  # any /v0 path
    statuses = [api.get("/runs/list").status_code for _ in range(200)]
    assert 50 <= statuses.count(503) <= 150
    assert set(statuses) == {200, 503}
    emulator.clear_faults()
    assert all(api.get("/runs/list").status_code == 200 for _ in range(20))


def test_count_fault_hits_exactly_count_requests(api: Api, emulator: AirplaneEmulator) -> None:
    emulator.inject_fault(status=500, count=3)
    statuses = [api.get("/runs/list").status_code for _ in range(5)]
    assert statuses == [500, 500, 500, 200, 200]


def test_faulted_execute_changes_nothing(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("hello")
    emulator.inject_fault("/v0/tasks/execute", status=503)
    faulted = api.post("/tasks/execute", {"slug": "hello"}, headers={"Idempotency-Key": "k"})
    assert faulted.status_code == 503
    assert emulator.runs() == []
    retried = api.post("/tasks/execute", {"slug": "hello"}, headers={"Idempotency-Key": "k"})
    assert retried.status_code == 200
    assert len(emulator.runs()) == 1


# Counts, log, reset -----------------------------------------------------------------------------


def test_request_counts_and_log_redact_the_key(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("hello")
    emulator.inject_fault("/v0/runs/get", status=500)
    run_id = api.execute("hello", headers={"Idempotency-Key": "abc"})
    api.get("/runs/get", id=run_id)
    api.get("/runs/get", id=run_id)
    Api(emulator, header="X-Airplane-Token").get("/runs/list")
    assert emulator.request_counts() == {"/v0/tasks/execute": 1, "/v0/runs/get": 2, "/v0/runs/list": 1}
    log = emulator.request_log()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", "/v0/tasks/execute", 200),
        ("GET", "/v0/runs/get", 500),
        ("GET", "/v0/runs/get", 200),
        ("GET", "/v0/runs/list", 200),
    ]
    assert log[0]["headers"]["Idempotency-Key"] == "abc"
    assert log[0]["headers"]["X-Airplane-API-Key"] == "***"
    assert log[3]["headers"]["X-Airplane-Token"] == "***"
    assert log[1]["query"] == {"id": run_id}
    assert log[0]["time"] <= log[1]["time"] <= log[3]["time"]
    assert emulator.api_key not in repr(log)


def test_reset_forgets_runs_counts_and_faults(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("hello")
    api.execute("hello")
    emulator.inject_fault(status=500, rate=1.0)
    emulator.reset()
    assert emulator.runs() == []
    assert emulator.request_counts() == {}
    assert emulator.request_log() == []
    assert api.execute("hello")  # the task is kept; the fault is gone


# Load -------------------------------------------------------------------------------------------


async def test_thousand_concurrent_polls_all_answer(emulator: AirplaneEmulator) -> None:
    many_polls = 1000
    emulator.add_task("long", duration=3600.0)
    headers = {"X-Airplane-API-Key": emulator.api_key}
    started = time.monotonic()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), headers=headers, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:

        async def execute() -> str:
            async with session.post(emulator.url + "/v0/tasks/execute", json={"slug": "long"}) as response:
                return str((await response.json())["runID"])

        run_ids = await asyncio.gather(*(execute() for _ in range(many_polls)))

        async def poll(run_id: str) -> tuple[int, str]:
            async with session.get(emulator.url + "/v0/runs/get", params={"id": run_id}) as response:
                return response.status, (await response.json())["status"]

        answers = await asyncio.gather(*(poll(run_id) for run_id in run_ids))
    assert len(set(run_ids)) == many_polls
    assert all(status == 200 and run_status != "Succeeded" for status, run_status in answers)
    assert emulator.request_counts()["/v0/runs/get"] == many_polls
    assert time.monotonic() - started < 20
