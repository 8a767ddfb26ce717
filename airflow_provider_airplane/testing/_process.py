"""Start the standalone emulator as a child process, for demos, benchmarks and other processes' tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def start_standalone(
    *,
    api_key: str | None = None,
    tasks: str | Path | None = None,
    port: int = 0,
    args: Sequence[str] = (),
) -> tuple[subprocess.Popen[str], str]:
    """Run ``python -m airflow_provider_airplane.testing`` and return the process and its base URL.

    ``args`` are more command-line flags (``["--realistic", "--seed", "7"]``). The URL is the process's
    first stdout line; stderr (which shows the key) is discarded. The caller stops the process
    (``terminate()``).
    """
    cmd = [sys.executable, "-m", "airflow_provider_airplane.testing", "--port", str(port)]
    if api_key is not None:
        cmd += ["--api-key", api_key]
    if tasks is not None:
        cmd += ["--tasks", str(tasks)]
    cmd += args
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http"):
        process.kill()
        raise RuntimeError(f"the Airplane emulator did not start (first line {url!r})")
    return process, url
