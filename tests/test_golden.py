"""Whole rendered bundles and whole error texts, compared with reviewed golden copies."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import GOLDEN, PROJECTS, ROOT, assert_golden, build, jobpack, read_tree, snapshot
from invalid_cases import CASES, SAMPLE, SLOW, problems_in, run_command

VALID = ["minimal", "full", "hostile", "ngc", "runai", "images", "azureml", "dev"]


@pytest.mark.parametrize("name", VALID)
def test_bundle_matches_golden(name: str, project_copy, tmp_path: Path,
                               update_golden: bool) -> None:
    project = project_copy(name)
    result = build(project, tmp_path / "out")
    assert result.code == 0, result.stderr
    assert_golden(read_tree(tmp_path / "out"), GOLDEN / "bundles" / name, update_golden)


@pytest.mark.parametrize("name", SAMPLE)
def test_invalid_project_error_text(name: str, tmp_path: Path, update_golden: bool) -> None:
    """The real command, on a sample of the invalid corpus (test_invalid.py runs all of it
    in-process): exit 2, FILE:LINE:COL: path: message lines, out/ untouched, in time."""
    out = tmp_path / "out"
    assert build(PROJECTS / "minimal" / "project.yaml", out).code == 0
    before = snapshot(out)
    case = CASES[name]
    (tmp_path / name).mkdir()
    result, seconds = run_command(case, case.make(tmp_path / name), out)
    assert problems_in(result)
    assert snapshot(out) == before
    assert seconds < SLOW, f"took {seconds:.1f} s"
    assert_golden({f"{name}.txt": result.stderr}, GOLDEN / "errors" / name, update_golden)


def test_committed_out_is_fresh() -> None:
    """out/ of the default example is committed; it must match what project.yaml builds."""
    result = jobpack("check", "-p", ROOT / "project.yaml", "-o", ROOT / "out")
    assert result.code == 0, result.stderr
