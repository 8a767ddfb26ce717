"""The emulator's HTTP side: the ``/v0`` API, the ``/_emulator`` admin routes, and the server thread.

It imports nothing from Airflow, so it starts in a fraction of a second, in a test or on its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from email.utils import formatdate
from http import HTTPStatus
from types import TracebackType
from typing import Any

from aiohttp import web

from airflow_provider_airplane.testing._page import RUN_PAGE_PREFIX, run_page_handler
from airflow_provider_airplane.testing._state import PUBLIC, ApiError, Fault, Logs, State

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/_emulator"
MAX_LIMIT = 50


def _retryable(status: int) -> str:
    """Airplane's dev server rule: 429 and 5xx are worth retrying, everything else is not."""
    return "true" if status == 429 or status >= 500 else "false"


def error_response(status: int, message: str, code: str | None = None) -> web.Response:
    """``{"error", "code"?}`` with ``X-Airplane-Retryable``, as every Airplane error answer has."""
    body: dict[str, Any] = {"error": message}
    if code:
        body["code"] = code
    return web.json_response(body, status=status, headers={"X-Airplane-Retryable": _retryable(status)})


def fault_response(fault: Fault) -> web.Response:
    """The answer an injected fault gives: its body verbatim, or a JSON error for its status."""
    status = fault.status or 200
    if fault.body is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        text, content_type = json.dumps({"error": f"{phrase} (injected fault)"}), "application/json"
    else:
        looks_json = fault.body.lstrip()[:1] in ("{", "[")
        text, content_type = fault.body, "application/json" if looks_json else "text/html; charset=utf-8"
    response = web.Response(status=status, body=text.encode())
    response.headers["Content-Type"] = content_type
    if status >= 400:
        response.headers["X-Airplane-Retryable"] = _retryable(status)
    for name, value in fault.headers.items():  # case-insensitive: a fault's own header wins
        response.headers[name] = value
    return response


# What a load balancer in front of the API answers when the API behind it is down or slow.
_PROXY_PAGE = (
    "<html><head><title>{status} {phrase}</title></head><body><center><h1>{status} {phrase}</h1>"
    "</center><hr><center>nginx</center></body></html>"
)
# What a captive portal or an SSO proxy answers: a 200 that is a login page, not the API's JSON.
_LOGIN_PAGE = (
    "<!doctype html><html><head><title>Sign in</title></head><body><h1>Sign in to continue</h1>"
    "<form method='post' action='/login'><input name='user'><input name='password' type='password'>"
    "<button>Sign in</button></form></body></html>"
)


def hostile_response(mode: str) -> web.Response:
    """The answer of a failure mode that never reaches the API: 429 and 503 are the API shedding load
    (its JSON error and ``Retry-After``), 502 and 504 a proxy's HTML page, ``html`` a 200 login page."""
    if mode == "html":
        return web.Response(status=200, text=_LOGIN_PAGE, content_type="text/html")
    status = int(mode)
    if status in (429, 503):
        response = error_response(status, f"{HTTPStatus(status).phrase}: try again later")
        response.headers["Retry-After"] = "1"
        return response
    page = _PROXY_PAGE.format(status=status, phrase=HTTPStatus(status).phrase)
    return web.Response(status=status, text=page, content_type="text/html")


def _truncate(response: web.StreamResponse) -> None:
    """Cut the body in half, as a connection closed mid-answer by a proxy leaves it."""
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        response.body = response.body[: len(response.body) // 2]


def _api_key(request: web.Request) -> str | None:
    """The key from ``X-Airplane-API-Key``, or ``X-Airplane-Token`` as Airplane's in-task SDKs send it."""
    return request.headers.get("X-Airplane-API-Key") or request.headers.get("X-Airplane-Token")


async def _json_body(request: web.Request) -> Any:
    """The body parsed as JSON whatever the Content-Type says (Airplane's docs post it as a form)."""
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "Invalid body")
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "Invalid body: not JSON") from None


async def _json_object(request: web.Request) -> dict[str, Any]:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid body: expected a JSON object")
    return body


def _int_param(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, f"Invalid {name}: {text!r} is not an integer") from None


def _time_param(request: web.Request, name: str) -> float | None:
    """An RFC 3339 query parameter as epoch seconds (compared with timestamps as the server wrote them)."""
    text = request.query.get(name)
    if not text:
        return None
    if " " in text[19:]:
        text = text[:19] + text[19:].replace(" ", "+")  # an unencoded "+" in the query became a space
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ApiError(400, f"Invalid {name}: {text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ApiError(400, f"Invalid {name}: {text!r} has no time zone")
    return moment.timestamp()


class _Api:
    """The ``/v0`` handlers; each reads its inputs, calls the state and shapes the answer."""

    def __init__(self, state: State) -> None:
        self.state = state

    async def execute(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        run_id = self.state.execute(
            body,
            user=self.state.authenticate(_api_key(request)),
            env_slug=request.headers.get("X-Airplane-Env-Slug") or request.query.get("envSlug"),
            env_id=request.headers.get("X-Airplane-Env-ID") or request.query.get("envID"),
        )
        return web.json_response({"runID": run_id})

    async def get_run(self, request: web.Request) -> web.Response:
        run_id = request.query.get("id") or request.query.get("runID")
        return web.json_response(self.state.get_run(run_id))

    async def get_outputs(self, request: web.Request) -> web.Response:
        run_id = request.query.get("id") or request.query.get("runID")
        return web.json_response({"output": self.state.get_outputs(run_id)})

    async def list_runs(self, request: web.Request) -> web.Response:
        limit = _int_param(request, "limit", MAX_LIMIT)
        page = _int_param(request, "page", 0)
        if not 0 <= limit <= MAX_LIMIT:
            raise ApiError(400, f"Invalid limit: accepted values are 0 - {MAX_LIMIT}")
        if page < 0:
            raise ApiError(400, "Invalid page: must be >= 0")
        runs = self.state.list_runs(
            task_id=request.query.get("taskID") or None,
            task_slug=request.query.get("taskSlug") or None,
            since=_time_param(request, "since"),
            until=_time_param(request, "until"),
            limit=limit,
            page=page,
        )
        return web.json_response({"runs": runs})

    async def get_logs(self, request: web.Request) -> web.Response:
        if not self.state.logs_endpoint:
            raise web.HTTPNotFound()  # answered as any unknown route is
        run_id = request.query.get("runID") or request.query.get("id")
        return web.json_response(self.state.get_logs(run_id, request.query.get("prev_token")))

    async def cancel(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        run_id = body.get("runID")
        if not run_id:
            raise ApiError(400, "Invalid body: runID is required")
        self.state.cancel(str(run_id), self.state.authenticate(_api_key(request)))
        return web.json_response({})


class _Admin:
    """The ``/_emulator`` routes: the emulator's controls over HTTP, for a server in another process."""

    def __init__(self, state: State) -> None:
        self.state = state

    async def add_task(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        slug = body.pop("slug", None)
        if not isinstance(slug, str):
            raise ApiError(400, "slug (a string) is required")
        task_id = self.state.add_task(slug, **body)
        return web.json_response({"slug": slug, "id": task_id})

    async def tasks(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.tasks())

    async def add_key(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        self.state.add_key(str(body.get("key") or ""), allowed=bool(body.get("allowed", True)))
        return web.json_response({})

    async def inject_fault(self, request: web.Request) -> web.Response:
        self.state.inject_fault(**await _json_object(request))
        return web.json_response({})

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.state.clear_faults()
        return web.json_response({})

    async def end_runs(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        slug, after = body.get("slug"), body.get("after", 0.0)
        if not isinstance(slug, str) or not isinstance(after, int | float):
            raise ApiError(400, "slug (a string) is required; after is a number of seconds")
        return web.json_response({"ended": self.state.end_runs(slug, after=float(after))})

    async def counts(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.request_counts())

    async def log(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.request_log())

    async def runs(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.run_objects())

    async def reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        return web.json_response({})

    async def logs_endpoint(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            enabled = (await _json_object(request)).get("enabled")
            if not isinstance(enabled, bool):
                raise ApiError(400, "enabled (true or false) is required")
            with self.state.lock:
                self.state.logs_endpoint = enabled
        return web.json_response({"enabled": self.state.logs_endpoint})

    async def cancel_delay(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            seconds = (await _json_object(request)).get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise ApiError(400, "seconds (a number, 0 or more) is required")
            with self.state.lock:
                self.state.cancel_delay = float(seconds)
        return web.json_response({"seconds": self.state.cancel_delay})

    async def settings(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            self.state.configure(**await _json_object(request))
        return web.json_response(self.state.settings())

    async def outage(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            body = await _json_object(request)
            seconds = body.pop("seconds", None)
            if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                raise ApiError(400, "seconds (a number) is required")
            self.state.hostile.start_outage(float(seconds), **body)
        elif request.method == "DELETE":
            self.state.hostile.end_outage()
        return web.json_response(self.state.hostile.outage_state())

    async def clock(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            offset = (await _json_object(request)).get("offset")
            if not isinstance(offset, int | float):
                raise ApiError(400, "offset (seconds, a number) is required")
            with self.state.lock:
                self.state.clock_offset = float(offset)
        return web.json_response({"offset": self.state.clock_offset, "now": self.state.now()})


def build_app(state: State) -> web.Application:
    """The aiohttp application serving ``state``."""
    api, admin = _Api(state), _Admin(state)
    idempotency_lock = asyncio.Lock()

    async def serve_api(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = _api_key(request)
        state.authenticate(key)
        idempotency_key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not idempotency_key:
            return await handler(request)
        assert key is not None  # authenticate() refused a missing key
        # One idempotent POST at a time, so two concurrent retries with one key start one run.
        response: web.StreamResponse
        async with idempotency_lock:
            stored = state.recall(idempotency_key, key)
            if stored is not None:
                response = web.Response(
                    status=stored.status,
                    body=stored.body,
                    content_type="application/json",
                    headers={"Idempotent-Replayed": "true"},
                )
            else:
                response = await handler(request)
                if 200 <= response.status < 300 and isinstance(response, web.Response):
                    state.remember(idempotency_key, key, response.status, response.body)
        response.headers["Idempotency-Key"] = idempotency_key
        return response

    async def serve_v0(request: web.Request, handler: Handler) -> web.StreamResponse:
        entry = state.record(request.method, request.path, dict(request.query), request.headers)
        fault = state.take_fault(request.path)
        mode = state.hostile.failure(request.path) if fault is None else None
        wait = state.hostile.latency_draw()
        wait += fault.delay if fault is not None else 0.0
        wait += state.hostile.get("hang_seconds") if mode == "hang" else 0.0
        if wait:
            # Read the body first, as a real server has before it is slow: a client that gives up
            # meanwhile loses the answer, not the work (a delayed execute still starts its run).
            await request.read()
            await asyncio.sleep(wait)
        if (fault is not None and fault.drop) or mode == "drop":
            _drop(request)
            response: web.StreamResponse = web.Response(status=499)  # never reaches the client
            status = None
        else:
            if fault is not None and not fault.only_delays:
                response = fault_response(fault)
            elif mode not in (None, "hang", "truncated"):
                response = hostile_response(mode)
            else:
                response = await _answer(request, lambda r: serve_api(r, handler))
                if mode == "truncated":
                    _truncate(response)
            status = response.status
        with state.lock:
            entry["status"] = status
        return response

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith((ADMIN_PREFIX, RUN_PAGE_PREFIX)):
            response = await _answer(request, handler)
        else:
            response = await serve_v0(request, handler)
        # The server's own clock, offset included, as a client comparing clocks would read it.
        response.headers["Date"] = formatdate(state.now(), usegmt=True)
        return response

    app = web.Application(middlewares=[middleware], client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v0/tasks/execute", api.execute)
    app.router.add_get("/v0/runs/get", api.get_run)
    app.router.add_get("/v0/runs/getOutputs", api.get_outputs)
    app.router.add_get("/v0/runs/list", api.list_runs)
    app.router.add_post("/v0/runs/cancel", api.cancel)
    app.router.add_get("/v0/runs/getLogs", api.get_logs)
    app.router.add_get(RUN_PAGE_PREFIX + "{run_id}", run_page_handler(state))
    app.router.add_post(f"{ADMIN_PREFIX}/tasks", admin.add_task)
    app.router.add_get(f"{ADMIN_PREFIX}/tasks", admin.tasks)
    app.router.add_post(f"{ADMIN_PREFIX}/keys", admin.add_key)
    app.router.add_post(f"{ADMIN_PREFIX}/faults", admin.inject_fault)
    app.router.add_delete(f"{ADMIN_PREFIX}/faults", admin.clear_faults)
    app.router.add_get(f"{ADMIN_PREFIX}/requests", admin.counts)
    app.router.add_get(f"{ADMIN_PREFIX}/log", admin.log)
    app.router.add_get(f"{ADMIN_PREFIX}/runs", admin.runs)
    app.router.add_post(f"{ADMIN_PREFIX}/runs/end", admin.end_runs)
    app.router.add_post(f"{ADMIN_PREFIX}/reset", admin.reset)
    app.router.add_route("*", f"{ADMIN_PREFIX}/clock", admin.clock)
    app.router.add_route("*", f"{ADMIN_PREFIX}/cancel-delay", admin.cancel_delay)
    app.router.add_route("*", f"{ADMIN_PREFIX}/logs-endpoint", admin.logs_endpoint)
    app.router.add_route("*", f"{ADMIN_PREFIX}/settings", admin.settings)
    app.router.add_route("*", f"{ADMIN_PREFIX}/outage", admin.outage)
    return app


def _drop(request: web.Request) -> None:
    """Close the connection without an answer, like a proxy that gave up."""
    transport = request.transport
    if transport is not None:
        transport.abort()


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run ``handler``; turn emulator and aiohttp errors (404 route, 405 method) into JSON errors."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.code)
    except (TypeError, ValueError) as exc:
        if request.path.startswith(ADMIN_PREFIX):
            return error_response(400, str(exc))
        raise
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, f"{exc.reason}: {request.method} {request.path}")
        raise
    except Exception as exc:
        log.exception("Airplane emulator failed on %s %s", request.method, request.path)
        return error_response(500, f"An internal error occurred: {exc}")


class AirplaneEmulator:
    """A real HTTP server of the Airplane API on its own event loop thread.

    Use it as a context manager (or ``start()``/``stop()``); point a client at ``.url`` with
    ``.api_key``. The control methods are thread-safe and take effect on the next request.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        idempotency_ttl: float = 3600.0,
        clock_offset: float = 0.0,
        logs_endpoint: bool = True,
        cancel_delay: float | None = None,
        profile: str = PUBLIC,
        realistic: bool = False,
        seed: int | None = None,
    ) -> None:
        self.api_key = api_key or "tkn_" + secrets.token_urlsafe(24)
        self.host = host
        self.port = port
        self._state = State(
            self.api_key,
            idempotency_ttl,
            clock_offset,
            logs_endpoint=logs_endpoint,
        )
        # An explicit cancel_delay wins over the realistic one.
        delay = {} if cancel_delay is None else {"cancel_delay": cancel_delay}
        self._state.configure(profile=profile, realistic=realistic, seed=seed, **delay)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None

    # Lifecycle ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL (without ``/v0``), as the connection's host."""
        if self._thread is None:
            raise RuntimeError("the emulator is not running; call start() or use it as a context manager")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> AirplaneEmulator:
        """Serve on a daemon thread; returns once the socket listens (``port`` is then the real one)."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=self._serve, args=(ready, failure), name="airplane-emulator", daemon=True
        )
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._thread = thread
        if self._state.hostile.active:
            seed = self._state.hostile.seed
            print(
                f"Airplane emulator at {self.url}: hostile settings on, seed {seed} (pass seed={seed} "
                f"or --seed {seed} to reproduce)",
                file=sys.stderr,
                flush=True,
            )
        return self

    def stop(self) -> None:
        """Close the server and its connections and end the thread; safe to call twice."""
        thread, loop, stopped = self._thread, self._loop, self._stopped
        if thread is None or loop is None or stopped is None:
            return
        loop.call_soon_threadsafe(stopped.set)
        thread.join()
        self._thread = self._loop = self._stopped = None

    def __enter__(self) -> AirplaneEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(ready))
        except BaseException as exc:
            failure.append(exc)
        finally:
            ready.set()
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        runner = web.AppRunner(build_app(self._state), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, backlog=4096, reuse_address=True)
            await site.start()
            server = site._server
            if isinstance(server, asyncio.base_events.Server) and server.sockets:
                self.port = int(server.sockets[0].getsockname()[1])
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            ready.set()
            await self._stopped.wait()
        finally:
            await runner.cleanup()

    # Controls -----------------------------------------------------------------------------------

    @property
    def clock_offset(self) -> float:
        """Seconds added to the wall clock for every time the server writes or compares."""
        return self._state.clock_offset

    @clock_offset.setter
    def clock_offset(self, seconds: float) -> None:
        with self._state.lock:
            self._state.clock_offset = float(seconds)

    @property
    def logs_endpoint(self) -> bool:
        """False makes ``runs/getLogs`` answer 404, as a server without the undocumented endpoint would."""
        return self._state.logs_endpoint

    @logs_endpoint.setter
    def logs_endpoint(self, enabled: bool) -> None:
        with self._state.lock:
            self._state.logs_endpoint = bool(enabled)

    @property
    def cancel_delay(self) -> float:
        """Seconds a run keeps its status after a cancel request before it reads Cancelled."""
        return self._state.cancel_delay

    @cancel_delay.setter
    def cancel_delay(self, seconds: float) -> None:
        with self._state.lock:
            self._state.cancel_delay = float(seconds)

    def configure(self, *, realistic: bool = False, **settings: Any) -> None:
        """Change settings by name (see ``docs/emulator.md``): ``profile`` (``public``/``dev-server``),
        ``clock_offset``, ``cancel_delay``, ``seed`` and the hostile knobs of ``_hostile.DEFAULTS``.

        ``realistic=True`` first turns on the realistic mix; settings named here win over it.
        """
        self._state.configure(realistic=realistic, **settings)

    def settings(self) -> dict[str, Any]:
        """Every setting as it is now, ``seed`` included."""
        return self._state.settings()

    @property
    def seed(self) -> int:
        """The seed of every hostile random choice; pass it back (``seed=``) to replay a failure."""
        return self._state.hostile.seed

    def start_outage(
        self, seconds: float, *, path: str | None = None, mix: Mapping[str, float] | None = None
    ) -> None:
        """For ``seconds``, fail every ``/v0`` request (or those to ``path``) in a mode drawn from ``mix``
        (mode -> weight; default: every mode but 429 alike)."""
        self._state.hostile.start_outage(seconds, path=path, mix=mix)

    def end_outage(self) -> None:
        self._state.hostile.end_outage()

    def add_task(
        self,
        slug: str,
        *,
        task_id: str | None = None,
        output: Any = None,
        duration: float = 0.0,
        fail: bool = False,
        error: str | None = None,
        requires_request: bool = False,
        logs: Logs = None,
    ) -> str:
        """Register (or replace) a task; returns its id.

        ``output`` may be a callable of the param values. ``logs``: the lines each run writes (a list, a
        number N of generated lines, or a callable of the param values), spread over the run's active time
        and served by ``runs/getLogs`` at most 100 per answer; a cancel stops them.
        """
        return self._state.add_task(
            slug,
            task_id=task_id,
            output=output,
            duration=duration,
            fail=fail,
            error=error,
            requires_request=requires_request,
            logs=logs,
        )

    def add_key(self, key: str, *, allowed: bool = True) -> None:
        """Accept another API key; ``allowed=False`` makes it authenticate but get 403."""
        self._state.add_key(key, allowed=allowed)

    def inject_fault(
        self,
        path: str | None = None,
        *,
        status: int | None = None,
        count: int = 1,
        rate: float | None = None,
        headers: Mapping[str, str] | None = None,
        body: str | None = None,
        drop: bool = False,
        delay: float = 0.0,
    ) -> None:
        """Misbehave on the next ``count`` requests to ``path`` (or on a ``rate`` share until cleared)."""
        self._state.inject_fault(
            path, status=status, count=count, rate=rate, headers=headers, body=body, drop=drop, delay=delay
        )

    def clear_faults(self) -> None:
        self._state.clear_faults()

    def end_runs(self, slug: str, *, after: float = 0.0) -> int:
        """End every unfinished run of ``slug`` ``after`` seconds from now (as if its duration were up).

        For tests that need runs to stay in progress until a fault has struck. Returns how many.
        """
        return self._state.end_runs(slug, after=after)

    def request_counts(self) -> dict[str, int]:
        """Requests received per ``/v0`` path, faulted ones included."""
        return self._state.request_counts()

    def request_log(self) -> list[dict[str, Any]]:
        """Every ``/v0`` request, oldest first: ``time`` (epoch seconds on the emulator's clock),
        ``method``, ``path``, ``query``, ``status`` (None when dropped) and ``headers`` (keys as ``***``)."""
        return self._state.request_log()

    def runs(self) -> list[dict[str, Any]]:
        """Every run as it is now, oldest first: the public object plus ``taskSlug``, ``envSlug`` and
        ``envID``, which the API does not show but a test may want to check."""
        return self._state.run_objects()

    def reset(self) -> None:
        """Forget runs, idempotency records, counts, the log, faults and an outage (tasks, keys and
        settings stay)."""
        self._state.reset()
