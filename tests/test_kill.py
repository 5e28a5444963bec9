"""A build killed at any moment: out/ stays the old bundle or becomes the new one, whole,
with what scripts wrote beside it, and the next build finishes the job.

A 5,000-point project (a Slurm sweep over a sequences file, and the same sequences as NGC
points with one config file each) is rebuilt back and forth between two versions that
differ in 1,000 configs, both sweep tables and a Slurm script. Each rebuild is SIGKILLed at
a moment drawn from a seeded generator: a time after its start, the N-th change the build
makes to the file system, or the N-th change of its publish stage (the build stops itself
there through JOBPACK_TEST_STOP, and is killed while stopped).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT
from test_publish import STATE_FILES, manifest_ok

pytestmark = pytest.mark.slow

POINTS = 5_000
MOMENTS = 20
SEED = 20_251_201
TAIL = 8  # publish steps from the journal's temporary file to the removal of the old tree

PROJECT = """\
project: killed
secrets: [HPC_ACCOUNT]
clusters:
  hpc:
    kind: slurm
    account: ${{HPC_ACCOUNT}}
    max_array_size: 1001
  ngc:
    kind: ngc
    org: nvidian
    team: swaiinf
    ace: nv-us-west-2
    instance: dgx1v.16g.1.norm
    workspaces: {{ws: /workspace}}
    result: /results
    configs: /workspace/configs
jobs:
  fold:
    cluster: hpc
    resources: {{time: "1:00:00"}}
    sweep: {{sequences: sequences.json, throttle: 100}}
    command: python fold.py --sequence {{{{ sequence }}}} --length {{{{ length }}}} --v {version}
  train:
    cluster: ngc
    image: nvcr.io/nvidia/pytorch:24.01-py3
    sweep: {{sequences: sequences.json}}
    config:
      base: /workspace/code/configs/train.py
      set: {{name: "{{{{ sequence }}}}", length: "{{{{ length }}}}"}}
    command: python train.py {{{{ config_path }}}}
"""

RUNTIME = {"slurm/hpc/ledger.tsv": b"run\tjob\tid\nr1\tfold\t17\n",
           "slurm/hpc/logs/fold_17_0.out": b"folding\n",
           "ngc/ngc/ledger.tsv": b"point\tjob\n0\t12345\n", "ngc/ngc/.ledger.lock": b""}


def write_version(root: Path, version: int) -> None:
    """Version 1 changes every fifth sequence's length, so 1,000 configs, and the Slurm
    command."""
    (root / "project.yaml").write_text(PROJECT.format(version=version))
    lengths = {f"seq_{i:05d}": 100 + i % 900 + (version if i % 5 == 0 else 0)
               for i in range(POINTS)}
    (root / "sequences.json").write_text(json.dumps(lengths))


def tree(out: Path) -> dict[str, bytes]:
    found = {}
    for here, _dirs, files in os.walk(out):
        for name in files:
            path = Path(here) / name
            found[path.relative_to(out).as_posix()] = path.read_bytes()
    return found


@dataclass
class Calibration:
    seconds: float
    steps: dict[str, int]


class Builds:
    """Builds of one project into one out/, killed or not."""

    def __init__(self, root: Path) -> None:
        self.root, self.out = root, root / "out"
        self.cmd = [sys.executable, "-m", "jobpack", "build", "-p",
                    str(root / "project.yaml"), "-o", str(self.out)]

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.cmd, cwd=ROOT, env={**os.environ, **env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def complete(self, **env: str) -> str:
        proc = self.start(**env)
        _, err = proc.communicate()
        assert proc.returncode == 0, err.decode()
        return err.decode()

    def calibrate(self) -> Calibration:
        start = time.perf_counter()
        err = self.complete(JOBPACK_TEST_STOP="count")
        seconds = time.perf_counter() - start
        counts = re.search(r"jobpack-test: (.*)", err)
        assert counts, err
        steps = {k: int(v) for k, v in (kv.split("=") for kv in counts.group(1).split())}
        return Calibration(seconds, steps)

    def kill_at_step(self, stage: str, n: int) -> bool:
        """Stop the build before its n-th change in ``stage`` and kill it there."""
        proc = self.start(JOBPACK_TEST_STOP=f"{stage}:{n}")
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        if os.WIFSTOPPED(status):
            os.kill(proc.pid, signal.SIGKILL)
            os.waitpid(proc.pid, 0)
        proc.returncode = 0  # reaped here, not by Popen
        assert proc.stderr is not None
        proc.stderr.close()
        return os.WIFSTOPPED(status)

    def kill_after(self, seconds: float) -> bool:
        proc = self.start()
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return True
        assert proc.returncode == 0
        return False


def pick_moment(rng: random.Random, i: int, cal: Calibration) -> tuple[str, str, float]:
    """In turn: a time; a step of the whole build; one of the last steps of the publish
    stage (from the journal on: the switch and what follows it, a dozen changes among
    thousands of links before them)."""
    if i % 3 == 0:
        return "time", "", rng.uniform(0.0, 0.9 * cal.seconds)
    if i % 3 == 2:
        last = cal.steps["publish"]
        return "step", "publish", rng.randint(last - TAIL + 1, last)
    n = rng.randint(1, sum(cal.steps.values()))
    for stage in ("plan", "render", "lint", "publish"):
        if n <= cal.steps.get(stage, 0):
            return "step", stage, n
        n -= cal.steps.get(stage, 0)
    raise AssertionError("unreachable")


def check_out(out: Path, bundles: list[dict[str, bytes]]) -> int:
    """out/ is one of the bundles exactly, plus the run-time files; return which."""
    assert manifest_ok(out)
    files = tree(out)
    assert {rel: files.pop(rel, None) for rel in RUNTIME} == RUNTIME
    assert files in bundles, "out/ is neither the old bundle nor the new one"
    return bundles.index(files)


def test_killed_builds_leave_the_old_or_the_new_bundle(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    builds = Builds(root)
    bundles, cals = [], []
    for version in (0, 1):
        write_version(root, version)
        builds.complete()
        bundles.append(tree(builds.out))
    for rel, data in RUNTIME.items():
        (builds.out / rel).parent.mkdir(parents=True, exist_ok=True)
        (builds.out / rel).write_bytes(data)
    for version in (0, 1):  # out/ goes 1 -> 0 -> 1, each rebuild counted and timed
        write_version(root, version)
        cals.append(builds.calibrate())
    assert len(set(bundles[0]) ^ set(bundles[1])) == 0
    assert sum(bundles[0][p] != bundles[1][p] for p in bundles[0]) > 1_000

    rng = random.Random(SEED)
    target, kills, start = 0, 0, time.perf_counter()
    outcomes: Counter[str] = Counter()
    for _attempt in range(2 * MOMENTS):
        write_version(root, target)
        kind, stage, at = pick_moment(rng, kills, cals[target])
        killed = builds.kill_after(at) if kind == "time" else builds.kill_at_step(stage,
                                                                                  int(at))
        left = "new" if check_out(builds.out, bundles) == target else "old"
        outcomes[f"{kind} {stage}: {left}".replace(" :", ":")] += killed
        builds.complete()
        assert check_out(builds.out, bundles) == target
        assert set(os.listdir(root / ".jobpack" / "out")) == STATE_FILES
        kills += killed
        target = 1 - target
        if kills == MOMENTS:
            break
    assert kills == MOMENTS
    assert {k.rsplit(" ", 1)[1] for k in +outcomes} == {"old", "new"}, \
        "the moments are not spread over the whole build"
    print(f"{kills} builds killed in {time.perf_counter() - start:.1f} s "
          f"({dict(sorted(outcomes.items()))}); rebuild {cals[0].seconds:.2f} s, "
          f"steps {cals[0].steps}")
