"""The build checks each script apart from the runtime library it sources (so the library,
the same in every project, is checked once); here every golden bundle is checked whole, each
script together with its folder's runtime.sh, so that a variable a script reads and nobody
sets (a typo) is still found."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import GOLDEN, ROOT

from generators.lint import shellcheck_binary

APART = "# shellcheck disable=SC2034,SC2154\n"
FOLDERS = sorted({p.parent for p in (GOLDEN / "bundles").rglob("runtime.sh")})


def joined(folder: Path, dest: Path) -> list[Path]:
    """A copy of ``folder`` whose scripts source runtime.sh for shellcheck and check
    variables read without being set (SC2154)."""
    shutil.copytree(folder, dest)
    scripts = []
    for path in sorted(p for p in dest.iterdir() if p.is_file()):
        text = path.read_text()
        if path.name == "runtime.sh":
            path.write_text(text.replace(" disable=SC2034,SC2154", " disable=SC2034", 1))
        elif text.startswith("#!") and APART in text:
            text = text.replace(APART, "# shellcheck disable=SC2034\n", 1)
            path.write_text(text.replace("# shellcheck source=/dev/null",
                                         "# shellcheck source=runtime.sh"))
            scripts.append(path)
    return scripts


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: str(p.relative_to(GOLDEN)))
def test_each_script_with_its_runtime_library_passes_shellcheck(folder: Path,
                                                                tmp_path: Path) -> None:
    scripts = joined(folder, tmp_path / "f")
    assert scripts, f"no script sources {folder}/runtime.sh"
    found = subprocess.run([shellcheck_binary(), "-x", "--shell=bash", "--severity=warning",
                            "-P", "SCRIPTDIR", *map(str, scripts)], cwd=ROOT,
                           capture_output=True, text=True, check=False)
    assert found.returncode == 0, found.stdout + found.stderr
