"""Executes an Airplane task with the unmodified ``airplanesdk`` and prints the run as JSON.

Usage: python python_execute.py SLUG '{"param": "value"}'. Reads AIRPLANE_API_HOST, AIRPLANE_TOKEN,
AIRPLANE_ENV_ID and AIRPLANE_TEAM_ID, as a script inside an Airplane task would.
"""

from __future__ import annotations

import json
import sys

import airplane
from airplane.exceptions import RunTerminationException

slug, params = sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}")
try:
    run = airplane.execute(slug, params)
except RunTerminationException as exc:
    print(json.dumps({"error": str(exc), "status": exc.run.status.value}))
    sys.exit(3)
print(json.dumps({"id": run.id, "taskID": run.task_id, "status": run.status.value, "output": run.output}))
