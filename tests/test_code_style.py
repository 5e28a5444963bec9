"""The code holds to its own rules: ruff (with the complexity check) and mypy --strict."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.parametrize("tool", [["ruff", "check", "generators", "tests", "dodo.py"],
                                  ["mypy"]])
def test_tool_passes(tool: list[str]) -> None:
    exe = shutil.which(tool[0], path=str(ROOT / ".venv/bin")) or shutil.which(tool[0])
    if exe is None:
        pytest.fail(f"{tool[0]} is not installed; run tests/install-deps.sh")
    proc = subprocess.run([exe, *tool[1:]], cwd=ROOT, capture_output=True, text=True,
                          check=False, env={"PATH": f"{sys.prefix}/bin:/usr/bin:/bin",
                                            "HOME": str(ROOT / ".venv")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
