"""Valid projects mutated into malformed ones: wrong types, huge, negative and non-finite
numbers, control characters, unknown keys, deleted keys, hostile strings anywhere.

Whatever the mutation, loading and rendering the project either succeeds (and every file it
would write is UTF-8 text) or ends in exit-2 style errors, FILE:LINE:COL: path: message; it
never raises anything else and never hangs. Runs in-process, rendering every file a build
would write (the linter is left to the build tests).
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROJECTS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invalid_cases import ERROR_LINE

from generators.build import expected_files
from generators.errors import ProjectError
from generators.loader import parse_yaml
from generators.paths import Paths
from generators.project.model import CODE, PROSE, STRICT, VALUE
from generators.registry import text_kind

BASES = ("minimal", "full", "ngc")
HOSTILE = ["$(touch PWNED)", "`touch PWNED`", "'", '"', "\\", ";", "|", "&", "*", "?", "~",
           "#", "%", "{", "}", "{{ x }}", "{{ run_id }}", "{{ sequence }}", "${X}", "${HOME}",
           "\n", "\r", "\t", "\0", "\x1b[31m", "\u202e", "-rf", "--help", "a" * 300, "ünï ✓",
           "../../etc/passwd", "/", "", " ", "no-team", "0x1F", ".nan", "24:00:00", "<<",
           "USAGE", "a\nUSAGE\nrm -rf ~", "x: y", "- a", "[", "{a: 1}", "!!python/name:os"]
SCALARS = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 65536, 10**4200]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(st.sampled_from(HOSTILE) | st.text(max_size=8), SCALARS,
                                   max_size=3))


def _plain(value: Any) -> Any:
    """Loader values as plain Python (PyYAML's dumper knows no int subclass)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return int(value) if isinstance(value, int) else float(value)


def _original(name: str) -> Any:
    text = (PROJECTS / name / "project.yaml").read_text()
    return _plain(parse_yaml(text, "project.yaml")[0])


ORIGINALS = {name: _original(name) for name in BASES}


def _places(data: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in ``data``: the root, each key's value and each list item."""
    yield loc
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _places(value, (*loc, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _places(value, (*loc, i))


def _parent(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc[:-1]:
        data = data[part]
    return data


def _mutate(data: Any, loc: tuple[Any, ...], how: str, value: Any, key: str) -> Any:
    data = copy.deepcopy(data)
    if not loc:
        return value if how == "replace" else data
    parent, last = _parent(data, loc), loc[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "rename" and isinstance(parent, dict):
        parent[key] = parent.pop(last)
    elif how == "add" and isinstance(parent[last], dict):
        parent[last][key] = value
    return data


@contextmanager
def _watchdog(seconds: int) -> Iterator[None]:
    def stop(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"no answer after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _build_in_process(project: Path) -> list[str] | None:
    """None when the project renders (every file UTF-8), else its error lines."""
    with _watchdog(20):
        try:
            files = expected_files(Paths(project, project.parent / "out"))
        except ProjectError as exc:
            lines = exc.render().split("\n")
            assert lines[-1].endswith("found; out/ was not changed"), lines[-1]
            for line in lines[:-1]:
                assert ERROR_LINE.fullmatch(line), line
            return lines[:-1]
    for art in files.values():
        art.text.encode("utf-8")
    return None


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="jobpack-mutations-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _write(work: Path, base: str, data: Any, sequences: bytes | None = None) -> Path:
    folder = work / base
    if not folder.exists():
        shutil.copytree(PROJECTS / base, folder)
    if (PROJECTS / base / "sequences.json").exists():
        (folder / "sequences.json").write_bytes(
            sequences if sequences is not None
            else (PROJECTS / base / "sequences.json").read_bytes())
    (folder / "project.yaml").write_text(yaml.safe_dump(data, allow_unicode=True),
                                         encoding="utf-8")
    return folder / "project.yaml"


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, Any]:
    base = draw(st.sampled_from(BASES))
    data = ORIGINALS[base]
    for _ in range(draw(st.integers(1, 3))):
        loc = draw(st.sampled_from(list(_places(data))))
        how = draw(st.sampled_from(["replace", "replace", "delete", "rename", "add"]))
        key = draw(st.sampled_from(HOSTILE) | st.text(max_size=12))
        data = _mutate(data, loc, how, draw(VALUES), key)
    return base, data


@settings(max_examples=int(os.environ.get("MUTATIONS", 400)), deadline=None,
          derandomize=not os.environ.get("MUTATIONS"),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutation=mutations(), sequences=st.none() | st.binary(max_size=60) | st.sampled_from([
    b'{"a": NaN}', b'{"a": 1, "a": 2}', b"[" * 5000, b'{"\\u0000": 1}', b'{"a\\nb": 1}',
    b'{"\\ud800": 1}', b'{"a": ' + b"9" * 5000 + b"}", b'{"\\": 1}', b'{"-x": 0}']))
def test_mutated_project_builds_or_reports(mutation: tuple[str, Any], sequences: bytes | None,
                                           work: Path) -> None:
    base, data = mutation
    _build_in_process(_write(work, base, data, sequences))


def _strings(data: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], bool]]:
    """(place, is a key) of every string of ``data``."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield (*loc, key), True
            yield from _strings(value, (*loc, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _strings(value, (*loc, i))
    elif isinstance(data, str):
        yield loc, False


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("char", ["\n", "\x1b", "\0", "\u202e"])
def test_control_character_in_every_string(base: str, char: str, work: Path) -> None:
    """A control character put into each string (and key) of a valid project is refused
    wherever its place is strict; a NUL is refused everywhere."""
    data = ORIGINALS[base]
    for loc, is_key in _strings(data):
        changed = copy.deepcopy(data)
        parent = _parent(changed, loc)
        if is_key:
            parent[loc[-1] + char] = parent.pop(loc[-1])
        else:
            parent[loc[-1]] = parent[loc[-1]] + char
        problems = _build_in_process(_write(work, base, changed))
        kind = STRICT if is_key else text_kind(loc)
        if char == "\0" or kind == STRICT or (char == "\x1b" and kind in (PROSE, CODE)):
            assert problems, f"{char!r} in {loc} was accepted"
            assert any(f"U+{ord(char):04X}" in p for p in problems), problems
        elif kind == VALUE or (kind in (PROSE, CODE) and char == "\n"):
            assert not problems or all(f"U+{ord(char):04X}" not in p for p in problems)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, 10**30, -(10**30), 2**31,
                                   1e300, "9" * 5000])
def test_every_number_rejects_what_its_tool_would(value: Any, work: Path) -> None:
    """Each number of the full example set to a non-finite, negative or huge value: the
    result builds or is refused, and a refused one names that number's place."""
    data = ORIGINALS["full"]
    numbers = [loc for loc in _places(data) if loc and isinstance(_parent(data, loc)[loc[-1]],
                                                                   int | float)
               and not isinstance(_parent(data, loc)[loc[-1]], bool)]
    assert len(numbers) > 10
    for loc in numbers:
        changed = copy.deepcopy(data)
        _parent(changed, loc)[loc[-1]] = value
        problems = _build_in_process(_write(work, "full", changed))
        bad = isinstance(value, float) and not math.isfinite(value) or value == 10**30 \
            or value == -(10**30) or isinstance(value, str)
        data_value = any(part in ("matrix", "list", "env", "sbatch") for part in loc)
        if bad and not data_value:
            assert problems is not None, f"{value!r} at {loc} was accepted"


def test_mutated_sequences_files(work: Path) -> None:
    """Hostile sequences files never crash the build (json text of every kind)."""
    for text in ['{"a": 1e999}', '{"a": -0}', '{"a": 1, "b": 2}', "{}", "[]", "null", "1",
                 json.dumps({"x" * 300: 1}), json.dumps({f"s{i}": i for i in range(2000)})]:
        _build_in_process(_write(work, "full", ORIGINALS["full"], text.encode()))
