"""Copy an Airplane run's log lines into the Airflow task log, never at the task's expense.

A reader follows one run: on each poll while the run is in progress it reads pages until one is shorter
than the longest seen (the page size is unknown; a short page means it caught up, and chasing a run that
is still writing would cost a request per new line) or ``FOLLOW_MAX_PAGES`` were read. Once the run has
ended (or a deferred task resumes) it reads every remaining page, until an answer holds no new line. Each line
is written once, in order, as ``[airplane] <text>``. A log pipeline may show a line only after later ones
(another API server, a late batch), so while the run goes on a line waits ``LOG_SETTLE`` seconds after it
was read, and is written with every earlier line read meanwhile, and only after a poll that read to the
log's current end. For the same reason, when the API answers the read after the end of a run that
wrote lines less than ``LOG_SETTLE`` seconds after the run ended (by the server's clock: its ``Date`` and
the run's timestamps), the reader waits out the rest and reads once more. A task that stops before its run
ends (a timeout, a kill, an outage past ``max_outage``) writes the lines it has read (``flush``). The last
lines are kept for a failed run's error.

Past ``max_lines`` nothing more is written, so the reader stops after ``PAST_LIMIT_PAGES`` more pages (a
run just over the limit still gets an exact count and its real last lines) instead of paging through the
whole log: one line then says the rest was not read. A failed run's error then carries no last lines:
the lines read last are not the run's last.

Reading logs never fails the task and never cancels the run: a 404 (the server has no log endpoint; the
run itself was just read) stops reading with one warning; any other error is a warning, and the next poll
tries again from the same token. Each read gives up after ``max_wait`` seconds (the poll interval).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from airflow_provider_airplane.exceptions import AirplaneError, AirplaneNotFoundError
from airflow_provider_airplane.hooks._logs import LogCursor

if TYPE_CHECKING:
    from airflow_provider_airplane.hooks._exchange import Log
    from airflow_provider_airplane.hooks.airplane import AirplaneHook
    from airflow_provider_airplane.models import AirplaneLogLine

MARK = "[airplane]"
TAIL_LINES = 20  # a failed run's last lines that go into the exception text
DEFAULT_LOG_MAX_LINES = 10_000
FOLLOW_MAX_PAGES = 50
PAST_LIMIT_PAGES = 10
# Seconds a line read while the run goes on waits before it is written: longer than the API takes to show
# a line late, so an earlier line that shows up meanwhile is written in its place, not after it.
LOG_SETTLE = 5.0
# How a read of pages ended: an answer with no new line, a page shorter than the longest (caught up while
# the run writes on), FOLLOW_MAX_PAGES read, or an error.
ReadEnd = Literal["end", "short", "more", "failed"]


class RunLogReader:
    """The log of one run, read page by page; ``echo`` writes the lines to ``log`` (up to ``max_lines``)."""

    def __init__(
        self,
        hook: AirplaneHook,
        run_id: str,
        *,
        log: Log,
        run_url: str,
        max_wait: float,
        max_lines: int = DEFAULT_LOG_MAX_LINES,
        echo: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.hook = hook
        self.run_id = run_id
        self.log = log
        self.run_url = run_url
        self.max_wait = max_wait
        self.max_lines = max_lines
        self.echo = echo
        self.clock = clock
        self.sleep = sleep
        self.server_time: float | None = None  # the Date of the latest answer (epoch seconds)
        self.cursor = LogCursor()
        # Lines read but not written yet, with the moment each was read (``clock``).
        self.pending: list[tuple[AirplaneLogLine, float]] = []
        self.longest_page = 0
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.taken = 0  # lines read, written or not
        self.written = 0
        self.left_out = 0
        self.pages_past_limit = 0
        # Reading stopped ``PAST_LIMIT_PAGES`` pages past ``max_lines``, before the log's end.
        self.cut_short = False
        self.available = True
        self.complete = False

    def follow(self) -> None:
        """The new lines: called on each poll while the run is in progress. Writes the lines read at least
        ``LOG_SETTLE`` seconds ago (and every earlier line), once this poll has read to the log's end: a
        line still missing then was not readable yet, and may come before them."""
        end = self._read(max_pages=FOLLOW_MAX_PAGES, stop_short=True)
        if end in ("end", "short"):
            self._write_settled(self.clock() - LOG_SETTLE)

    def drain(self, ended_at: float | None = None) -> None:
        """Every page not read yet: called once the run has ended (``ended_at``: when, in epoch seconds of
        the server's clock). Says what was left out, once."""
        if self.complete:
            return
        end = self._read(max_pages=None)
        # Only a run that writes lines can have some shown late: one with none costs no wait.
        if end == "end" and self.taken and ended_at is not None and self.server_time is not None:
            # The Date has whole seconds (rounded down): one more second covers it.
            wait = min(LOG_SETTLE, ended_at + LOG_SETTLE + 1.0 - self.server_time)
            if wait > 0:
                self.sleep(wait)  # lines the API shows late: the run's last ones, often its error
                end = self._read(max_pages=None)
        self._write_settled(None)
        if end != "end" and self.available:
            self.log.warning(
                "The rest of Airplane run %s's log could not be read; it is at %s", self.run_id, self.run_url
            )
        if self.cut_short:
            self.tail.clear()  # the lines read last are not the run's last lines
        if self.echo and (self.left_out or self.cut_short):
            self.log.warning(
                "%s %d more lines of Airplane run %s were left out (log_max_lines=%d)%s; read them at %s",
                MARK,
                self.left_out,
                self.run_id,
                self.max_lines,
                ", and the rest of its log was not read" if self.cut_short else "",
                self.run_url,
            )
        self.complete = True

    def flush(self) -> None:
        """Write every line read so far: the task stops before its run ended (a timeout, a kill)."""
        self._write_settled(None)

    def _read(self, *, max_pages: int | None, stop_short: bool = False) -> ReadEnd:
        """Read up to ``max_pages`` pages into ``pending``. ``stop_short``: also stop after a page shorter
        than the longest one seen."""
        fresh: list[AirplaneLogLine] = []
        end = self._read_pages(fresh, max_pages=max_pages, stop_short=stop_short)
        now = self.clock()
        self.pending += [(line, now) for line in fresh]
        return end

    def _write_settled(self, read_before: float | None) -> None:
        """Write, in the order the run wrote them, the pending lines read before ``read_before`` and every
        pending line that comes before one of those (None: every pending line). Pages come in the order
        lines became readable, which is not the order the run wrote them when a line reaches the API late.
        """
        settled = [
            line.key for line, read_at in self.pending if read_before is None or read_at <= read_before
        ]
        if not settled:
            return
        last = max(settled)
        ready = sorted((line for line, _ in self.pending if line.key <= last), key=lambda line: line.key)
        self.pending = [(line, read_at) for line, read_at in self.pending if line.key > last]
        self._write(ready)

    def _read_pages(
        self, fresh: list[AirplaneLogLine], *, max_pages: int | None, stop_short: bool
    ) -> ReadEnd:
        pages = 0
        while self.available and (max_pages is None or pages < max_pages):
            if self.pages_past_limit >= PAST_LIMIT_PAGES:
                self.cut_short = True  # nothing more is wanted from this log
                return "end"
            try:
                page = self.hook.get_run_logs(
                    self.run_id, prev_token=self.cursor.prev_token, max_wait=self.max_wait
                )
            except AirplaneNotFoundError as err:
                self.available = False
                self.log.warning(
                    "Not reading Airplane run %s's log: the server has no log endpoint (%s). The run's log "
                    "is at %s",
                    self.run_id,
                    err.message,
                    self.run_url,
                )
                return "failed"
            except AirplaneError as err:
                self.log.warning("Could not read Airplane run %s's log this time: %s", self.run_id, err)
                return "failed"
            if self.taken >= self.max_lines:
                self.pages_past_limit += 1
            self.server_time = page.server_time or self.server_time
            new = self.cursor.take(page)
            self.taken += len(new)
            fresh += new
            pages += 1
            if not new:
                return "end"
            if stop_short and len(page.lines) < self.longest_page:
                return "short"
            self.longest_page = max(self.longest_page, len(page.lines))
        return "more" if self.available else "failed"

    def _write(self, lines: list[AirplaneLogLine]) -> None:
        scrub = self.hook.config.scrub  # a run may print anything; the provider's own key is never echoed
        for line in lines:
            text = scrub(line.text)
            self.tail.append(text)
            if not self.echo:
                continue
            if self.written < self.max_lines:
                self.log.info("%s %s", MARK, text)
                self.written += 1
            else:
                self.left_out += 1


def check_log_max_lines(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"log_max_lines must be an integer >= 0, got {value!r}")
    return value
