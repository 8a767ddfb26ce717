"""`make demo`: the run's log lines are printed, and the run link it prints opens the emulator's run page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_prints_the_run_log_and_a_working_run_link(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("AIRFLOW_CONN_AIRPLANE_DEFAULT", None)
    demo = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--keep-serving", "--home", str(tmp_path)],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdin is not None
    assert demo.stdout is not None
    printed: list[str] = []
    try:
        for line in demo.stdout:
            printed.append(line)
            if line.startswith("Run page (served by the emulator): "):
                break
        else:
            pytest.fail("the demo printed no run link:\n" + "".join(printed))
        output = "".join(printed)
        assert "  [airplane] Connecting to the warehouse\n" in output
        assert "  [airplane] Done in 1.8 s\n" in output
        assert "DAG run" in output
        assert ": success" in output
        link = line.split(": ", 1)[1].strip()
        run_id = link.rsplit("/", 1)[1]
        page = requests.get(link, timeout=30)
        assert page.status_code == 200
        assert run_id in page.text
        assert ">Succeeded<" in page.text
        assert "Connecting to the warehouse" in page.text
    finally:
        demo.stdin.close()  # end of input: the demo stops its emulator and exits
        assert demo.wait(timeout=60) == 0
