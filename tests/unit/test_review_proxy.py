"""Review 2026-12 §2.4: the triggerer's HTTP client (aiohttp) honours the proxy settings the worker's
client honours (tests/unit/test_proxy.py covers NO_PROXY, triggers and event watchers)."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from airflow_provider_airplane.exceptions import AirplaneApiError
from airflow_provider_airplane.hooks.airplane import AirplaneAsyncHook, AirplaneHook
from airflow_provider_airplane.testing import AirplaneEmulator

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the proxy itself goes direct


@pytest.fixture
def egress_proxy(emulator: AirplaneEmulator) -> Iterator[tuple[str, list[str]]]:
    """A forward HTTP proxy (the only way out of a locked-down network): it resolves 'airplane.internal'
    to the emulator; nothing else can."""
    seen: list[str] = []
    target = urlsplit(emulator.url)

    class Proxy(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            seen.append(self.path)
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            upstream = urllib.request.Request(
                f"{target.scheme}://{target.netloc}{url.path}" + (f"?{url.query}" if url.query else ""),
                data=body,
                method=self.command,
                headers={
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")
                },
            )
            try:
                with DIRECT.open(upstream) as answer:
                    status, headers, data = answer.status, answer.headers, answer.read()
            except urllib.error.HTTPError as err:
                status, headers, data = err.code, err.headers, err.read()
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


async def test_triggerer_hook_uses_the_proxy_the_worker_hook_uses(
    emulator: AirplaneEmulator, egress_proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy_url, seen = egress_proxy
    port = urlsplit(emulator.url).port
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRPLANE_DEFAULT",
        json.dumps(
            {
                "conn_type": "airplane",
                "host": f"http://airplane.internal:{port}",
                "password": emulator.api_key,
            }
        ),
    )
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy_url)
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(AirplaneAsyncHook, "backoff_base", 0.001)
    monkeypatch.setattr(AirplaneAsyncHook, "backoff_cap", 0.01)
    emulator.add_task("job", duration=0.0)

    with AirplaneHook() as hook:  # a worker: requests honours HTTP_PROXY
        run_id = hook.execute_task("job")
        assert hook.get_run(run_id).id == run_id
    assert seen, "the worker's hook went through the proxy"

    async with AirplaneAsyncHook(max_attempts=2) as hook:  # the triggerer: aiohttp honours it too
        try:
            run = await hook.get_run(run_id)
        except AirplaneApiError as err:
            pytest.fail(f"the triggerer's hook bypassed HTTP_PROXY: {err.message[:160]}")
    assert run.id == run_id
