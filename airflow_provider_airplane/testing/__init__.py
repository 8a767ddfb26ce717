"""A local Airplane API emulator: a real HTTP server for tests, demos and offline DAG development.

``AirplaneEmulator`` runs in-process (a context manager); ``python -m airflow_provider_airplane.testing``
runs it standalone, and ``EmulatorClient`` steers a standalone one over its ``/_emulator`` routes.
Nothing here imports Airflow, so it starts fast and runs without it.

    with AirplaneEmulator(api_key="tkn_test") as emu:
        emu.add_task("refresh_customers", output={"rows": 3}, duration=2.0)
        emu.add_task("nightly_report", fail=True, error="quota exceeded")
        emu.inject_fault("/v0/runs/get", status=429, headers={"Retry-After": "1"})
        ...  # point a connection at emu.url with emu.api_key
        assert emu.request_counts()["/v0/runs/get"] >= 2

Runs go NotStarted -> Queued (0.1 s) -> Active (0.2 s) -> Succeeded/Failed (after ``duration``),
computed from timestamps when looked at. Admin routes (no auth): ``POST/GET /_emulator/tasks``,
``POST /_emulator/keys``, ``POST/DELETE /_emulator/faults``, ``GET /_emulator/requests`` (counts),
``GET /_emulator/log``, ``GET /_emulator/runs``, ``POST /_emulator/runs/end``, ``POST /_emulator/reset``,
``GET/POST /_emulator/clock``, ``GET/POST /_emulator/logs-endpoint`` (``{"enabled": false}``: ``runs/getLogs``
answers 404), ``GET/POST /_emulator/settings`` (the profile and the hostile knobs of ``_hostile.py``),
``GET/POST/DELETE /_emulator/outage``. ``GET /runs/<run id>`` (no auth) is a run page: status, times,
params, outputs and log lines.

``runs/get`` and ``runs/list`` answer the public run object only (no ``taskSlug``);
``profile="dev-server"`` adds the fields of the CLI's dev server. ``realistic=True`` turns on latency,
errors, a lagging and shifting listing, late and overlapping log lines and late cancels, with a seed
printed at start that ``seed=`` replays.
"""

from __future__ import annotations

from airflow_provider_airplane.testing._client import EmulatorClient
from airflow_provider_airplane.testing._process import start_standalone
from airflow_provider_airplane.testing._server import AirplaneEmulator

__all__ = ["AirplaneEmulator", "EmulatorClient", "start_standalone"]
