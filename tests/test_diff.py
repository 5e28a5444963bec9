"""``jobpack diff`` shows exactly what a build would change in out/.

The property: for a random one-leaf change of a test project (the changes of the
incremental-build property test), applying the printed diff with ``git apply`` to the out/
of the original build gives, file for file and mode for mode, the out/ that building the
changed project writes; the exit status is 1 exactly when the two differ, and out/ is never
touched by ``diff``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import jobpack, snapshot
from hypothesis import HealthCheck, Phase, given, settings
from test_incremental import Change, Original, build, changes, prebuilt, tree

from generators.cli import main as jobpack_main

__all__ = ["prebuilt"]  # the fixture, shared with the incremental-build property test

EXAMPLES = int(os.environ.get("DIFF_EXAMPLES", 0)) or 12


def diff(folder: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = jobpack_main(["diff", "-p", str(folder / "project.yaml"),
                             "-o", str(folder / "out"), *extra])
    return code, out.getvalue(), err.getvalue()


def files(out: Path) -> dict[str, tuple[bytes, bool] | None]:
    return {k: v for k, v in tree(out).items() if v is not None}


@pytest.mark.parametrize("project", ["full", "ngc", "runai"])
def test_applying_the_diff_gives_what_a_build_writes(
        project: str, prebuilt: Callable[[str], Original], tmp_path: Path) -> None:
    seen = {"differ": 0, "same": 0, "invalid": 0}

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              print_blob=False, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                     HealthCheck.data_too_large])
    @given(change=changes(project))
    def applied_equals_built(change: Change) -> None:
        folder = prebuilt(project).restore()
        (folder / "project.yaml").write_text(change.text, encoding="utf-8")
        before = snapshot(folder / "out")
        code, patch, err = diff(folder)
        assert snapshot(folder / "out") == before, "jobpack diff changed out/"
        applied = tmp_path / "applied"
        shutil.rmtree(applied, ignore_errors=True)
        applied.mkdir()
        shutil.copytree(folder / "out", applied / "out", symlinks=True)
        result = build(folder)
        if result.code != 0:
            seen["invalid"] += 1
            assert code == result.code and not patch, (code, err)
            return
        assert code in (0, 1), err
        if patch:
            (tmp_path / "change.patch").write_text(patch, encoding="utf-8")
            subprocess.run(["git", "apply", "--unsafe-paths", str(tmp_path / "change.patch")],
                           cwd=applied, check=True, capture_output=True)
        built = files(folder / "out")
        assert files(applied / "out") == built
        assert (code == 1) == (files(applied / "out") != files(
            prebuilt(project).saved / "out")) == bool(patch)
        seen["differ" if patch else "same"] += 1

    applied_equals_built()
    assert seen["differ"] > 0, seen


def test_diff_of_a_current_bundle_is_empty_and_a_change_is_shown(project_copy) -> None:
    project = project_copy("full")
    folder = project.parent
    assert jobpack("build", "-p", project, "-o", folder / "out").code == 0
    (folder / "out" / "slurm" / "hpc" / "ledger.tsv").write_text("run time\n")  # not ours
    quiet = jobpack("diff", "-p", project, "-o", folder / "out")
    assert (quiet.code, quiet.stdout) == (0, "")

    text = project.read_text(encoding="utf-8")
    assert "partition: gpu" in text
    project.write_text(text.replace("partition: gpu", "partition: a100", 1), encoding="utf-8")
    os.chmod(folder / "out" / "PLAN.md", 0o755)
    shown = jobpack("diff", "-p", project, "-o", folder / "out")
    assert shown.code == 1, shown.stderr
    assert "\n-#SBATCH --partition=gpu\n" in shown.stdout
    assert "\n+#SBATCH --partition=a100\n" in shown.stdout
    assert "old mode 100755\nnew mode 100644\n" in shown.stdout
    assert "ledger.tsv" not in shown.stdout
    assert "\033[" not in shown.stdout  # not a terminal: no colour
    coloured = jobpack("diff", "--color", "always", "-p", project, "-o", folder / "out")
    assert "\033[31m-#SBATCH --partition=gpu\033[0m" in coloured.stdout
    off = jobpack("diff", "--color", "always", "-p", project, "-o", folder / "out",
                  env={"NO_COLOR": "1"})
    assert "\033[" in off.stdout  # --color always wins over NO_COLOR


def test_diff_of_a_broken_project_is_the_build_error(project_copy) -> None:
    project = project_copy("minimal")
    project.write_text(project.read_text(encoding="utf-8") + "\nbogus: 1\n", encoding="utf-8")
    result = jobpack("diff", "-p", project, "-o", project.parent / "out")
    assert result.code not in (0, 1) and not result.stdout
    assert "project.yaml:" in result.stderr and "Traceback" not in result.stderr
