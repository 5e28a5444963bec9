"""The status table of the runtime library as tsv and json: any cell text comes back exact."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import build, copy_project
from hypothesis import given, settings
from hypothesis import strategies as st

# Bash arguments cannot hold NUL; surrogates are not text a terminal or file carries.
CELL = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=30)
ODD = st.sampled_from(['"', "\\", "\t", "\n", "\r", "\x01", "\x1f", "\x7f", "é", "日本", "😀",
                       "\\t", "\\n", '\\"', "\u2028", " "])
CELLS = st.lists(st.one_of(CELL, st.lists(ODD, max_size=6).map("".join)),
                 min_size=3, max_size=3)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("status-format")
    out = tmp / "out"
    result = build(copy_project("minimal", tmp / "minimal"), out)
    assert result.code == 0, result.stderr
    return out / "slurm" / "local" / "runtime.sh"


def table(runtime: Path, fmt: str, rows: list[list[str]], locale: str) -> str:
    """Print ROWS under the columns Job, Point and State through the runtime's functions."""
    script = ('jp_here=${1%/*} jp_dry_run=0 jp_format=$2; source "$1"; shift 2\n'
              "jp_table_start '%-8s %-6s %s\\n' Job Point State\n"
              'while (($#)); do jp_table_row "$1" "$2" "$3"; shift 3; done\n'
              "jp_table_end\n")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script, "bash", str(runtime), fmt,
                           *(cell for row in rows for cell in row)],
                          capture_output=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "LC_ALL": locale})
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    return proc.stdout.decode("utf-8")


def unescape_tsv(cell: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[m[1]], cell)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(CELLS, max_size=4), locale=st.sampled_from(["C.UTF-8", "C"]))
def test_json_and_tsv_give_back_every_cell(runtime: Path, rows: list[list[str]],
                                           locale: str) -> None:
    parsed = json.loads(table(runtime, "json", rows, locale))
    assert parsed == [{"job": a, "point": b, "state": c} for a, b, c in rows]
    lines = table(runtime, "tsv", rows, locale).split("\n")
    assert lines[0] == "job\tpoint\tstate" and lines[-1] == ""
    assert [[unescape_tsv(c) for c in line.split("\t")] for line in lines[1:-1]] == rows


def test_table_is_aligned_by_the_format(runtime: Path) -> None:
    assert table(runtime, "table", [["a", "0", "RUNNING"]], "C.UTF-8") == (
        "Job      Point  State\na        0      RUNNING\n")
    assert json.loads(table(runtime, "json", [], "C.UTF-8")) == []
    assert table(runtime, "tsv", [], "C.UTF-8") == "job\tpoint\tstate\n"
