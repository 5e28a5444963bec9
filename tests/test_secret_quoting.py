"""A secret whose value holds a quote, a space, a control character, a backslash or any
unicode never shows in a dry run, in any quoted form: every word a dry run prints is
scrubbed before it is quoted (quoting changes how the value is spelled)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import PROJECTS, build
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# The dry runs of each backend's submission scripts: (project, script, arguments).
RUNS = {
    "azureml": [("azureml/aml/submit_all.sh", ["--dry-run"]),
                ("azureml/aml/ctl.sh", ["--dry-run", "monitor", "--once"])],
    "full": [("slurm/hpc/submit_all.sh", ["--dry-run"])],
    "ngc": [("ngc/ngc/launch_all.sh", ["--dry-run"])],
    "runai": [("runai/lab/submit_all.sh", ["--dry-run"])],
}
MARK = "S3CRET"  # in every value: the value, or a part of it, shows only if it leaked
# What an environment variable can hold: any character but NUL (and no lone surrogate).
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
SPECIAL = st.sampled_from(["'", '"', " ", "\t", "\n", "\r", "\x1b", "\\", "$", "`", "é", "😀",
                           "\u200b", "'$'", "\\'"])
PART = st.lists(st.one_of(SPECIAL, st.text(CHARS, max_size=3)), max_size=4).map("".join)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name in RUNS:
        folder = tmp_path_factory.mktemp(name) / "p"
        shutil.copytree(PROJECTS / name, folder)
        result = build(folder / "project.yaml", folder / "out")
        assert result.code == 0, result.stderr
        out[name] = folder / "out"
    return out


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=PART, after=PART)
def test_no_dry_run_prints_a_secret_in_any_quoted_form(
        bundles: dict[str, Path], tmp_path: Path, before: str, after: str) -> None:
    value = f"{before}{MARK}{after}"
    for name, runs in RUNS.items():
        secrets = {key: value for key in ("AML_SUBSCRIPTION", "WANDB_API_KEY", "HPC_ACCOUNT",
                                          "FTP_PASS", "FTP_USER", "STORAGE_NODE_IP")}
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AZ_CLI": "false",
               "NGC_CLI": "false", **secrets}
        for script, args in runs:
            proc = subprocess.run(["bash", str(bundles[name] / script), *args],
                                  cwd=tmp_path, env=env, capture_output=True, timeout=120,
                                  check=False)
            text = (proc.stdout + proc.stderr).decode(errors="replace")
            assert MARK not in text, (name, script, repr(value), text[-1500:])
