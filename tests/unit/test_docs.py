"""The docs say what the code does: snippets run as pasted, quoted messages are the code's own words.

Every ```python block of README.md and docs/*.md runs, against the emulator, unless its first line is
``# Fragment`` (or ``# Airflow 3.3+``, below 3.3). Every code line (fenced blocks and the example DAGs
the docs include) fits a page.
Every message quoted in docs/errors.md (a backticked span with a space, in the "What you see" column)
is a message the package can print: ``…`` in a quote marks text left out, anything else is literal,
with example values where the code puts a value.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.version_compat import AIRFLOW_V_3_3_PLUS

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
EXAMPLES = sorted((REPO / "example_dags").glob("*.py"))
MAX_COLUMNS = 90
FRAGMENT = "# Fragment"
NEEDS_3_3 = "# Airflow 3.3+"
FENCE = re.compile(r"^(`{3,})([^\n]*)\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)


def fenced_blocks() -> Iterator[tuple[str, str, str]]:
    """(where, info string, code) of every fenced block of the pages."""
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            yield f"{page.relative_to(REPO)}:{line}", match.group(2).strip(), match.group(3)


PYTHON_BLOCKS = [(where, code) for where, info, code in fenced_blocks() if info == "python"]
RUNNABLE = [(where, code) for where, code in PYTHON_BLOCKS if not code.startswith(FRAGMENT)]


def test_there_are_runnable_snippets() -> None:
    assert len(RUNNABLE) >= 5


@pytest.mark.parametrize(("where", "code"), RUNNABLE, ids=[where for where, _ in RUNNABLE])
def test_snippet_runs_as_pasted(where: str, code: str, example_emulator: AirplaneEmulator) -> None:
    """Run against an emulator that knows the example tasks, as ``airplane_default``; a snippet
    whose first line is ``# Airflow 3.3+`` runs there only."""
    if code.startswith(NEEDS_3_3) and not AIRFLOW_V_3_3_PLUS:
        pytest.skip("the snippet needs Airflow 3.3+")
    exec(compile(code, where, "exec"), {"__name__": "doc_snippet"})


def test_code_lines_fit_a_page() -> None:
    too_long = [
        f"{where} +{number}: {len(line)} characters"
        for where, info, code in fenced_blocks()
        if not info.startswith("{")  # MyST directives: prose (admonitions) and options
        for number, line in enumerate(code.splitlines())
        if len(line) > MAX_COLUMNS
    ]
    too_long += [
        f"{path.relative_to(REPO)}:{number}: {len(line)} characters"
        for path in EXAMPLES
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if len(line) > MAX_COLUMNS
    ]
    assert too_long == []


def test_example_dags_page_shows_every_example() -> None:
    page = (REPO / "docs" / "example-dags.md").read_text()
    included = set(re.findall(r"```\{literalinclude\} \.\./example_dags/(\S+\.py)", page))
    assert included == {path.name for path in EXAMPLES}


def test_event_driven_page_states_the_overlap_the_code_uses() -> None:
    from airflow_provider_airplane.triggers._events import OVERLAP

    page = (REPO / "docs" / "event-driven.md").read_text()
    assert f"re-reads {OVERLAP:g} s before the cursor" in page


# --- The quotes of docs/errors.md against the package's strings. -------------------------------

HOLE = "\x00"  # where the code puts a value: an f-string field, a %-style placeholder, a call
CUT = "\x01"  # "…" in a quote: text the quote leaves out
SHORT_VALUE = 60  # an example value in a quote is at most this long, unless it is itself a message
LITERAL_SHARE = 0.5  # of a quote's characters, at least this many are the code's literal text
PRINTF = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdrfgi]")
NO_MATCH = -1


def _template(node: ast.AST) -> str | None:
    """A string expression as literal text with HOLEs, or None when it is not a string expression."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return PRINTF.sub(HOLE, node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else HOLE for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left), _template(node.right)
        if left is None and right is None:
            return None
        return (HOLE if left is None else left) + (HOLE if right is None else right)
    return None


@cache
def templates() -> tuple[str, ...]:
    found: set[str] = set()
    for path in (REPO / "airflow_provider_airplane").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            text = _template(node)
            if text is not None and text.strip(HOLE + " "):
                found.add(re.sub(HOLE + "+", HOLE, text))
    return tuple(sorted(found))


def _chunks(template: str) -> list[str]:
    return [chunk for chunk in template.split(HOLE) if len(chunk) >= 8]


def _may_fit(template: str, quote: str) -> bool:
    """A quick filter: the template's long literal pieces are in the quote (some of them, when the
    quote leaves text out)."""
    chunks = _chunks(template)
    if CUT in quote:
        return any(chunk in quote for chunk in chunks)
    return all(chunk in quote for chunk in chunks)


def is_message(quote: str) -> bool:
    """Whether the package prints ``quote``: mostly its literal text, the rest short values.

    A template without long literal pieces (``"{message} [{answer}]"``) only wraps another message.
    """
    pool = tuple(t for t in templates() if not _chunks(t) or _may_fit(t, quote))
    return literal_chars(quote, pool, 2) >= LITERAL_SHARE * len(quote.replace(CUT, ""))


@cache
def literal_chars(quote: str, pool: tuple[str, ...], depth: int) -> int:
    """How many of ``quote``'s characters the best-fitting template's literal text accounts for
    (NO_MATCH when none fits)."""
    return max((_coverage(quote, t, pool, depth) for t in pool if _may_fit(t, quote)), default=NO_MATCH)


def _coverage(quote: str, template: str, pool: tuple[str, ...], depth: int) -> int:
    """A HOLE takes a short example value or a whole message (nested); a CUT takes any text."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    nested = tuple(t for t in pool if _chunks(t))

    @cache
    def at(i: int, j: int) -> int:
        if j == len(template):
            return 0 if all(char == CUT for char in quote[i:]) else NO_MATCH
        if i < len(quote) and quote[i] == CUT:
            return max(at(i + 1, j), at(i, j + 1))
        if template[j] == HOLE:
            best = NO_MATCH
            for k in range(i + 1, len(quote) + 1):
                rest = at(k, j + 1)
                if rest == NO_MATCH:
                    continue
                if k - i <= SHORT_VALUE:
                    best = max(best, rest)
                if depth > 0 and k - i >= 8:
                    inner = literal_chars(quote[i:k], nested, depth - 1)
                    if inner != NO_MATCH:
                        best = max(best, rest + inner)
            return best
        if i < len(quote) and quote[i] == template[j]:
            rest = at(i + 1, j + 1)
            return NO_MATCH if rest == NO_MATCH else rest + 1
        return NO_MATCH

    return at(0, 0)


def quoted_messages() -> list[str]:
    """The backticked spans with a space in the second column of docs/errors.md's tables."""
    quotes = []
    for line in (REPO / "docs" / "errors.md").read_text().splitlines():
        cells = line.split(" | ")
        if line.startswith("|") and len(cells) >= 3 and not set(cells[1]) <= set("-| "):
            quotes += [span for span in re.findall(r"`([^`]+)`", cells[1]) if " " in span]
    return quotes


QUOTES = quoted_messages()


def as_pattern(quote: str) -> str:
    """``…`` (with the space before it, if any) is a CUT."""
    return quote.replace(" …", CUT).replace("…", CUT)


def test_errors_page_quotes_messages() -> None:
    assert len(QUOTES) >= 20


@pytest.mark.parametrize("quote", QUOTES, ids=[quote[:40] for quote in QUOTES])
def test_quoted_message_is_what_the_code_prints(quote: str) -> None:
    assert is_message(as_pattern(quote)), f"no message of the package reads: {quote}"


@pytest.mark.parametrize(
    "quote",
    [
        "Give the Airplane task as slug= or airplane_task_id (either)",  # reworded
        "run_id 'run 123' contains whitespace; Airplane run ids have none.",  # reworded since
        "Airplane run 'run_x' was not found",  # shortened: a quote must be whole, or say "…"
    ],
)
def test_a_reworded_or_shortened_quote_is_caught(quote: str) -> None:
    assert not is_message(as_pattern(quote))


# --- The connection page's account of a WARNING that every Airplane task logs. ----------------


@pytest.mark.parametrize(("env_slug", "warns"), [("prod", True), ("production", False)])
def test_short_connection_extra_warning_is_airflows_masker(
    env_slug: str, warns: bool, emulator: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow's ``extra_dejson`` registers each extra value with the secrets masker, which warns once
    per process about a value under 5 characters, sensitive or not (``env_slug`` "prod"); the API key
    is long and the hook's own ``mask_secret`` of it does not warn."""
    from airflow._shared.secrets_masker.secrets_masker import SecretsMasker as CoreMasker
    from airflow.sdk._shared.secrets_masker.secrets_masker import SecretsMasker as SdkMasker

    from airflow_provider_airplane.hooks.airplane import AirplaneHook
    from tests.conftest import connection_json

    monkeypatch.setenv("AIRFLOW_CONN_AIRPLANE_DEFAULT", connection_json(emulator, env_slug=env_slug))
    maskers = (CoreMasker, SdkMasker)  # which copy masks depends on the Airflow version
    for masker in maskers:
        monkeypatch.setattr(masker, "_has_warned_short_secret", False)
    assert AirplaneHook().config.env_slug == env_slug
    assert any(masker._has_warned_short_secret for masker in maskers) is warns
