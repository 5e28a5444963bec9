"""Every invalid project gives exit 2 and FILE:LINE:COL: path: message lines (the reviewed
golden text), never a traceback or a hang, fast, with a previously built out/ untouched.

The corpus (tests/invalid_cases.py) runs in-process here; test_golden.py runs a sample of it
through the real command.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import GOLDEN, PROJECTS, assert_golden, build, snapshot
from invalid_cases import CASES, SLOW, problems_in, run_in_process


@pytest.fixture(scope="module")
def built_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An out/ built from a valid project, which no invalid build may touch."""
    out = tmp_path_factory.mktemp("built") / "out"
    assert build(PROJECTS / "minimal" / "project.yaml", out).code == 0
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_invalid_case(name: str, built_out: Path, tmp_path: Path, update_golden: bool) -> None:
    case = CASES[name]
    before = snapshot(built_out)
    folder = tmp_path / name
    folder.mkdir()
    result, seconds = run_in_process(case, case.make(folder), built_out)
    assert problems_in(result)
    assert snapshot(built_out) == before, "out/ changed"
    assert seconds < SLOW, f"took {seconds:.1f} s"
    assert_golden({f"{name}.txt": result.stderr}, GOLDEN / "errors" / name, update_golden)


def test_corpus_covers_the_invalid_folder_and_its_goldens() -> None:
    """Each case has exactly one golden text, and no golden outlives its case."""
    goldens = {p.name for p in (GOLDEN / "errors").iterdir() if p.is_dir()}
    assert goldens == set(CASES)
    assert len(CASES) >= 150


def test_points_that_differ_only_in_case_write_distinct_configs(tmp_path: Path) -> None:
    """Sequences 'ab' and 'AB' must not share a config file (or an NGC job name) on a file
    system that ignores case."""
    from generators.build import expected_files
    from generators.paths import Paths

    (tmp_path / "seq.json").write_text('{"ab": 1, "AB": 2, "c": 3}')
    project = tmp_path / "project.yaml"
    project.write_text(
        "project: p\nclusters:\n  g: {kind: ngc, instance: i1, configs: /ws/configs}\n"
        "jobs:\n  t: {cluster: g, image: nvcr.io/nv/x:1, command: 'python t.py "
        "{{ config_path }}', sweep: {sequences: seq.json}, config: {base: /ws/base.py}}\n")
    files = expected_files(Paths(project, tmp_path / "out"))
    configs = [f for f in files if f.startswith("ngc/g/configs/t/")]
    assert len(configs) == 3
    assert len({f.lower() for f in configs}) == 3
