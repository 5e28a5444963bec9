"""What jobpack accepts at build time, the target CLIs accept at run time: NGC names, env
values and runtimes against the checks of the real ngc CLI (ngcsdk), sbatch option names
against the sbatch installed here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generators.backends.ngc.rules import env_value_problem, name_problem, runtime_problem
from generators.backends.slurm.checks import SBATCH_OPTIONS, sbatch_option_problem

ngc_checks = pytest.importorskip("ngcbase.command.args_validation")
ngc_times = pytest.importorskip("ngcbase.util.datetime_utils")

NAMES = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12) | \
    st.sampled_from(["a", "ab", "a1", "1a", "_a", "a-", "A", "Ab", "no-team", "t.x", ""])


@settings(max_examples=500, deadline=None)
@given(team=NAMES)
def test_an_accepted_team_passes_ngcs_team_check(team: str) -> None:
    if name_problem("team", team) is None:
        ngc_checks.check_team_name_pattern(team)


@pytest.mark.parametrize("team", ["a", "1team", "_x", "-a", ""])
def test_a_team_ngc_refuses_is_refused(team: str) -> None:
    with pytest.raises(Exception, match="Team name"):
        ngc_checks.check_team_name_pattern(team)
    assert name_problem("team", team) is not None


@settings(max_examples=500, deadline=None)
@given(value=st.text(max_size=2100) | st.sampled_from(["a\n", "\n", "x" * 2048, "x" * 2049]))
def test_an_accepted_env_value_passes_ngcs_env_check(value: str) -> None:
    if env_value_problem(value) is None:
        ngc_checks.check_key_value_pattern(f"KEY:{value}")
    else:
        with pytest.raises(Exception, match="Key-value"):
            ngc_checks.check_key_value_pattern(f"KEY:{value}" + ("\nx" if "\n" in value else ""))


@settings(max_examples=500, deadline=None)
@given(runtime=st.from_regex(r"(?i)[0-9]{1,12}[DHMS]([0-9]{1,12}[HMS])?", fullmatch=True) |
       st.sampled_from(["999999999D23H", "1000000000D", "99999999999999999999S", "7D", "0S"]))
def test_an_accepted_runtime_passes_ngcs_duration_check(runtime: str) -> None:
    if runtime_problem(runtime) is None:
        ngc_times.validate_dhms_duration(runtime)


def _sbatch_help(tmp_path: Path) -> str:
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch is not installed (tests/install-deps.sh installs it)")
    conf = tmp_path / "slurm.conf"  # sbatch reads a configuration before printing its help
    conf.write_text("ClusterName=x\nSlurmctldHost=localhost\nNodeName=localhost\n"
                    "PartitionName=p Nodes=localhost\n")
    proc = subprocess.run(["sbatch", "--help"], capture_output=True, text=True, check=False,
                          env={**os.environ, "SLURM_CONF": str(conf)}, timeout=30)
    return proc.stdout


def test_every_sbatch_option_of_this_sbatch_is_known(tmp_path: Path) -> None:
    """No real option is refused as unknown, and each is taken only by its full name."""
    listed = set(re.findall(r"^\s+(?:-\w, )?--([a-z][a-z0-9-]*)", _sbatch_help(tmp_path),
                            re.MULTILINE))
    assert len(listed) > 60
    assert listed <= SBATCH_OPTIONS
    for option in listed:
        for cut in range(1, len(option)):
            if option[:cut] not in SBATCH_OPTIONS:  # "ntasks" is an option of its own
                assert sbatch_option_problem(option[:cut]) is not None, option[:cut]
