"""The emulator's public run shape and its hostile knobs, each seen over real HTTP as a client sees it."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests

from airflow_provider_airplane.testing import AirplaneEmulator, EmulatorClient
from airflow_provider_airplane.testing import _state as emulator_state
from airflow_provider_airplane.testing._hostile import DEFAULTS, REALISTIC, Hostile

PUBLIC_FIELDS = {
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
DEV_SERVER_FIELDS = {
    "runID",
    "taskSlug",
    "taskName",
    "creatorID",
    "parameters",
    "parentID",
    "outputs",
    "displays",
    "prompts",
    "sleeps",
    "isWaitingForUser",
    "envSlug",
    "isStdAPI",
}


class Api:
    """``requests`` against one emulator's ``/v0`` with its key."""

    def __init__(self, emu: AirplaneEmulator) -> None:
        self.base = emu.url + "/v0"
        self.session = requests.Session()
        self.session.headers["X-Airplane-API-Key"] = emu.api_key

    def get(self, path: str, timeout: float = 10, **params: Any) -> requests.Response:
        return self.session.get(self.base + path, params=params, timeout=timeout)

    def post(self, path: str, body: Any, timeout: float = 10) -> requests.Response:
        return self.session.post(self.base + path, json=body, timeout=timeout)

    def execute(self, slug: str) -> str:
        response = self.post("/tasks/execute", {"slug": slug})
        assert response.status_code == 200, response.text
        return str(response.json()["runID"])

    def list(self, **params: Any) -> list[dict[str, Any]]:
        response = self.get("/runs/list", **params)
        assert response.status_code == 200, response.text
        runs: list[dict[str, Any]] = response.json()["runs"]
        return runs

    def logs(self, run_id: str, token: str | None = None) -> dict[str, Any]:
        response = self.get("/runs/getLogs", runID=run_id, **({"prev_token": token} if token else {}))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def api(emulator: AirplaneEmulator) -> Api:
    return Api(emulator)


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# The public run shape -----------------------------------------------------------------------------


def test_get_and_list_answer_only_the_public_fields(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("hello")
    run_id = api.execute("hello")
    assert set(api.get("/runs/get", id=run_id).json()) == PUBLIC_FIELDS
    assert [set(run) for run in api.list()] == [PUBLIC_FIELDS]
    assert emulator.runs()[0]["taskSlug"] == "hello"  # the test helper still shows the slug


def test_dev_server_profile_adds_the_dev_servers_fields(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.configure(profile="dev-server")
    emulator.add_task("hello", output={"rows": 1})
    run_id = api.execute("hello")
    run = api.get("/runs/get", id=run_id).json()
    assert set(run) == PUBLIC_FIELDS | DEV_SERVER_FIELDS
    assert (run["taskSlug"], run["runID"], run["outputs"]) == ("hello", run_id, {"rows": 1})
    assert set(api.list()[0]) == PUBLIC_FIELDS | DEV_SERVER_FIELDS
    with pytest.raises(ValueError, match="profile"):
        emulator.configure(profile="production")


# The clock ----------------------------------------------------------------------------------------


def test_clock_offset_moves_the_date_header_and_the_list_filters(
    emulator: AirplaneEmulator, api: Api
) -> None:
    emulator.add_task("hello")
    emulator.clock_offset = -3600.0
    api.execute("hello")
    response = api.get("/runs/list")
    served = parsedate_to_datetime(response.headers["Date"]).timestamp()
    assert served == pytest.approx(time.time() - 3600.0, abs=5)
    server_now = datetime.fromtimestamp(time.time() - 3600.0, UTC)
    machine_now = datetime.now(UTC)
    assert len(api.list(since=(server_now.replace(microsecond=0)).isoformat().replace("+00:00", "Z"))) == 1
    # The run changed an hour before the machine's now: a since of the machine's now misses it.
    assert api.list(since=machine_now.replace(microsecond=0).isoformat().replace("+00:00", "Z")) == []


# Outages ------------------------------------------------------------------------------------------


def test_outage_fails_every_request_until_it_ends(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.start_outage(0.6, mix={"503": 1})
    statuses = {api.get("/runs/list").status_code for _ in range(3)}
    assert statuses == {503}
    time.sleep(0.7)
    assert api.get("/runs/list").status_code == 200


def test_outage_of_one_path_leaves_the_others_alone(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("hello")
    emulator.start_outage(30, path="runs/get", mix={"502": 1})
    run_id = api.execute("hello")
    broken = api.get("/runs/get", id=run_id)
    assert (broken.status_code, broken.headers["Content-Type"].split(";")[0]) == (502, "text/html")
    assert api.get("/runs/list").status_code == 200
    emulator.end_outage()
    assert api.get("/runs/get", id=run_id).status_code == 200


@pytest.mark.parametrize("mode", ["429", "503"])
def test_load_shedding_is_a_json_error_with_retry_after(
    emulator: AirplaneEmulator, api: Api, mode: str
) -> None:
    emulator.start_outage(30, mix={mode: 1})
    response = api.get("/runs/list")
    assert response.status_code == int(mode)
    assert response.json()["error"]
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-Airplane-Retryable"] == "true"


@pytest.mark.parametrize("mode", ["502", "504"])
def test_gateway_errors_are_a_proxys_html_page(emulator: AirplaneEmulator, api: Api, mode: str) -> None:
    emulator.start_outage(30, mix={mode: 1})
    response = api.get("/runs/list")
    assert response.status_code == int(mode)
    assert "<html>" in response.text
    assert "X-Airplane-Retryable" not in response.headers


def test_dropped_connection_answers_nothing_and_does_no_work(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("hello")
    emulator.start_outage(30, mix={"drop": 1})
    with pytest.raises(requests.ConnectionError):
        api.post("/tasks/execute", {"slug": "hello"})
    assert emulator.runs() == []
    assert [entry["status"] for entry in emulator.request_log()] == [None]


def test_hang_outlasts_the_client_timeout_but_the_work_happens(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("hello")
    emulator.configure(hang_seconds=1.0)
    emulator.start_outage(30, path="tasks/execute", mix={"hang": 1})
    with pytest.raises(requests.ReadTimeout):
        api.post("/tasks/execute", {"slug": "hello"}, timeout=0.3)
    assert emulator.runs() == []  # still held
    wait_for(lambda: len(emulator.runs()) == 1)


def test_truncated_answer_is_a_200_whose_json_is_cut_short(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("hello")
    whole = api.post("/tasks/execute", {"slug": "hello"}).text
    emulator.start_outage(30, mix={"truncated": 1})
    response = api.post("/tasks/execute", {"slug": "hello"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert 0 < len(response.text) < len(whole)
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)
    assert len(emulator.runs()) == 2  # the run started; only its answer was cut


def test_html_mode_is_a_200_login_page_and_does_no_work(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("hello")
    emulator.start_outage(30, mix={"html": 1})
    response = api.post("/tasks/execute", {"slug": "hello"})
    assert (response.status_code, response.headers["Content-Type"].split(";")[0]) == (200, "text/html")
    assert "Sign in" in response.text
    assert emulator.runs() == []


def test_outage_mix_draws_every_mode_it_names(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.start_outage(30, mix={"502": 1, "503": 1, "html": 1})
    seen = {api.get("/runs/list").status_code for _ in range(40)}
    assert seen == {200, 502, 503}


def test_client_and_admin_route_steer_an_outage(emulator: AirplaneEmulator, api: Api) -> None:
    client = EmulatorClient(emulator.url)
    client.start_outage(30, path="/v0/runs/list", mix={"504": 1})
    assert client.outage() == {
        "active": True,
        "remaining": pytest.approx(30, abs=2),
        "path": "/v0/runs/list",
        "mix": {"504": 1.0},
    }
    assert api.get("/runs/list").status_code == 504
    client.end_outage()
    assert client.outage() == {"active": False}
    assert api.get("/runs/list").status_code == 200
    with pytest.raises(RuntimeError, match="unknown failure mode"):
        client.start_outage(5, mix={"418": 1})


# Latency and errors -------------------------------------------------------------------------------


def test_latency_holds_each_request(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.configure(latency=0.25, latency_sigma=0.0)
    started = time.monotonic()
    assert api.get("/runs/list").status_code == 200
    assert time.monotonic() - started >= 0.25


def test_latency_max_caps_the_tail(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.configure(latency=60.0, latency_max=0.3)
    started = time.monotonic()
    assert api.get("/runs/list").status_code == 200
    assert 0.3 <= time.monotonic() - started < 3.0


def test_latency_has_a_long_tail() -> None:
    hostile = Hostile(seed=1)
    hostile.configure(latency=0.03, latency_sigma=1.2, latency_max=10.0)
    draws = sorted(hostile.latency_draw() for _ in range(2000))
    median, p99 = statistics.median(draws), draws[int(len(draws) * 0.99)]
    assert median == pytest.approx(0.03, rel=0.2)
    assert p99 > 10 * median


def test_error_rate_fails_that_share_in_the_mix(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.configure(error_rate=1.0, error_mix={"502": 1})
    assert {api.get("/runs/list").status_code for _ in range(5)} == {502}
    emulator.configure(error_rate=0.5, error_mix={"503": 1})
    statuses = [api.get("/runs/list").status_code for _ in range(60)]
    assert set(statuses) == {200, 503}
    assert 10 < statuses.count(503) < 50
    emulator.configure(error_rate=0.0)
    assert {api.get("/runs/list").status_code for _ in range(5)} == {200}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"error_rate": 2}, "probability"),
        ({"list_shift": -1}, "number >= 0"),
        ({"log_overlap": 1.5}, "whole number"),
        ({"error_mix": {"418": 1}}, "unknown failure mode"),
        ({"nope": 1}, "unknown setting"),
    ],
)
def test_bad_settings_are_refused(emulator: AirplaneEmulator, settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        emulator.configure(**settings)
    assert emulator.settings()["error_rate"] == 0.0


# runs/list: lag and shift -------------------------------------------------------------------------


def test_list_shows_a_change_only_after_the_lag(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.configure(list_lag=1.0)
    emulator.add_task("slow", duration=0.3)
    run_id = api.execute("slow")
    assert api.get("/runs/get", id=run_id).status_code == 200  # runs/get is not behind
    assert api.list() == []  # created, but not in the listing yet
    wait_for(lambda: api.list() != [])
    assert api.list()[0]["status"] in ("NotStarted", "Queued", "Active")
    assert api.get("/runs/get", id=run_id).json()["status"] == "Succeeded"
    wait_for(lambda: api.list()[0]["status"] == "Succeeded")


def test_list_shift_repeats_a_run_across_pages(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("hello")
    ids = [api.execute("hello") for _ in range(5)][::-1]  # most recent first
    emulator.configure(list_shift=1.0)
    first, second = api.list(limit=2, page=0), api.list(limit=2, page=1)
    assert [run["id"] for run in first] == ids[0:2]
    assert [run["id"] for run in second] == ids[1:3]  # as if a run had been created in between


def test_list_shift_orders_by_last_change(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.add_task("slow", duration=0.5)
    emulator.add_task("quick")
    slow, quick = api.execute("slow"), api.execute("quick")
    wait_for(lambda: api.get("/runs/get", id=slow).json()["status"] == "Succeeded")
    assert [run["id"] for run in api.list()] == [quick, slow]  # by creation
    emulator.configure(list_shift=0.01)
    assert [run["id"] for run in api.list()] == [slow, quick]  # the slow one changed last


# runs/getLogs: jitter and overlap -----------------------------------------------------------------


def test_log_jitter_serves_lines_out_of_timestamp_order(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.configure(log_jitter=0.5, seed=3)
    emulator.add_task("chatty", duration=0.5, logs=30)
    run_id = api.execute("chatty")
    time.sleep(1.2)
    lines = api.logs(run_id)["logs"]
    stamps = [line["timestamp"] for line in lines]
    assert len(lines) == 30
    assert stamps != sorted(stamps)
    assert {line["text"] for line in lines} == {f"chatty: line {n} of 30" for n in range(1, 31)}


def test_log_pages_overlap_across_tokens(
    emulator: AirplaneEmulator, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator_state, "LOG_PAGE_SIZE", 4)
    emulator.configure(log_overlap=2)
    emulator.add_task("chatty", logs=6)
    run_id = api.execute("chatty")
    first = api.logs(run_id)
    second = api.logs(run_id, first["prev_token"])
    third = api.logs(run_id, second["prev_token"])
    ids = [[line["insertID"] for line in page["logs"]] for page in (first, second, third)]
    assert len(ids[0]) == 4
    assert ids[1][:2] == ids[0][2:]  # the two lines before the token come again
    assert len(set(ids[0] + ids[1])) == 6
    assert third == {
        "runID": run_id,
        "logs": [],
        "prev_token": "",
        "next_token": "",
    }  # no new lines: no repeats


# Cancels ------------------------------------------------------------------------------------------


def test_cancel_takes_effect_late_through_settings(emulator: AirplaneEmulator, api: Api) -> None:
    emulator.configure(cancel_delay=0.5)
    emulator.add_task("long", duration=60)
    run_id = api.execute("long")
    assert api.post("/runs/cancel", {"runID": run_id}).status_code == 200
    assert api.get("/runs/get", id=run_id).json()["status"] != "Cancelled"
    wait_for(lambda: api.get("/runs/get", id=run_id).json()["status"] == "Cancelled")
    assert emulator.settings()["cancel_delay"] == 0.5


# Realistic and the seed ---------------------------------------------------------------------------


def test_realistic_turns_the_mix_on_and_prints_the_seed(capfd: pytest.CaptureFixture[str]) -> None:
    with AirplaneEmulator(realistic=True, seed=1234) as emu:
        settings = emu.settings()
    assert {name: settings[name] for name in REALISTIC} == REALISTIC
    assert settings["seed"] == emu.seed == 1234
    assert "seed 1234" in capfd.readouterr().err


def test_quiet_by_default_and_explicit_settings_win_over_realistic(capfd: pytest.CaptureFixture[str]) -> None:
    with AirplaneEmulator() as quiet:
        assert {name: quiet.settings()[name] for name in DEFAULTS} == DEFAULTS
    assert "seed" not in capfd.readouterr().err
    with AirplaneEmulator(realistic=True, cancel_delay=0.0) as emu:
        assert (emu.settings()["cancel_delay"], emu.settings()["list_lag"]) == (0.0, REALISTIC["list_lag"])
        emu.configure(realistic=True, list_lag=0.0)
        assert (emu.settings()["cancel_delay"], emu.settings()["list_lag"]) == (
            REALISTIC["cancel_delay"],
            0.0,
        )


def statuses_with_seed(seed: int) -> list[int]:
    with AirplaneEmulator(seed=seed) as emu:
        emu.configure(error_rate=0.5, error_mix={"502": 1, "503": 1, "html": 1})
        api = Api(emu)
        return [api.get("/runs/list").status_code for _ in range(30)]


def test_the_same_seed_replays_the_same_failures() -> None:
    first, again, other = statuses_with_seed(7), statuses_with_seed(7), statuses_with_seed(8)
    assert first == again
    assert first != other
    assert len(set(first)) > 1


def test_client_configures_over_the_admin_route(emulator: AirplaneEmulator, api: Api) -> None:
    client = EmulatorClient(emulator.url)
    settings = client.configure(error_rate=1.0, error_mix={"504": 1}, seed=99)
    assert (settings["error_rate"], settings["error_mix"], settings["seed"]) == (1.0, {"504": 1.0}, 99)
    assert api.get("/runs/list").status_code == 504
    assert client.settings() == emulator.settings()
    with pytest.raises(RuntimeError, match="HTTP 400"):
        client.configure(list_lag="soon")


def test_cli_takes_realistic_seed_profile_and_knobs() -> None:
    command = [
        sys.executable,
        "-m",
        "airflow_provider_airplane.testing",
        "--port",
        "0",
        "--api-key",
        "tkn_cli",
    ]
    flags = [
        "--realistic",
        "--seed",
        "42",
        "--profile",
        "dev-server",
        "--error-rate",
        "0",
        "--log-overlap",
        "3",
    ]
    process = subprocess.Popen(
        [*command, *flags, "--outage", "30", "--outage-path", "runs/get", "--outage-mix", "504=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://")
        assert "seed 42" in process.stderr.readline()
        settings = EmulatorClient(url).settings()
        assert (settings["seed"], settings["profile"], settings["error_rate"]) == (42, "dev-server", 0.0)
        assert (settings["log_overlap"], settings["list_lag"]) == (3, REALISTIC["list_lag"])
        assert EmulatorClient(url).outage()["path"] == "/v0/runs/get"
    finally:
        process.terminate()
        process.communicate(timeout=30)
