"""Provider metadata for the ``apache_airflow_provider`` entry point.

Every Airflow component calls this at start-up, so it imports nothing beyond the package version.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_airplane import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-airplane",
        "name": "Airplane",
        "description": "Run Airplane tasks from Airflow: start, wait, read outputs, cancel.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Airplane",
                "external-doc-url": "https://docs.airplane.dev/api/runs",
                "tags": ["service"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "airplane",
                "hook-class-name": "airflow_provider_airplane.hooks.airplane.AirplaneHook",
                "hook-name": "Airplane",
                "ui-field-behaviour": {
                    "hidden-fields": ["port", "schema", "login"],
                    "relabeling": {"host": "API URL", "password": "API key"},
                    "placeholders": {
                        "host": "https://api.airplane.dev",
                        "password": "tkn_...",
                    },
                },
                "conn-fields": {
                    "env_slug": {
                        "label": "Environment slug",
                        "description": "Environment to run tasks in; empty means the team's default.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "env_id": {
                        "label": "Environment ID",
                        "description": "Alternative to the slug (env...).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "team_id": {
                        "label": "Team ID",
                        "description": "Optional, sent as X-Team-ID (tea...).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "app_url": {
                        "label": "Web app URL",
                        "description": "Base URL for run links; default https://app.airplane.dev.",
                        "schema": {"type": ["string", "null"], "format": "url"},
                    },
                    "timeout": {
                        "label": "Request timeout (seconds)",
                        "description": "Per HTTP request; default 30.",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                },
            }
        ],
        "hooks": [
            {
                "integration-name": "Airplane",
                "python-modules": ["airflow_provider_airplane.hooks.airplane"],
            }
        ],
        "operators": [
            {
                "integration-name": "Airplane",
                "python-modules": ["airflow_provider_airplane.operators.airplane"],
            }
        ],
        "sensors": [
            {
                "integration-name": "Airplane",
                "python-modules": ["airflow_provider_airplane.sensors.airplane"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Airplane",
                "python-modules": ["airflow_provider_airplane.triggers.airplane"],
            }
        ],
        "extra-links": ["airflow_provider_airplane.links.airplane.AirplaneRunLink"],
        # Airflow 3.3+: on the API server, each try's "Airplane Run" link shows that try's run.
        "plugins": [
            {"name": "airplane", "plugin-class": "airflow_provider_airplane.links.per_try.AirplanePlugin"}
        ],
    }
