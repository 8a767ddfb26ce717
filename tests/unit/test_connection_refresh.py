"""A hook that lives on (the triggerer's watchers) reads its connection again after an answer that says it
may be wrong (401, 403, 404) and at least every ``config_max_age`` seconds: fixing the connection is
enough, as the error log says, without restarting anything."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from airflow_provider_airplane.exceptions import AirplaneAuthError
from airflow_provider_airplane.hooks.airplane import CONFIG_MAX_AGE, AirplaneAsyncHook, AirplaneHook
from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.triggers import _events
from airflow_provider_airplane.triggers.airplane import AirplaneRunEventTrigger

WRONG_KEY = "tkn_revoked_key"
CONN_VAR = "AIRFLOW_CONN_AIRPLANE_DEFAULT"


def set_connection(
    monkeypatch: pytest.MonkeyPatch, emu: AirplaneEmulator, *, key: str, env_slug: str = "prod"
) -> None:
    """Edit the connection as a user does: the environment variable (a secrets backend alike)."""
    conn = {"conn_type": "airplane", "host": emu.url, "password": key, "extra": {"env_slug": env_slug}}
    monkeypatch.setenv(CONN_VAR, json.dumps(conn))


def logged(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """What was logged so far (Airflow's structlog writes to the terminal, plain logging to caplog)."""
    out, err = capfd.readouterr()
    return out + err + caplog.text


def refusals(emu: AirplaneEmulator) -> int:
    return sum(1 for entry in emu.request_log() if entry["status"] == 401)


def env_slugs(emu: AirplaneEmulator, path: str = "/v0/runs/get") -> list[str]:
    return [
        {k.lower(): v for k, v in entry["headers"].items()}.get("x-airplane-env-slug", "")
        for entry in emu.request_log()
        if entry["path"] == path
    ]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    for hook in (AirplaneHook, AirplaneAsyncHook):
        monkeypatch.setattr(hook, "backoff_base", 0.001)
        monkeypatch.setattr(hook, "backoff_cap", 0.01)


def test_the_default_age_is_five_minutes() -> None:
    assert CONFIG_MAX_AGE == 300
    assert AirplaneHook.config_max_age == AirplaneAsyncHook.config_max_age == CONFIG_MAX_AGE


def test_a_sync_hook_picks_up_a_fixed_key_after_a_401(
    emulator: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.add_task("job", duration=0.0)
    set_connection(monkeypatch, emulator, key=WRONG_KEY)
    with AirplaneHook() as hook:
        with pytest.raises(AirplaneAuthError):
            hook.execute_task("job")
        set_connection(monkeypatch, emulator, key=emulator.api_key)
        run_id = hook.execute_task("job")  # the same hook: no restart, no new hook
        assert hook.get_run(run_id).id == run_id
        assert hook.config.api_key == emulator.api_key


async def test_a_long_lived_async_hook_keeps_retrying_until_the_connection_is_fixed(
    emulator: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.add_task("job", duration=0.0)
    set_connection(monkeypatch, emulator, key=emulator.api_key)
    run_id = AirplaneHook().execute_task("job")
    set_connection(monkeypatch, emulator, key=WRONG_KEY)
    async with AirplaneAsyncHook() as hook:
        for _ in range(3):  # a watcher's polls: each is refused, none is fixed by itself
            with pytest.raises(AirplaneAuthError):
                await hook.get_run(run_id)
        set_connection(monkeypatch, emulator, key=emulator.api_key)
        assert (await hook.get_run(run_id)).id == run_id
        assert (await hook.get_config()).api_key == emulator.api_key
    statuses = [entry["status"] for entry in emulator.request_log() if entry["path"] == "/v0/runs/get"]
    assert statuses == [401, 401, 401, 200]


async def test_an_event_watcher_recovers_once_the_key_is_fixed(
    emulator: AirplaneEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The issue's case: the watcher logs "fix the key ... in the connection. Still retrying"; doing just
    that must be enough."""
    monkeypatch.setattr(_events, "MAX_BACKOFF", 0.1)
    emulator.add_task("job", duration=0.0)
    set_connection(monkeypatch, emulator, key=WRONG_KEY)
    watcher = AirplaneRunEventTrigger(slug="job", poll_interval=0.05).run()
    first = asyncio.ensure_future(anext(watcher))
    with caplog.at_level(logging.INFO):
        while refusals(emulator) < 3:  # three polls refused: the watcher keeps going
            assert not first.done(), first
            await asyncio.sleep(0.02)
    assert "Still retrying" in logged(capfd, caplog)
    set_connection(monkeypatch, emulator, key=emulator.api_key)
    run_id = AirplaneHook().execute_task("job")
    payload: dict[str, Any] = (await asyncio.wait_for(first, 15)).payload
    while run_id not in [run["run_id"] for run in payload["runs"]]:
        payload = (await asyncio.wait_for(anext(watcher), 15)).payload
    await watcher.aclose()


def test_a_changed_connection_is_read_within_its_max_age(
    emulator: AirplaneEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """No error needed: a hook uses the connection as read for at most ``config_max_age`` seconds."""
    emulator.add_task("job", duration=0.0)
    set_connection(monkeypatch, emulator, key=emulator.api_key, env_slug="prod")
    clock = [1000.0]
    monkeypatch.setattr("airflow_provider_airplane.hooks.airplane.time.monotonic", lambda: clock[0])
    with AirplaneHook() as hook:
        run_id = hook.execute_task("job")
        set_connection(monkeypatch, emulator, key=emulator.api_key, env_slug="staging")
        hook.get_run(run_id)
        clock[0] += CONFIG_MAX_AGE - 1
        hook.get_run(run_id)  # still within the age: as read
        clock[0] += 1
        with caplog.at_level(logging.INFO):
            hook.get_run(run_id)  # read again
    assert env_slugs(emulator) == ["prod", "prod", "staging"]
    assert "Airplane connection 'airplane_default' changed" in logged(capfd, caplog)


def test_a_connection_that_cannot_be_read_again_is_kept(
    emulator: AirplaneEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A secrets backend down for a moment must not fail a wait that was working."""
    emulator.add_task("job", duration=0.0)
    set_connection(monkeypatch, emulator, key=emulator.api_key)
    monkeypatch.setattr(AirplaneHook, "config_max_age", 0.0)  # read on every call
    with AirplaneHook() as hook:
        run_id = hook.execute_task("job")
        monkeypatch.delenv(CONN_VAR)
        with caplog.at_level(logging.WARNING):
            assert hook.get_run(run_id).id == run_id
    text = logged(capfd, caplog)
    assert "Could not read Airplane connection 'airplane_default' again" in text
    assert emulator.api_key not in text
