"""Airflow discovers the provider through its entry point: package, connection type and hook.

Each check runs in a fresh interpreter, so ProvidersManager's process-wide cache starts empty.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from airflow_provider_airplane import __version__

PACKAGE = "airflow-provider-airplane"

_PROBE = """
import json, warnings
warnings.simplefilter("ignore")
from airflow.providers_manager import ProvidersManager

manager = ProvidersManager()
provider = manager.providers.get("airflow-provider-airplane")
hook = manager.hooks.get("airplane")
print(json.dumps({
    "version": provider.version if provider else None,
    "hook_class_name": hook.hook_class_name if hook else None,
    "hook_name": hook.hook_name if hook else None,
    "connection_id_attribute_name": hook.connection_id_attribute_name if hook else None,
    "connection_testable": hook.connection_testable if hook else None,
}))
"""


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def last_json_line(output: str) -> Any:
    """The command's JSON answer, after any log lines Airflow printed first."""
    return json.loads(next(line for line in reversed(output.splitlines()) if line.startswith(("{", "["))))


def test_providers_manager_maps_the_connection_type_to_the_hook() -> None:
    found = last_json_line(run(sys.executable, "-c", _PROBE))
    assert found == {
        "version": __version__,
        "hook_class_name": "airflow_provider_airplane.hooks.airplane.AirplaneHook",
        "hook_name": "Airplane",
        "connection_id_attribute_name": "airplane_conn_id",
        "connection_testable": True,
    }


def test_airflow_providers_list_shows_the_package() -> None:
    airflow = Path(sys.executable).parent / "airflow"
    providers = last_json_line(run(str(airflow), "providers", "list", "--output", "json"))
    ours = [p for p in providers if p["package_name"] == PACKAGE]
    assert ours
    assert ours[0]["version"] == __version__
