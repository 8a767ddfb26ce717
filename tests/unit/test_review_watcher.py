"""Review 2026-12 §2.3: one unreadable runs/list answer must not fail the deferred tasks waiting on it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_airplane.hooks.airplane import AirplaneAsyncHook, AirplaneHook
from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.triggers.airplane import AirplaneRunTrigger

LIST = "/v0/runs/list"


@pytest.fixture(autouse=True)
def fast_hook_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AirplaneAsyncHook, "backoff_base", 0.001)
    monkeypatch.setattr(AirplaneAsyncHook, "backoff_cap", 0.01)


async def first_event(trigger: AirplaneRunTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


@pytest.mark.parametrize("body", ['{"runs": [{"id": "run1", "sta', "<html><body>Gateway login</body></html>"])
async def test_one_unreadable_200_listing_fails_no_deferred_task(
    airplane_conn: AirplaneEmulator, body: str
) -> None:
    """Five deferred tasks wait on long runs through the shared watcher; ONE runs/list answer is a 200
    whose body is cut short (or a proxy's page). It was treated as permanent and ended every waiting
    trigger with an error event; it is transient, and the next attempt works."""
    emu = airplane_conn
    emu.add_task("long", duration=3.0)
    with AirplaneHook() as hook:
        run_ids = [hook.execute_task("long") for _ in range(5)]
    triggers = [
        AirplaneRunTrigger(run_id=r, airplane_conn_id="airplane_default", poll_interval=0.2) for r in run_ids
    ]
    tasks = [asyncio.ensure_future(first_event(t)) for t in triggers]
    await asyncio.sleep(1.0)  # every run has had its first check; the watcher now lists
    assert not any(t.done() for t in tasks)
    emu.inject_fault(LIST, status=200, body=body, count=1)

    events = await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)

    statuses = [e["status"] for e in events]
    assert statuses == ["success"] * 5, events[0]
