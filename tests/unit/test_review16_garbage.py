"""Review of issue 16: an answer that is not HTTP at all (a middlebox or another service on the port
writing a page with no status line) during an outage.

requests turns it into a ConnectionError (BadStatusLine), which the worker rides as an outage. aiohttp
raises ``ClientResponseError``, which the async hook does not count as a transport failure and
``is_transient`` does not count as transient: the triggerer's shared watcher fails every waiter at once
("Cannot watch Airplane run ..."), although the docs promise an outage shorter than ``max_outage``
never costs a deferred task.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from airflow_provider_airplane.hooks.airplane import AirplaneHook
from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.triggers.airplane import AirplaneRunTrigger

GARBAGE = b"<html><body>Service temporarily unavailable</body></html>\r\n\r\n"


@pytest.fixture
def garbage_url() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that reads a request and writes bytes that are not an HTTP answer."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(GARBAGE)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    server.close()


@pytest.fixture
def conn_to_garbage(
    emulator: AirplaneEmulator, garbage_url: str, monkeypatch: pytest.MonkeyPatch
) -> AirplaneEmulator:
    emulator.add_task("forever", duration=100_000)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRPLANE_GARBAGE",
        json.dumps({"conn_type": "airplane", "host": garbage_url, "password": emulator.api_key, "extra": {}}),
    )
    monkeypatch.setattr(AirplaneHook, "backoff_cap", 0.05)
    return emulator


def test_worker_rides_an_answer_that_is_not_http(conn_to_garbage: AirplaneEmulator) -> None:
    """Control: the worker's hook counts it as an outage (and gives up only after max_outage)."""
    from airflow_provider_airplane.exceptions import AirplaneOutageError

    hook = AirplaneHook("airplane_garbage").ride_outages(1.0)
    with pytest.raises(AirplaneOutageError):
        hook.get_run("run123")


def test_deferred_task_rides_an_answer_that_is_not_http(conn_to_garbage: AirplaneEmulator) -> None:
    """The same answers for 3 s must not end a deferred wait whose max_outage is 30 minutes."""
    trigger = AirplaneRunTrigger(run_id="run123", airplane_conn_id="airplane_garbage", poll_interval=0.2)

    async def first_event() -> object:
        return await anext(aiter(trigger.run()))

    async def main() -> object:
        try:
            return await asyncio.wait_for(first_event(), 3)
        except TimeoutError:
            return None  # still waiting: what max_outage promises

    event = asyncio.run(main())
    assert event is None, f"the trigger gave up within 3 s of the outage: {event}"
