"""Property-based tests: reading a run's log page by page writes each line once, in order (docs/run-logs.md).

The server is a model of ``runs/getLogs`` as reference section 4.6 leaves it open: a positional token,
pages of any size, each page repeating any number of lines before the token (overlap), its lines in any
order and a line repeated, timestamps written in any of the forms a server uses for the same instant, the
token under any of its three names, an answer without new lines carrying no token, an empty one or the
same one, and the run writing more lines between reads. Hypothesis draws every one of those choices.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_airplane._run_logs import LOG_SETTLE, MARK, RunLogReader
from airflow_provider_airplane.exceptions import AirplaneApiError
from airflow_provider_airplane.hooks._exchange import Answer
from airflow_provider_airplane.hooks._logs import LogCursor, parse_log_page
from airflow_provider_airplane.models import AirplaneLogPage
from tests.log_recorder import Recorder

START = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)
TIMESTAMP_FORMS: list[Callable[[datetime], str]] = [
    lambda t: t.isoformat(timespec="microseconds").replace("+00:00", "Z"),
    lambda t: t.isoformat(timespec="microseconds"),
    lambda t: t.strftime("%Y-%m-%d %H:%M:%S.%f") + "+00",  # Postgres text
    lambda t: t.isoformat().replace("+00:00", "Z"),  # Go's RFC3339Nano: no trailing zeros
]


@st.composite
def run_logs(draw: st.DrawFn) -> list[tuple[datetime, str, str]]:
    """A run's lines in the order it wrote them: (timestamp, insert id, text); lines share timestamps."""
    steps = draw(st.lists(st.integers(0, 3), max_size=40))  # milliseconds after the previous line
    lines, moment = [], START
    for index, step in enumerate(steps):
        moment += timedelta(milliseconds=step)
        lines.append((moment, f"{index:06d}", f"line {index}"))
    return lines


@dataclass
class LogServer:
    """``runs/getLogs`` over one run's log: ``readable`` lines are written so far."""

    lines: list[tuple[datetime, str, str]]
    data: st.DataObject
    readable: int = 0
    failures: float = 0.0  # the chance that a read fails (a retried 503 that gave up)
    # The lines in the order they became readable (the token is a position here); None: as written.
    arrival: list[int] | None = None

    def write(self, count: int) -> None:
        self.readable = min(len(self.lines), self.readable + count)

    def answer(self, prev_token: str | None) -> Answer:
        draw = self.data.draw
        start = int(prev_token[1:]) if prev_token else 0
        end = min(self.readable, start + draw(st.integers(1, 6), label="page size"))
        first = max(0, start - draw(st.integers(0, 4), label="overlap"))
        order = self.arrival or list(range(len(self.lines)))
        chosen = order[first:end] if end > start else []
        if chosen:
            chosen += draw(st.lists(st.sampled_from(chosen), max_size=2), label="repeated")
            chosen = draw(st.permutations(chosen), label="order")
        body: dict[str, Any] = {"runID": "run1", "logs": [self._item(i) for i in chosen] or None}
        key = draw(st.sampled_from(["prev_token", "prevToken", "prevPageToken"]), label="token name")
        if chosen:
            body[key] = f"p{end}"
        else:
            empty = draw(st.sampled_from(["absent", "null", "empty", "same"]), label="no-line token")
            if empty != "absent":
                body[key] = {"null": None, "empty": "", "same": prev_token}[empty]
        return Answer.of(200, {"Content-Type": "application/json"}, json.dumps(body).encode())

    def _item(self, index: int) -> dict[str, Any]:
        moment, insert_id, text = self.lines[index]
        form = self.data.draw(st.sampled_from(TIMESTAMP_FORMS), label="timestamp form")
        return {"timestamp": form(moment), "insertID": insert_id, "text": text, "level": "info"}


@given(lines=run_logs(), data=st.data())
def test_the_cursor_yields_each_line_once_in_order(lines: list[tuple[datetime, str, str]], data: Any) -> None:
    """Whatever the pages (overlap, shuffled, repeated lines, any token form, the log growing between
    reads), the cursor yields every line written once, in the order the run wrote it, and its token only
    moves on with an answer that held lines."""
    server = LogServer(lines, data)
    cursor = LogCursor()
    taken: list[str] = []
    for read in range(3 * len(lines) + 3):
        if len(taken) == len(lines):
            break
        written = data.draw(st.integers(0, 5), label="written meanwhile")
        server.write(written if read < 2 * len(lines) else len(lines))  # then the run ends
        before = cursor.prev_token
        page = parse_log_page(server.answer(cursor.prev_token))
        assert page.lines == sorted(page.lines, key=lambda line: line.key)
        taken += [line.text for line in cursor.take(page)]
        if not page.lines:
            assert cursor.prev_token == before
        assert taken == [text for _, _, text in lines[: len(taken)]]
    assert len(taken) == len(lines)
    assert cursor.take(AirplaneLogPage([], None)) == []


class Config:
    @staticmethod
    def scrub(text: str) -> str:
        return text


class ModelHook:
    """The slice of ``AirplaneHook`` the reader uses, over a ``LogServer`` whose reads may fail."""

    config = Config()

    def __init__(self, server: LogServer) -> None:
        self.server = server

    def get_run_logs(self, run_id: str, *, prev_token: str | None, max_wait: float) -> AirplaneLogPage:
        if self.server.failures and self.server.data.draw(st.booleans(), label="read fails"):
            raise AirplaneApiError(503, None, "Service Unavailable", endpoint="GET /v0/runs/getLogs")
        return parse_log_page(self.server.answer(prev_token))


@given(
    lines=run_logs(),
    polls=st.lists(st.integers(0, 12), max_size=8),
    failing=st.booleans(),
    max_lines=st.sampled_from([10_000, 5, 0]),
    data=st.data(),
)
def test_the_reader_writes_each_line_once_in_order(
    lines: list[tuple[datetime, str, str]], polls: list[int], failing: bool, max_lines: int, data: Any
) -> None:
    """A task that follows its run (the run writing between polls, reads failing now and then) and drains
    the log once the run has ended writes every line once, in the order the run wrote it, up to
    ``log_max_lines``; a read that fails loses no line and repeats none (the next read goes on from the same
    token), and the last lines kept for a failed run's error are the run's last."""
    server = LogServer(lines, data, failures=0.3 if failing else 0.0)
    log = Recorder()
    hook: Any = ModelHook(server)
    reader = RunLogReader(
        hook, "run1", log=log, run_url="https://app/runs/run1", max_wait=1.0, max_lines=max_lines
    )
    for written in polls:
        server.write(written)
        reader.follow()
    server.write(len(lines))  # the run has ended
    server.failures = 0.0
    reader.drain()
    written_texts = [info.removeprefix(f"{MARK} ") for info in log.infos]
    texts = [text for _, _, text in lines]
    assert written_texts == texts[:max_lines]
    if len(texts) <= max_lines:
        assert list(reader.tail) == texts[-20:]


@st.composite
def late_lines(draw: st.DrawFn) -> tuple[list[tuple[datetime, str, str]], list[int]]:
    """A run's lines and the order they become readable in: each line up to 3 places late (the emulator's
    ``log_jitter``: another API server, a log pipeline that is not strictly ordered)."""
    lines = draw(run_logs())
    lateness = draw(st.lists(st.integers(0, 3), min_size=len(lines), max_size=len(lines)))
    return lines, sorted(range(len(lines)), key=lambda index: (index + lateness[index], index))


@given(log=late_lines(), data=st.data())
def test_a_deferred_task_writes_late_lines_in_order(
    log: tuple[list[tuple[datetime, str, str]], list[int]], data: Any
) -> None:
    """A deferred task reads the whole log once its run has ended. Lines that became readable after later
    ones (pages in arrival order, each sorted on its own) are still written once each, in the order the run
    wrote them: nothing is written before the last page is read."""
    lines, arrival = log
    server = LogServer(lines, data, readable=len(lines), arrival=arrival)
    log_ = Recorder()
    hook: Any = ModelHook(server)
    RunLogReader(hook, "run1", log=log_, run_url="https://app/runs/run1", max_wait=1.0).drain()
    assert [info.removeprefix(f"{MARK} ") for info in log_.infos] == [text for _, _, text in lines]


@given(log=late_lines(), polls=st.lists(st.integers(0, 12), max_size=8), data=st.data())
def test_a_following_task_writes_late_lines_once(
    log: tuple[list[tuple[datetime, str, str]], list[int]], polls: list[int], data: Any
) -> None:
    """A task that follows its run writes each line once even when lines become readable out of order; a
    line comes before a later one in the task log unless it became readable only after that one was
    written (what one poll writes is in order)."""
    lines, arrival = log
    server = LogServer(lines, data, arrival=arrival)
    log_ = Recorder()
    hook: Any = ModelHook(server)
    reader = RunLogReader(hook, "run1", log=log_, run_url="https://app/runs/run1", max_wait=1.0)
    batches = []
    for written in [*polls, len(lines)]:
        server.write(written)
        before = len(log_.infos)
        if written == len(lines):
            reader.drain()
        else:
            reader.follow()
        batches.append([info.removeprefix(f"{MARK} ") for info in log_.infos[before:]])
    position = {text: index for index, (_, _, text) in enumerate(lines)}
    everything = [text for batch in batches for text in batch]
    assert sorted(everything, key=position.__getitem__) == [text for _, _, text in lines]
    for batch in batches:
        assert batch == sorted(batch, key=position.__getitem__)


class FixedPages:
    """A hook whose answers are given: each is a page of (timestamp, insert id, text) lines and its token."""

    config = Config()

    def __init__(self, pages: list[tuple[list[tuple[datetime, str, str]], str | None]]) -> None:
        self.pages = pages

    def get_run_logs(self, run_id: str, *, prev_token: str | None, max_wait: float) -> AirplaneLogPage:
        index = int(prev_token or 0)
        lines, token = self.pages[index] if index < len(self.pages) else ([], None)
        items = [{"timestamp": t.isoformat(), "insertID": i, "text": text} for t, i, text in lines]
        return parse_log_page(Answer.of(200, {}, json.dumps({"logs": items, "prev_token": token}).encode()))


def test_late_line_on_the_next_page_regression() -> None:
    """Hypothesis's smallest failure: line 1 readable before line 0, one line per page; a deferred task
    wrote 'line 1' before 'line 0'."""
    first, second = (START, "000000", "line 0"), (START, "000001", "line 1")
    log = Recorder()
    hook: Any = FixedPages([([second], "1"), ([first], "2")])
    RunLogReader(hook, "run1", log=log, run_url="https://app/runs/run1", max_wait=1.0).drain()
    assert log.infos == [f"{MARK} line 0", f"{MARK} line 1"]


@dataclass
class TimedLogServer:
    """``runs/getLogs`` over a log whose lines become readable late: line i is written at ``written[i]`` and
    readable ``delay[i]`` seconds later; a page holds the readable lines in the order they became readable
    (the token is a position in that order) and has a fixed size, as a real server's does."""

    written: list[float]
    delay: list[float]
    page_size: int
    now: float = 0.0

    def visible(self) -> list[int]:
        readable = [i for i in range(len(self.written)) if self.written[i] + self.delay[i] <= self.now]
        return sorted(readable, key=lambda i: (self.written[i] + self.delay[i], i))

    def get_run_logs(self, run_id: str, *, prev_token: str | None, max_wait: float) -> AirplaneLogPage:
        start = int(prev_token or 0)
        chosen = self.visible()[start : start + self.page_size]
        moment = START.timestamp()
        items = [
            {"timestamp": datetime.fromtimestamp(moment + self.written[i], UTC).isoformat(),
             "insertID": f"{i:06d}", "text": f"line {i}"}
            for i in chosen
        ]  # fmt: skip
        token = str(start + len(chosen)) if chosen else None
        return parse_log_page(Answer.of(200, {}, json.dumps({"logs": items, "prev_token": token}).encode()))

    config = Config()


@given(
    gaps=st.lists(st.floats(0.0, 3.0), max_size=40),
    data=st.data(),
    page_size=st.integers(1, 8),
)
def test_a_following_task_writes_lines_in_order_when_they_show_up_late(
    gaps: list[float], data: Any, page_size: int
) -> None:
    """A line the API shows up to ``LOG_SETTLE`` seconds after the run wrote it (after later lines) is still
    written in its place: a task that follows its run (polls at any interval) and drains the log once the
    run has ended writes every line once, in the order the run wrote it."""
    written = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    delay = data.draw(st.lists(st.floats(0.0, LOG_SETTLE), min_size=len(gaps), max_size=len(gaps)))
    server = TimedLogServer(written, delay, page_size)
    log = Recorder()
    reader = RunLogReader(
        cast(Any, server), "run1", log=log, run_url="https://app/runs/run1", max_wait=1.0,
        clock=lambda: server.now,
    )  # fmt: skip
    for interval in data.draw(st.lists(st.floats(0.1, 12.0), max_size=20), label="poll intervals"):
        server.now += interval
        reader.follow()
    server.now = max((w + d for w, d in zip(written, delay, strict=True)), default=0.0) + 0.1  # it ended
    reader.drain()
    assert [info.removeprefix(f"{MARK} ") for info in log.infos] == [f"line {i}" for i in range(len(gaps))]


def test_late_line_while_following_regression() -> None:
    """Found by the hostile suite (seed 825774, streamed task, 120 lines): line 116 became readable after
    line 117 had been read by a poll, and the task log had 117 before 116. Now 117 waits LOG_SETTLE."""
    server = TimedLogServer(written=[0.0, 1.0], delay=[1.4, 0.0], page_size=100)
    log = Recorder()
    reader = RunLogReader(
        cast(Any, server), "run1", log=log, run_url="https://app/runs/run1", max_wait=1.0,
        clock=lambda: server.now,
    )  # fmt: skip
    server.now = 1.2  # line 1 is readable, line 0 not yet
    reader.follow()
    assert log.infos == []
    server.now = 1.2 + LOG_SETTLE
    reader.follow()
    assert log.infos == [f"{MARK} line 0", f"{MARK} line 1"]
