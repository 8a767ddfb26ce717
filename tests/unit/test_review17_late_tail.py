"""Review 17: a line the API shows late is lost when it is one of the run's last lines.

``LOG_SETTLE`` holds a line read while the run goes on, so an earlier line that the API shows late is
written in its place. But ``drain()`` (once the run has ended) reads once, stops at the first answer
without a new line and writes what it has: a line the run wrote just before it ended and the API shows
after the run's status reads terminal (the same lateness the reader waits 5 s for while the run goes
on) is never read. The emulator's realistic ``log_jitter`` (0.5 s) is enough: the task log misses the
run's last lines, and a failed run's error misses its last line, which is usually the error itself.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from airflow_provider_airplane.exceptions import AirplaneRunFailedError
from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator
from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.testing._hostile import REALISTIC

# With this seed, the last of 20 lines becomes readable 0.49 s after the run wrote it (within the
# realistic 0.5 s jitter); the run wrote it 0.05 s before it ended.
SEED = 46
LINES = 20


def late_emulator(emu: AirplaneEmulator) -> AirplaneEmulator:
    emu.configure(log_jitter=REALISTIC["log_jitter"], seed=SEED)
    return emu


def test_worker_task_writes_the_runs_last_lines_even_when_the_api_shows_them_late(
    airplane_conn: AirplaneEmulator, task_ctx: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    emu = late_emulator(airplane_conn)
    emu.add_task("chatty", logs=LINES, duration=1.0, output={"ok": True})
    task = AirplaneExecuteTaskOperator(task_id="t", slug="chatty", poll_interval=0.1, deferrable=False)
    assert task.execute(task_ctx()) == {"ok": True}
    out, err = capfd.readouterr()
    numbers = [int(n) for n in re.findall(rf"\[airplane\] chatty: line (\d+) of {LINES}", out + err)]
    assert numbers == list(range(1, LINES + 1))


def test_failed_runs_error_carries_its_last_line_even_when_the_api_shows_it_late(
    airplane_conn: AirplaneEmulator, task_ctx: Any
) -> None:
    emu = late_emulator(airplane_conn)
    texts = [f"step {n}" for n in range(1, LINES)] + ['Error: quota exceeded for warehouse "main"']
    emu.add_task("breaks", logs=texts, duration=1.0, fail=True, error="quota exceeded")
    task = AirplaneExecuteTaskOperator(task_id="t", slug="breaks", poll_interval=0.1, deferrable=False)
    with pytest.raises(AirplaneRunFailedError) as caught:
        task.execute(task_ctx())
    assert 'Error: quota exceeded for warehouse "main"' in str(caught.value)
