"""Behind an egress proxy: the worker's client (requests) and the triggerer's (aiohttp) both honour
``HTTP(S)_PROXY`` and ``NO_PROXY``. The proxy is the only way to the API: the connection names a host that
resolves nowhere but in the proxy, which maps it to the emulator."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_airplane.exceptions import AirplaneApiError
from airflow_provider_airplane.hooks.airplane import AirplaneAsyncHook, AirplaneHook
from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.triggers.airplane import AirplaneRunEventTrigger, AirplaneRunTrigger

HIDDEN_HOST = "airplane-api.invalid"  # RFC 2606: never resolves, so only the proxy can reach it
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@dataclass
class EgressProxy:
    """A forward HTTP proxy: ``HIDDEN_HOST`` goes to the emulator, any other host as it is named."""

    url: str
    seen: list[tuple[str, str]] = field(default_factory=list)  # (host, path) of every request forwarded

    def paths(self, host: str = HIDDEN_HOST) -> list[str]:
        return [path for seen_host, path in self.seen if seen_host == host]


@pytest.fixture
def egress_proxy(emulator: AirplaneEmulator) -> Iterator[EgressProxy]:
    upstream = urlsplit(emulator.url)
    proxy = EgressProxy("")

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            target = urlsplit(self.path)  # absolute-form: what a client sends to a forward proxy
            host = target.hostname or ""
            proxy.seen.append((host, target.path))
            if host == HIDDEN_HOST:
                address = (upstream.hostname or "", upstream.port or 80)
            else:
                address = (host, target.port or 80)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {
                name: value
                for name, value in self.headers.items()
                if name.lower() not in ("host", "proxy-connection", "connection", "proxy-authorization")
            }
            conn = http.client.HTTPConnection(*address, timeout=10)
            try:
                path = target.path + (f"?{target.query}" if target.query else "")
                conn.request(self.command, path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
            finally:
                conn.close()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield proxy
    server.shutdown()
    server.server_close()
    thread.join()


def use_connection(monkeypatch: pytest.MonkeyPatch, emu: AirplaneEmulator, host: str) -> None:
    port = urlsplit(emu.url).port
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRPLANE_DEFAULT",
        json.dumps({"conn_type": "airplane", "host": f"http://{host}:{port}", "password": emu.api_key}),
    )


def set_proxy_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    """Exactly these proxy variables, in both spellings (lower case wins where both are set)."""
    for name in PROXY_VARS:
        value = values.get(name)
        for spelling in (name, name.lower()):
            if value is None:
                monkeypatch.delenv(spelling, raising=False)
            else:
                monkeypatch.setenv(spelling, value)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    for hook in (AirplaneHook, AirplaneAsyncHook):
        monkeypatch.setattr(hook, "backoff_base", 0.001)
        monkeypatch.setattr(hook, "backoff_cap", 0.01)


@pytest.fixture
def behind_proxy(
    emulator: AirplaneEmulator, egress_proxy: EgressProxy, monkeypatch: pytest.MonkeyPatch
) -> EgressProxy:
    """The connection names the hidden host; HTTP_PROXY is the only way to it."""
    emulator.add_task("job", duration=0.2)
    use_connection(monkeypatch, emulator, HIDDEN_HOST)
    set_proxy_env(monkeypatch, HTTP_PROXY=egress_proxy.url)
    return egress_proxy


async def test_without_the_proxy_the_api_is_out_of_reach(
    behind_proxy: EgressProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the hidden host is reachable only through the proxy."""
    set_proxy_env(monkeypatch)
    with AirplaneHook(max_attempts=1) as hook, pytest.raises(AirplaneApiError, match="does not resolve"):
        hook.get_run("run1")
    async with AirplaneAsyncHook(max_attempts=1) as ahook:
        with pytest.raises(AirplaneApiError, match="does not resolve"):
            await ahook.get_run("run1")
    assert behind_proxy.seen == []


async def test_the_worker_and_the_triggerer_hook_both_go_through_the_proxy(
    behind_proxy: EgressProxy,
) -> None:
    with AirplaneHook(max_attempts=1) as hook:  # a worker
        run_id = hook.execute_task("job")
        assert hook.get_run(run_id).id == run_id
    assert behind_proxy.paths() == ["/v0/tasks/execute", "/v0/runs/get"]

    async with AirplaneAsyncHook(max_attempts=1) as ahook:  # the triggerer
        run = await ahook.get_run(run_id)
        runs = await ahook.list_runs(task_slug="job")
    assert run.id == run_id
    assert [r.id for r in runs] == [run_id]
    assert behind_proxy.paths()[2:] == ["/v0/runs/get", "/v0/runs/list"]


async def test_a_deferred_task_and_an_event_watcher_wait_through_the_proxy(
    behind_proxy: EgressProxy,
) -> None:
    with AirplaneHook() as hook:
        first = hook.execute_task("job")
    deferred = AirplaneRunTrigger(run_id=first, airplane_conn_id="airplane_default", poll_interval=0.05)
    events = [event.payload async for event in deferred.run()]
    assert [(e["status"], e["run_id"]) for e in events] == [("success", first)]

    watcher = AirplaneRunEventTrigger(slug="job", poll_interval=0.05).run()
    with AirplaneHook() as hook:
        second = hook.execute_task("job")
    async with asyncio.timeout(15):
        while True:
            payload: dict[str, Any] = (await anext(watcher)).payload
            if second in [run["run_id"] for run in payload["runs"]]:
                break
    await watcher.aclose()
    assert set(behind_proxy.paths()) >= {"/v0/tasks/execute", "/v0/runs/list"}
    assert {host for host, _ in behind_proxy.seen} == {HIDDEN_HOST}


async def test_no_proxy_hosts_go_direct_in_both_clients(
    emulator: AirplaneEmulator, egress_proxy: EgressProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.add_task("job", duration=0.0)
    use_connection(monkeypatch, emulator, "127.0.0.1")
    set_proxy_env(monkeypatch, HTTP_PROXY=egress_proxy.url)

    async def one_call_each() -> None:
        with AirplaneHook(max_attempts=1) as hook:
            run_id = hook.execute_task("job")
        async with AirplaneAsyncHook(max_attempts=1) as ahook:
            assert (await ahook.get_run(run_id)).id == run_id

    await one_call_each()  # a host not in NO_PROXY: through the proxy
    assert egress_proxy.paths("127.0.0.1") == ["/v0/tasks/execute", "/v0/runs/get"]

    set_proxy_env(monkeypatch, HTTP_PROXY=egress_proxy.url, NO_PROXY="localhost,127.0.0.1")
    await one_call_each()
    assert len(egress_proxy.seen) == 2, "a NO_PROXY host went through the proxy"
