"""Hostile values (quotes, $(...), backticks, newlines, unicode, ...) arrive byte-exact.

The hostile project's sweep values, literal arguments and env values are fed through the
generated scripts three ways: running the sbatch script as an array task, evaluating what
its --dry-run prints, and submit_all.sh against a stub sbatch that records its argv. The
bundle itself lives under a folder whose name is hostile too.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import PROJECTS, build

HOSTILE_DIR = "we ird 'dir' \"q\" $(touch pwned) ü"
SECRET = "acc 'o' \"u\" $(touch pwned) `x` ñ"
DUMPER = """import json, os, sys
with open(os.environ["DUMP_OUT"], "a", encoding="utf-8") as fh:
    fh.write(json.dumps({"argv": sys.argv[1:], "HOSTILE": os.environ["HOSTILE"],
                         "STATIC": os.environ.get("STATIC")}) + "\\n")
"""


def _points(job: str) -> list[str]:
    data = yaml.safe_load((PROJECTS / "hostile" / "project.yaml").read_text())
    return [p["v"] for p in data["jobs"][job]["sweep"]["list"]]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile") / HOSTILE_DIR
    root.mkdir()
    out = root / "out"
    result = build(PROJECTS / "hostile" / "project.yaml", out)
    assert result.code == 0, result.stderr
    dumper = root / "dump.py"
    dumper.write_text(DUMPER)
    return {"root": root, "dir": out / "slurm" / "c", "dumper": dumper}


def _env(bundle: dict[str, Path], dump: Path, **extra: str) -> dict[str, str]:
    bin_dir = bundle["root"] / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("module", "conda"):  # site tools the scripts call; harmless here
        path = bin_dir / tool
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "ACCOUNT": SECRET,
            "DUMPER": str(bundle["dumper"]), "DUMP_OUT": str(dump), "RUN_ID": "r1", **extra}


def _run_task(bundle: dict[str, Path], job: str, index: int, dump: Path) -> dict[str, object]:
    env = _env(bundle, dump, SLURM_ARRAY_TASK_ID=str(index))
    proc = subprocess.run(["bash", str(bundle["dir"] / f"{job}.sbatch")], env=env,
                          cwd=bundle["root"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(dump.read_text().splitlines()[-1])


STATIC = "a b'c \"d\" $(touch pwned) `touch pwned` ~ * ; && | \\ ünï ✓"


@pytest.mark.parametrize("index", range(len(_points("argv"))))
def test_argv_job_receives_values_exactly(bundle: dict[str, Path], index: int,
                                          tmp_path: Path) -> None:
    value = _points("argv")[index]
    got = _run_task(bundle, "argv", index, tmp_path / "dump.jsonl")
    literal = "lit $(touch pwned) `touch pwned` 'q' \"dq\" \\"
    assert got["argv"] == [value, literal, f"argv-{value}"]
    assert got["HOSTILE"] == value and got["STATIC"] == STATIC
    assert not list(bundle["root"].rglob("pwned")) and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("index", range(len(_points("code"))))
def test_shell_code_job_receives_values_exactly(bundle: dict[str, Path], index: int,
                                                tmp_path: Path) -> None:
    """Placeholders in words, "...", $(case ...), ${UNSET:-...} (quoted and not), backticks
    and an unquoted here-document all deliver the value as it is (command substitutions drop
    trailing newlines, as they do for any text); a comment before them holds a quote."""
    value = _points("code")[index]
    got = _run_task(bundle, "code", index, tmp_path / "dump.jsonl")
    cut = value.rstrip("\n")
    assert got["argv"] == [value, value, cut, value, value, cut, f"<{value}>", "fixed 'quote"]
    assert got["HOSTILE"] == value
    assert not list(bundle["root"].rglob("pwned"))


def test_dry_run_prints_code_that_reproduces_the_values(bundle: dict[str, Path],
                                                        tmp_path: Path) -> None:
    env = _env(bundle, tmp_path / "dump.jsonl")
    values = _points("argv")
    proc = subprocess.run(["bash", str(bundle["dir"] / "argv.sbatch"), "--dry-run", "--all"],
                          env=env, capture_output=True, text=True, check=True)
    chunks = proc.stdout.split("# point ")[1:]
    assert len(chunks) == len(values)
    assert not (tmp_path / "dump.jsonl").exists(), "--dry-run must not run the command"
    for i, chunk in enumerate(chunks):
        code = chunk.split("\n", 1)[1]
        subprocess.run(["bash", "-c", code], env=env, check=True)
        got = json.loads((tmp_path / "dump.jsonl").read_text().splitlines()[-1])
        assert got["argv"][0] == values[i] and got["HOSTILE"] == values[i]


def _stub_sbatch(bin_dir: Path, log: Path) -> None:
    """An sbatch that records its argv (NUL-separated) and answers like --parsable."""
    stub = bin_dir / "sbatch"
    stub.write_text(f"""#!/usr/bin/env bash
n=$(( $(cat {log}.n 2>/dev/null || echo 100) + 1 ))
echo "$n" > {log}.n
printf '%s\\0' "$@" >> {log}
printf '\\n' >> {log}
echo "$n"
""")
    stub.chmod(0o755)


def test_submit_all_passes_secret_and_ids_exactly(bundle: dict[str, Path],
                                                  tmp_path: Path) -> None:
    log = tmp_path / "argv.log"
    env = _env(bundle, tmp_path / "dump.jsonl")
    _stub_sbatch(bundle["root"] / "bin", log)
    proc = subprocess.run(["bash", str(bundle["dir"] / "submit_all.sh")], env=env,
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    calls = [c.split("\0") for c in log.read_text().split("\0\n") if c]
    assert [c[-1] for c in calls] == ["argv.sbatch", "code.sbatch"]
    for call in calls:
        assert f"--account={SECRET}" in call
        assert "--export=ALL,RUN_ID=r1,JP_OFFSET=0" in call
    assert "--dependency=afterok:101" in calls[1]
    ledger = (bundle["dir"] / "ledger.tsv").read_text().splitlines()
    rows = [row.split("\t") for row in ledger[1:]]
    rows = [r for r in rows if r[7] == "submit"]  # each follows its intent ("submitting")
    assert [[r[1], r[2], r[3], r[5], r[7]] for r in rows] == [
        ["argv", "1", f"0-{len(_points('argv')) - 1}", "101", "submit"],
        ["code", "2", f"0-{len(_points('code')) - 1}", "102", "submit"]]
    assert SECRET not in "".join(p.read_text() for p in bundle["dir"].glob("*.s*"))
