"""Every Airflow process imports the package and calls get_provider_info(): neither may pull in HTTP
clients or hooks."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, sys
import airflow_provider_airplane
from airflow_provider_airplane.get_provider_info import get_provider_info

HEAVY = ("requests", "aiohttp", "airflow_provider_airplane.hooks", "airflow_provider_airplane.hooks.airplane")

def loaded():
    return sorted(name for name in HEAVY if name in sys.modules)

get_provider_info()
light = loaded()
import airflow_provider_airplane.hooks.airplane  # proves the probe would notice
print(json.dumps({"light": light, "after_hook": loaded()}))
"""


def test_package_and_provider_info_import_no_client_or_hook() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["light"] == []
    assert set(found["after_hook"]) >= {"requests", "aiohttp", "airflow_provider_airplane.hooks.airplane"}
