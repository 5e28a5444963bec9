"""Whole rendered bundles and whole error texts, compared with reviewed golden copies."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import GOLDEN, PROJECTS, ROOT, assert_golden, build, jobpack, read_tree, snapshot

VALID = ["minimal", "full", "hostile", "ngc"]
INVALID = sorted(p.name for p in (PROJECTS / "invalid").iterdir() if p.is_dir())


@pytest.mark.parametrize("name", VALID)
def test_bundle_matches_golden(name: str, project_copy, tmp_path: Path,
                               update_golden: bool) -> None:
    project = project_copy(name)
    result = build(project, tmp_path / "out")
    assert result.code == 0, result.stderr
    assert_golden(read_tree(tmp_path / "out"), GOLDEN / "bundles" / name, update_golden)


@pytest.mark.parametrize("name", INVALID)
def test_invalid_project_error_text(name: str, tmp_path: Path, update_golden: bool) -> None:
    """Each invalid project prints FILE:LINE:COL: path: message, exits 2, leaves out/ alone."""
    out = tmp_path / "out"
    assert build(PROJECTS / "minimal" / "project.yaml", out).code == 0
    before = snapshot(out)
    result = build(PROJECTS / "invalid" / name / "project.yaml", out)
    assert result.code == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(out) == before
    lines = result.stderr.strip().splitlines()
    assert lines[-1].endswith("found; out/ was not changed")
    for line in lines[:-1]:
        file, row, col, path, message = line.split(":", 4)
        assert file.endswith((".yaml", ".json")) and row.isdigit() and col.isdigit(), line
        assert path.strip() and message.strip(), line
    assert_golden({f"{name}.txt": result.stderr}, GOLDEN / "errors" / name, update_golden)


def test_committed_out_is_fresh() -> None:
    """out/ of the default example is committed; it must match what project.yaml builds."""
    result = jobpack("check", "-p", ROOT / "project.yaml", "-o", ROOT / "out")
    assert result.code == 0, result.stderr
