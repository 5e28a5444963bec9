"""PLAN.md's flow chart: a Mermaid block that GitHub renders in review, parsed back here.

For every valid test project, every job appears once as a node with its name, every
``after`` becomes an edge, every stage-in and stage-out a dotted edge from or to its sync,
and no project text can end a label, open HTML or close the code block.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from conftest import PROJECTS, ROOT, jobpack
from hypothesis import given, settings
from hypothesis import strategies as st

from generators.build import expected_files
from generators.paths import Paths
from generators.registry import load
from generators.render import mermaid, oneline

VALID = sorted(p.parent.name for p in PROJECTS.glob("*/project.yaml"))
NODE = re.compile(r'^  (j\d+)\["<b>([^"<>`]*)</b>(?:<br/>[^"<>`]*)*"\]$')
SYNC = re.compile(r'^  (s\d+)\[/"([^"<>`]*)"/\]$')
EDGE = re.compile(r'^  ([js]\d+) (?:-->|-\. "([^"<>`]*)" \.->) ([js]\d+)$')


def unescape(text: str) -> str:
    return html.unescape(re.sub(r"#(\d+|[a-z]+);", r"&\1;", text).replace("&35;", "&#35;")
                         .replace("&37;", "&#37;").replace("&96;", "&#96;")
                         .replace("&92;", "&#92;"))


def chart(project: Path) -> tuple[dict[str, str], dict[str, str], set[tuple[str, str, str]]]:
    """Jobs (id -> name), syncs (id -> name) and edges (from, to, label) of PLAN.md's
    chart; fails on any line that is not one of them."""
    plan = expected_files(Paths(project, project.parent / "out"))["PLAN.md"].text
    block = re.search(r"^```mermaid\nflowchart TD\n(.*?)^```$", plan, re.S | re.M)
    assert block, "no Mermaid block in PLAN.md"
    jobs: dict[str, str] = {}
    syncs: dict[str, str] = {}
    edges: set[tuple[str, str, str]] = set()
    for line in block.group(1).splitlines():
        if m := NODE.match(line):
            jobs[m.group(1)] = unescape(m.group(2))
        elif m := SYNC.match(line):
            syncs[m.group(1)] = unescape(m.group(2))
        elif m := EDGE.match(line):
            edges.add((m.group(1), m.group(3), unescape(m.group(2) or "")))
        else:
            raise AssertionError(f"not a node or an edge: {line!r}")
    for a, b, _label in edges:
        assert {a, b} <= set(jobs) | set(syncs), f"edge to an undefined node: {a} {b}"
    return jobs, syncs, edges


@pytest.mark.parametrize("name", [*VALID, "<default example>"])
def test_every_job_and_edge_is_in_the_chart(name: str) -> None:
    project = ROOT / "project.yaml" if name.startswith("<") else PROJECTS / name / "project.yaml"
    jobs, syncs, edges = chart(project)
    loaded = load(project)
    assert sorted(jobs.values()) == sorted(loaded.project.jobs)
    by_name = {v: k for k, v in jobs.items()}
    sync_id = {v: k for k, v in syncs.items()}
    want = {(by_name[a], by_name[n], "") for n, j in loaded.project.jobs.items()
            for a in j.after}
    assert {e for e in edges if e[2] == ""} == want
    for n, j in loaded.project.jobs.items():
        opts = j.options
        for stage in getattr(opts, "stage_in", []) or []:
            assert (sync_id[stage.sync], by_name[n], "stage-in") in edges
        for stage in getattr(opts, "stage_out", []) or []:
            assert any(e[:2] == (by_name[n], sync_id[stage.sync]) and
                       e[2].startswith("stage-out") for e in edges)


@settings(deadline=None)  # a pure function: time on a loaded machine says nothing
@given(st.text())
def test_no_text_escapes_a_label(text: str) -> None:
    label = str(mermaid(text))
    assert not set(label) & set('"<>`%\\\n\r')
    assert unescape(label) == oneline(text)  # the text, as every one-line filter shows it


@pytest.mark.parametrize("name", VALID)
def test_plan_prints_a_table_on_request_and_plan_md_otherwise(name: str) -> None:
    project = PROJECTS / name / "project.yaml"
    loaded = load(project)
    table = jobpack("plan", "--format", "table", "-p", project, "-o", "/nonexistent/out")
    assert table.code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["job", "cluster", "launcher"] and set(lines[1]) <= {"-", " "}
    jobs = [line.split()[0] for line in lines[2:2 + len(loaded.project.jobs)]]
    assert sorted(jobs) == sorted(loaded.project.jobs)
    starts = [m.start() for m in re.finditer(r"\S+", lines[1])]  # aligned under the rule
    for line in lines[2:2 + len(jobs)]:
        assert all(p == 0 or line[p - 2:p] == "  " for p in starts if p < len(line)), line
    piped = jobpack("plan", "-p", project, "-o", "/nonexistent/out")  # not a terminal
    built = expected_files(Paths(project, project.parent / "out"))["PLAN.md"].text
    assert piped.stdout == built
