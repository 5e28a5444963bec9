"""No secret's value in out/, nor in what any script prints: -h, --dry-run, or a run that
fails because a tool refused and echoed its arguments back; also under ``bash -x``.

Secrets are set to distinctive values; every tool a script calls is a stub that fails and
prints everything it was given (arguments, and standard input where it reads one), as a
careless tool might. Whatever reaches the terminal must hold ``${NAME}``, never a value.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import PROJECTS, build

SECRETS = {"HPC_ACCOUNT": "acct-S3CRET-1", "WANDB_API_KEY": "wandb-S3CRET-2",
           "FTP_PASS": "ftp-S3CRET-3 'q' $x", "AML_SUBSCRIPTION": "sub-S3CRET-4"}
# Tools the scripts call, each failing loudly with everything it got.
LOUD = '#!/bin/sh\necho "$(basename "$0"): error: refused: $*" >&2\n{stdin}exit 1\n'
TOOLS = {"sbatch": "", "squeue": "", "scontrol": "", "sacct": "", "scancel": "", "srun": "",
         "salloc": "", "tmux": "", "lz4": "",
         "ngc": "", "runai": "", "az": "", "rclone": "", "rsync": "", "ssh": "", "docker": "",
         "lftp": 'echo "lftp got: $(cat)" >&2\n', "python": "", "python3": ""}


@pytest.fixture(scope="module")
def loud_tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("loud")
    for tool, stdin in TOOLS.items():
        (folder / tool).write_text(LOUD.format(stdin=stdin))
        (folder / tool).chmod(0o755)
    for harmless in ("module", "conda"):  # site tools a job sources; harmless here
        (folder / harmless).write_text("#!/bin/sh\nexit 0\n")
        (folder / harmless).chmod(0o755)
    return folder


@pytest.fixture(scope="module", params=["full", "ngc", "runai", "azureml", "dev"])
def bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp(request.param) / "p"
    shutil.copytree(PROJECTS / request.param, folder)
    result = build(folder / "project.yaml", folder / "out")
    assert result.code == 0, result.stderr
    return folder / "out"


def _found(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text or
            value.split()[0] in text]


def test_no_secret_value_is_written_into_the_bundle(bundle: Path) -> None:
    for path in bundle.rglob("*"):
        if path.is_file():
            assert not _found(path.read_text(errors="replace")), path


def _runs(script: Path) -> list[list[str]]:
    """The ways a user runs a script: help, dry run, and for real (which fails here)."""
    runs = [["-h"], ["--dry-run"]]
    if script.parent.name == "sync":
        runs += [["run", "--every", "0"], ["status"]]
    elif script.name == "monitor.sh":
        runs += [["--once"]]
    elif script.name == "auto-backup.sh":
        runs += [["--every", "1", "--dry-run"]]  # for real it runs until a signal
    else:
        runs += [[]]
    if script.name == "ctl.sh":
        runs += [["status"], ["resubmit", "x"], ["monitor", "--once"], ["logs", "x"]]
    if script.name == "status.sh":
        runs += [["--cached"]]
    return runs


@pytest.mark.slow
def test_no_script_prints_a_secret(bundle: Path, loud_tools: Path, tmp_path: Path) -> None:
    env = {"PATH": f"{loud_tools}:/usr/bin:/bin", "HOME": str(tmp_path), "RUN_ID": "r1",
           "SLURM_ARRAY_TASK_ID": "0", "NGC_CLI": str(loud_tools / "ngc"), **SECRETS}
    scripts = sorted(p for p in bundle.rglob("*") if p.suffix in (".sh", ".sbatch"))
    assert scripts
    runs = [(script, args, trace) for script in scripts for args in _runs(script)
            for trace in ([], ["-x"])]

    def leak(run: tuple[Path, list[str], list[str]]) -> str | None:
        script, args, trace = run
        proc = subprocess.run(["bash", *trace, str(script), *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        text = proc.stdout + proc.stderr
        seen = _found(text)
        if not seen:
            return None
        at = text.find(SECRETS[seen[0]].split()[0])
        return f"{script.relative_to(bundle)} {args} {trace}: {text[max(0, at - 150):at + 40]!r}"

    # Runs that fail retry with pauses (a sync waits 2, 4, 8 s): run them side by side.
    with ThreadPoolExecutor(max_workers=16) as pool:
        leaks = [found for found in pool.map(leak, runs) if found]
    assert not leaks, "\n".join(leaks)


def test_a_secret_in_secrets_env_is_read_with_xtrace_off(tmp_path: Path) -> None:
    """bash -x of a dry run with every secret in secrets.env: the trace never shows one."""
    shutil.copytree(PROJECTS / "full", tmp_path / "p")
    assert build(tmp_path / "p" / "project.yaml", tmp_path / "p" / "out").code == 0
    folder = tmp_path / "p" / "out" / "slurm" / "hpc"
    (folder / "secrets.env").write_text("".join(f"{k}={shlex.quote(v)}\n"
                                                for k, v in SECRETS.items()))
    for script, args in (("submit_all.sh", ["--dry-run"]), ("train.sbatch", ["--dry-run"])):
        proc = subprocess.run(["bash", "-x", str(folder / script), *args], cwd=tmp_path,
                              env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert not _found(proc.stdout + proc.stderr), script
        assert "${" in proc.stdout  # the dry run shows names
